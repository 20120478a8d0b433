//! `GET /_matrix/key/v2/server`: the server's verify key, self-signed.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::api::AppState;
use crate::service::now_ms;

/// How long a fetched key may be cached by other servers.
const VALIDITY_MS: i64 = 7 * 24 * 3600 * 1000;

pub(crate) async fn server_keys(State(s): State<AppState>) -> Json<Value> {
    let mut body = json!({
        "server_name": s.server_name(),
        "valid_until_ts": now_ms() + VALIDITY_MS,
        "verify_keys": { s.key.key_id(): { "key": s.key.public_key_base64() } },
        "old_verify_keys": {},
    });
    s.key.sign_json(&mut body);
    Json(body)
}
