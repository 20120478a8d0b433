//! Profiles: display name and avatar URL.

use axum::extract::State;
use axum::Json as Reply;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::error::ApiResult;
use crate::api::extract::{Auth, ClientIp, Json, Path};
use crate::api::AppState;
use crate::service::identifiers::UserId;
use crate::service::ratelimit::Action;
use crate::service::Error;

/// GET /profile/{userId}
pub(crate) async fn profile(
    State(s): State<AppState>,
    Path(user_id): Path<String>,
) -> ApiResult<Reply<Value>> {
    Ok(Reply(s.profile(&UserId::parse(user_id)?).await?))
}

async fn field(s: &AppState, user_id: String, key: &str) -> ApiResult<Reply<Value>> {
    let user_id = UserId::parse(user_id)?;
    let p = s.profile(&user_id).await?;
    match p.get(key) {
        Some(v) => Ok(Reply(json!({ key: v }))),
        None => Err(Error::NotFound(format!("{user_id} has no {key}")).into()),
    }
}

/// GET /profile/{userId}/displayname
pub(crate) async fn get_displayname(
    State(s): State<AppState>,
    Path(user_id): Path<String>,
) -> ApiResult<Reply<Value>> {
    field(&s, user_id, "displayname").await
}

/// GET /profile/{userId}/avatar_url
pub(crate) async fn get_avatar_url(
    State(s): State<AppState>,
    Path(user_id): Path<String>,
) -> ApiResult<Reply<Value>> {
    field(&s, user_id, "avatar_url").await
}

#[derive(Deserialize)]
pub(crate) struct DisplaynameBody {
    displayname: Option<String>,
}

/// PUT /profile/{userId}/displayname
pub(crate) async fn put_displayname(
    State(s): State<AppState>,
    Auth(session): Auth,
    ClientIp(ip): ClientIp,
    Path(user_id): Path<String>,
    Json(body): Json<DisplaynameBody>,
) -> ApiResult<Reply<Value>> {
    let user_id = UserId::parse(user_id)?;
    session.require_self(&user_id, "profile")?;
    s.ratelimit
        .check_request(Action::ProfileChange, &session, &ip)?;
    s.set_displayname(&user_id, body.displayname.as_deref())
        .await?;
    Ok(Reply(json!({})))
}

#[derive(Deserialize)]
pub(crate) struct AvatarBody {
    avatar_url: Option<String>,
}

/// PUT /profile/{userId}/avatar_url
pub(crate) async fn put_avatar_url(
    State(s): State<AppState>,
    Auth(session): Auth,
    ClientIp(ip): ClientIp,
    Path(user_id): Path<String>,
    Json(body): Json<AvatarBody>,
) -> ApiResult<Reply<Value>> {
    let user_id = UserId::parse(user_id)?;
    session.require_self(&user_id, "profile")?;
    s.ratelimit
        .check_request(Action::ProfileChange, &session, &ip)?;
    s.set_avatar_url(&user_id, body.avatar_url.as_deref())
        .await?;
    Ok(Reply(json!({})))
}
