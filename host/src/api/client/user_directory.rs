//! `POST /user_directory/search`.

use axum::extract::State;
use axum::Json as Reply;
use serde::Deserialize;
use serde_json::Value;

use crate::api::error::ApiResult;
use crate::api::extract::{Auth, Json};
use crate::api::AppState;
use crate::service::user_directory::DEFAULT_LIMIT;

#[derive(Deserialize)]
pub(crate) struct SearchBody {
    search_term: String,
    #[serde(default)]
    limit: Option<usize>,
}

/// POST /user_directory/search
pub(crate) async fn search(
    State(s): State<AppState>,
    Auth(session): Auth,
    Json(body): Json<SearchBody>,
) -> ApiResult<Reply<Value>> {
    let limit = body.limit.unwrap_or(DEFAULT_LIMIT);
    Ok(Reply(
        s.search_users(&session.user_id, &body.search_term, limit)
            .await?,
    ))
}
