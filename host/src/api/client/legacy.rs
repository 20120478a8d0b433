//! The 2015 paths of the talk: `POST /_matrix/client/api/v1/rooms/{roomId}/send/{eventType}`
//! with the token in the query, which answers `{"event_id": …}` for any JSON object content.

use axum::extract::State;
use axum::Json as Reply;
use serde_json::{json, Value};

use crate::api::error::ApiResult;
use crate::api::extract::{Auth, ClientIp, Json, Path};
use crate::api::AppState;
use crate::service::identifiers::RoomId;
use crate::service::ratelimit::Action;

/// POST /_matrix/client/api/v1/rooms/{roomId}/send/{eventType}
pub(crate) async fn send_without_txn(
    State(s): State<AppState>,
    Auth(session): Auth,
    ClientIp(ip): ClientIp,
    Path((room_id, event_type)): Path<(String, String)>,
    Json(content): Json<Value>,
) -> ApiResult<Reply<Value>> {
    s.ratelimit.check_request(Action::Message, &session, &ip)?;
    let room_id = RoomId::parse(room_id)?;
    let event_id = s
        .send_message(&session, &room_id, &event_type, None, None, content)
        .await?;
    Ok(Reply(json!({ "event_id": event_id })))
}
