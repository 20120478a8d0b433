//! One JSON POST of a forward, answered by its status alone. In the component it goes over
//! `wasi:http` with its own short timeouts, so a receiver that accepts a connection and
//! never answers fails the try well inside the call's deadline (and is retried with the
//! plugin's backoff) instead of running the call out; and a host refused by the allow-list
//! is reported as `M_FORBIDDEN` even though its body could not be written. Natively it is
//! the SDK's `http::fetch`, which the test harness answers.

use plugboard_sdk::Error;
use serde_json::Value;

/// POSTs `body` as JSON to `url`; answers the response's status.
#[cfg(not(target_arch = "wasm32"))]
pub fn post_json(url: &str, body: &Value) -> Result<u16, Error> {
    use plugboard_sdk::http;
    http::fetch(&http::Request::post_json(url, body)).map(|r| r.status)
}

/// POSTs `body` as JSON to `url`; answers the response's status.
#[cfg(target_arch = "wasm32")]
pub fn post_json(url: &str, body: &Value) -> Result<u16, Error> {
    wasi::post_json(url, body)
}

#[cfg(target_arch = "wasm32")]
mod wasi {
    use plugboard_sdk::{http, Error};
    use serde_json::Value;
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{
        ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
    };

    /// How long a forward may take to connect, and to start its answer (or go on with it).
    const CONNECT_TIMEOUT_MS: u64 = 250;
    const FIRST_BYTE_TIMEOUT_MS: u64 = 400;
    /// Nanoseconds in a millisecond: WASI durations are nanoseconds.
    const MS: u64 = 1_000_000;

    fn error(e: ErrorCode) -> Error {
        match e {
            ErrorCode::HttpRequestDenied => Error::new(
                "M_FORBIDDEN",
                "the host is not on the plugin's http_allow list",
            ),
            ErrorCode::ConnectionTimeout | ErrorCode::ConnectionReadTimeout => {
                Error::new("M_CONNECTION_TIMEOUT", "it did not answer in time")
            }
            ErrorCode::ConnectionRefused => {
                Error::new("M_CONNECTION_FAILED", "the connection was refused")
            }
            other => Error::new("M_CONNECTION_FAILED", format!("{other:?}")),
        }
    }

    fn broken(what: &str) -> Error {
        Error::unknown(format!("outbound HTTP: {what}"))
    }

    pub fn post_json(url: &str, body: &Value) -> Result<u16, Error> {
        let (https, authority, path) = http::split_url(url)?;
        let headers =
            Fields::from_list(&[("content-type".to_string(), b"application/json".to_vec())])
                .map_err(|_| broken("headers"))?;
        let req = OutgoingRequest::new(headers);
        req.set_method(&Method::Post)
            .map_err(|_| broken("method"))?;
        req.set_scheme(Some(if https { &Scheme::Https } else { &Scheme::Http }))
            .map_err(|_| broken("scheme"))?;
        req.set_authority(Some(authority))
            .map_err(|_| Error::invalid("bad host"))?;
        req.set_path_with_query(Some(path))
            .map_err(|_| Error::invalid("bad path"))?;
        let options = RequestOptions::new();
        // A host that does not take these still has the call's deadline over it.
        let _ = options.set_connect_timeout(Some(CONNECT_TIMEOUT_MS * MS));
        let _ = options.set_first_byte_timeout(Some(FIRST_BYTE_TIMEOUT_MS * MS));
        let _ = options.set_between_bytes_timeout(Some(FIRST_BYTE_TIMEOUT_MS * MS));
        let outgoing = req.body().map_err(|_| broken("request body"))?;
        let pending = outgoing_handler::handle(req, Some(options)).map_err(error)?;
        let bytes = body.to_string().into_bytes();
        // A request the host refused has no one to take its body: what went wrong is in
        // the response, so a failed write is not the end of it.
        let written = outgoing
            .write()
            .ok()
            .map(|stream| {
                bytes
                    .chunks(4096)
                    .all(|chunk| stream.blocking_write_and_flush(chunk).is_ok())
            })
            .unwrap_or(false);
        let finished = written && OutgoingBody::finish(outgoing, None).is_ok();
        pending.subscribe().block();
        match pending.get() {
            Some(Ok(Ok(response))) if finished => Ok(response.status()),
            Some(Ok(Ok(_))) => Err(broken("writing the request body")),
            Some(Ok(Err(e))) => Err(error(e)),
            _ => Err(broken("no response")),
        }
    }
}
