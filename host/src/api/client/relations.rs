//! The events relating to an event (`/relations/{eventId}[/{relType}[/{eventType}]]`) and a
//! room's threads (`/threads`).

use axum::extract::State;
use axum::Json as Reply;
use serde::Deserialize;
use serde_json::Value;

use super::message::direction;
use crate::api::error::ApiResult;
use crate::api::extract::{Auth, Path, Query};
use crate::api::AppState;
use crate::service::identifiers::{EventId, RoomId};
use crate::service::sync::relations::{RelationsRequest, ThreadsInclude};
use crate::service::Error;

#[derive(Deserialize)]
pub(crate) struct RelationsQuery {
    from: Option<String>,
    to: Option<String>,
    dir: Option<String>,
    limit: Option<usize>,
    recurse: Option<bool>,
}

/// The three routes' path parameters, the last two optional.
#[derive(Deserialize)]
pub(crate) struct RelationsPath {
    room_id: String,
    event_id: String,
    rel_type: Option<String>,
    event_type: Option<String>,
}

/// GET /rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]
pub(crate) async fn relations(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(p): Path<RelationsPath>,
    Query(q): Query<RelationsQuery>,
) -> ApiResult<Reply<Value>> {
    let room_id = RoomId::parse(p.room_id)?;
    let event_id = EventId::parse(p.event_id)?;
    let req = RelationsRequest {
        rel_type: p.rel_type,
        event_type: p.event_type,
        dir: direction(q.dir.as_deref())?,
        from: q.from,
        to: q.to,
        limit: q.limit.unwrap_or(50),
        recurse: q.recurse.unwrap_or(false),
    };
    Ok(Reply(
        s.relations(&session, &room_id, &event_id, req).await?,
    ))
}

#[derive(Deserialize)]
pub(crate) struct ThreadsQuery {
    include: Option<String>,
    from: Option<String>,
    limit: Option<usize>,
}

/// GET /rooms/{roomId}/threads
pub(crate) async fn threads(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(room_id): Path<String>,
    Query(q): Query<ThreadsQuery>,
) -> ApiResult<Reply<Value>> {
    let room_id = RoomId::parse(room_id)?;
    let include = match q.include.as_deref() {
        None | Some("all") => ThreadsInclude::All,
        Some("participated") => ThreadsInclude::Participated,
        Some(other) => {
            return Err(Error::InvalidParam(format!(
                "include must be all or participated, not '{}'",
                other.escape_debug()
            ))
            .into())
        }
    };
    let limit = q.limit.unwrap_or(50);
    let body = s
        .threads(&session, &room_id, include, q.from.as_deref(), limit)
        .await?;
    Ok(Reply(body))
}
