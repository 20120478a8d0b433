//! `GET /_matrix/federation/v1/query/profile`: a local user's profile, for another server.

use axum::extract::State;
use axum::Json as Reply;
use serde::Deserialize;
use serde_json::Value;

use super::auth::Signed;
use crate::api::error::ApiResult;
use crate::api::extract::Query;
use crate::api::AppState;
use crate::service::identifiers::UserId;
use crate::service::Error;

#[derive(Deserialize)]
pub(crate) struct ProfileQuery {
    user_id: String,
    field: Option<String>,
}

/// GET /_matrix/federation/v1/query/profile?user_id=…[&field=…]
pub(crate) async fn profile(
    State(s): State<AppState>,
    Query(q): Query<ProfileQuery>,
    signed: Signed,
) -> ApiResult<Reply<Value>> {
    let user_id = UserId::parse(q.user_id.as_str())?;
    if user_id.server_name() != s.server_name() {
        return Err(Error::NotFound(format!("{user_id} is not a user of this server")).into());
    }
    tracing::debug!(origin = %signed.origin, user = %user_id, "profile query over federation");
    let mut profile = s.local_profile(&user_id).await?;
    if let Some(field) = q.field {
        let value = profile
            .get_mut(&field)
            .map(Value::take)
            .ok_or_else(|| Error::NotFound(format!("{user_id} has no {field}")))?;
        return Ok(Reply(serde_json::json!({ field: value })));
    }
    Ok(Reply(profile))
}

#[derive(Deserialize)]
pub(crate) struct DirectoryQuery {
    room_alias: String,
}

/// GET /_matrix/federation/v1/query/directory?room_alias=…
pub(crate) async fn directory(
    State(s): State<AppState>,
    Query(q): Query<DirectoryQuery>,
    signed: Signed,
) -> ApiResult<Reply<Value>> {
    let alias = crate::service::identifiers::RoomAlias::parse(q.room_alias.as_str())?;
    tracing::debug!(origin = %signed.origin, %alias, "directory query over federation");
    let (room_id, servers) = s.local_alias_for_server(&alias).await?;
    Ok(Reply(
        serde_json::json!({ "room_id": room_id, "servers": servers }),
    ))
}
