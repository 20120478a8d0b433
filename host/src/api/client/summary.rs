//! `GET /room_summary/{roomIdOrAlias}` (also without a token) and
//! `GET /rooms/{roomId}/hierarchy`.

use axum::extract::State;
use axum::Json as Reply;
use serde::Deserialize;
use serde_json::Value;

use crate::api::error::ApiResult;
use crate::api::extract::{Auth, MaybeAuth, Path, Query};
use crate::api::AppState;
use crate::service::identifiers::{RoomId, RoomOrAlias};
use crate::service::rooms::summary::HierarchyRequest;
use crate::service::Error;

/// GET /_matrix/client/v1/room_summary/{roomIdOrAlias}
pub(crate) async fn room_summary(
    State(s): State<AppState>,
    MaybeAuth(session): MaybeAuth,
    Path(target): Path<String>,
) -> ApiResult<Reply<Value>> {
    let target = RoomOrAlias::parse(&target)?;
    let user = session.as_ref().map(|s| &s.user_id);
    Ok(Reply(s.rooms.room_summary(user, &target).await?))
}

#[derive(Deserialize)]
pub(crate) struct HierarchyQuery {
    suggested_only: Option<bool>,
    limit: Option<usize>,
    max_depth: Option<usize>,
    from: Option<String>,
}

/// GET /_matrix/client/v1/rooms/{roomId}/hierarchy
pub(crate) async fn hierarchy(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(room_id): Path<String>,
    Query(q): Query<HierarchyQuery>,
) -> ApiResult<Reply<Value>> {
    let room_id = RoomId::parse(room_id)?;
    if q.limit == Some(0) {
        return Err(Error::InvalidParam("limit must be greater than zero".into()).into());
    }
    let skip = match q.from.as_deref() {
        None => 0,
        Some(t) => t.parse().map_err(|_| {
            Error::InvalidParam(format!("'{}' is not a valid token", t.escape_debug()))
        })?,
    };
    let req = HierarchyRequest {
        suggested_only: q.suggested_only.unwrap_or(false),
        limit: q.limit,
        max_depth: q.max_depth,
        skip,
    };
    Ok(Reply(
        s.rooms.hierarchy(&session.user_id, &room_id, req).await?,
    ))
}
