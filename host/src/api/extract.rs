//! Extractors that turn every malformed request into a Matrix error body: JSON bodies (with
//! the size limit), path and query parameters, the access token (a user's, or an application
//! service's with the identity it asserts), and the client's address.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::MatrixError;
use super::AppState;
use crate::service::users::Session;
use crate::service::{Error, Services};

/// A JSON body: `M_NOT_JSON` when it does not parse, `M_BAD_JSON` when it has the wrong
/// shape, `M_TOO_LARGE` past `max_request_bytes`. An empty body reads as `{}`, as several
/// clients send nothing to endpoints whose fields are all optional.
pub(crate) struct Json<T>(pub(crate) T);

impl<T: DeserializeOwned> FromRequest<AppState> for Json<T> {
    type Rejection = MatrixError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = state.config.max_request_bytes;
        let bytes = read_body(req, limit).await?;
        parse_json(&bytes).map(Json)
    }
}

/// The whole body, up to `limit` bytes: `413 M_TOO_LARGE` past it. A body that breaks off or
/// is framed wrong (a malformed chunk, a connection closed mid-body) is `400 M_NOT_JSON`:
/// what arrived is not a request body at all, let alone JSON, and the client should not be
/// told to send less.
pub(crate) async fn read_body(req: Request, limit: usize) -> Result<Bytes, MatrixError> {
    axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|e| {
            if is_over_limit(&e) {
                MatrixError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "M_TOO_LARGE",
                    format!("the request body is larger than {limit} bytes"),
                )
            } else {
                MatrixError::not_json(format!("the request body could not be read: {e}"))
            }
        })
}

/// Whether reading a body failed on its length limit, rather than on the body itself.
fn is_over_limit(e: &axum::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = c.source();
    }
    false
}

pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, MatrixError> {
    let value: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice(bytes)
            .map_err(|e| MatrixError::not_json(format!("the body is not JSON: {e}")))?
    };
    serde_json::from_value(value).map_err(|e| MatrixError::bad_json(e.to_string()))
}

/// Path parameters, percent-decoded; a bad one is `M_INVALID_PARAM`.
pub(crate) struct Path<T>(pub(crate) T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = MatrixError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e| MatrixError::invalid_param(e.body_text()))
    }
}

/// Query parameters; a bad one is `M_INVALID_PARAM`.
pub(crate) struct Query<T>(pub(crate) T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = MatrixError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| MatrixError::invalid_param(e.body_text()))
    }
}

/// The access token of a request: `Authorization: Bearer`, or `?access_token=`.
pub(crate) fn access_token(parts: &Parts) -> Option<String> {
    if let Some(h) = parts.headers.get(axum::http::header::AUTHORIZATION) {
        if let Some(t) = h.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")) {
            return Some(t.trim().to_string());
        }
    }
    parts.uri.query().and_then(|q| {
        url_params(q)
            .into_iter()
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v)
    })
}

fn url_params(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8()
                    .ok()
                    .map(|c| c.into_owned())
            };
            Some((decode(k)?, decode(v)?))
        })
        .collect()
}

/// An authenticated user: `M_MISSING_TOKEN` without a token, `M_UNKNOWN_TOKEN` with a bad one.
/// An application service's `as_token` acts as its sender, or as the `?user_id=` and
/// `?device_id=` it asserts, when [`Services::authenticate`] allows it.
pub(crate) struct Auth(pub(crate) Session);

impl FromRequestParts<AppState> for Auth {
    type Rejection = MatrixError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        session(parts, state).await.map(Auth)
    }
}

/// A session when the request carries a token (checked as [`Auth`] checks it), none when it
/// carries none: for the routes the spec lets anyone call.
pub(crate) struct MaybeAuth(pub(crate) Option<Session>);

impl FromRequestParts<AppState> for MaybeAuth {
    type Rejection = MatrixError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if access_token(parts).is_none() {
            return Ok(MaybeAuth(None));
        }
        session(parts, state).await.map(|s| MaybeAuth(Some(s)))
    }
}

/// The session of a request, as [`Auth`] makes it; the authenticated media paths share it.
pub(crate) async fn session(parts: &Parts, services: &Services) -> Result<Session, MatrixError> {
    let Some(token) = access_token(parts) else {
        return Err(Error::MissingToken("missing access token".into()).into());
    };
    let params = parts.uri.query().map(url_params).unwrap_or_default();
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    Ok(services
        .authenticate(&token, param("user_id"), param("device_id"))
        .await?)
}

/// The access token of a request, if it has one, unchecked: for the endpoints that take one
/// only sometimes (an application service's registration and login).
pub(crate) struct AccessToken(pub(crate) Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for AccessToken {
    type Rejection = MatrixError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(AccessToken(access_token(parts)))
    }
}

/// The client's address, for per-address rate limits.
pub(crate) struct ClientIp(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = MatrixError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string())
            .unwrap_or_else(|| "unknown".into());
        Ok(ClientIp(ip))
    }
}
