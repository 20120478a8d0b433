//! The authentication of requests from other servers: [`Signed`] checks the `X-Matrix`
//! header (its destination is this server, its origin is one this server federates with,
//! its key is the origin's, its signature covers the request as received: method, path and
//! query, body) and hands the handler the authenticated origin and the body. Anything else is
//! `401 M_UNAUTHORIZED`; a denied origin `403 M_FORBIDDEN`.

use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use serde_json::Value;

use crate::api::error::MatrixError;
use crate::api::extract::{parse_json, read_body};
use crate::api::AppState;
use crate::service::federation::xmatrix::{SignedRequest, XMatrix};

/// A request signed by another server.
pub(crate) struct Signed {
    /// The server that signed it.
    pub(crate) origin: String,
    /// The JSON body, when there was one.
    // Read by the handlers that take a body (/send, /send_join …), which come next.
    #[allow(dead_code)]
    pub(crate) body: Option<Value>,
}

fn unauthorized(why: impl Into<String>) -> MatrixError {
    MatrixError::new(StatusCode::UNAUTHORIZED, "M_UNAUTHORIZED", why)
}

impl FromRequest<AppState> for Signed {
    type Rejection = MatrixError;

    async fn from_request(req: Request, s: &AppState) -> Result<Self, Self::Rejection> {
        let federation = &s.federation;
        let header = req
            .headers()
            .get_all(header::AUTHORIZATION)
            .iter()
            .find_map(|v| v.to_str().ok()?.parse::<XMatrix>().ok())
            .ok_or_else(|| unauthorized("an X-Matrix Authorization header is required"))?;
        let ours = federation.server_name();
        if header.destination.as_deref().is_some_and(|d| d != ours) {
            return Err(unauthorized(format!(
                "the request is for another server, not {ours}"
            )));
        }
        if !federation.policy().server_allowed(&header.origin) {
            return Err(MatrixError::new(
                StatusCode::FORBIDDEN,
                "M_FORBIDDEN",
                format!("this server does not federate with {}", header.origin),
            ));
        }
        let method = req.method().as_str().to_string();
        let uri = req
            .uri()
            .path_and_query()
            .map(|pq| pq.as_str().to_string())
            .unwrap_or_else(|| req.uri().path().to_string());
        let bytes = read_body(req, s.config.max_request_bytes).await?;
        let body: Option<Value> = if bytes.is_empty() {
            None
        } else {
            Some(parse_json(&bytes)?)
        };
        let verify_key = federation
            .verify_key(&header.origin, &header.key)
            .await
            .map_err(MatrixError::from)?;
        SignedRequest {
            method: &method,
            uri: &uri,
            origin: &header.origin,
            destination: ours,
            content: body.as_ref(),
        }
        .verify(&verify_key, &header.sig)
        .map_err(|e| unauthorized(e.to_string()))?;
        // A sign of life: what waits for the origin after a failed send goes out now.
        s.federation_seen(&header.origin);
        Ok(Signed {
            origin: header.origin,
            body,
        })
    }
}
