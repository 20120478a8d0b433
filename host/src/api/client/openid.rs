//! `POST /user/{userId}/openid/request_token`.

use axum::extract::State;
use axum::Json as Reply;
use serde_json::Value;

use crate::api::error::ApiResult;
use crate::api::extract::{Auth, Json, Path};
use crate::api::AppState;
use crate::service::identifiers::UserId;

/// POST /user/{userId}/openid/request_token (the body is `{}`).
pub(crate) async fn request_token(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(user_id): Path<String>,
    Json(_): Json<Value>,
) -> ApiResult<Reply<Value>> {
    let user_id = UserId::parse(user_id)?;
    session.require_self(&user_id, "OpenID tokens")?;
    Ok(Reply(s.request_openid_token(&user_id).await?))
}
