//! plugboard-rooms-bench: what rooms cost in memory. Starts a `plugboard serve` binary as a
//! child process (SQLite in a fresh data dir, rate limits off, no bundled plugins), creates
//! `--rooms` rooms that look like real ones (name, topic, power levels, join rules, history
//! visibility from the preset, and `--members` users who join each), and reads the server's
//! resident memory (`/proc/PID/status`: `VmRSS`, and its parts `RssAnon` and `RssFile`) at
//! each step: idle after the creation, idle after a restart, after touching every room (one
//! message each), during and after one initial `/sync`, during four concurrent initial
//! `/sync`s. Peaks are polled every 20 ms (and `VmHWM`, reset through `/proc/PID/clear_refs`
//! before the step, for the whole). Prints one JSON line on stdout, progress on stderr.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{json, Value};

#[derive(Parser)]
#[command(name = "plugboard-rooms-bench", args_override_self = true)]
struct Args {
    /// The `plugboard` binary to measure.
    #[arg(long, default_value = "target/release/plugboard")]
    server: PathBuf,
    /// Rooms to create.
    #[arg(long, default_value_t = 5000)]
    rooms: usize,
    /// Users besides the creator who join every room.
    #[arg(long, default_value_t = 5)]
    members: usize,
    /// Concurrent requests during the setup.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// The data dir (default: a fresh one under the temp dir, removed at the end).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Extra `KEY=VALUE` environment for the server (e.g. a cache size), repeatable.
    #[arg(long = "env")]
    env: Vec<String>,
    /// Copied into the result line.
    #[arg(long, default_value = "")]
    label: String,
}

/// A running server and how to reach it.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(args: &Args, dir: &Path) -> Server {
        let addr_file = dir.join("listening.addr");
        let _ = std::fs::remove_file(&addr_file);
        let mut cmd = Command::new(&args.server);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .env("PLUGBOARD_RATE_LIMITS__ENABLED", "false")
            .env("PLUGBOARD_PLUGINS__BUNDLED", "false")
            .env("PLUGBOARD_LOG__LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        for kv in &args.env {
            let (k, v) = kv.split_once('=').expect("--env takes KEY=VALUE");
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", args.server.display()));
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = loop {
            if let Ok(a) = std::fs::read_to_string(&addr_file) {
                if !a.trim().is_empty() {
                    break a.trim().to_string();
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the server exited at start-up: {status}");
            }
            assert!(Instant::now() < deadline, "the server did not come up");
            std::thread::sleep(Duration::from_millis(20));
        };
        Server {
            child,
            base: format!("http://{addr}"),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits for the exit (SIGKILL after 30 s).
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A field of `/proc/PID/status` in bytes (`VmRSS`, `VmHWM`).
fn status_bytes(pid: u32, field: &str) -> u64 {
    proc_bytes(pid, "status", field)
}

/// A `Name:  N kB` field of a file of `/proc/PID/`, in bytes.
fn proc_bytes(pid: u32, file: &str, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Resident memory: all of it (`VmRSS`); its anonymous part, the heap mostly (`RssAnon`); its
/// part in pages of files mapped in (`RssFile`: SQLite maps the database file into each of its
/// connections, and each mapping counts again); and those file pages counted once
/// (`Pss_File` of `smaps_rollup`: a page mapped n times counts 1/n in each mapping).
#[derive(Clone, Copy, Default)]
struct Mem {
    rss: u64,
    anon: u64,
    file: u64,
    file_pss: u64,
}

impl Mem {
    fn of(pid: u32) -> Mem {
        Mem {
            rss: status_bytes(pid, "VmRSS"),
            anon: status_bytes(pid, "RssAnon"),
            file: status_bytes(pid, "RssFile"),
            file_pss: proc_bytes(pid, "smaps_rollup", "Pss_File"),
        }
    }

    fn max(self, o: Mem) -> Mem {
        Mem {
            rss: self.rss.max(o.rss),
            anon: self.anon.max(o.anon),
            file: self.file.max(o.file),
            file_pss: self.file_pss.max(o.file_pss),
        }
    }

    fn minus(self, o: Mem) -> Mem {
        Mem {
            rss: self.rss.saturating_sub(o.rss),
            anon: self.anon.saturating_sub(o.anon),
            file: self.file.saturating_sub(o.file),
            file_pss: self.file_pss.saturating_sub(o.file_pss),
        }
    }

    fn mb(self) -> Value {
        json!({"rss": mb(self.rss), "anon": mb(self.anon), "file": mb(self.file),
               "file_pss": mb(self.file_pss)})
    }

    fn per_room(self, rooms: usize) -> Value {
        let n = rooms.max(1) as u64;
        json!({"rss": self.rss / n, "anon": self.anon / n, "file": self.file / n,
               "file_pss": self.file_pss / n})
    }

    fn show(self) -> String {
        format!(
            "RSS {} MB (anon {}, file {}, file counted once {})",
            mb(self.rss),
            mb(self.anon),
            mb(self.file),
            mb(self.file_pss)
        )
    }
}

/// Resets the process's peak RSS (`VmHWM`) to its current RSS.
fn reset_peak(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

/// Memory after the server has had a moment to go quiet.
async fn settled(pid: u32) -> Mem {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    Mem::of(pid)
}

/// Polls memory every 20 ms while `work` runs; answers its output and the peaks seen (of each
/// figure on its own; `VmHWM` too for the whole).
async fn with_peak<T>(pid: u32, work: impl std::future::Future<Output = T>) -> (T, Mem) {
    reset_peak(pid);
    let peak = Arc::new(std::sync::Mutex::new(Mem::of(pid)));
    let done = Arc::new(AtomicBool::new(false));
    let poller = {
        let (peak, done) = (peak.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let now = Mem::of(pid);
                {
                    let mut p = peak.lock().unwrap();
                    *p = p.max(now);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let out = work.await;
    done.store(true, Ordering::Relaxed);
    let _ = poller.await;
    let mut seen = *peak.lock().unwrap();
    seen.rss = seen.rss.max(status_bytes(pid, "VmHWM"));
    (out, seen)
}

#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, token: &str, body: Value) -> Value {
        for attempt in 0.. {
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .timeout(Duration::from_secs(600));
            if !token.is_empty() {
                req = req.bearer_auth(token);
            }
            if !body.is_null() {
                req = req.json(&body);
            }
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let v: Value = resp.json().await.unwrap_or(Value::Null);
                    assert!(status.is_success(), "{method} {path}: {status} {v}");
                    return v;
                }
                Err(e) if attempt < 5 => {
                    eprintln!("{method} {path}: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("{method} {path}: {e}"),
            }
        }
        unreachable!()
    }

    async fn register(&self, name: &str) -> (String, String) {
        let body = self
            .call(
                reqwest::Method::POST,
                "/_matrix/client/v3/register",
                "",
                json!({"username": name, "password": "bench-password",
                       "auth": {"type": "m.login.dummy"}}),
            )
            .await;
        (
            body["user_id"].as_str().expect("user_id").to_string(),
            body["access_token"].as_str().expect("token").to_string(),
        )
    }

    /// An initial /sync: its size in bytes, joined rooms and seconds.
    async fn initial_sync(&self, token: &str) -> (usize, usize, f64) {
        let start = Instant::now();
        let resp = self
            .http
            .get(format!("{}/_matrix/client/v3/sync", self.base))
            .bearer_auth(token)
            .timeout(Duration::from_secs(600))
            .send()
            .await
            .expect("the sync answers");
        assert!(resp.status().is_success(), "sync: {}", resp.status());
        let bytes = resp.bytes().await.expect("the sync body");
        let secs = start.elapsed().as_secs_f64();
        let v: Value = serde_json::from_slice(&bytes).expect("the sync body is JSON");
        let joined = v["rooms"]["join"].as_object().map_or(0, |m| m.len());
        (bytes.len(), joined, secs)
    }
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Runs `f(i)` for i in 0..n on `concurrency` tasks.
async fn each<F, Fut>(n: usize, concurrency: usize, f: F)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let f = Arc::new(f);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (next, f) = (next.clone(), f.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                f(i).await;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("a setup task");
    }
}

fn mb(bytes: u64) -> f64 {
    (bytes as f64 / 1048576.0 * 10.0).round() / 10.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    let (dir, remove_dir) = match &args.data_dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("plugboard-rooms-bench-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir).expect("the data dir");
    let http = reqwest::Client::new();

    let server = Server::start(&args, &dir);
    let api = Api {
        http: http.clone(),
        base: server.base.clone(),
    };
    let empty = settled(server.pid()).await;
    eprintln!("started, {}", empty.show());

    let tag = std::process::id();
    let creator = api.register(&format!("rb{tag}c")).await;
    let mut members = Vec::new();
    for i in 0..args.members {
        members.push(api.register(&format!("rb{tag}m{i}")).await);
    }
    let members = Arc::new(members);
    let room_ids = Arc::new(std::sync::Mutex::new(vec![String::new(); args.rooms]));
    let setup = Instant::now();
    {
        let (api, token, ids, members) = (
            api.clone(),
            creator.1.clone(),
            room_ids.clone(),
            members.clone(),
        );
        let rooms = args.rooms;
        each(args.rooms, args.concurrency, move |i| {
            let (api, token, ids, members) =
                (api.clone(), token.clone(), ids.clone(), members.clone());
            async move {
                let body = api
                    .call(
                        reqwest::Method::POST,
                        "/_matrix/client/v3/createRoom",
                        &token,
                        json!({
                            "preset": "public_chat",
                            "name": format!("Bench room {i}"),
                            "topic": format!("What room {i} of the memory bench is about"),
                        }),
                    )
                    .await;
                let room = body["room_id"].as_str().expect("room_id").to_string();
                for (_, t) in members.iter() {
                    api.call(
                        reqwest::Method::POST,
                        &format!("/_matrix/client/v3/join/{}", enc(&room)),
                        t,
                        json!({}),
                    )
                    .await;
                }
                ids.lock().unwrap()[i] = room;
                if (i + 1) % 500 == 0 {
                    eprintln!("{} / {rooms} rooms", i + 1);
                }
            }
        })
        .await;
    }
    let setup_s = setup.elapsed().as_secs_f64();
    let created = settled(server.pid()).await;
    eprintln!("{} rooms in {setup_s:.1} s, {}", args.rooms, created.show());

    server.stop();
    let server = Server::start(&args, &dir);
    let api = Api {
        http,
        base: server.base.clone(),
    };
    let pid = server.pid();
    let restarted = settled(pid).await;
    eprintln!("restarted, {}", restarted.show());

    // One message per room loads every room's head on the write path.
    let touch = Instant::now();
    {
        let (api, token, ids) = (api.clone(), creator.1.clone(), room_ids.clone());
        each(args.rooms, args.concurrency, move |i| {
            let (api, token, ids) = (api.clone(), token.clone(), ids.clone());
            async move {
                let room = ids.lock().unwrap()[i].clone();
                api.call(
                    reqwest::Method::PUT,
                    &format!(
                        "/_matrix/client/v3/rooms/{}/send/m.room.message/touch{i}",
                        enc(&room)
                    ),
                    &token,
                    json!({"msgtype": "m.text", "body": format!("hello room {i}")}),
                )
                .await;
            }
        })
        .await;
    }
    let touch_s = touch.elapsed().as_secs_f64();
    let touched = settled(pid).await;
    eprintln!("touched in {touch_s:.1} s, {}", touched.show());

    let before_sync = Mem::of(pid);
    let ((sync_bytes, sync_rooms, sync_s), peak_one) =
        with_peak(pid, api.initial_sync(&creator.1)).await;
    let after_sync = settled(pid).await;
    eprintln!(
        "initial sync: {sync_rooms} rooms, {} MB in {sync_s:.1} s; peak {}, after {}",
        mb(sync_bytes as u64),
        peak_one.show(),
        after_sync.show()
    );
    assert_eq!(sync_rooms, args.rooms, "the sync has every room");

    let before_four = Mem::of(pid);
    let tokens: Vec<String> = std::iter::once(creator.1.clone())
        .chain(members.iter().map(|(_, t)| t.clone()))
        .take(4)
        .collect();
    let (four, peak_four) = with_peak(pid, async {
        let mut tasks = tokio::task::JoinSet::new();
        for t in tokens {
            let api = api.clone();
            tasks.spawn(async move { api.initial_sync(&t).await });
        }
        let mut out = Vec::new();
        while let Some(r) = tasks.join_next().await {
            out.push(r.expect("a sync task"));
        }
        out
    })
    .await;
    let four_s = four.iter().map(|r| r.2).fold(0.0, f64::max);
    let after_four = settled(pid).await;
    eprintln!(
        "four initial syncs, slowest {four_s:.1} s: peak {}, after {}",
        peak_four.show(),
        after_four.show()
    );
    server.stop();
    if remove_dir {
        let _ = std::fs::remove_dir_all(&dir);
    }

    let line = json!({
        "label": args.label,
        "server": args.server.display().to_string(),
        "rooms": args.rooms,
        "members_per_room": args.members + 1,
        "setup_s": (setup_s * 10.0).round() / 10.0,
        "touch_s": (touch_s * 10.0).round() / 10.0,
        "mem_mb": {
            "empty": empty.mb(),
            "after_creating": created.mb(),
            "restarted": restarted.mb(),
            "touched": touched.mb(),
            "one_sync_peak": peak_one.mb(),
            "after_one_sync": after_sync.mb(),
            "four_syncs_peak": peak_four.mb(),
            "after_four_syncs": after_four.mb(),
        },
        "bytes_per_room": {
            "after_creating": created.minus(empty).per_room(args.rooms),
            "touched_after_restart": touched.minus(restarted).per_room(args.rooms),
        },
        "sync_extra_mb": {
            "one_peak": peak_one.minus(before_sync).mb(),
            "one_after": after_sync.minus(before_sync).mb(),
            "four_peak": peak_four.minus(before_four).mb(),
            "four_after": after_four.minus(before_four).mb(),
        },
        "sync_response_mb": mb(sync_bytes as u64),
        "sync_s": (sync_s * 100.0).round() / 100.0,
        "four_syncs_slowest_s": (four_s * 100.0).round() / 100.0,
    });
    println!("{line}");
}
