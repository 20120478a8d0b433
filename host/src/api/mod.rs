//! The HTTP layer: axum routers, thin. Each endpoint parses, authenticates, calls a service
//! and maps the error; unknown paths and methods get `M_UNRECOGNIZED`, every response carries
//! CORS headers.

pub(crate) mod admin;
pub(crate) mod client;
pub(crate) mod error;
pub(crate) mod extract;
pub(crate) mod federation;
pub(crate) mod fields;
pub(crate) mod plugins;

use std::sync::Arc;

use axum::http::{header, Method, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{Any, CorsLayer};

use crate::service::Services;
use error::MatrixError;

pub(crate) type AppState = Arc<Services>;

pub(crate) fn router(state: AppState) -> Router {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::HeaderName::from_static("x-requested-with"),
        ]);
    client::router()
        .merge(client::authenticated_media(state.clone()))
        .merge(federation::client_listener_routes())
        .merge(admin::router())
        .merge(plugins::router())
        .fallback(unrecognized)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(cors)
        .with_state(state)
}

/// A bug must not take the connection down with a bare 500: log it, answer `M_UNKNOWN`.
pub(crate) fn panic_response(
    err: Box<dyn std::any::Any + Send + 'static>,
) -> axum::response::Response {
    let what = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = what, "request handler panicked");
    MatrixError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "M_UNKNOWN",
        "internal server error",
    )
    .into_response()
}

pub(crate) async fn unrecognized() -> MatrixError {
    MatrixError::unrecognized()
}

pub(crate) async fn method_not_allowed() -> impl IntoResponse {
    MatrixError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "M_UNRECOGNIZED",
        "method not allowed on this endpoint",
    )
}
