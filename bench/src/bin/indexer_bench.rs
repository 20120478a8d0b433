//! plugboard-indexer-bench: the indexer through the whole host. Starts a real server
//! in-process (SQLite in a temporary data dir, rate limits off), sends `--messages` messages
//! of varied words into `--rooms` rooms, installs the indexer with a history replay from the
//! beginning, and measures how fast it indexes them (messages/s, from the install until its
//! `/status` counts them all); then `--queries` searches through its web endpoint, one at a
//! time, for their latency. Prints one JSON line. With `--late-searcher` the rooms show their
//! history to members from their join only (`history_visibility` `joined`) and the searches
//! are a user's who joined halfway through the messages: each search then has the host say
//! which of its best matches (up to 1,000) that user may see.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use plugboard::config::{Config, Overrides};
use serde_json::{json, Value};

#[derive(Parser)]
#[command(name = "plugboard-indexer-bench")]
struct Args {
    /// Messages sent before the indexer is installed.
    #[arg(long, default_value_t = 100_000)]
    messages: usize,
    /// Searches measured after the indexing.
    #[arg(long, default_value_t = 300)]
    queries: usize,
    /// Rooms the messages go to.
    #[arg(long, default_value_t = 4)]
    rooms: usize,
    /// Concurrent senders.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// The indexer's component.
    #[arg(
        long,
        default_value = "target/wasm-plugins/default/wasm32-wasip2/plugin/plugboard_plugin_indexer.wasm"
    )]
    wasm: std::path::PathBuf,
    /// Its manifest.
    #[arg(long, default_value = "plugins/indexer/plugin.toml")]
    manifest: std::path::PathBuf,
    /// Longest wait for the indexing, in seconds.
    #[arg(long, default_value_t = 1800)]
    timeout: u64,
    /// Search as a user who joined the (joined-only) rooms halfway through the messages.
    #[arg(long)]
    late_searcher: bool,
}

/// Sends `count` messages as `senders`, spread over `rooms`; `phase` keeps the txn ids and
/// the words of one call apart from another's.
async fn send_messages(
    api: &Arc<Api>,
    senders: &[String],
    rooms: &[String],
    count: usize,
    phase: u64,
) {
    let per = count.div_ceil(senders.len());
    let mut tasks = Vec::new();
    for (i, token) in senders.iter().enumerate() {
        let (api, token, rooms) = (api.clone(), token.clone(), rooms.to_vec());
        let count = per.min(count.saturating_sub(i * per));
        tasks.push(tokio::spawn(async move {
            let mut words = Words {
                seed: 0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1) ^ (phase << 32),
            };
            for n in 0..count {
                let room = &rooms[(i + n) % rooms.len()];
                let len = 5 + (words.next() % 15) as usize;
                let body = json!({"msgtype": "m.text", "body": words.text(len)});
                let (status, answer) = api
                    .call(
                        reqwest::Method::PUT,
                        &format!(
                            "/_matrix/client/v3/rooms/{}/send/m.room.message/b{phase}_{i}_{n}",
                            enc(room)
                        ),
                        &token,
                        Some(body),
                    )
                    .await;
                assert_eq!(status, 200, "send: {answer}");
            }
        }));
    }
    for t in tasks {
        t.await.expect("a sender");
    }
}

/// A Zipf-like vocabulary of 5,000 words: word k comes with a weight of about 1/k.
struct Words {
    seed: u64,
}

impl Words {
    fn next(&mut self) -> u64 {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        self.seed
    }

    fn word(&mut self) -> String {
        let u = (self.next() % 1_000_000) as f64 / 1_000_000.0;
        let k = (5000f64.powf(u) as usize).saturating_sub(1).min(4999);
        format!(
            "{}{k}",
            ["ka", "lo", "mi", "ne", "su", "ta", "vo", "ri"][k % 8]
        )
    }

    fn text(&mut self, n: usize) -> String {
        (0..n).map(|_| self.word()).collect::<Vec<_>>().join(" ")
    }
}

fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .timeout(Duration::from_secs(60));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("the server answers");
        let status = resp.status().as_u16();
        let body = resp.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    async fn register(&self, name: &str) -> (String, String) {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/_matrix/client/v3/register",
                "",
                Some(json!({"username": name, "password": "bench-password", "auth": {"type": "m.login.dummy"}})),
            )
            .await;
        assert_eq!(status, 200, "register {name}: {body}");
        (
            body["user_id"].as_str().expect("user_id").to_string(),
            body["access_token"].as_str().expect("token").to_string(),
        )
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

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    (sorted[i].as_secs_f64() * 1e6).round() / 1e3
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    let component =
        std::fs::read(&args.wasm).unwrap_or_else(|e| panic!("{}: {e}", args.wasm.display()));
    let manifest = std::fs::read_to_string(&args.manifest).expect("the manifest");
    let dir = std::env::temp_dir().join(format!("plugboard-indexer-bench-{}", std::process::id()));
    let mut config = Config::load_from(None, Vec::new(), &Overrides::default()).expect("defaults");
    config.data_dir = dir.clone();
    config.rate_limits.enabled = false;
    config.plugins.bundled = false;
    config.log.level = "warn".into();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    config.listen = listener.local_addr().expect("addr");
    let base = format!("http://{}", config.listen);
    // The index's counts are for server admins: one made as `plugboard user add --admin`
    // makes one, on the same data dir, polls them.
    let status_token = {
        let mut admin_config = config.clone();
        admin_config.plugins.max_instances = 1;
        let services = plugboard::server::build_services(admin_config)
            .await
            .expect("the services, for an admin");
        let login = services
            .users
            .register(
                &format!("ixadmin{}", std::process::id()),
                Some("bench-password"),
                true,
                None,
                None,
                None,
                false,
                None,
            )
            .await
            .expect("a server admin");
        login.access_token.expect("the admin's token")
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        plugboard::run(listener, config, async {
            let _ = stopped.await;
        })
        .await
        .expect("the server runs");
    });
    let api = Arc::new(Api {
        http: reqwest::Client::new(),
        base: base.clone(),
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while api
        .http
        .get(format!("{base}/_matrix/client/versions"))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "the server did not come up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let tag = std::process::id();
    let (_, owner) = api.register(&format!("ixowner{tag}")).await;
    let mut rooms = Vec::new();
    for _ in 0..args.rooms.max(1) {
        let mut create = json!({"preset": "public_chat"});
        if args.late_searcher {
            create["initial_state"] = json!([{"type": "m.room.history_visibility",
                "state_key": "", "content": {"history_visibility": "joined"}}]);
        }
        let (status, body) = api
            .call(
                reqwest::Method::POST,
                "/_matrix/client/v3/createRoom",
                &owner,
                Some(create),
            )
            .await;
        assert_eq!(status, 200, "createRoom: {body}");
        rooms.push(body["room_id"].as_str().expect("room_id").to_string());
    }
    let mut senders = Vec::new();
    for i in 0..args.concurrency.max(1) {
        let (_, token) = api.register(&format!("ixsender{tag}_{i}")).await;
        for room in &rooms {
            api.call(
                reqwest::Method::POST,
                &format!("/_matrix/client/v3/join/{}", enc(room)),
                &token,
                Some(json!({})),
            )
            .await;
        }
        senders.push(token);
    }

    eprintln!("sending {} messages…", args.messages);
    let send_start = Instant::now();
    let searcher = if args.late_searcher {
        let first = args.messages / 2;
        send_messages(&api, &senders, &rooms, first, 0).await;
        let (_, late) = api.register(&format!("ixlate{tag}")).await;
        for room in &rooms {
            api.call(
                reqwest::Method::POST,
                &format!("/_matrix/client/v3/join/{}", enc(room)),
                &late,
                Some(json!({})),
            )
            .await;
        }
        send_messages(&api, &senders, &rooms, args.messages - first, 1).await;
        late
    } else {
        send_messages(&api, &senders, &rooms, args.messages, 0).await;
        owner.clone()
    };
    let send_s = send_start.elapsed().as_secs_f64();
    eprintln!("sent in {send_s:.1} s; installing the indexer with a replay…");

    let admin_token = std::fs::read_to_string(dir.join("admin.token")).expect("the admin token");
    let admin_token = admin_token.trim();
    let install_start = Instant::now();
    let (status, body) = api
        .call(
            reqwest::Method::POST,
            "/_plugboard/admin/v1/plugins",
            admin_token,
            Some(json!({"component": base64(&component), "manifest": manifest, "start": "beginning"})),
        )
        .await;
    assert_eq!(status, 200, "install: {body}");
    let bot = "@indexer:localhost";
    for room in &rooms {
        api.call(
            reqwest::Method::POST,
            &format!("/_matrix/client/v3/rooms/{}/invite", enc(room)),
            &owner,
            Some(json!({"user_id": bot})),
        )
        .await;
    }
    let wait_until = Instant::now() + Duration::from_secs(args.timeout);
    let mut last = 0;
    let mut first: Option<(Instant, u64)> = None;
    loop {
        let (status, s) = api
            .call(
                reqwest::Method::GET,
                "/_plugboard/plugins/indexer/status",
                &status_token,
                None,
            )
            .await;
        let docs = s["docs"].as_u64().unwrap_or(0);
        if status == 200 && docs as usize >= args.messages {
            break;
        }
        if docs > 0 && first.is_none() {
            first = Some((Instant::now(), docs));
        }
        if docs / 10_000 != last / 10_000 {
            eprintln!(
                "  {docs} indexed after {:.1} s",
                install_start.elapsed().as_secs_f64()
            );
        }
        last = docs;
        assert!(
            Instant::now() < wait_until,
            "the indexing did not finish: {s}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let index_s = install_start.elapsed().as_secs_f64();
    // Without the install itself (compiling the component, making the queue).
    let steady = first.map(|(at, docs)| {
        (args.messages as f64 - docs as f64) / at.elapsed().as_secs_f64().max(1e-9)
    });
    // The indexer answers only in rooms it has joined.
    for room in &rooms {
        loop {
            let (_, m) = api
                .call(
                    reqwest::Method::GET,
                    &format!("/_matrix/client/v3/rooms/{}/joined_members", enc(room)),
                    &owner,
                    None,
                )
                .await;
            if m["joined"].get(bot).is_some() {
                break;
            }
            assert!(
                Instant::now() < wait_until,
                "the indexer did not join {room}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let (_, status_body) = api
        .call(
            reqwest::Method::GET,
            "/_plugboard/plugins/indexer/status",
            &status_token,
            None,
        )
        .await;

    eprintln!("indexed in {index_s:.1} s; {} searches…", args.queries);
    let mut words = Words {
        seed: 0x2545_f491_4f6c_dd1d,
    };
    let mut samples = Vec::with_capacity(args.queries);
    let mut matched = 0u64;
    for i in 0..args.queries + 10 {
        let n = 1 + (words.next() % 3) as usize;
        let q = words.text(n);
        let room = &rooms[i % rooms.len()];
        let path = format!(
            "/_plugboard/plugins/indexer/search?q={}&room={}&limit=10",
            enc(&q),
            enc(room)
        );
        let t = Instant::now();
        let (status, body) = api.call(reqwest::Method::GET, &path, &searcher, None).await;
        let took = t.elapsed();
        assert_eq!(status, 200, "search {q}: {body}");
        // The first searches load the segments into the plugin's memory: not counted.
        if i >= 10 {
            samples.push(took);
            matched += body["count"].as_u64().unwrap_or(0);
        }
    }
    samples.sort();
    let line = json!({
        "label": if args.late_searcher {
            "indexer: history replay, then searches through the web endpoint by a user who joined the joined-only rooms halfway"
        } else {
            "indexer: history replay, then searches through the web endpoint"
        },
        "messages": args.messages,
        "rooms": rooms.len(),
        "send_s": (send_s * 1000.0).round() / 1000.0,
        "index_s": (index_s * 1000.0).round() / 1000.0,
        "indexed_per_s": (args.messages as f64 / index_s).round(),
        "indexed_per_s_after_first": steady.map(f64::round),
        "queries": samples.len(),
        "mean_hits_per_query": matched as f64 / samples.len().max(1) as f64,
        "query_ms": {
            "p50": percentile(&samples, 0.5),
            "p90": percentile(&samples, 0.9),
            "p99": percentile(&samples, 0.99),
            "max": percentile(&samples, 1.0),
        },
        "status": status_body,
        "definition": "indexed_per_s: messages / (time from the install request with start=beginning until /status counts them all; it includes compiling the component and the replay of the room history); indexed_per_s_after_first: the same from the first poll that saw a message indexed; query_ms: one GET /_plugboard/plugins/indexer/search?q=1-3 words&room=…&limit=10 at a time, after 10 unmeasured ones, the time until its answer is read",
    });
    println!("{line}");
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(30), server).await;
    let _ = std::fs::remove_dir_all(dir);
}
