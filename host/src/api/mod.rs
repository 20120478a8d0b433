//! The HTTP layer: axum routers, thin. Each endpoint parses, authenticates, calls a service
//! and maps the error; unknown paths and methods get `M_UNRECOGNIZED`, every response carries
//! CORS headers.

pub mod client;
pub mod error;
pub mod extract;
pub mod federation;

use std::sync::Arc;

use axum::http::{header, Method, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use tower_http::cors::{Any, CorsLayer};

use crate::service::Services;
use error::MatrixError;

pub type AppState = Arc<Services>;

pub fn router(state: AppState) -> Router {
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
        .merge(federation::router())
        .fallback(unrecognized)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(cors)
        .with_state(state)
}

async fn unrecognized() -> MatrixError {
    MatrixError::unrecognized()
}

async fn method_not_allowed() -> impl IntoResponse {
    MatrixError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "M_UNRECOGNIZED",
        "method not allowed on this endpoint",
    )
}
