//! This server's room directory and spaces, for other servers: `GET` and `POST /publicRooms`
//! and `GET /hierarchy/{roomId}`.

use axum::extract::State;
use axum::Json as Reply;
use serde::Deserialize;
use serde_json::Value;

use super::auth::Signed;
use crate::api::error::ApiResult;
use crate::api::extract::{Path, Query};
use crate::api::AppState;
use crate::service::identifiers::RoomId;
use crate::service::Error;

#[derive(Deserialize)]
pub(crate) struct PublicRoomsQuery {
    limit: Option<usize>,
    since: Option<String>,
}

/// GET /_matrix/federation/v1/publicRooms
pub(crate) async fn public_rooms(
    State(s): State<AppState>,
    Query(q): Query<PublicRoomsQuery>,
    signed: Signed,
) -> ApiResult<Reply<Value>> {
    tracing::debug!(origin = %signed.origin, "public rooms asked over federation");
    Ok(Reply(
        s.rooms
            .public_rooms_page(q.limit, q.since.as_deref(), None)
            .await?,
    ))
}

#[derive(Deserialize)]
struct PublicRoomsBody {
    limit: Option<usize>,
    since: Option<String>,
    filter: Option<PublicRoomsFilter>,
}

#[derive(Deserialize)]
struct PublicRoomsFilter {
    generic_search_term: Option<String>,
}

/// POST /_matrix/federation/v1/publicRooms
pub(crate) async fn public_rooms_post(
    State(s): State<AppState>,
    signed: Signed,
) -> ApiResult<Reply<Value>> {
    let body: PublicRoomsBody = match signed.body {
        Some(b) => serde_json::from_value(b).map_err(|e| Error::BadJson(e.to_string()))?,
        None => return Err(Error::NotJson("a JSON body is required".into()).into()),
    };
    let term = body
        .filter
        .and_then(|f| f.generic_search_term)
        .map(|t| t.to_lowercase());
    Ok(Reply(
        s.rooms
            .public_rooms_page(body.limit, body.since.as_deref(), term.as_deref())
            .await?,
    ))
}

#[derive(Deserialize)]
pub(crate) struct HierarchyQuery {
    #[serde(default)]
    suggested_only: bool,
}

/// GET /_matrix/federation/v1/hierarchy/{roomId}
pub(crate) async fn hierarchy(
    State(s): State<AppState>,
    Path(room_id): Path<String>,
    Query(q): Query<HierarchyQuery>,
    signed: Signed,
) -> ApiResult<Reply<Value>> {
    tracing::debug!(origin = %signed.origin, room = %room_id, "hierarchy asked over federation");
    let room_id = RoomId::parse(room_id)?;
    Ok(Reply(
        s.rooms
            .hierarchy_for_server(&room_id, q.suggested_only)
            .await?,
    ))
}
