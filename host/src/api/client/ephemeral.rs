//! Typing notifications, read receipts and read markers.

use axum::extract::State;
use axum::Json as Reply;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::error::ApiResult;
use crate::api::extract::{Auth, Json, Path};
use crate::api::fields::spec_uint;
use crate::api::AppState;
use crate::service::identifiers::{EventId, RoomId, UserId};

#[derive(Deserialize)]
pub(crate) struct TypingBody {
    typing: bool,
    #[serde(default, deserialize_with = "spec_uint")]
    timeout: Option<u64>,
}

/// PUT /rooms/{roomId}/typing/{userId}
pub(crate) async fn typing(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path((room_id, user_id)): Path<(String, String)>,
    Json(body): Json<TypingBody>,
) -> ApiResult<Reply<Value>> {
    let room_id = RoomId::parse(room_id)?;
    let user_id = UserId::parse(user_id)?;
    session.require_self(&user_id, "typing notifications")?;
    s.set_typing(&user_id, &room_id, body.typing, body.timeout)
        .await?;
    Ok(Reply(json!({})))
}

#[derive(Deserialize)]
pub(crate) struct ReceiptBody {
    thread_id: Option<String>,
}

/// POST /rooms/{roomId}/receipt/{receiptType}/{eventId}
pub(crate) async fn receipt(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path((room_id, receipt_type, event_id)): Path<(String, String, String)>,
    Json(body): Json<ReceiptBody>,
) -> ApiResult<Reply<Value>> {
    let room_id = RoomId::parse(room_id)?;
    let event_id = EventId::parse(event_id)?;
    s.send_receipt(
        &session.user_id,
        &room_id,
        &receipt_type,
        &event_id,
        body.thread_id.as_deref(),
    )
    .await?;
    Ok(Reply(json!({})))
}

#[derive(Deserialize)]
pub(crate) struct MarkersBody {
    #[serde(rename = "m.fully_read")]
    fully_read: Option<String>,
    #[serde(rename = "m.read")]
    read: Option<String>,
    #[serde(rename = "m.read.private")]
    read_private: Option<String>,
}

/// POST /rooms/{roomId}/read_markers
pub(crate) async fn read_markers(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(room_id): Path<String>,
    Json(body): Json<MarkersBody>,
) -> ApiResult<Reply<Value>> {
    let room_id = RoomId::parse(room_id)?;
    for (kind, event) in [
        ("m.fully_read", body.fully_read),
        ("m.read", body.read),
        ("m.read.private", body.read_private),
    ] {
        if let Some(event_id) = event {
            let event_id = EventId::parse(event_id)?;
            s.send_receipt(&session.user_id, &room_id, kind, &event_id, None)
                .await?;
        }
    }
    Ok(Reply(json!({})))
}
