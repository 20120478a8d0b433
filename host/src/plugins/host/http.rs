//! Outbound HTTP: the standard `wasi:http/outgoing-handler`, with one rule of ours in front
//! of wasmtime's client: a request goes out only to a host on the plugin's allow-list
//! (`http_allow`), and no part of it may take longer than the plugin's call deadline.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::plugins::guest::{host_allowed, Alive, Guest};

pub(crate) struct OutboundHttp {
    guest: Arc<Guest>,
    alive: Alive,
}

impl OutboundHttp {
    pub(crate) fn new(guest: Arc<Guest>, alive: Alive) -> OutboundHttp {
        OutboundHttp { guest, alive }
    }

    /// Whether the request's host (and port) is on the allow-list.
    fn allowed(&self, uri: &http::Uri) -> bool {
        let Some(host) = uri.host() else {
            return false;
        };
        let port = uri.port_u16().or(match uri.scheme_str() {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        });
        host_allowed(&self.guest.capabilities.http_allow, host, port)
    }
}

type ResponseIo = Box<dyn Future<Output = Result<(), Error>> + Send>;

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = Result<(http::Response<WasiBody>, ResponseIo), Error>> + Send>
    {
        drop(fut);
        if self.alive.check().is_err() {
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        if !self.allowed(request.uri()) {
            tracing::warn!(plugin = %self.guest.id, uri = %request.uri(), "outbound HTTP refused: the host is not on the plugin's http_allow list");
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        let deadline = Duration::from_millis(self.guest.capabilities.deadline_ms);
        let cap = |t: Option<Duration>| Some(t.map_or(deadline, |t| t.min(deadline)));
        let options = options.unwrap_or_default();
        let options = RequestOptions {
            connect_timeout: cap(options.connect_timeout),
            first_byte_timeout: cap(options.first_byte_timeout),
            between_bytes_timeout: cap(options.between_bytes_timeout),
        };
        Box::new(async move {
            let (response, io) =
                wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as ResponseIo,
            ))
        })
    }
}
