//! `POST /search`.

use axum::extract::State;
use axum::Json as Reply;
use serde::Deserialize;
use serde_json::Value;

use crate::api::error::ApiResult;
use crate::api::extract::{Auth, Json, Query};
use crate::api::AppState;

#[derive(Deserialize)]
pub(crate) struct SearchQuery {
    next_batch: Option<String>,
}

/// POST /search
pub(crate) async fn search(
    State(s): State<AppState>,
    Auth(session): Auth,
    Query(q): Query<SearchQuery>,
    Json(body): Json<Value>,
) -> ApiResult<Reply<Value>> {
    Ok(Reply(
        s.search(&session, &body, q.next_batch.as_deref()).await?,
    ))
}
