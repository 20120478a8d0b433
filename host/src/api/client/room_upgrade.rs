//! `POST /rooms/{roomId}/upgrade`: a room replaced by a new one of another version.

use axum::extract::State;
use axum::Json as Reply;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::error::ApiResult;
use crate::api::extract::{Auth, Json, Path};
use crate::api::AppState;
use crate::service::identifiers::{RoomId, UserId};

#[derive(Deserialize)]
pub(crate) struct UpgradeBody {
    new_version: String,
    /// Creators besides the upgrader, for a version that has them (12); ignored otherwise.
    #[serde(default)]
    additional_creators: Vec<UserId>,
}

/// POST /rooms/{roomId}/upgrade
pub(crate) async fn upgrade(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(room_id): Path<String>,
    Json(body): Json<UpgradeBody>,
) -> ApiResult<Reply<Value>> {
    let room_id = RoomId::parse(room_id)?;
    let replacement = s
        .rooms
        .upgrade(
            &session.user_id,
            &room_id,
            &body.new_version,
            &body.additional_creators,
        )
        .await?;
    Ok(Reply(json!({ "replacement_room": replacement })))
}
