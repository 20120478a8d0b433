//! `PUT` and `GET /presence/{userId}/status`.

use axum::extract::State;
use axum::Json as Reply;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::error::ApiResult;
use crate::api::extract::{Auth, Json, Path};
use crate::api::AppState;
use crate::service::identifiers::UserId;
use crate::service::presence::PresenceState;

#[derive(Deserialize)]
pub(crate) struct StatusBody {
    presence: String,
    #[serde(default)]
    status_msg: Option<String>,
}

/// PUT /presence/{userId}/status
pub(crate) async fn set_status(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(user_id): Path<String>,
    Json(body): Json<StatusBody>,
) -> ApiResult<Reply<Value>> {
    let user = UserId::parse(user_id)?;
    let state = PresenceState::parse(&body.presence)?;
    s.set_presence(&session, &user, state, body.status_msg)
        .await?;
    Ok(Reply(json!({})))
}

/// GET /presence/{userId}/status
pub(crate) async fn status(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(user_id): Path<String>,
) -> ApiResult<Reply<Value>> {
    let user = UserId::parse(user_id)?;
    Ok(Reply(s.presence_status(&session, &user).await?))
}
