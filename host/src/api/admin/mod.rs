//! The admin API: application services (list, show, add, update, remove, retry now), WASM
//! plugins (list, show, install, upgrade, enable, disable, reload, endpoints, skip, remove), the
//! talk's `POST /_matrix/appservice/v1/register`, `GET /metrics`, and the reports users made
//! (list, dismiss).
//!
//! Every endpoint here needs an admin: `Authorization: Bearer` with the admin token from
//! `data_dir/admin.token`, or the access token of a user who is a server admin. No token is
//! `401 M_MISSING_TOKEN`, a token nobody has `401 M_UNKNOWN_TOKEN`, anyone else's
//! `403 M_FORBIDDEN`.

mod appservices;
mod exposition;
mod federation_metrics;
mod metrics;
mod plugin_metrics;
mod plugins;
mod register;
mod reports;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::Router;

use super::error::MatrixError;
use super::extract::access_token;
use super::AppState;
use crate::service::appservice::takeover::Takeovers;
use crate::service::Error;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/_plugboard/admin/v1/appservices",
            get(appservices::list).post(appservices::add),
        )
        .route(
            "/_plugboard/admin/v1/appservices/{id}",
            get(appservices::show)
                .put(appservices::update)
                .delete(appservices::remove),
        )
        .route(
            "/_plugboard/admin/v1/appservices/{id}/retry",
            post(appservices::retry),
        )
        .route(
            "/_plugboard/admin/v1/plugins",
            get(plugins::list).post(plugins::install),
        )
        .route(
            "/_plugboard/admin/v1/plugins/{id}",
            get(plugins::show)
                .put(plugins::upgrade)
                .delete(plugins::remove),
        )
        .route(
            "/_plugboard/admin/v1/plugins/{id}/enable",
            post(plugins::enable),
        )
        .route(
            "/_plugboard/admin/v1/plugins/{id}/disable",
            post(plugins::disable),
        )
        .route(
            "/_plugboard/admin/v1/plugins/{id}/reload",
            post(plugins::reload),
        )
        .route(
            "/_plugboard/admin/v1/plugins/{id}/endpoints",
            put(plugins::endpoints),
        )
        .route(
            "/_plugboard/admin/v1/plugins/{id}/skip/{txn_id}",
            post(plugins::skip),
        )
        .route("/_plugboard/admin/v1/reports", get(reports::list))
        .route(
            "/_plugboard/admin/v1/reports/{id}",
            axum::routing::delete(reports::dismiss),
        )
        .route("/_matrix/appservice/v1/register", post(register::register))
        .route("/metrics", get(metrics::metrics))
}

/// An admin's request: made with the admin token, or by a user who is a server admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Admin {
    Token,
    User(String),
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = MatrixError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(token) = access_token(parts) else {
            return Err(Error::MissingToken("missing access token".into()).into());
        };
        if same_secret(&token, &state.admin_token) {
            return Ok(Admin::Token);
        }
        let forbidden = || {
            MatrixError::new(
                StatusCode::FORBIDDEN,
                "M_FORBIDDEN",
                "this endpoint needs the admin token or a server admin's access token",
            )
        };
        if state.appservices.registry().by_as_token(&token).is_some() {
            return Err(forbidden());
        }
        let session = state.users.authenticate(&token).await?;
        if state.users.is_admin(&session.user_id).await? {
            Ok(Admin::User(session.user_id.into()))
        } else {
            Err(forbidden())
        }
    }
}

/// `?allow_takeover=true` on a change that registers a service (add, update, plugin install,
/// upgrade, reload): the admin means it to act as existing accounts it did not create.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct TakeoverQuery {
    #[serde(default)]
    allow_takeover: bool,
}

impl TakeoverQuery {
    pub(crate) fn takeovers(&self) -> Takeovers {
        if self.allow_takeover {
            Takeovers::Allow
        } else {
            Takeovers::Refuse
        }
    }
}

/// Compares two secrets in time that depends on their lengths only.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |diff, (x, y)| diff | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn secrets_compare_equal_only_when_identical() {
        assert!(same_secret("pba_abc", "pba_abc"));
        assert!(!same_secret("pba_abc", "pba_abd"));
        assert!(!same_secret("pba_abc", "pba_ab"));
        assert!(!same_secret("", "x"));
    }
}
