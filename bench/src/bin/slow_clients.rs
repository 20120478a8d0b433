//! plugboard-slow-clients-bench: opens N connections that send part of a request head and
//! never finish it (slowloris), while timing `GET /_matrix/client/versions` on fresh
//! connections. Loopback only (127.0.0.0/8), bounded in count and time. Prints one JSON line.
//!
//! The slow connections can come from several source addresses (`--sources
//! 127.0.0.2-127.0.0.21`): one source address has only the ephemeral port range's worth of
//! ports to one server port, and a server's per-address cap treats each address on its own.
//! The probes come from `--probe-source`, by default an address the slow connections do not
//! use.

#[path = "../stats.rs"]
mod stats;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{watch, Semaphore};

use stats::{ordered_object, Summary};

#[derive(Parser)]
#[command(name = "plugboard-slow-clients-bench")]
struct Args {
    /// The server, on loopback: http://127.0.0.1:PORT.
    #[arg(long, default_value = "http://127.0.0.1:8008")]
    url: String,
    /// Slow connections to attempt, in all.
    #[arg(long, default_value_t = 20_000)]
    connections: usize,
    /// Source addresses of the slow connections, round-robin: addresses and ranges of the
    /// last octet, comma-separated (127.0.0.2-127.0.0.21).
    #[arg(long, default_value = "127.0.0.2")]
    sources: String,
    /// The source address of the probes.
    #[arg(long, default_value = "127.0.0.1")]
    probe_source: Ipv4Addr,
    /// Connection attempts in progress at once (per worker process).
    #[arg(long, default_value_t = 512)]
    open_concurrency: usize,
    /// Connection attempts started per second, in all; 0: as fast as `--open-concurrency`
    /// lets them go.
    #[arg(long, default_value_t = 0.0)]
    open_rate: f64,
    /// Length of the run in seconds; probes run all along, the slow connections stay open
    /// until the end.
    #[arg(long, default_value_t = 60.0)]
    duration: f64,
    /// A probe is started every this many milliseconds.
    #[arg(long, default_value_t = 50)]
    probe_interval_ms: u64,
    /// A probe not answered within this counts as failed.
    #[arg(long, default_value_t = 2000)]
    probe_timeout_ms: u64,
    /// When more than 0, each slow connection sends one more header byte this often (the
    /// classic slowloris, against servers whose timeout restarts on every byte).
    #[arg(long, default_value_t = 0.0)]
    trickle_secs: f64,
    /// Processes that hold the slow connections; 0: as many as this process's open-file
    /// limit requires (each process has its own limit, and the probes must never fail for
    /// want of a descriptor on this side).
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// How much lower the workers' scheduling priority is than this process's (`nice`): on one
    /// machine the slow connections then take CPU from the probes and the server only when
    /// those have none to do, as an attacker elsewhere on the network would not take any.
    #[arg(long, default_value_t = 10)]
    worker_nice: i32,
    /// The server's process id: its open descriptors are counted through /proc during the run.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Copied into the result line.
    #[arg(long, default_value = "")]
    label: String,
    /// Internal: run as a worker that holds `--connections` slow connections for
    /// `--duration` and prints its tally.
    #[arg(long, hide = true)]
    worker: bool,
}

/// What the slow connections of one process saw.
#[derive(Default)]
struct Tally {
    connected: AtomicU64,
    open: AtomicU64,
    closed_by_server: AtomicU64,
    connect_errors: Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    fn connect_error(&self, kind: String) {
        *self.connect_errors.lock().unwrap().entry(kind).or_default() += 1;
    }

    fn to_json(&self, open_at_end: u64) -> Value {
        json!({
            "connected": self.connected.load(Ordering::Relaxed),
            "open_at_end": open_at_end,
            "closed_by_server": self.closed_by_server.load(Ordering::Relaxed),
            "connect_errors": *self.connect_errors.lock().unwrap(),
        })
    }
}

#[derive(Default)]
struct Probes {
    ok_ms: Vec<f64>,
    /// Per second of the run: the slowest probe started in it (ms; a failure counts as the
    /// probe timeout) and the failures.
    timeline: BTreeMap<u64, (f64, u64)>,
    statuses: BTreeMap<String, u64>,
    failures: BTreeMap<String, u64>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("plugboard-slow-clients-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Descriptors a process keeps for itself beyond its slow connections.
const SPARE_FDS: u64 = 1024;

fn run(args: Args) -> Result<(), String> {
    let target = loopback_target(&args.url)?;
    let sources = parse_sources(&args.sources)?;
    if args.worker {
        // Before the runtime starts its threads: on Linux nice(2) changes the calling thread
        // only, and threads started later inherit it (set after, the runtime's workers, which
        // do all the work, kept the probes' priority).
        // SAFETY: nice(2) only changes this thread's priority; a failure leaves it as it was.
        unsafe { libc::nice(args.worker_nice) };
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    if args.worker {
        raise_fd_limit(args.connections as u64 + SPARE_FDS)?;
        return runtime.block_on(worker(args, target, sources));
    }
    let fd_limit = raise_fd_limit(args.connections as u64 + SPARE_FDS)?;
    eprintln!("file-descriptor limit: {fd_limit}");
    runtime.block_on(attack_and_probe(args, target, fd_limit))
}

/// A worker: holds its share of the slow connections for the run, then prints its tally.
async fn worker(args: Args, target: SocketAddr, sources: Vec<Ipv4Addr>) -> Result<(), String> {
    let tally = Arc::new(Tally::default());
    let (end_tx, end_rx) = watch::channel(false);
    let trickle = (args.trickle_secs > 0.0).then(|| Duration::from_secs_f64(args.trickle_secs));
    let plan = Opening {
        n: args.connections,
        concurrency: args.open_concurrency,
        rate: args.open_rate,
        sources,
        target,
        trickle,
    };
    let opener = tokio::spawn(open_slow_connections(plan, tally.clone(), end_rx));
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    let open_at_end = tally.open.load(Ordering::Relaxed);
    let _ = end_tx.send(true);
    let (ramp, tasks) = opener.await.map_err(|e| e.to_string())?;
    for task in tasks {
        let _ = task.await;
    }
    let mut line = tally.to_json(open_at_end);
    line["ramp_s"] = json!(stats::round3(ramp.as_secs_f64()));
    println!("{line}");
    Ok(())
}

/// A worker's share of the slow connections: `n` of them, `concurrency` attempts at a time,
/// `rate` started a second at most (0: no pacing), round-robin over `sources`.
struct Opening {
    n: usize,
    concurrency: usize,
    rate: f64,
    sources: Vec<Ipv4Addr>,
    target: SocketAddr,
    trickle: Option<Duration>,
}

/// Opens the slow connections of `plan`; answers how long that took and their tasks.
async fn open_slow_connections(
    plan: Opening,
    tally: Arc<Tally>,
    end: watch::Receiver<bool>,
) -> (Duration, Vec<tokio::task::JoinHandle<()>>) {
    let Opening {
        n,
        concurrency,
        rate,
        sources,
        target,
        trickle,
    } = plan;
    let start = Instant::now();
    let gate = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        if rate > 0.0 {
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        let Ok(permit) = gate.clone().acquire_owned().await else {
            break;
        };
        if *end.borrow() {
            break;
        }
        tasks.push(tokio::spawn(slow_connection(
            sources[i % sources.len()],
            target,
            tally.clone(),
            permit,
            trickle,
            end.clone(),
        )));
    }
    (start.elapsed(), tasks)
}

/// Starts the workers, probes `/versions` for the run's length, and prints the result line.
async fn attack_and_probe(args: Args, target: SocketAddr, fd_limit: u64) -> Result<(), String> {
    let per_worker = fd_limit.saturating_sub(SPARE_FDS).max(1) as usize;
    let workers = match args.workers {
        0 => args.connections.div_ceil(per_worker),
        n => n,
    };
    let mut children = Vec::new();
    for w in 0..workers {
        let share = args.connections / workers + usize::from(w < args.connections % workers);
        let child = tokio::process::Command::new(
            std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?,
        )
        .args(["--worker", "--url", &args.url, "--sources", &args.sources])
        .arg(format!("--connections={share}"))
        .arg(format!("--open-concurrency={}", args.open_concurrency))
        .arg(format!("--open-rate={}", args.open_rate / workers as f64))
        .arg(format!("--duration={}", args.duration))
        .arg(format!("--trickle-secs={}", args.trickle_secs))
        .arg(format!("--worker-nice={}", args.worker_nice))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start a worker: {e}"))?;
        children.push(child);
    }

    let start = Instant::now();
    let duration = Duration::from_secs_f64(args.duration);
    let probes = Arc::new(Mutex::new(Probes::default()));
    let mut interval = tokio::time::interval(Duration::from_millis(args.probe_interval_ms.max(1)));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut probe_tasks = Vec::new();
    let mut last_progress = Instant::now();
    let server_fds = args.server_pid.map(|pid| FdSampler::start(pid, duration));
    while start.elapsed() < duration {
        interval.tick().await;
        let tally_of_probes = probes.clone();
        let (source, timeout) = (
            args.probe_source,
            Duration::from_millis(args.probe_timeout_ms),
        );
        let second = start.elapsed().as_secs();
        let at_ms = start.elapsed().as_millis();
        probe_tasks.push(tokio::spawn(async move {
            let outcome = probe(source, target, timeout).await;
            if let Ok((_, ms)) = &outcome {
                if *ms > 20.0 && std::env::var_os("PROBE_LOG").is_some() {
                    eprintln!("slow probe at {at_ms} ms: {ms:.1} ms");
                }
            }
            let mut p = tally_of_probes.lock().unwrap();
            let (ms, failed) = match outcome {
                Ok((200, ms)) => {
                    p.ok_ms.push(ms);
                    (ms, 0)
                }
                Ok((status, ms)) => {
                    *p.statuses.entry(status.to_string()).or_default() += 1;
                    (ms, 1)
                }
                Err(kind) => {
                    *p.failures.entry(kind).or_default() += 1;
                    (timeout.as_secs_f64() * 1000.0, 1)
                }
            };
            let slot = p.timeline.entry(second).or_default();
            slot.0 = slot.0.max(ms);
            slot.1 += failed;
        }));
        if last_progress.elapsed() >= Duration::from_secs(5) {
            last_progress = Instant::now();
            let p = probes.lock().unwrap();
            eprintln!(
                "t={:.0}s server_fds={:?} probes ok={} other={:?} failed={:?}",
                start.elapsed().as_secs_f64(),
                server_fds.as_ref().map(|s| s.last.load(Ordering::Relaxed)),
                p.ok_ms.len(),
                p.statuses,
                p.failures,
            );
        }
    }
    for task in probe_tasks {
        let _ = task.await;
    }

    let mut attack = Attack::default();
    for child in children {
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| format!("a worker: {e}"))?;
        let line: Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("a worker's result ({e}): {:?}", out.stdout))?;
        attack.add(&line);
    }

    let p = std::mem::take(&mut *probes.lock().unwrap());
    let timeline: Vec<String> = p
        .timeline
        .iter()
        .map(|(s, (max, failed))| {
            format!(
                "{s}s:{max:.0}ms{}",
                if *failed > 0 {
                    format!("/{failed}failed")
                } else {
                    String::new()
                }
            )
        })
        .collect();
    eprintln!("slowest probe by second: {}", timeline.join(" "));
    let failed: u64 = p.failures.values().sum::<u64>() + p.statuses.values().sum::<u64>();
    let summary = Summary::of(p.ok_ms.clone());
    let line = ordered_object(&[
        ("label", json!(args.label).to_string()),
        ("connections", args.connections.to_string()),
        ("sources", json!(args.sources).to_string()),
        ("workers", workers.to_string()),
        ("open_rate", json!(args.open_rate).to_string()),
        ("trickle_secs", json!(args.trickle_secs).to_string()),
        ("duration_s", json!(args.duration).to_string()),
        ("ramp_s", json!(attack.ramp_s).to_string()),
        ("connected", attack.connected.to_string()),
        ("open_at_end", attack.open_at_end.to_string()),
        ("closed_by_server", attack.closed_by_server.to_string()),
        ("connect_errors", json!(attack.connect_errors).to_string()),
        (
            "server_fds_max",
            json!(server_fds.map(|s| s.max.load(Ordering::Relaxed))).to_string(),
        ),
        ("probes", (p.ok_ms.len() as u64 + failed).to_string()),
        ("probes_ok", p.ok_ms.len().to_string()),
        ("probes_failed", failed.to_string()),
        ("probe_statuses", json!(p.statuses).to_string()),
        ("probe_failures", json!(p.failures).to_string()),
        ("versions_ms", summary.to_json(false)),
    ]);
    println!("{line}");
    Ok(())
}

/// The workers' tallies added up.
#[derive(Default)]
struct Attack {
    ramp_s: f64,
    connected: u64,
    open_at_end: u64,
    closed_by_server: u64,
    connect_errors: BTreeMap<String, u64>,
}

impl Attack {
    fn add(&mut self, worker: &Value) {
        let n = |k: &str| worker[k].as_u64().unwrap_or(0);
        self.ramp_s = self.ramp_s.max(worker["ramp_s"].as_f64().unwrap_or(0.0));
        self.connected += n("connected");
        self.open_at_end += n("open_at_end");
        self.closed_by_server += n("closed_by_server");
        if let Some(errors) = worker["connect_errors"].as_object() {
            for (kind, count) in errors {
                *self.connect_errors.entry(kind.clone()).or_default() +=
                    count.as_u64().unwrap_or(0);
            }
        }
    }
}

/// Counts the server's open descriptors twice a second, off the probes' threads (a directory
/// of 20,000 entries takes a while to list).
struct FdSampler {
    last: Arc<AtomicU64>,
    max: Arc<AtomicU64>,
}

impl FdSampler {
    fn start(pid: u32, duration: Duration) -> FdSampler {
        let (last, max) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let sampler = FdSampler {
            last: last.clone(),
            max: max.clone(),
        };
        std::thread::spawn(move || {
            let start = Instant::now();
            while start.elapsed() < duration {
                if let Some(n) = open_fds(pid) {
                    last.store(n, Ordering::Relaxed);
                    max.fetch_max(n, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        sampler
    }
}

/// Open descriptors of process `pid` (Linux).
fn open_fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// One slow connection: sends the start of a request head and waits, until the server
/// closes it or the run ends; then resets it (no TIME_WAIT left on the source port).
async fn slow_connection(
    source: Ipv4Addr,
    target: SocketAddr,
    tally: Arc<Tally>,
    permit: tokio::sync::OwnedSemaphorePermit,
    trickle: Option<Duration>,
    mut end: watch::Receiver<bool>,
) {
    let stream = tokio::time::timeout(Duration::from_secs(10), connect_from(source, target)).await;
    let mut stream = match stream {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            drop(permit);
            tally.connect_error(error_kind(&e));
            return;
        }
        Err(_) => {
            drop(permit);
            tally.connect_error("connect timeout".into());
            return;
        }
    };
    tally.connected.fetch_add(1, Ordering::Relaxed);
    tally.open.fetch_add(1, Ordering::Relaxed);
    let head = format!(
        "GET /_matrix/client/versions HTTP/1.1\r\nHost: {target}\r\nUser-Agent: slow\r\nX-Slow: "
    );
    let sent = stream.write_all(head.as_bytes()).await;
    drop(permit);
    let mut closed = sent.is_err();
    let mut buf = [0u8; 512];
    let mut tick = trickle.map(tokio::time::interval);
    if let Some(t) = tick.as_mut() {
        t.tick().await;
    }
    while !closed && !*end.borrow() {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                // Whatever the server says (a 503, a 408) or does (close, reset), the
                // connection is over for us.
                Ok(_) | Err(_) => closed = true,
            },
            _ = async { tick.as_mut().unwrap().tick().await }, if tick.is_some() => {
                if stream.write_all(b"a").await.is_err() {
                    closed = true;
                }
            }
            _ = end.changed() => {}
        }
    }
    tally.open.fetch_sub(1, Ordering::Relaxed);
    if closed {
        tally.closed_by_server.fetch_add(1, Ordering::Relaxed);
    }
    let _ = stream.set_zero_linger();
}

/// `GET /_matrix/client/versions` on a fresh connection from `source`: the status and the time
/// from before the connect until the whole response was read.
async fn probe(
    source: Ipv4Addr,
    target: SocketAddr,
    timeout: Duration,
) -> Result<(u16, f64), String> {
    let start = Instant::now();
    let exchange = async {
        let mut stream = connect_from(source, target)
            .await
            .map_err(|e| format!("connect: {}", error_kind(&e)))?;
        let request = format!(
            "GET /_matrix/client/versions HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("write: {}", error_kind(&e)))?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .map_err(|e| format!("read: {}", error_kind(&e)))?;
        let _ = stream.set_zero_linger();
        parse_status(&response).ok_or_else(|| {
            if response.is_empty() {
                "closed without an answer".to_string()
            } else {
                "not an HTTP response".to_string()
            }
        })
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(status)) => Ok((status, start.elapsed().as_secs_f64() * 1000.0)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("timeout".into()),
    }
}

fn parse_status(response: &[u8]) -> Option<u16> {
    let line = response.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split_whitespace();
    words.next().filter(|v| v.starts_with("HTTP/1."))?;
    words.next()?.parse().ok()
}

async fn connect_from(source: Ipv4Addr, target: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    defer_port_choice(&socket);
    socket.bind(SocketAddr::V4(SocketAddrV4::new(source, 0)))?;
    socket.connect(target).await
}

/// Lets the kernel pick the source port at `connect`, for the whole 4-tuple, instead of at
/// `bind`, where it must find a port free for every destination: with 20,000 connections from
/// one address that search made the client, not the server, the bottleneck of a run.
#[cfg(target_os = "linux")]
fn defer_port_choice(socket: &TcpSocket) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a socket this process owns, and an int option passed with its own size.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn defer_port_choice(_: &TcpSocket) {}

fn error_kind(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => format!("{:?} (os error {code})", e.kind()),
        None => format!("{:?}", e.kind()),
    }
}

/// The target must be a loopback address: this tool must never be pointed elsewhere.
fn loopback_target(url: &str) -> Result<SocketAddr, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("--url {url}: only http:// URLs"))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let addr: SocketAddr = authority
        .parse()
        .map_err(|_| format!("--url {url}: expected http://127.x.y.z:PORT"))?;
    match addr {
        SocketAddr::V4(v4) if v4.ip().is_loopback() => Ok(addr),
        _ => Err(format!("--url {url}: only 127.0.0.0/8 targets are allowed")),
    }
}

/// `127.0.0.2,127.0.0.5-127.0.0.9`: addresses and last-octet ranges, all on loopback.
fn parse_sources(text: &str) -> Result<Vec<Ipv4Addr>, String> {
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (first, last) = match item.split_once('-') {
            Some((a, b)) => (a, b),
            None => (item, item),
        };
        let parse = |s: &str| {
            s.parse::<Ipv4Addr>()
                .map_err(|_| format!("--sources: `{s}` is not an IPv4 address"))
        };
        let (first, last) = (parse(first)?, parse(last)?);
        let (a, b) = (first.octets(), last.octets());
        if a[..3] != b[..3] || a[3] > b[3] {
            return Err(format!(
                "--sources: `{item}` is not a range of the last octet"
            ));
        }
        for octet in a[3]..=b[3] {
            let ip = Ipv4Addr::new(a[0], a[1], a[2], octet);
            if !ip.is_loopback() {
                return Err(format!("--sources: {ip} is not a loopback address"));
            }
            out.push(ip);
        }
    }
    if out.is_empty() {
        return Err("--sources: no address".into());
    }
    Ok(out)
}

/// Raises this process's open-file limit to `wanted` if the hard limit allows (or, as root,
/// the hard limit with it); answers the soft limit in force.
fn raise_fd_limit(wanted: u64) -> Result<u64, String> {
    use rlimit::Resource;
    let (soft, hard) = Resource::NOFILE.get().map_err(|e| e.to_string())?;
    if soft >= wanted {
        return Ok(soft);
    }
    if hard < wanted && Resource::NOFILE.set(wanted, wanted).is_ok() {
        return Ok(wanted);
    }
    let soft = rlimit::increase_nofile_limit(wanted).map_err(|e| e.to_string())?;
    if soft < wanted {
        eprintln!("warning: open-file limit {soft} is below the {wanted} this run needs");
    }
    Ok(soft)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_expand_ranges_of_the_last_octet() {
        let s = parse_sources("127.0.0.2-127.0.0.4,127.0.1.9").unwrap();
        assert_eq!(
            s,
            ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.1.9"]
                .map(|a| a.parse::<Ipv4Addr>().unwrap())
        );
        assert!(parse_sources("10.0.0.1").is_err());
        assert!(parse_sources("127.0.0.9-127.0.0.2").is_err());
    }

    #[test]
    fn only_loopback_targets_are_accepted() {
        assert!(loopback_target("http://127.0.0.1:8008").is_ok());
        assert!(loopback_target("http://10.0.0.1:8008").is_err());
        assert!(loopback_target("https://127.0.0.1:8008").is_err());
    }

    #[test]
    fn the_status_is_read_from_the_status_line() {
        assert_eq!(
            parse_status(b"HTTP/1.1 503 Service Unavailable\r\n"),
            Some(503)
        );
        assert_eq!(parse_status(b"garbage"), None);
    }
}
