//! Room tags: `/user/{userId}/rooms/{roomId}/tags` and `…/tags/{tag}`.

use axum::extract::State;
use axum::Json as Reply;
use serde_json::{json, Value};

use crate::api::error::ApiResult;
use crate::api::extract::{Auth, Json, Path};
use crate::api::AppState;
use crate::service::identifiers::{RoomId, UserId};

/// GET /user/{userId}/rooms/{roomId}/tags
pub(crate) async fn list(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path((user_id, room_id)): Path<(String, String)>,
) -> ApiResult<Reply<Value>> {
    let user_id = UserId::parse(user_id)?;
    session.require_self(&user_id, "tags")?;
    let room_id = RoomId::parse(room_id)?;
    Ok(Reply(s.room_tags(&user_id, &room_id).await?))
}

/// PUT /user/{userId}/rooms/{roomId}/tags/{tag}
pub(crate) async fn put(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path((user_id, room_id, tag)): Path<(String, String, String)>,
    Json(content): Json<Value>,
) -> ApiResult<Reply<Value>> {
    let user_id = UserId::parse(user_id)?;
    session.require_self(&user_id, "tags")?;
    let room_id = RoomId::parse(room_id)?;
    s.set_room_tag(&user_id, &room_id, &tag, content).await?;
    Ok(Reply(json!({})))
}

/// DELETE /user/{userId}/rooms/{roomId}/tags/{tag}
pub(crate) async fn delete(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path((user_id, room_id, tag)): Path<(String, String, String)>,
) -> ApiResult<Reply<Value>> {
    let user_id = UserId::parse(user_id)?;
    session.require_self(&user_id, "tags")?;
    let room_id = RoomId::parse(room_id)?;
    s.remove_room_tag(&user_id, &room_id, &tag).await?;
    Ok(Reply(json!({})))
}
