//! One outbound HTTP request with a time limit of its own. The SDK's `http::fetch` waits as
//! long as the host lets it, which is the whole call deadline, and a call past its deadline
//! traps; so in the component the request goes over `wasi:http` directly, with the request
//! options' timeouts and a monotonic-clock deadline around every wait. Natively (unit tests)
//! it is the SDK's fetch, answered by the test harness.

use std::time::Duration;

use plugboard_sdk::http::{Request, Response};
use plugboard_sdk::Error;

/// Most bytes of a response body read; a backend answering more is broken.
pub const MAX_RESPONSE: usize = 1 << 20;

/// The errcode of a request that ran out of time.
pub const TIMED_OUT: &str = "M_TIMEOUT";

/// Sends `request`; gives up after `limit`.
#[cfg(not(target_arch = "wasm32"))]
pub fn fetch(request: &Request, limit: Duration) -> Result<Response, Error> {
    let _ = limit;
    let r = plugboard_sdk::http::fetch(request)?;
    if r.body.len() > MAX_RESPONSE {
        return Err(Error::new("M_TOO_LARGE", "the response body is too large"));
    }
    Ok(r)
}

/// Sends `request`; gives up after `limit`.
#[cfg(target_arch = "wasm32")]
pub fn fetch(request: &Request, limit: Duration) -> Result<Response, Error> {
    wasi::fetch(request, limit)
}

#[cfg(target_arch = "wasm32")]
mod wasi {
    //! The request over `wasi:http`, every wait bounded by one deadline.

    use std::time::Duration;

    use plugboard_sdk::http::{split_url, Request, Response};
    use plugboard_sdk::Error;
    use wasip2::clocks::monotonic_clock;
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{
        ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
    };
    use wasip2::io::poll::{poll, Pollable};
    use wasip2::io::streams::StreamError;

    use super::{MAX_RESPONSE, TIMED_OUT};

    fn timed_out() -> Error {
        Error::new(TIMED_OUT, "the backend did not answer in time")
    }

    fn error(e: ErrorCode) -> Error {
        match e {
            ErrorCode::HttpRequestDenied => Error::new(
                "M_FORBIDDEN",
                "the host is not on the plugin's http_allow list",
            ),
            ErrorCode::ConnectionTimeout
            | ErrorCode::ConnectionReadTimeout
            | ErrorCode::ConnectionWriteTimeout
            | ErrorCode::HttpResponseTimeout => timed_out(),
            other => Error::new("M_CONNECTION_FAILED", format!("{other:?}")),
        }
    }

    fn broken(what: &str) -> Error {
        Error::new("M_UNKNOWN", format!("outbound HTTP: {what}"))
    }

    /// Whether `ready` comes before the deadline `timer` does.
    fn wait(ready: &Pollable, timer: &Pollable) -> bool {
        poll(&[ready, timer]).contains(&0) || ready.ready()
    }

    pub fn fetch(r: &Request, limit: Duration) -> Result<Response, Error> {
        let nanos = u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX);
        let timer =
            monotonic_clock::subscribe_instant(monotonic_clock::now().saturating_add(nanos));
        let (https, authority, path) = split_url(&r.url)?;
        let entries: Vec<(String, Vec<u8>)> = r
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
            .collect();
        let headers = Fields::from_list(&entries)
            .map_err(|e| Error::invalid(format!("bad header: {e:?}")))?;
        let req = OutgoingRequest::new(headers);
        let method = match r.method.as_str() {
            "GET" => Method::Get,
            "POST" => Method::Post,
            other => Method::Other(other.to_string()),
        };
        req.set_method(&method).map_err(|_| broken("method"))?;
        req.set_scheme(Some(if https { &Scheme::Https } else { &Scheme::Http }))
            .map_err(|_| broken("scheme"))?;
        req.set_authority(Some(authority))
            .map_err(|_| Error::invalid("bad host"))?;
        req.set_path_with_query(Some(path))
            .map_err(|_| Error::invalid("bad path"))?;
        let options = RequestOptions::new();
        // A host that does not take an option still has the deadline below.
        let _ = options.set_connect_timeout(Some(nanos));
        let _ = options.set_first_byte_timeout(Some(nanos));
        let _ = options.set_between_bytes_timeout(Some(nanos));
        let body = req.body().map_err(|_| broken("request body"))?;
        let pending = outgoing_handler::handle(req, Some(options)).map_err(error)?;
        // A stream the host has closed (the server answered before reading it all, or a GET
        // whose empty body hyper never reads) is no error of its own: the response says how
        // the request went.
        {
            let stream = body.write().map_err(|_| broken("request stream"))?;
            let writable = stream.subscribe();
            let mut rest = r.body.as_slice();
            while !rest.is_empty() {
                if !wait(&writable, &timer) {
                    return Err(timed_out());
                }
                let Ok(room) = stream.check_write() else {
                    break;
                };
                let n = rest.len().min(usize::try_from(room).unwrap_or(usize::MAX));
                if n == 0 {
                    continue;
                }
                if stream.write(&rest[..n]).is_err() {
                    break;
                }
                rest = &rest[n..];
            }
            if !r.body.is_empty() && stream.flush().is_ok() && !wait(&writable, &timer) {
                return Err(timed_out());
            }
        }
        let _ = OutgoingBody::finish(body, None);
        if !wait(&pending.subscribe(), &timer) {
            return Err(timed_out());
        }
        let response = match pending.get() {
            Some(Ok(Ok(resp))) => resp,
            Some(Ok(Err(e))) => return Err(error(e)),
            _ => return Err(broken("no response")),
        };
        let status = response.status();
        let headers = response
            .headers()
            .entries()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect();
        let incoming = response.consume().map_err(|_| broken("response body"))?;
        let mut bytes = Vec::new();
        {
            let stream = incoming.stream().map_err(|_| broken("response stream"))?;
            let readable = stream.subscribe();
            loop {
                if !wait(&readable, &timer) {
                    return Err(timed_out());
                }
                match stream.read(65536) {
                    Ok(chunk) => {
                        bytes.extend_from_slice(&chunk);
                        if bytes.len() > MAX_RESPONSE {
                            return Err(Error::new(
                                "M_TOO_LARGE",
                                "the response body is too large",
                            ));
                        }
                    }
                    Err(StreamError::Closed) => break,
                    Err(StreamError::LastOperationFailed(_)) => {
                        return Err(broken("reading the response body"))
                    }
                }
            }
        }
        Ok(Response {
            status,
            headers,
            body: bytes,
        })
    }
}
