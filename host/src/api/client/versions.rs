//! `GET /_matrix/client/versions`, `/.well-known/matrix/{client,support,policy_server}`,
//! `GET /capabilities`.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::api::error::{ApiResult, MatrixError};
use crate::api::extract::Auth;
use crate::api::AppState;
use crate::service::{room_version, Error};

/// The spec versions whose routes all answer (served, or refused with the spec's answer for
/// a server without the feature), and the MSCs served in the form their flag announces:
/// private read receipts, threads, threaded receipts and authenticated media.
pub(crate) async fn versions() -> Json<Value> {
    Json(json!({
        "versions": [
            "r0.5.0", "r0.6.0", "r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6",
            "v1.7", "v1.8", "v1.9", "v1.10", "v1.11"
        ],
        "unstable_features": {
            "org.matrix.msc2285.stable": true,
            "org.matrix.msc3440.stable": true,
            "org.matrix.msc3771": true,
            "org.matrix.msc3916.stable": true,
        }
    }))
}

pub(crate) async fn well_known(State(s): State<AppState>) -> Json<Value> {
    Json(json!({ "m.homeserver": { "base_url": s.config.public_baseurl() } }))
}

/// GET /.well-known/matrix/support: the `[support]` section, or 404 when it is empty.
pub(crate) async fn support(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let support = &s.config.support;
    if support.page.is_empty() && support.contacts.is_empty() {
        return Err(Error::NotFound("this server publishes no support information".into()).into());
    }
    let mut body = json!({});
    if !support.contacts.is_empty() {
        body["contacts"] = json!(support.contacts);
    }
    if !support.page.is_empty() {
        body["support_page"] = json!(support.page);
    }
    Ok(Json(body))
}

/// GET /.well-known/matrix/policy_server: this server runs no policy server.
pub(crate) async fn policy_server() -> MatrixError {
    Error::NotFound("this server runs no policy server".into()).into()
}

pub(crate) async fn capabilities(Auth(_): Auth) -> Json<Value> {
    Json(json!({
        "capabilities": {
            "m.room_versions": room_versions(),
            "m.change_password": { "enabled": true },
            "m.get_login_token": { "enabled": false },
            "m.profile_fields": { "enabled": false },
            "m.set_displayname": { "enabled": true },
            "m.set_avatar_url": { "enabled": true },
            "m.3pid_changes": { "enabled": false }
        }
    }))
}

/// `m.room_versions`: the default and every supported version with its stability.
fn room_versions() -> Value {
    let available: serde_json::Map<String, Value> = room_version::SUPPORTED
        .iter()
        .map(|v| {
            let stability = if v.stable { "stable" } else { "unstable" };
            (v.id.to_string(), json!(stability))
        })
        .collect();
    json!({ "default": room_version::DEFAULT.id, "available": available })
}
