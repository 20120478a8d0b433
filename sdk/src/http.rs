//! Outbound HTTP for plugins, over the standard `wasi:http/outgoing-handler`: a blocking
//! [`fetch`] of one request. Only hosts on the plugin's `http_allow` list are reached; any
//! other answers `M_FORBIDDEN`. A request with a [`Request::timeout_ms`] gives up after it
//! (`TIMED_OUT`), which is how a plugin keeps a slow server from running its call past the
//! deadline; without one it waits as long as the host lets it.

use serde_json::Value;

use crate::host;
use crate::types::Error;

/// The errcode of a request that ran out of its time.
pub const TIMED_OUT: &str = "M_TIMEOUT";

/// An HTTP request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// `GET`, `POST`, ….
    pub method: String,
    /// `http://host:port/path?query` or `https://…`.
    pub url: String,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// How long the whole exchange may take, connecting to the last byte of the answer.
    pub timeout_ms: Option<u64>,
}

impl Request {
    /// A GET of `url`.
    pub fn get(url: &str) -> Request {
        Request {
            method: "GET".into(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout_ms: None,
        }
    }

    /// A POST of `body` as JSON.
    pub fn post_json(url: &str, body: &Value) -> Request {
        Request {
            method: "POST".into(),
            url: url.into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
            timeout_ms: None,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// Gives up after `ms` milliseconds, answering [`TIMED_OUT`].
    pub fn timeout_ms(mut self, ms: u64) -> Request {
        self.timeout_ms = Some(ms);
        self
    }
}

/// An HTTP response.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The HTTP status.
    pub status: u16,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON.
    pub fn json(&self) -> Result<Value, Error> {
        serde_json::from_slice(&self.body).map_err(|e| Error::new("M_NOT_JSON", e.to_string()))
    }

    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `request` and waits for the whole response.
pub fn fetch(request: &Request) -> Result<Response, Error> {
    host::with(|h| h.http(request))
}

/// Whether an `http(s)://` URL is https, its authority and its path with query.
pub fn split_url(url: &str) -> Result<(bool, &str, &str), Error> {
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(Error::invalid(format!(
            "`{url}` is not an http:// or https:// URL"
        )));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(Error::invalid(format!("`{url}` has no host")));
    }
    Ok((https, authority, path))
}

#[cfg(target_arch = "wasm32")]
pub(crate) mod wasi {
    //! [`fetch`](super::fetch) over `wasi:http`, every wait bounded by the request's deadline.

    use wasip2::clocks::monotonic_clock;
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{
        ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
    };
    use wasip2::io::poll::{poll, Pollable};
    use wasip2::io::streams::StreamError;

    use super::{split_url, Request, Response, TIMED_OUT};
    use crate::types::Error;

    /// Most bytes of a response body kept; more is refused.
    const MAX_BODY: usize = 16 << 20;
    /// Nanoseconds in a millisecond: WASI durations are nanoseconds.
    const MS: u64 = 1_000_000;

    fn method(m: &str) -> Method {
        match m.to_ascii_uppercase().as_str() {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "HEAD" => Method::Head,
            "OPTIONS" => Method::Options,
            other => Method::Other(other.to_string()),
        }
    }

    fn timed_out() -> Error {
        Error::new(TIMED_OUT, "the server did not answer in time")
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

    /// Waits for `ready`; `false` when the deadline `timer` (if any) comes first.
    fn wait(ready: &Pollable, timer: Option<&Pollable>) -> bool {
        match timer {
            None => {
                ready.block();
                true
            }
            Some(timer) => poll(&[ready, timer]).contains(&0) || ready.ready(),
        }
    }

    pub fn fetch(r: &Request) -> Result<Response, Error> {
        let nanos = r.timeout_ms.map(|ms| ms.saturating_mul(MS));
        let timer = nanos
            .map(|n| monotonic_clock::subscribe_instant(monotonic_clock::now().saturating_add(n)));
        let timer = timer.as_ref();
        let (https, authority, path) = split_url(&r.url)?;
        let entries: Vec<(String, Vec<u8>)> = r
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
            .collect();
        let headers = Fields::from_list(&entries)
            .map_err(|e| Error::invalid(format!("bad header: {e:?}")))?;
        let req = OutgoingRequest::new(headers);
        req.set_method(&method(&r.method))
            .map_err(|_| broken("method"))?;
        req.set_scheme(Some(if https { &Scheme::Https } else { &Scheme::Http }))
            .map_err(|_| broken("scheme"))?;
        req.set_authority(Some(authority))
            .map_err(|_| Error::invalid("bad host"))?;
        req.set_path_with_query(Some(path))
            .map_err(|_| Error::invalid("bad path"))?;
        let options = nanos.map(|n| {
            let options = RequestOptions::new();
            // A host that does not take an option still has the deadline of the waits.
            let _ = options.set_connect_timeout(Some(n));
            let _ = options.set_first_byte_timeout(Some(n));
            let _ = options.set_between_bytes_timeout(Some(n));
            options
        });
        let body = req.body().map_err(|_| broken("request body"))?;
        let pending = outgoing_handler::handle(req, options).map_err(error)?;
        // A stream the host has closed (refused by the allow-list, a server that answered
        // before reading it all, a GET whose empty body is never read) is no error of its
        // own: the response says how the request went.
        {
            let stream = body.write().map_err(|_| broken("request stream"))?;
            let writable = stream.subscribe();
            let mut rest = r.body.as_slice();
            while !rest.is_empty() {
                if !wait(&writable, timer) {
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
            if !r.body.is_empty() && stream.flush().is_ok() && !wait(&writable, timer) {
                return Err(timed_out());
            }
        }
        let _ = OutgoingBody::finish(body, None);
        if !wait(&pending.subscribe(), timer) {
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
                if !wait(&readable, timer) {
                    return Err(timed_out());
                }
                match stream.read(65536) {
                    Ok(chunk) => {
                        bytes.extend_from_slice(&chunk);
                        if bytes.len() > MAX_BODY {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_scheme_authority_and_path() {
        assert_eq!(
            split_url("http://127.0.0.1:5000/translate?x=1").unwrap(),
            (false, "127.0.0.1:5000", "/translate?x=1")
        );
        assert_eq!(
            split_url("https://example.org").unwrap(),
            (true, "example.org", "/")
        );
        assert!(split_url("ftp://x").is_err());
        assert!(split_url("http:///x").is_err());
    }
}
