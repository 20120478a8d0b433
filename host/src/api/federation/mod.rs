//! The server-server API. The federation listener serves [`router`]: the key server and
//! notary, `/version`, and the routes other servers call with a signed request ([`auth`]).
//! The client listener serves the key server, OpenID userinfo and
//! `/.well-known/matrix/server` too ([`client_listener_routes`]).

mod auth;
mod directory;
mod e2ee;
mod keys;
mod media;
mod openid;
mod query;
mod rooms;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::Json as Reply;
use axum::Router;
use serde_json::{json, Value};
use tower_http::catch_panic::CatchPanicLayer;

use super::error::{ApiResult, MatrixError};
use super::AppState;

/// The routes the client listener serves of the server-server API.
pub(crate) fn client_listener_routes() -> Router<AppState> {
    Router::new()
        .route("/_matrix/key/v2/server", get(keys::server_keys))
        .route(
            "/_matrix/federation/v1/openid/userinfo",
            get(openid::userinfo),
        )
        .route("/.well-known/matrix/server", get(well_known_server))
}

/// What the federation listener serves. Unknown paths are `404 M_UNRECOGNIZED`.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/_matrix/key/v2/server", get(keys::server_keys))
        .route("/_matrix/key/v2/query/{server_name}", get(keys::query_one))
        .route("/_matrix/key/v2/query", post(keys::query_batch))
        .route("/_matrix/federation/v1/version", get(version))
        .route("/_matrix/federation/v1/query/profile", get(query::profile))
        .route(
            "/_matrix/federation/v1/query/directory",
            get(query::directory),
        )
        .route(
            "/_matrix/federation/v1/openid/userinfo",
            get(openid::userinfo),
        )
        .route(
            "/_matrix/federation/v1/send/{txn_id}",
            put(rooms::send_transaction),
        )
        .route(
            "/_matrix/federation/v1/make_join/{room_id}/{user_id}",
            get(rooms::make_join),
        )
        .route(
            "/_matrix/federation/v1/make_leave/{room_id}/{user_id}",
            get(rooms::make_leave),
        )
        .route(
            "/_matrix/federation/v2/send_join/{room_id}/{event_id}",
            put(rooms::send_join),
        )
        .route(
            "/_matrix/federation/v2/send_leave/{room_id}/{event_id}",
            put(rooms::send_leave),
        )
        .route(
            "/_matrix/federation/v2/invite/{room_id}/{event_id}",
            put(rooms::invite),
        )
        .route(
            "/_matrix/federation/v1/make_knock/{room_id}/{user_id}",
            get(rooms::make_knock),
        )
        .route(
            "/_matrix/federation/v1/send_knock/{room_id}/{event_id}",
            put(rooms::send_knock),
        )
        .route("/_matrix/federation/v1/event/{event_id}", get(rooms::event))
        .route("/_matrix/federation/v1/state/{room_id}", get(rooms::state))
        .route(
            "/_matrix/federation/v1/state_ids/{room_id}",
            get(rooms::state_ids),
        )
        .route(
            "/_matrix/federation/v1/event_auth/{room_id}/{event_id}",
            get(rooms::event_auth),
        )
        .route(
            "/_matrix/federation/v1/get_missing_events/{room_id}",
            post(rooms::get_missing_events),
        )
        .route(
            "/_matrix/federation/v1/backfill/{room_id}",
            get(rooms::backfill),
        )
        .route(
            "/_matrix/federation/v1/timestamp_to_event/{room_id}",
            get(rooms::timestamp_to_event),
        )
        .route(
            "/_matrix/federation/v1/user/devices/{user_id}",
            get(e2ee::user_devices),
        )
        .route(
            "/_matrix/federation/v1/user/keys/query",
            post(e2ee::keys_query),
        )
        .route(
            "/_matrix/federation/v1/user/keys/claim",
            post(e2ee::keys_claim),
        )
        .route(
            "/_matrix/federation/v1/publicRooms",
            get(directory::public_rooms).post(directory::public_rooms_post),
        )
        .route(
            "/_matrix/federation/v1/hierarchy/{room_id}",
            get(directory::hierarchy),
        )
        .route(
            "/_matrix/federation/v1/media/download/{media_id}",
            get(media::download),
        )
        .route(
            "/_matrix/federation/v1/media/thumbnail/{media_id}",
            get(media::thumbnail),
        )
        .fallback(super::unrecognized)
        .method_not_allowed_fallback(super::method_not_allowed)
        .layer(CatchPanicLayer::custom(super::panic_response))
        .with_state(state)
}

/// GET /_matrix/federation/v1/version
async fn version() -> Reply<Value> {
    Reply(json!({
        "server": { "name": "Plugboard", "version": env!("CARGO_PKG_VERSION") }
    }))
}

/// GET /.well-known/matrix/server: `[federation] well_known_server`, or 404 when unset.
async fn well_known_server(State(s): State<AppState>) -> ApiResult<Reply<Value>> {
    let delegated = &s.config.federation.well_known_server;
    if delegated.is_empty() {
        return Err(MatrixError::new(
            StatusCode::NOT_FOUND,
            "M_NOT_FOUND",
            "this server delegates federation nowhere",
        ));
    }
    Ok(Reply(json!({ "m.server": delegated })))
}
