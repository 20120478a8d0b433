//! One client connection: its first request head is read into a small buffer (a client that
//! never finishes it costs a few kilobytes, not hyper's 16 KiB of buffers), then it is served
//! with hyper's HTTP/1.1. Its socket reads and writes, its requests' bodies and its responses
//! tell the connection's clock what it waits for, and the table of connections whether it has
//! a request in flight. The connection is closed when its clock's deadline passes, when the
//! table evicts it, or at shutdown once it has no request in flight.
//!
//! hyper's h1 dispatcher polls the handler (and so the request body) inside the connection's
//! own future, so every change of the clock happens during a poll of that future and is seen
//! right after it, when the deadline is recomputed.

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};
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
use crate::lock::lock;

/// The table of connections; each entry keeps the notifier that closes its connection.
pub(crate) type Table = Arc<Mutex<ConnectionTable<Arc<Notify>>>>;

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
    /// The client went away, or the socket failed, before its first request head was whole.
    Unread(io::Error),
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
    let mut stage = Stage::Head(HeadRead::new(Watched {
        stream,
        conn: conn.clone(),
    }));
    let service = Service {
        router,
        conn: conn.clone(),
        peer,
    };
    let mut timer = pin!(tokio::time::sleep(Duration::ZERO));
    let mut evicted = pin!(evict.notified());
    let mut stopping = pin!(async move {
        // A dropped sender is a shutdown too.
        let _ = stop.wait_for(|stop| *stop).await;
    });
    let mut draining = false;
    let outcome = poll_fn(|cx| {
        if let Stage::Head(head) = &mut stage {
            match head.poll(cx) {
                Poll::Ready(Ok(())) => {
                    let io = head.take();
                    let http =
                        http1::Builder::new().serve_connection(TokioIo::new(io), service.clone());
                    stage = Stage::Http(Box::pin(http));
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Outcome::Unread(e)),
                Poll::Pending => {}
            }
        }
        if let Stage::Http(http) = &mut stage {
            if let Poll::Ready(result) = http.as_mut().poll(cx) {
                return Poll::Ready(Outcome::Done(result.err()));
            }
        }
        if evicted.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Outcome::Evicted);
        }
        if !draining && stopping.as_mut().poll(cx).is_ready() {
            draining = true;
            match &mut stage {
                // No request has begun: nothing is in flight.
                Stage::Head(_) => return Poll::Ready(Outcome::Shutdown),
                // hyper ends the connection after the response in flight, if any.
                Stage::Http(http) => http.as_mut().graceful_shutdown(),
            }
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
        Outcome::Unread(e) => {
            tracing::debug!(%peer, error = %e, "connection ended before a request")
        }
        Outcome::Expired(expiry) => {
            tracing::debug!(%peer, timeout = expiry.as_str(), "connection timed out")
        }
        Outcome::Evicted => tracing::debug!(%peer, "connection closed to make room"),
    }
    lock(&conn.table).closed(conn.id);
}

/// The hyper connection of one client, boxed: a connection still waiting for its first
/// request head does not carry hyper's state in its task.
type Http = Pin<Box<http1::Connection<TokioIo<Prefixed>, Service>>>;

/// Where a connection is: before its first request head is whole, or served by hyper.
enum Stage {
    Head(HeadRead),
    Http(Http),
}

/// How much of the first request head is read before hyper takes over. hyper gives every
/// connection a read and a write buffer of 8 KiB each as it starts: 20,000 connections that
/// never finish their head held 17 KB each, and the heap's first growth to hold them slowed
/// every other answer. A head longer than this is handed over unfinished; hyper reads the
/// rest.
const HEAD_BUFFER: usize = 1024;

/// Reads a connection's first bytes into a small buffer until they hold a whole request head
/// (an empty line) or fill it.
struct HeadRead {
    io: Option<Watched>,
    /// Empty until the socket is first readable, then [`HEAD_BUFFER`] bytes.
    buf: Vec<u8>,
    /// How many bytes of `buf` were read.
    len: usize,
}

impl HeadRead {
    fn new(io: Watched) -> HeadRead {
        HeadRead {
            io: Some(io),
            buf: Vec::new(),
            len: 0,
        }
    }

    /// Ready when hyper should take over; an error or end of stream before a whole head
    /// ends the connection (the client went away, or sent nothing worth answering).
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(io) = self.io.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        if self.buf.is_empty() {
            // The buffer only once bytes come: a connection that sends nothing holds none.
            ready!(io.stream.poll_read_ready(cx))?;
            self.buf = vec![0; HEAD_BUFFER];
        }
        loop {
            let before = self.len;
            let mut read = ReadBuf::new(&mut self.buf[before..]);
            ready!(Pin::new(&mut *io).poll_read(cx, &mut read))?;
            let n = read.filled().len();
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
            self.len += n;
            // The two bytes before the new ones may begin the empty line.
            let read_so_far = &self.buf[..self.len];
            if self.len == HEAD_BUFFER || head_complete(read_so_far, before.saturating_sub(2)) {
                return Poll::Ready(Ok(()));
            }
        }
    }

    /// The socket, with the bytes read so far to be read again first.
    fn take(&mut self) -> Prefixed {
        let mut head = std::mem::take(&mut self.buf);
        head.truncate(self.len);
        Prefixed {
            head,
            at: 0,
            inner: self.io.take().expect("a head is handed over once"),
        }
    }
}

/// Whether `buf` holds the empty line that ends a request head, looking from `from` on (what
/// an earlier read already searched needs no second look). A bare `\n` ends a line too.
fn head_complete(buf: &[u8], from: usize) -> bool {
    let tail = &buf[from.min(buf.len())..];
    tail.windows(2).any(|w| w == b"\n\n") || tail.windows(3).any(|w| w == b"\n\r\n")
}

/// The socket behind hyper: the head bytes [`HeadRead`] took come first, then the stream.
struct Prefixed {
    head: Vec<u8>,
    at: usize,
    inner: Watched,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.at < this.head.len() {
            let n = buf.remaining().min(this.head.len() - this.at);
            buf.put_slice(&this.head[this.at..this.at + n]);
            this.at += n;
            if this.at == this.head.len() {
                this.head = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
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

#[cfg(test)]
mod tests {
    use super::head_complete;

    #[test]
    fn a_head_ends_at_its_empty_line_with_either_line_ending() {
        assert!(head_complete(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0));
        assert!(head_complete(b"GET / HTTP/1.1\nHost: a\n\n", 0));
        assert!(head_complete(b"GET / HTTP/1.1\r\nHost: a\n\r\n", 0));
    }

    #[test]
    fn a_head_without_its_empty_line_is_not_whole() {
        assert!(!head_complete(b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ", 0));
        assert!(!head_complete(b"GET / HTTP/1.1\r\n", 0));
        assert!(!head_complete(b"", 0));
    }

    #[test]
    fn the_empty_line_is_found_across_the_edge_of_an_earlier_read() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        // The last read brought only the final "\n": the search starts two bytes before it.
        assert!(head_complete(head, head.len() - 1 - 2));
        assert!(!head_complete(head, head.len() - 1));
        // A start beyond the end finds nothing and does not panic.
        assert!(!head_complete(head, head.len() + 5));
    }
}
