//! `GET /sync` and the filter endpoints.

use std::time::Duration;

use axum::extract::State;
use axum::Json as Reply;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::error::ApiResult;
use crate::api::extract::{Auth, Json, Path, Query};
use crate::api::AppState;
use crate::service::sync::sync::SyncRequest;
use crate::service::Error;

#[derive(Deserialize)]
pub struct SyncQuery {
    since: Option<String>,
    timeout: Option<u64>,
    #[serde(default)]
    full_state: Option<String>,
    filter: Option<String>,
    /// Presence is not kept, but a value outside the spec's three is still refused.
    set_presence: Option<Presence>,
}

/// The spec's presence states.
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    Online,
    Offline,
    Unavailable,
}

/// GET /sync
pub async fn sync(
    State(s): State<AppState>,
    Auth(session): Auth,
    Query(q): Query<SyncQuery>,
) -> ApiResult<Reply<Value>> {
    let _ = q.set_presence;
    let filter = s.sync_filter(&session.user_id, q.filter.as_deref()).await?;
    let full_state = match q.full_state.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(Error::InvalidParam(format!(
                "full_state must be true or false, not '{other}'"
            ))
            .into())
        }
    };
    let body = s
        .sync(
            &session,
            SyncRequest {
                since: q.since,
                timeout: Duration::from_millis(q.timeout.unwrap_or(0)),
                full_state,
                filter,
            },
        )
        .await?;
    Ok(Reply(body))
}

/// POST /user/{userId}/filter
pub async fn create_filter(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(user_id): Path<String>,
    Json(filter): Json<Value>,
) -> ApiResult<Reply<Value>> {
    session.require_self(&user_id, "filters")?;
    let id = s.create_filter(&user_id, &filter).await?;
    Ok(Reply(json!({ "filter_id": id.to_string() })))
}

/// GET /user/{userId}/filter/{filterId}
pub async fn get_filter(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path((user_id, filter_id)): Path<(String, String)>,
) -> ApiResult<Reply<Value>> {
    session.require_self(&user_id, "filters")?;
    Ok(Reply(s.filter(&user_id, &filter_id).await?))
}
