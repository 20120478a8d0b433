//! The HTTP listener: accepts connections, holds them to the connection caps ([`limits`]) and
//! timeouts ([`clock`]), serves each with hyper ([`connection`]), gives the heap back after
//! a flood of them ([`trim`]), and at shutdown stops accepting and waits for the requests in
//! flight. It replaces `axum::serve`, which has no header, idle or body timeouts and no cap,
//! so that connections that never finish their request could take every file descriptor.

pub(crate) mod address;
mod clock;
mod connection;
mod fd_limit;
mod limits;
pub(crate) mod tls;
mod trim;

use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::config::ConnectionsConfig;
use crate::lock::lock;
use clock::Timeouts;
use connection::{Conn, Table};
use limits::{Admission, Caps, ConnectionTable, Counts};

/// The pause after `accept` fails for want of descriptors or memory: long enough not to spin
/// on an error that persists, short enough that a freed descriptor is used at once.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// How often the caps' and accept errors' tallies are logged, when they changed.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// The listen backlog asked for; the kernel caps it at `net.core.somaxconn` (4096 on current
/// Linux). tokio's `TcpListener::bind` asks for 1024: a burst of connections beyond what is
/// accepted at once then loses SYNs, and a client whose SYN is lost retries only after a
/// second.
const BACKLOG: u32 = 65_535;

/// A listener on `addr` with the longest backlog the system allows.
pub(crate) fn bind(addr: std::net::SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As std and tokio do: a restarted server can bind while old connections are in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Serves `router` on `listener` until `shutdown` resolves, then waits for the requests in
/// flight. Raises the file-descriptor limit first.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    config: &ConnectionsConfig,
    shutdown: impl Future<Output = ()>,
) {
    let fd_limit = match fd_limit::raise() {
        Ok(Some(l)) => {
            tracing::info!(
                before = l.before,
                after = l.after,
                hard = l.hard,
                "file-descriptor limit (soft limit raised to the hard limit)"
            );
            Some(l.after)
        }
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the file-descriptor limit");
            rlimit::Resource::NOFILE.get().ok().map(|(soft, _)| soft)
        }
    };
    let caps = caps(config, fd_limit);
    if let Some(limit) = fd_limit.filter(|&l| caps.max_total as u64 > l) {
        tracing::warn!(
            max_total = caps.max_total,
            fd_limit = limit,
            "connections.max_total is more than the file-descriptor limit allows"
        );
    }
    tracing::info!(
        max_total = caps.max_total,
        max_per_address = caps.max_per_address,
        "connection limits"
    );
    let timeouts = Timeouts {
        header: Duration::from_millis(config.header_timeout_ms),
        idle: Duration::from_millis(config.idle_timeout_ms),
        body: Duration::from_millis(config.body_timeout_ms),
        send: Duration::from_millis(config.send_timeout_ms),
    };
    let table: Table = Arc::new(Mutex::new(ConnectionTable::new(caps)));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(trim::run(table.clone(), stop_rx.clone()));
    let mut report = Report::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        report.log_if_due(&table);
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                let out_of_resources = is_out_of_resources(&e);
                if out_of_resources {
                    // Closing the connection that waited longest for its client frees a
                    // descriptor for the next accept.
                    if let Some(evict) = lock(&table).evict_longest_waiting() {
                        evict.notify_one();
                    }
                    report.accept_errors += 1;
                } else {
                    tracing::error!(error = %e, "accept failed");
                }
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                }
            }
        };
        let evict = Arc::new(Notify::new());
        let admission = lock(&table).admit(peer.ip(), evict.clone());
        match admission {
            Admission::Accept { id, evict: victim } => {
                if let Some(victim) = victim {
                    victim.notify_one();
                }
                let conn = Conn::new(id, Instant::now(), table.clone());
                tokio::spawn(connection::serve(
                    stream,
                    peer,
                    conn,
                    evict,
                    router.clone(),
                    timeouts,
                    stop_rx.clone(),
                ));
            }
            Admission::Refuse { reason, answer } => {
                if answer {
                    tokio::spawn(connection::answer_refusal(stream, reason, table.clone()));
                }
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(stop_rx);
    // Every connection task holds a receiver: this resolves when the last one has ended.
    stop_tx.closed().await;
}

/// The caps from the configuration; `max_total = 0` is what the descriptor limit leaves room
/// for.
fn caps(config: &ConnectionsConfig, fd_limit: Option<u64>) -> Caps {
    let max_total = match (config.max_total, fd_limit) {
        (0, Some(limit)) => fd_limit::connections_for(limit),
        (0, None) => fd_limit::connections_for(1024),
        (n, _) => n,
    };
    Caps {
        max_total,
        max_per_address: config.max_per_address,
        // Each was parsed once already when the configuration was loaded.
        exempt: config
            .per_address_exempt
            .iter()
            .filter_map(|r| r.parse().ok())
            .collect(),
    }
}

/// Errors of one connection that went away before it was accepted: accept the next.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// The process or the system is out of descriptors or buffer memory.
fn is_out_of_resources(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Tallies logged every [`REPORT_EVERY`] while they change: a flood of connections is one line
/// per interval, not one per connection.
struct Report {
    last: Instant,
    counts: Counts,
    accept_errors: u64,
    reported_errors: u64,
}

impl Report {
    fn new() -> Report {
        Report {
            last: Instant::now(),
            counts: Counts::default(),
            accept_errors: 0,
            reported_errors: 0,
        }
    }

    fn log_if_due(&mut self, table: &Table) {
        if self.last.elapsed() < REPORT_EVERY {
            return;
        }
        let (counts, open) = {
            let table = lock(table);
            (table.counts(), table.open())
        };
        if counts != self.counts || self.accept_errors != self.reported_errors {
            tracing::warn!(
                evicted = counts.evicted - self.counts.evicted,
                refused = counts.refused - self.counts.refused,
                out_of_descriptors = self.accept_errors - self.reported_errors,
                open,
                "connection limits reached in the last {}s",
                self.last.elapsed().as_secs()
            );
        }
        self.counts = counts;
        self.reported_errors = self.accept_errors;
        self.last = Instant::now();
    }
}
