//! `POST /account/password` and `POST /account/deactivate`.

use axum::extract::State;
use axum::Json as Reply;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::error::ApiResult;
use crate::api::extract::{Auth, Json};
use crate::api::fields::object;
use crate::api::AppState;

#[derive(Deserialize)]
pub(crate) struct PasswordBody {
    new_password: String,
    #[serde(default)]
    logout_devices: Option<bool>,
    #[serde(default, deserialize_with = "object")]
    auth: Option<Value>,
}

/// POST /account/password: the other devices are logged out unless `logout_devices` is false.
pub(crate) async fn change_password(
    State(s): State<AppState>,
    Auth(session): Auth,
    Json(body): Json<PasswordBody>,
) -> ApiResult<Reply<Value>> {
    s.change_password(
        &session,
        &body.new_password,
        body.logout_devices.unwrap_or(true),
        body.auth.as_ref(),
    )
    .await?;
    Ok(Reply(json!({})))
}

#[derive(Deserialize)]
pub(crate) struct DeactivateBody {
    #[serde(default, deserialize_with = "object")]
    auth: Option<Value>,
}

/// POST /account/deactivate. No identity server is bound, so there is nothing to unbind.
pub(crate) async fn deactivate(
    State(s): State<AppState>,
    Auth(session): Auth,
    Json(body): Json<DeactivateBody>,
) -> ApiResult<Reply<Value>> {
    s.deactivate_account(&session, body.auth.as_ref()).await?;
    Ok(Reply(json!({ "id_server_unbind_result": "no-support" })))
}
