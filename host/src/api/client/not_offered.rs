//! Routes of the spec for what this server deliberately does not offer, each answering as the
//! spec has a server without it answer: OAuth 2.0 discovery (404 `M_UNRECOGNIZED`, "legacy
//! authentication is in use") and single sign-on (no identity provider, 404).

use axum::http::StatusCode;

use crate::api::error::MatrixError;

/// GET /_matrix/client/v1/auth_metadata
pub(crate) async fn auth_metadata() -> MatrixError {
    MatrixError::new(
        StatusCode::NOT_FOUND,
        "M_UNRECOGNIZED",
        "Legacy authentication is in use on this homeserver: it does not offer the OAuth 2.0 API",
    )
}

/// GET /login/sso/redirect and /login/sso/redirect/{idpId}
pub(crate) async fn sso_redirect() -> MatrixError {
    MatrixError::new(
        StatusCode::NOT_FOUND,
        "M_NOT_FOUND",
        "this server offers no single sign-on and knows no identity provider: log in with a \
         password (GET /login lists the flows)",
    )
}
