//! One client connection, served with hyper's HTTP/1.1: its socket reads and writes, its
//! requests' bodies and its responses tell the connection's clock what it waits for, and the
//! table of connections whether it has a request in flight. The connection is closed when its
//! clock's deadline passes, when the table evicts it, or at shutdown once it has no request
//! in flight.
//!
//! hyper's h1 dispatcher polls the handler (and so the request body) inside the connection's
//! own future, so every change of the clock happens during a poll of that future and is seen
//! right after it, when the deadline is recomputed.

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tower::ServiceExt;

use super::clock::{ConnClock, Expiry, Timeouts};
use super::limits::{ConnId, ConnectionTable, Refusal};
use crate::api::error::MatrixError;

/// The table of connections; each entry keeps the notifier that closes its connection.
pub(crate) type Table = Arc<Mutex<ConnectionTable<Arc<Notify>>>>;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; should something, the state is still usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the socket, the bodies and the service share about one connection.
pub(crate) struct Conn {
    id: ConnId,
    clock: Mutex<ConnClock>,
    table: Table,
}

impl Conn {
    pub(crate) fn new(id: ConnId, accepted: Instant, table: Table) -> Arc<Conn> {
        Arc::new(Conn {
            id,
            clock: Mutex::new(ConnClock::accepted(accepted)),
            table,
        })
    }

    fn clock(&self) -> MutexGuard<'_, ConnClock> {
        lock(&self.clock)
    }

    fn request_started(&self) {
        self.clock().request_started();
        lock(&self.table).request_started(self.id);
    }

    fn request_finished(&self) {
        self.clock().request_finished(Instant::now());
        lock(&self.table).request_finished(self.id);
    }
}

/// Why a connection ended.
#[derive(Debug)]
enum Outcome {
    /// The client closed it, or hyper did (an error, `Connection: close`).
    Done(Option<hyper::Error>),
    Expired(Expiry),
    Evicted,
    /// Shutdown, with no request in flight.
    Shutdown,
}

/// Serves one accepted connection until it ends, then takes it out of the table.
pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    conn: Arc<Conn>,
    evict: Arc<Notify>,
    router: Router,
    timeouts: Timeouts,
    mut stop: watch::Receiver<bool>,
) {
    // Small responses go out at once instead of waiting for an ACK (Nagle).
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(Watched {
        stream,
        conn: conn.clone(),
    });
    let service = Service {
        router,
        conn: conn.clone(),
        peer,
    };
    let mut http = pin!(http1::Builder::new().serve_connection(io, service));
    let mut timer = pin!(tokio::time::sleep(Duration::ZERO));
    let mut evicted = pin!(evict.notified());
    let mut stopping = pin!(async move {
        // A dropped sender is a shutdown too.
        let _ = stop.wait_for(|stop| *stop).await;
    });
    let mut draining = false;
    let outcome = poll_fn(|cx| {
        if let Poll::Ready(result) = http.as_mut().poll(cx) {
            return Poll::Ready(Outcome::Done(result.err()));
        }
        if evicted.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Outcome::Evicted);
        }
        if !draining && stopping.as_mut().poll(cx).is_ready() {
            draining = true;
            // hyper ends the connection after the response in flight, if any.
            http.as_mut().graceful_shutdown();
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let clock = conn.clock();
        if draining && clock.closable() {
            return Poll::Ready(Outcome::Shutdown);
        }
        let Some((at, expiry)) = clock.deadline(&timeouts) else {
            return Poll::Pending;
        };
        drop(clock);
        if timer.deadline() != at {
            timer.as_mut().reset(at);
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Outcome::Expired(expiry)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await;
    match &outcome {
        Outcome::Done(None) | Outcome::Shutdown => {}
        Outcome::Done(Some(e)) => tracing::debug!(%peer, error = %e, "connection error"),
        Outcome::Expired(expiry) => {
            tracing::debug!(%peer, timeout = expiry.as_str(), "connection timed out")
        }
        Outcome::Evicted => tracing::debug!(%peer, "connection closed to make room"),
    }
    lock(&conn.table).closed(conn.id);
}

/// How long a refused connection is given to send its request and read the `503`.
const REFUSAL_TIME: Duration = Duration::from_secs(2);

/// Answers every request on a refused connection with `503 M_LIMIT_EXCEEDED`, then closes
/// it; a client that sends nothing within [`REFUSAL_TIME`] is closed without an answer.
pub(crate) async fn answer_refusal(stream: TcpStream, reason: Refusal, table: Table) {
    let service = hyper::service::service_fn(move |_req: Request<Incoming>| async move {
        Ok::<_, Infallible>(refusal(reason))
    });
    let http = http1::Builder::new()
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service);
    let _ = tokio::time::timeout(REFUSAL_TIME, http).await;
    lock(&table).answered();
}

/// The answer to a connection beyond a cap: try again shortly, when a request in flight on
/// another connection will likely have finished.
pub(crate) fn refusal(reason: Refusal) -> Response<Body> {
    let error = match reason {
        Refusal::PerAddress => "too many connections from your address",
        Refusal::Total => "the server has too many connections",
    };
    let mut response = MatrixError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        body: json!({
            "errcode": "M_LIMIT_EXCEEDED",
            "error": error,
            "retry_after_ms": 1000,
        }),
    }
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// The router behind one connection: each request is marked in flight until its response is
/// written, reads its body through [`WatchedBody`], and carries the peer's address for
/// handlers that extract `ConnectInfo<SocketAddr>`.
#[derive(Clone)]
struct Service {
    router: Router,
    conn: Arc<Conn>,
    peer: SocketAddr,
}

impl hyper::service::Service<Request<Incoming>> for Service {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        self.conn.request_started();
        let in_flight = InFlight(self.conn.clone());
        let conn = self.conn.clone();
        let mut req = req.map(|inner| Body::new(WatchedBody { inner, conn }));
        req.extensions_mut().insert(ConnectInfo(self.peer));
        let response = self.router.clone().oneshot(req);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|inner| {
                Body::new(FinishedBody {
                    inner,
                    _in_flight: in_flight,
                })
            }))
        })
    }
}

/// A request in flight; dropped with the response body once hyper has written it whole, or
/// with the handler's future when the connection ends first.
struct InFlight(Arc<Conn>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// A response body that ends its request's time in flight when dropped.
struct FinishedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl http_body::Body for FinishedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that tells the clock when the handler waits on it and nothing comes.
struct WatchedBody {
    inner: Incoming,
    conn: Arc<Conn>,
}

impl http_body::Body for WatchedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let mut clock = self.conn.clock();
        match polled {
            Poll::Pending => clock.body_pending(Instant::now()),
            Poll::Ready(_) => clock.body_progress(),
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for WatchedBody {
    fn drop(&mut self) {
        self.conn.clock().body_progress();
    }
}

/// The socket, telling the clock when bytes come and when writes are blocked.
struct Watched {
    stream: TcpStream,
    conn: Arc<Conn>,
}

impl Watched {
    fn wrote<T>(&self, polled: &Poll<io::Result<T>>) {
        match polled {
            Poll::Pending => self.conn.clock().send_pending(Instant::now()),
            Poll::Ready(Ok(_)) => self.conn.clock().send_progress(),
            Poll::Ready(Err(_)) => {}
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.conn.clock().read(Instant::now());
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.wrote(&polled);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.wrote(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.stream).poll_flush(cx);
        self.wrote(&polled);
        polled
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
