//! `GET /pushers` and `POST /pushers/set`.

use axum::extract::State;
use axum::Json as Reply;
use serde_json::{json, Value};

use crate::api::error::ApiResult;
use crate::api::extract::{Auth, Json};
use crate::api::AppState;

/// GET /pushers
pub(crate) async fn list(
    State(s): State<AppState>,
    Auth(session): Auth,
) -> ApiResult<Reply<Value>> {
    Ok(Reply(s.pushers(&session.user_id).await?))
}

/// POST /pushers/set
pub(crate) async fn set(
    State(s): State<AppState>,
    Auth(session): Auth,
    Json(body): Json<Value>,
) -> ApiResult<Reply<Value>> {
    s.set_pusher(&session.user_id, &session.device_id, &body)
        .await?;
    Ok(Reply(json!({})))
}
