//! End-to-end encryption keys of this server's users, for other servers:
//! `/user/devices/{userId}`, `/user/keys/query` and `/user/keys/claim`. Another server's user
//! is not ours to answer for: `404` for their devices, left out of a query or claim.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json as Reply;
use serde::Deserialize;
use serde_json::Value;

use super::auth::Signed;
use crate::api::error::ApiResult;
use crate::api::extract::Path;
use crate::api::AppState;
use crate::service::Error;

/// GET /_matrix/federation/v1/user/devices/{userId}
pub(crate) async fn user_devices(
    State(s): State<AppState>,
    Path(user_id): Path<String>,
    signed: Signed,
) -> ApiResult<Reply<Value>> {
    tracing::debug!(origin = %signed.origin, user = %user_id, "devices asked over federation");
    Ok(Reply(s.user_devices_for_server(&user_id).await?))
}

#[derive(Deserialize)]
struct QueryBody {
    device_keys: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
struct ClaimBody {
    one_time_keys: BTreeMap<String, BTreeMap<String, String>>,
}

/// The signed request's JSON body as `T`, or `400 M_BAD_JSON`.
fn body<T: serde::de::DeserializeOwned>(signed: Signed) -> Result<T, Error> {
    let body = signed
        .body
        .ok_or_else(|| Error::NotJson("a JSON body is required".into()))?;
    serde_json::from_value(body).map_err(|e| Error::BadJson(e.to_string()))
}

/// POST /_matrix/federation/v1/user/keys/query
pub(crate) async fn keys_query(
    State(s): State<AppState>,
    signed: Signed,
) -> ApiResult<Reply<Value>> {
    let q: QueryBody = body(signed)?;
    Ok(Reply(s.query_keys_for_server(q.device_keys).await?))
}

/// POST /_matrix/federation/v1/user/keys/claim
pub(crate) async fn keys_claim(
    State(s): State<AppState>,
    signed: Signed,
) -> ApiResult<Reply<Value>> {
    let c: ClaimBody = body(signed)?;
    Ok(Reply(s.claim_keys_for_server(c.one_time_keys).await?))
}
