//! `/_plugboard/plugins/{id}/{path}`: a plugin's own web endpoints. Any method; the request
//! (method, path below the prefix, query, headers, body up to `plugins.max_http_body_bytes`,
//! and the user of a valid access token) goes to the plugin's `handle-http`, and its answer
//! back as it is. A plugin that is unknown, disabled or whose endpoints the admin turned off
//! is `404 M_NOT_FOUND`; one that fails to answer is `502 M_UNKNOWN`.
//!
//! The caller's credentials stay with the server: the plugin (perhaps a third party's) gets
//! the user id they prove, never the `Authorization` or `Cookie` headers or an
//! `access_token` parameter, which would let it act as the caller. A token the server does
//! not know is refused here (`401 M_UNKNOWN_TOKEN`), as the client API refuses it.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;

use super::error::{ApiResult, MatrixError};
use super::extract::{access_token, read_body};
use super::AppState;
use crate::plugins::bindings::HttpRequest;
use crate::plugins::lane::CallError;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/_plugboard/plugins/{id}", any(endpoint))
        .route("/_plugboard/plugins/{id}/{*path}", any(endpoint))
}

/// Headers that belong to one connection, not to the message: never passed through.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "content-length",
];

/// Headers that carry the caller's credentials: never passed to the plugin.
const CREDENTIALS: [&str; 3] = ["authorization", "proxy-authorization", "cookie"];

/// `query` without its `access_token` parameters (however their name is percent-encoded);
/// the others stay as they were sent, in their order.
fn without_credentials(query: &str) -> String {
    query
        .split('&')
        .filter(|pair| {
            let name = pair.split_once('=').map_or(*pair, |(k, _)| k);
            let name = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
            !pair.is_empty() && name != "access_token"
        })
        .collect::<Vec<_>>()
        .join("&")
}

async fn endpoint(State(s): State<AppState>, req: Request) -> ApiResult<Response> {
    let path = req.uri().path().to_string();
    let rest = path.strip_prefix("/_plugboard/plugins/").unwrap_or("");
    let (id, sub) = match rest.split_once('/') {
        Some((id, sub)) => (id.to_string(), format!("/{sub}")),
        None => (rest.to_string(), "/".to_string()),
    };
    let not_found = || {
        MatrixError::new(
            StatusCode::NOT_FOUND,
            "M_NOT_FOUND",
            format!("no plugin endpoints at /_plugboard/plugins/{id}"),
        )
    };
    let Some(plugin) = s.plugins.get(&id) else {
        return Err(not_found());
    };
    let info = plugin.info();
    if !info.enabled || !info.endpoints {
        return Err(not_found());
    }
    let (parts, body) = req.into_parts();
    let user_id = match access_token(&parts) {
        Some(token) => Some(s.authenticate(&token, None, None).await?.user_id),
        None => None,
    };
    let headers = parts
        .headers
        .iter()
        .filter(|(k, _)| !CREDENTIALS.contains(&k.as_str()))
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = read_body(Request::new(body), s.config.plugins.max_http_body_bytes).await?;
    let request = HttpRequest {
        method: parts.method.as_str().to_string(),
        path: sub,
        query: without_credentials(parts.uri.query().unwrap_or("")),
        headers,
        body: body.to_vec(),
        user_id: user_id.map(String::from),
    };
    let answer = plugin.handle_http(request).await.map_err(|e| {
        // The reason (a trap's backtrace, a database error) is the admin's, in the log.
        tracing::warn!(plugin = %id, error = %e, "plugin web endpoint failed");
        match e {
            CallError::Disabled => not_found(),
            _ => MatrixError::new(
                StatusCode::BAD_GATEWAY,
                "M_UNKNOWN",
                "the plugin did not answer",
            ),
        }
    })?;
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, Body::from(answer.body)).into_response();
    for (name, value) in answer.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) else {
            continue;
        };
        if HOP_BY_HOP.contains(&name.as_str()) {
            continue;
        }
        response.headers_mut().append(name, value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_access_token_leaves_the_query_and_every_other_parameter_stays_as_sent() {
        assert_eq!(
            without_credentials("q=launch&access_token=syt_secret&room=%21r%3Ax"),
            "q=launch&room=%21r%3Ax"
        );
        assert_eq!(without_credentials("access_token=a&access%5Ftoken=b"), "");
        assert_eq!(without_credentials("access_token"), "");
        assert_eq!(
            without_credentials("a=1&&b=2&access_token_hint=x"),
            "a=1&b=2&access_token_hint=x"
        );
        assert_eq!(without_credentials(""), "");
    }
}
