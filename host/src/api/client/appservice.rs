//! What an application service asks of the client-server API about itself: ping.

use axum::extract::State;
use axum::Json as Reply;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::error::ApiResult;
use crate::api::extract::{Auth, Json, Path};
use crate::api::AppState;

#[derive(Deserialize)]
pub(crate) struct PingBody {
    transaction_id: Option<String>,
}

/// POST /_matrix/client/v1/appservice/{appserviceId}/ping
pub(crate) async fn ping(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(id): Path<String>,
    Json(body): Json<PingBody>,
) -> ApiResult<Reply<Value>> {
    let caller = session.appservice.as_ref().map(|a| a.id.as_str());
    let took = s
        .ping_appservice(caller, &id, body.transaction_id.as_deref())
        .await?;
    Ok(Reply(json!({ "duration_ms": took })))
}
