//! `GET /_matrix/federation/v1/openid/userinfo`: which user an OpenID token was made for.
//! Asked by third parties with no server key, so it takes no request signature.

use axum::extract::State;
use axum::Json as Reply;
use serde::Deserialize;
use serde_json::Value;

use crate::api::error::ApiResult;
use crate::api::extract::Query;
use crate::api::AppState;
use crate::service::Error;

#[derive(Deserialize)]
pub(crate) struct TokenQuery {
    access_token: Option<String>,
}

pub(crate) async fn userinfo(
    State(s): State<AppState>,
    Query(q): Query<TokenQuery>,
) -> ApiResult<Reply<Value>> {
    let token = q.access_token.ok_or_else(|| {
        Error::MissingToken("the 'access_token' query parameter is required".into())
    })?;
    Ok(Reply(s.openid_userinfo(&token).await?))
}
