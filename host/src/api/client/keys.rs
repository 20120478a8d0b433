//! End-to-end encryption keys and to-device messages: `/keys/upload`, `/keys/query`,
//! `/keys/claim`, `/keys/changes`, cross-signing (`/keys/device_signing/upload`,
//! `/keys/signatures/upload`) and `/sendToDevice/{eventType}/{txnId}`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json as Reply;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::api::error::ApiResult;
use crate::api::extract::{Auth, ClientIp, Json, Path, Query};
use crate::api::AppState;
use crate::service::e2ee::cross_signing::DeviceSigningBody;
use crate::service::e2ee::keys::{remote_timeout, ClaimBody, QueryBody, UploadBody};
use crate::service::ratelimit::Action;
use crate::service::sync::token::parse_pagination;
use crate::service::Error;

/// POST /keys/upload
pub(crate) async fn upload(
    State(s): State<AppState>,
    Auth(session): Auth,
    Json(body): Json<UploadBody>,
) -> ApiResult<Reply<Value>> {
    Ok(Reply(s.upload_keys(&session, body).await?))
}

/// POST /keys/query
pub(crate) async fn query(
    State(s): State<AppState>,
    Auth(session): Auth,
    Json(body): Json<QueryBody>,
) -> ApiResult<Reply<Value>> {
    let timeout = remote_timeout(body.timeout);
    Ok(Reply(
        s.query_keys(&session.user_id, body.device_keys, timeout)
            .await?,
    ))
}

/// POST /keys/claim
pub(crate) async fn claim(
    State(s): State<AppState>,
    Auth(_session): Auth,
    Json(body): Json<ClaimBody>,
) -> ApiResult<Reply<Value>> {
    let timeout = remote_timeout(body.timeout);
    Ok(Reply(s.claim_keys(body.one_time_keys, timeout).await?))
}

#[derive(Deserialize)]
pub(crate) struct ChangesQuery {
    from: Option<String>,
    to: Option<String>,
}

/// GET /keys/changes?from=…&to=…
pub(crate) async fn changes(
    State(s): State<AppState>,
    Auth(session): Auth,
    Query(q): Query<ChangesQuery>,
) -> ApiResult<Reply<Value>> {
    let token = |t: Option<String>, name: &str| {
        t.ok_or_else(|| Error::MissingParam(format!("the '{name}' query parameter is required")))
            .and_then(|t| parse_pagination(&t))
    };
    let from = token(q.from, "from")?;
    let to = token(q.to, "to")?;
    let lists = s.device_list_changes(&session.user_id, from, to).await?;
    Ok(Reply(lists.to_json()))
}

#[derive(Deserialize)]
pub(crate) struct ToDeviceBody {
    messages: BTreeMap<String, Map<String, Value>>,
}

/// PUT /sendToDevice/{eventType}/{txnId}
pub(crate) async fn send_to_device(
    State(s): State<AppState>,
    Auth(session): Auth,
    ClientIp(ip): ClientIp,
    Path((event_type, txn_id)): Path<(String, String)>,
    Json(body): Json<ToDeviceBody>,
) -> ApiResult<Reply<Value>> {
    s.ratelimit.check_request(Action::ToDevice, &session, &ip)?;
    s.send_to_device(&session, &event_type, &txn_id, body.messages)
        .await?;
    Ok(Reply(json!({})))
}

/// POST /keys/device_signing/upload
pub(crate) async fn device_signing_upload(
    State(s): State<AppState>,
    Auth(session): Auth,
    Json(body): Json<DeviceSigningBody>,
) -> ApiResult<Reply<Value>> {
    s.upload_cross_signing(&session, body).await?;
    Ok(Reply(json!({})))
}

/// POST /keys/signatures/upload
pub(crate) async fn signatures_upload(
    State(s): State<AppState>,
    Auth(session): Auth,
    Json(body): Json<BTreeMap<String, Map<String, Value>>>,
) -> ApiResult<Reply<Value>> {
    Ok(Reply(s.upload_signatures(&session, body).await?))
}
