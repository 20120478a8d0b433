//! Account data, global and per room.

use axum::extract::State;
use axum::Json as Reply;
use serde_json::{json, Value};

use crate::api::error::ApiResult;
use crate::api::extract::{Auth, Json, Path};
use crate::api::AppState;
use crate::service::identifiers::{RoomId, UserId};

/// GET /user/{userId}/account_data/{type}
pub(crate) async fn get_global(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path((user_id, kind)): Path<(String, String)>,
) -> ApiResult<Reply<Value>> {
    let user_id = UserId::parse(user_id)?;
    session.require_self(&user_id, "account data")?;
    Ok(Reply(s.account_data(&user_id, None, &kind).await?))
}

/// PUT /user/{userId}/account_data/{type}
pub(crate) async fn put_global(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path((user_id, kind)): Path<(String, String)>,
    Json(content): Json<Value>,
) -> ApiResult<Reply<Value>> {
    let user_id = UserId::parse(user_id)?;
    session.require_self(&user_id, "account data")?;
    s.set_account_data(&user_id, None, &kind, &content).await?;
    Ok(Reply(json!({})))
}

/// GET /user/{userId}/rooms/{roomId}/account_data/{type}
pub(crate) async fn get_room(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path((user_id, room_id, kind)): Path<(String, String, String)>,
) -> ApiResult<Reply<Value>> {
    let user_id = UserId::parse(user_id)?;
    session.require_self(&user_id, "account data")?;
    let room_id = RoomId::parse(room_id)?;
    Ok(Reply(
        s.account_data(&user_id, Some(&room_id), &kind).await?,
    ))
}

/// PUT /user/{userId}/rooms/{roomId}/account_data/{type}
pub(crate) async fn put_room(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path((user_id, room_id, kind)): Path<(String, String, String)>,
    Json(content): Json<Value>,
) -> ApiResult<Reply<Value>> {
    let user_id = UserId::parse(user_id)?;
    session.require_self(&user_id, "account data")?;
    let room_id = RoomId::parse(room_id)?;
    s.set_account_data(&user_id, Some(&room_id), &kind, &content)
        .await?;
    Ok(Reply(json!({})))
}
