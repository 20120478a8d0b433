//! The server-server API. For now the key server, which publishes the signing key that
//! events are signed with, and the OpenID userinfo endpoint.

mod keys;
mod openid;

use axum::routing::get;
use axum::Router;

use super::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/_matrix/key/v2/server", get(keys::server_keys))
        .route(
            "/_matrix/federation/v1/openid/userinfo",
            get(openid::userinfo),
        )
}
