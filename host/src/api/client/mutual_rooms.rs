//! `GET /_matrix/client/v1/mutual_rooms?user_id=…`.

use axum::extract::State;
use axum::Json as Reply;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::error::ApiResult;
use crate::api::extract::{Auth, Query};
use crate::api::AppState;
use crate::service::identifiers::UserId;
use crate::service::Error;

#[derive(Deserialize)]
pub(crate) struct MutualQuery {
    user_id: Option<String>,
    from: Option<String>,
}

/// GET /_matrix/client/v1/mutual_rooms: all of them at once, so never a `next_batch`.
pub(crate) async fn mutual_rooms(
    State(s): State<AppState>,
    Auth(session): Auth,
    Query(q): Query<MutualQuery>,
) -> ApiResult<Reply<Value>> {
    if q.from.is_some() {
        return Err(Error::InvalidParam(
            "unknown 'from' token: this server sends every room at once".into(),
        )
        .into());
    }
    let other = q
        .user_id
        .ok_or_else(|| Error::InvalidParam("the 'user_id' query parameter is required".into()))?;
    let other = UserId::parse(other)?;
    let joined = s.mutual_rooms(&session.user_id, &other).await?;
    Ok(Reply(json!({ "joined": joined, "count": joined.len() })))
}
