//! Slow clients and connection limits, end to end: the header, idle and body timeouts, the
//! per-address and total caps (a waiting connection makes room, a busy one does not: `503
//! M_LIMIT_EXCEEDED`), long-polls that no timeout cuts, and a server out of file descriptors
//! that goes on answering. Connections are raw TCP from chosen 127.0.0.x source addresses, so
//! that each test decides which address a connection counts against.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use plugboard_tests::{ServerProcess, TestServer, WAIT};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const BINARY: &str = env!("CARGO_BIN_EXE_plugboard-test-server");

/// The start of a request head that is never finished.
const PARTIAL_HEAD: &[u8] = b"GET /_matrix/client/versions HTTP/1.1\r\nHost: test\r\nX-Slow: ";

fn addr(base: &str) -> SocketAddr {
    base.trim_start_matches("http://").parse().expect("address")
}

/// A TCP connection to the server at `base` from the loopback address `source`.
async fn connect_from(source: &str, base: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    let source: Ipv4Addr = source.parse().expect("source address");
    socket
        .bind(SocketAddr::V4(SocketAddrV4::new(source, 0)))
        .expect("bind the source address");
    tokio::time::timeout(WAIT, socket.connect(addr(base)))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// A connection from `source` that has sent part of a request head.
async fn slow_connection(source: &str, base: &str) -> TcpStream {
    let mut s = connect_from(source, base).await;
    s.write_all(PARTIAL_HEAD).await.expect("write");
    s
}

fn get(path: &str, extra_headers: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n{extra_headers}\r\n").into_bytes()
}

struct Response {
    status: u16,
    head: String,
    body: Value,
}

/// Reads one response (head, then a body of `Content-Length` bytes) from `s`.
async fn read_response(s: &mut TcpStream) -> Response {
    read_responses(s, 1).await.pop().expect("one response")
}

/// Reads `n` responses that follow each other on `s` (pipelining).
async fn read_responses(s: &mut TcpStream, n: usize) -> Vec<Response> {
    tokio::time::timeout(WAIT, async {
        let mut buf = Vec::new();
        let mut responses = Vec::new();
        while responses.len() < n {
            let (response, used) = loop {
                if let Some(parsed) = parse_response(&buf) {
                    break parsed;
                }
                let mut chunk = [0u8; 4096];
                let read = s.read(&mut chunk).await.expect("read a response");
                assert!(read > 0, "closed before a whole response: {buf:?}");
                buf.extend_from_slice(&chunk[..read]);
            };
            buf.drain(..used);
            responses.push(response);
        }
        responses
    })
    .await
    .expect("responses in time")
}

/// The first response in `buf` and the bytes it takes, once it is all there.
fn parse_response(buf: &[u8]) -> Option<(Response, usize)> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .expect("a content-length");
    let end = head_end + length;
    let body = buf.get(head_end..end)?;
    let body = serde_json::from_slice(body).unwrap_or(Value::Null);
    Some((Response { status, head, body }, end))
}

/// How a connection ended, or that it did not within `within`.
#[derive(Debug, PartialEq)]
enum End {
    Closed,
    StillOpen,
}

async fn wait_for_close(s: &mut TcpStream, within: Duration) -> End {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return End::StillOpen,
            Ok(Ok(0)) | Ok(Err(_)) => return End::Closed,
            // An answer (a 408, a 503) before the close: read on.
            Ok(Ok(_)) => continue,
        }
    }
}

/// `GET /_matrix/client/versions` on a fresh connection from `source`.
async fn versions_from(source: &str, base: &str) -> Response {
    let mut s = connect_from(source, base).await;
    s.write_all(&get("/_matrix/client/versions", "Connection: close\r\n"))
        .await
        .expect("write");
    read_response(&mut s).await
}

/// A `/sync` long-poll on a raw connection from `source` that waits `timeout_ms` for news.
async fn long_poll_from(source: &str, server: &TestServer, timeout_ms: u64) -> TcpStream {
    let alice = server.register(&format!("lp{}", rand_suffix())).await;
    let since = alice.sync(None, 0).await["next_batch"]
        .as_str()
        .expect("next_batch")
        .to_string();
    let token = alice.token.clone().expect("token");
    let mut s = connect_from(source, &server.base).await;
    s.write_all(&get(
        &format!(
            "/_matrix/client/v3/sync?since={}&timeout={timeout_ms}",
            plugboard_tests::enc(&since)
        ),
        &format!("Authorization: Bearer {token}\r\n"),
    ))
    .await
    .expect("write");
    s
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Long enough for the server to have read a request just written, on a loaded machine.
const SETTLE: Duration = Duration::from_millis(500);

#[tokio::test]
async fn a_connection_that_never_finishes_its_head_is_closed_after_the_header_timeout() {
    let server = TestServer::start_with(|c| c.connections.header_timeout_ms = 300).await;
    let started = Instant::now();
    let mut s = slow_connection("127.0.0.1", &server.base).await;
    assert_eq!(wait_for_close(&mut s, WAIT).await, End::Closed);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "closed after {:?}, before the header timeout",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_head_that_trickles_in_byte_by_byte_is_still_cut_at_the_header_timeout() {
    let server = TestServer::start_with(|c| c.connections.header_timeout_ms = 600).await;
    let started = Instant::now();
    let mut s = slow_connection("127.0.0.1", &server.base).await;
    let mut closed = false;
    while started.elapsed() < WAIT {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if s.write_all(b"a").await.is_err() {
            closed = true;
            break;
        }
        if wait_for_close(&mut s, Duration::from_millis(1)).await == End::Closed {
            closed = true;
            break;
        }
    }
    assert!(closed, "a byte every 100 ms kept the connection open");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed only after {:?}",
        started.elapsed()
    );
}

/// Writes `bytes` one at a time, each its own segment, with a pause between them.
async fn write_byte_by_byte(s: &mut TcpStream, bytes: &[u8]) {
    s.set_nodelay(true).expect("nodelay");
    for byte in bytes {
        s.write_all(std::slice::from_ref(byte))
            .await
            .expect("write");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn a_head_sent_a_byte_at_a_time_is_answered_once_it_is_whole() {
    let server = TestServer::start().await;
    let mut s = connect_from("127.0.0.1", &server.base).await;
    write_byte_by_byte(&mut s, &get("/_matrix/client/versions", "")).await;
    let response = read_response(&mut s).await;
    assert_eq!(response.status, 200, "{}", response.head);
    assert!(response.body["versions"].is_array(), "{}", response.body);
}

#[tokio::test]
async fn a_head_whose_lines_end_in_a_bare_newline_is_answered() {
    let server = TestServer::start().await;
    let mut s = connect_from("127.0.0.1", &server.base).await;
    write_byte_by_byte(
        &mut s,
        b"GET /_matrix/client/versions HTTP/1.1\nHost: test\n\n",
    )
    .await;
    let response = read_response(&mut s).await;
    assert_eq!(response.status, 200, "{}", response.head);
}

#[tokio::test]
async fn a_head_of_several_kilobytes_is_answered() {
    let server = TestServer::start().await;
    let mut s = connect_from("127.0.0.1", &server.base).await;
    let long = format!("X-Long: {}\r\n", "a".repeat(6_000));
    s.write_all(&get("/_matrix/client/versions", &long))
        .await
        .expect("write");
    let response = read_response(&mut s).await;
    assert_eq!(response.status, 200, "{}", response.head);
}

#[tokio::test]
async fn requests_and_a_body_written_all_at_once_are_answered_in_order() {
    let server = TestServer::start().await;
    let mut s = connect_from("127.0.0.1", &server.base).await;
    let body = br#"{"type": "m.login.no_such_type", "identifier": {"type": "m.id.user", "user": "nobody"}}"#;
    let mut bytes = get("/_matrix/client/versions", "");
    bytes.extend_from_slice(
        format!(
            "POST /_matrix/client/v3/login HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    bytes.extend_from_slice(body);
    bytes.extend_from_slice(&get("/_matrix/client/versions", "Connection: close\r\n"));
    s.write_all(&bytes).await.expect("write");
    let responses = read_responses(&mut s, 3).await;
    assert_eq!(responses[0].status, 200, "{}", responses[0].head);
    // The body was read whole: its login type is refused, not its JSON.
    assert_eq!(responses[1].status, 400, "{}", responses[1].head);
    assert_eq!(
        responses[1].body["errcode"], "M_UNKNOWN",
        "{}",
        responses[1].body
    );
    assert_eq!(responses[2].status, 200, "{}", responses[2].head);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let server = TestServer::start_with(|c| c.connections.idle_timeout_ms = 400).await;
    let mut s = connect_from("127.0.0.1", &server.base).await;
    s.write_all(&get("/_matrix/client/versions", ""))
        .await
        .unwrap();
    assert_eq!(read_response(&mut s).await.status, 200);
    let answered = Instant::now();
    assert_eq!(wait_for_close(&mut s, WAIT).await, End::Closed);
    assert!(
        answered.elapsed() >= Duration::from_millis(300),
        "closed after {:?}, before the idle timeout",
        answered.elapsed()
    );
}

#[tokio::test]
async fn a_connection_used_more_often_than_the_idle_timeout_stays_open() {
    let server = TestServer::start_with(|c| {
        c.connections.idle_timeout_ms = 800;
        c.connections.header_timeout_ms = 800;
    })
    .await;
    let mut s = connect_from("127.0.0.1", &server.base).await;
    for _ in 0..6 {
        s.write_all(&get("/_matrix/client/versions", ""))
            .await
            .unwrap();
        assert_eq!(read_response(&mut s).await.status, 200);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn a_long_polling_sync_is_not_cut_by_the_header_or_idle_timeout() {
    let server = TestServer::start_with(|c| {
        c.connections.header_timeout_ms = 300;
        c.connections.idle_timeout_ms = 300;
    })
    .await;
    let started = Instant::now();
    let mut s = long_poll_from("127.0.0.1", &server, 2000).await;
    let r = read_response(&mut s).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["next_batch"].is_string(), "{}", r.body);
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "the long-poll ended after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_request_pipelined_behind_a_long_poll_starts_no_header_timeout() {
    let server = TestServer::start_with(|c| c.connections.header_timeout_ms = 300).await;
    let started = Instant::now();
    let mut s = long_poll_from("127.0.0.1", &server, 1500).await;
    // The next request comes while the long-poll is in flight; the server reads it then, but
    // its head is complete and its turn comes after the long-poll.
    tokio::time::sleep(SETTLE).await;
    s.write_all(&get("/_matrix/client/versions", ""))
        .await
        .unwrap();
    let responses = read_responses(&mut s, 2).await;
    assert_eq!(responses[0].status, 200, "{}", responses[0].body);
    assert!(responses[0].body["next_batch"].is_string());
    assert!(started.elapsed() >= Duration::from_millis(1200));
    assert_eq!(responses[1].status, 200, "{}", responses[1].body);
    assert!(responses[1].body["versions"].is_array());
}

#[tokio::test]
async fn a_request_body_that_stops_coming_closes_the_connection_after_the_body_timeout() {
    let server = TestServer::start_with(|c| c.connections.body_timeout_ms = 400).await;
    let mut s = connect_from("127.0.0.1", &server.base).await;
    s.write_all(
        b"POST /_matrix/client/v3/login HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"type\":",
    )
    .await
    .unwrap();
    let sent = Instant::now();
    assert_eq!(wait_for_close(&mut s, WAIT).await, End::Closed);
    assert!(
        sent.elapsed() >= Duration::from_millis(300),
        "closed after {:?}, before the body timeout",
        sent.elapsed()
    );
}

#[tokio::test]
async fn a_slow_but_steady_request_body_is_not_cut() {
    let server = TestServer::start_with(|c| c.connections.body_timeout_ms = 500).await;
    let body = br#"{"type":"m.login.password","identifier":{"type":"m.id.user","user":"nobody"},"password":"wrong-password-xx"}"#;
    let mut s = connect_from("127.0.0.1", &server.base).await;
    s.write_all(
        format!(
            "POST /_matrix/client/v3/login HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    // Ten pieces 200 ms apart: two seconds in all, four times the body timeout.
    for piece in body.chunks(body.len().div_ceil(10)) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        s.write_all(piece).await.unwrap();
    }
    let r = read_response(&mut s).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.body["errcode"], "M_FORBIDDEN");
}

#[tokio::test]
async fn beyond_the_per_address_cap_the_longest_waiting_connection_of_that_address_makes_room() {
    let server = TestServer::start_with(|c| {
        c.connections.max_per_address = 2;
        c.connections.per_address_exempt = Vec::new();
    })
    .await;
    let mut first = slow_connection("127.0.0.2", &server.base).await;
    tokio::time::sleep(SETTLE).await;
    let mut second = slow_connection("127.0.0.2", &server.base).await;
    tokio::time::sleep(SETTLE).await;
    let r = versions_from("127.0.0.2", &server.base).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(wait_for_close(&mut first, WAIT).await, End::Closed);
    assert_eq!(
        wait_for_close(&mut second, Duration::from_millis(300)).await,
        End::StillOpen
    );
}

#[tokio::test]
async fn beyond_the_per_address_cap_a_new_connection_of_a_busy_address_gets_503_limit_exceeded() {
    let server = TestServer::start_with(|c| {
        c.connections.max_per_address = 2;
        c.connections.per_address_exempt = Vec::new();
    })
    .await;
    let _poll1 = long_poll_from("127.0.0.2", &server, 20_000).await;
    let _poll2 = long_poll_from("127.0.0.2", &server, 20_000).await;
    tokio::time::sleep(SETTLE).await;
    let r = versions_from("127.0.0.2", &server.base).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.body["errcode"], "M_LIMIT_EXCEEDED", "{}", r.body);
    assert_eq!(r.body["error"], "too many connections from your address");
    assert!(
        r.head.to_ascii_lowercase().contains("retry-after: 1"),
        "{}",
        r.head
    );
    // Another address is not held to the busy address's cap.
    assert_eq!(versions_from("127.0.0.3", &server.base).await.status, 200);
}

#[tokio::test]
async fn beyond_the_total_cap_the_longest_waiting_connection_of_any_address_makes_room() {
    let server = TestServer::start_with(|c| c.connections.max_total = 3).await;
    let mut oldest = slow_connection("127.0.0.2", &server.base).await;
    tokio::time::sleep(SETTLE).await;
    let mut others = Vec::new();
    for source in ["127.0.0.3", "127.0.0.4"] {
        others.push(slow_connection(source, &server.base).await);
        tokio::time::sleep(SETTLE).await;
    }
    let r = versions_from("127.0.0.5", &server.base).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(wait_for_close(&mut oldest, WAIT).await, End::Closed);
    for s in &mut others {
        assert_eq!(
            wait_for_close(s, Duration::from_millis(300)).await,
            End::StillOpen
        );
    }
}

#[tokio::test]
async fn beyond_the_total_cap_with_every_connection_busy_a_new_one_gets_503() {
    let server = TestServer::start_with(|c| c.connections.max_total = 2).await;
    // Registering and the first sync take the reqwest client's connections; they wait for
    // their client between requests and make room for the long-polls.
    let _poll1 = long_poll_from("127.0.0.2", &server, 20_000).await;
    let _poll2 = long_poll_from("127.0.0.3", &server, 20_000).await;
    tokio::time::sleep(SETTLE).await;
    let r = versions_from("127.0.0.4", &server.base).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.body["errcode"], "M_LIMIT_EXCEEDED", "{}", r.body);
    assert_eq!(r.body["error"], "the server has too many connections");
}

#[tokio::test]
async fn loopback_addresses_are_exempt_from_the_per_address_cap_by_default() {
    let server = TestServer::start_with(|c| c.connections.max_per_address = 1).await;
    let _poll1 = long_poll_from("127.0.0.2", &server, 20_000).await;
    let _poll2 = long_poll_from("127.0.0.2", &server, 20_000).await;
    tokio::time::sleep(SETTLE).await;
    assert_eq!(versions_from("127.0.0.2", &server.base).await.status, 200);
}

#[tokio::test]
async fn at_shutdown_connections_waiting_for_their_clients_are_closed_at_once() {
    let server = TestServer::start_with(|c| c.connections.header_timeout_ms = 60_000).await;
    let mut slow = Vec::new();
    for _ in 0..3 {
        slow.push(slow_connection("127.0.0.1", &server.base).await);
    }
    tokio::time::sleep(SETTLE).await;
    let started = Instant::now();
    server.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        started.elapsed()
    );
    for s in &mut slow {
        assert_eq!(wait_for_close(s, WAIT).await, End::Closed);
    }
}

/// Opens `n` slow connections spread over 127.0.0.2..=127.0.0.9.
async fn many_slow_connections(base: &str, n: usize) -> Vec<TcpStream> {
    let mut all = Vec::with_capacity(n);
    for i in 0..n {
        let source = format!("127.0.0.{}", 2 + i % 8);
        all.push(slow_connection(&source, base).await);
    }
    all
}

#[tokio::test]
async fn slow_connections_beyond_the_descriptor_limit_do_not_stop_versions() {
    let dir = tempfile::tempdir().unwrap();
    // The automatic cap: 128 connections under a limit of 256 descriptors.
    let server = ServerProcess::spawn_with_fd_limit(BINARY, dir.path(), &[], 256, 256).await;
    let _slow = many_slow_connections(&server.base, 400).await;
    for _ in 0..10 {
        let r = versions_from("127.0.0.1", &server.base).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
}

#[tokio::test]
async fn out_of_descriptors_the_server_closes_a_waiting_connection_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    // A cap far above the descriptor limit: accept fails with EMFILE.
    let server = ServerProcess::spawn_with_fd_limit(
        BINARY,
        dir.path(),
        &[("PLUGBOARD_CONNECTIONS__MAX_TOTAL", "100000")],
        256,
        256,
    )
    .await;
    let _slow = many_slow_connections(&server.base, 400).await;
    for _ in 0..10 {
        let r = versions_from("127.0.0.1", &server.base).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
}

#[tokio::test]
async fn the_file_descriptor_limit_is_raised_to_the_hard_limit_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::spawn_with_fd_limit(BINARY, dir.path(), &[], 512, 4096).await;
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a line on open files");
    let numbers: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(numbers, ["4096", "4096"], "{line}");
}
