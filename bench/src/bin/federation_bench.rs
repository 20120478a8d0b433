//! plugboard-federation-bench: how fast messages cross from one homeserver to another. For
//! each pair of servers (Plugboard→Synapse, Synapse→Plugboard, Plugboard→Plugboard and, as the
//! baseline, Synapse→Synapse) a user on the first creates a room, a user on the second joins
//! it over federation, the first sends N messages (each stamped with its send start), and a
//! /sync long-poller on the second records when each arrives. Figures: events/s (N over the
//! time from the first send to the last arrival) and the arrival latency's p50 / p99.
//!
//! Everything runs on loopback: two Synapses from the test harness's venv (installed on first
//! use) and two Plugboards in this process (so built as this binary is: use `--release`). One
//! JSON line per pair on stdout, a table on stderr.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use plugboard_tests::federation::Peer;
use plugboard_tests::synapse::Synapse;
use plugboard_tests::{enc, Client, TestServer};
use serde_json::{json, Value};

/// Messages per pair unless `--events N` says otherwise.
const DEFAULT_EVENTS: usize = 300;
/// How long the reader may take to see every message (the sends included) before the run
/// counts the rest lost.
const DRAIN: Duration = Duration::from_secs(90);

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The sender's room, joined by the reader across servers.
async fn shared_room(sender: &Client, sender_server: &str, reader: &Client) -> String {
    let room_id = sender.create_room(json!({"preset": "public_chat"})).await;
    let joined = reader.join_via(&room_id, sender_server).await;
    assert_eq!(joined.status, 200, "join failed: {}", joined.body);
    room_id
}

/// The `bench_seq` → (send start, arrival) in µs of the bench messages `reader` receives in
/// `room_id`, until it has `n` of them or `DRAIN` has passed.
async fn read_arrivals(
    reader: Client,
    room_id: String,
    n: usize,
    since: String,
) -> HashMap<u64, (u64, u64)> {
    let mut seen: HashMap<u64, (u64, u64)> = HashMap::new();
    let mut since = since;
    let deadline = Instant::now() + DRAIN;
    while seen.len() < n && Instant::now() < deadline {
        // A timeline long enough for a whole burst: a sync's default (10 here and on
        // Synapse) would leave a gap, marked `limited`, that the reader does not page into.
        let path = format!(
            "/sync?timeout=10000&since={}&filter={}",
            enc(&since),
            enc(r#"{"room":{"timeline":{"limit":1000}}}"#)
        );
        let reply = reader.get(&path).await;
        let arrived = now_us();
        if reply.status != 200 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        if let Some(next) = reply.body["next_batch"].as_str() {
            since = next.to_string();
        }
        let events = reply.body["rooms"]["join"][&room_id]["timeline"]["events"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for e in events {
            let content = &e["content"];
            if let (Some(seq), Some(sent)) = (
                content["bench_seq"].as_u64(),
                content["bench_ts_us"].as_u64(),
            ) {
                seen.entry(seq).or_insert((sent, arrived));
            }
        }
    }
    seen
}

/// The `bench_seq`s of the bench messages `reader` finds paging back through `room_id` with
/// `/messages`, as a client scrolling up does: the events a receiving server skipped live
/// (Synapse prunes its inbound queue of a room past 100 events, keeping the latest) are
/// fetched from the sender then, with `/backfill`.
async fn page_back(reader: &Client, room_id: &str, n: usize) -> std::collections::HashSet<u64> {
    let mut found = std::collections::HashSet::new();
    let mut from: Option<String> = None;
    // Each page is 100 events; a few more pages than the burst needs cover the room's start.
    for _ in 0..(n / 100 + 5) {
        let path = match &from {
            Some(token) => format!(
                "/rooms/{}/messages?dir=b&limit=100&from={}",
                enc(room_id),
                enc(token)
            ),
            None => format!("/rooms/{}/messages?dir=b&limit=100", enc(room_id)),
        };
        let reply = reader.get(&path).await;
        if reply.status != 200 {
            break;
        }
        for e in reply.body["chunk"].as_array().into_iter().flatten() {
            if let Some(seq) = e["content"]["bench_seq"].as_u64() {
                found.insert(seq);
            }
        }
        match reply.body["end"].as_str() {
            Some(end) if found.len() < n => from = Some(end.to_string()),
            _ => break,
        }
    }
    found
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

/// One pair: `n` messages from a user of `from` to a reader on `to` (users named after the
/// pair's number: a server takes part in several pairs).
async fn run_pair(label: &str, pair: usize, from: &Peer, to: &Peer, n: usize) -> Value {
    let sender = from.user(&format!("sender{pair}")).await;
    let reader = to.user(&format!("reader{pair}")).await;
    let room_id = shared_room(&sender, from.server_name(), &reader).await;
    let first = reader.sync(None, 0).await;
    let since = first["next_batch"].as_str().unwrap_or_default().to_string();
    let reading = tokio::spawn(read_arrivals(reader.clone(), room_id.clone(), n, since));
    let start = now_us();
    let pace = rate_arg().map(|r| Duration::from_secs_f64(1.0 / r));
    let began = Instant::now();
    for seq in 0..n as u64 {
        // With --rate, on one schedule from the first send (a slow send is caught up on).
        if let Some(every) = pace {
            tokio::time::sleep_until((began + every * seq as u32).into()).await;
        }
        let content = json!({
            "msgtype": "m.text",
            "body": format!("bench {seq}"),
            "bench_seq": seq,
            "bench_ts_us": now_us(),
        });
        sender.send_message(&room_id, content).await;
    }
    let sent_us = now_us() - start;
    let seen = reading.await.expect("reader task");
    let reachable = page_back(&reader, &room_id, n).await;
    let last_arrival = seen.values().map(|(_, a)| *a).max().unwrap_or(start);
    let mut latencies: Vec<f64> = seen
        .values()
        .map(|(sent, arrived)| (arrived.saturating_sub(*sent)) as f64 / 1000.0)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let span_s = (last_arrival.saturating_sub(start)) as f64 / 1e6;
    let result = json!({
        "pair": label,
        "events": n,
        "rate": rate_arg(),
        "arrived": seen.len(),
        "reachable_paging_back": reachable.len(),
        "events_per_s": (seen.len() as f64 / span_s * 10.0).round() / 10.0,
        "send_only_events_per_s": (n as f64 / (sent_us as f64 / 1e6) * 10.0).round() / 10.0,
        "latency_ms_p50": (percentile(&latencies, 0.50) * 10.0).round() / 10.0,
        "latency_ms_p99": (percentile(&latencies, 0.99) * 10.0).round() / 10.0,
        "latency_definition": "reader's /sync response holding the event received, minus the send start stamped in its content",
        "arrived_definition": "messages the reader's /sync delivered live; reachable_paging_back: those /messages returns afterwards, from the newest back",
    });
    println!("{result}");
    result
}

/// The value after `flag` on the command line.
fn arg(flag: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2).find(|w| w[0] == flag).map(|w| w[1].clone())
}

fn events_arg() -> usize {
    arg("--events")
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_EVENTS)
}

/// `--rate R`: the sender's events/s (unpaced without it: each send as soon as the last
/// was answered).
fn rate_arg() -> Option<f64> {
    arg("--rate")
        .and_then(|r| r.parse().ok())
        .filter(|r: &f64| *r > 0.0)
}

/// Whether the pair `label` runs: all of them, or those `--pairs` names (a comma-separated
/// list of labels' starts, e.g. `plugboard->synapse,synapse->plugboard`).
fn pair_chosen(label: &str) -> bool {
    arg("--pairs").is_none_or(|pairs| pairs.split(',').any(|p| label.starts_with(p.trim())))
}

#[tokio::main]
async fn main() {
    let n = events_arg();
    // The Plugboards' logs, when RUST_LOG asks for them (e.g. RUST_LOG=plugboard=info).
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    eprintln!("federation bench: {n} messages per pair; starting two Synapses and two Plugboards");
    let (s1, s2) = tokio::task::spawn_blocking(|| (Synapse::start(), Synapse::start()))
        .await
        .expect("Synapses start");
    let s1: &'static Synapse = Box::leak(Box::new(s1));
    let s2: &'static Synapse = Box::leak(Box::new(s2));
    let p1 = Peer::Plugboard(TestServer::start_federating().await);
    let p2 = Peer::Plugboard(TestServer::start_federating().await);
    let (s1, s2) = (Peer::Synapse(s1), Peer::Synapse(s2));
    let mut rows = Vec::new();
    for (pair, (label, from, to)) in [
        ("plugboard->synapse", &p1, &s1),
        ("synapse->plugboard", &s1, &p1),
        ("plugboard->plugboard", &p1, &p2),
        ("synapse->synapse (baseline)", &s1, &s2),
    ]
    .into_iter()
    .enumerate()
    {
        if !pair_chosen(label) {
            continue;
        }
        eprintln!("federation bench: {label}");
        rows.push(run_pair(label, pair, from, to, n).await);
    }
    eprintln!(
        "\n{:<30} {:>9} {:>10} {:>10} {:>10} {:>10}",
        "pair", "arrived", "paged", "events/s", "p50 ms", "p99 ms"
    );
    for r in &rows {
        eprintln!(
            "{:<30} {:>9} {:>10} {:>10} {:>10} {:>10}",
            r["pair"].as_str().unwrap_or_default(),
            r["arrived"],
            r["reachable_paging_back"],
            r["events_per_s"],
            r["latency_ms_p50"],
            r["latency_ms_p99"]
        );
    }
}
