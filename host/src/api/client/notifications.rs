//! `GET /notifications`: the events that notified the user, newest first.

use axum::extract::State;
use axum::Json as Reply;
use serde::Deserialize;
use serde_json::Value;

use crate::api::error::ApiResult;
use crate::api::extract::{Auth, Query};
use crate::api::AppState;

#[derive(Deserialize)]
pub(crate) struct NotificationsQuery {
    from: Option<String>,
    limit: Option<String>,
    only: Option<String>,
}

/// GET /notifications
pub(crate) async fn list(
    State(s): State<AppState>,
    Auth(session): Auth,
    Query(q): Query<NotificationsQuery>,
) -> ApiResult<Reply<Value>> {
    Ok(Reply(
        s.notifications(
            &session.user_id,
            q.from.as_deref(),
            q.limit.as_deref(),
            q.only.as_deref(),
        )
        .await?,
    ))
}
