//! Routes of the spec for what this server deliberately does not offer, each answering as the
//! spec has a server without it answer: OAuth 2.0 discovery (404 `M_UNRECOGNIZED`, "legacy
//! authentication is in use"), single sign-on (no identity provider, 404), and the optional
//! features below, each `404 M_UNRECOGNIZED` saying what is not offered and why (the spec's
//! answer for an endpoint a server does not implement; the router's own says only
//! "unrecognized request").

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

fn not_offered(what: &str) -> MatrixError {
    MatrixError::new(StatusCode::NOT_FOUND, "M_UNRECOGNIZED", what)
}

/// GET and PUT /_matrix/client/v1/admin/{suspend,lock}/{userId}
pub(crate) async fn suspend_or_lock() -> MatrixError {
    not_offered(
        "suspending and locking accounts are not offered by this server (v1.18's optional \
         admin API); a server admin deactivates an account instead",
    )
}

/// GET /_matrix/client/v1/media/preview_url
pub(crate) async fn preview_url() -> MatrixError {
    not_offered("URL previews are not offered: this server does not fetch other sites for clients")
}

/// POST /_matrix/media/v1/create and PUT /_matrix/media/v3/upload/{serverName}/{mediaId}
pub(crate) async fn async_upload() -> MatrixError {
    not_offered(
        "asynchronous uploads are not offered: upload with POST /_matrix/media/v3/upload, \
         which answers the content URI",
    )
}

/// POST /_matrix/client/v1/login/get_token
pub(crate) async fn login_token() -> MatrixError {
    not_offered(
        "login tokens for another device are not offered (capabilities say \
         m.get_login_token is disabled): log in with a password there",
    )
}

/// GET /_matrix/client/v3/events (peeking)
pub(crate) async fn peek_events() -> MatrixError {
    not_offered("peeking through /events is not offered: join the room, or read it with /messages")
}

/// GET, PUT and DELETE /profile/{userId}/{keyName} for keys other than displayname and
/// avatar_url.
pub(crate) async fn profile_field() -> MatrixError {
    not_offered(
        "extended profile fields (v1.16) are not offered: a profile holds displayname and \
         avatar_url",
    )
}

/// PUT /directory/list/appservice/{networkId}/{roomId}
pub(crate) async fn appservice_room_list() -> MatrixError {
    not_offered(
        "per-network room directories for application services are not offered: publish the \
         room in the server's directory with PUT /directory/list/room/{roomId}",
    )
}
