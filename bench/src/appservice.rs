//! Appservice receivers: N HTTP servers on 127.0.0.1 that play application services, so the
//! benchmark can measure how fast a homeserver pushes events to them.
//!
//! Receiver i (1-based) is appservice `as<i>`, listens on `port_base + i - 1` and serves
//! `PUT /_matrix/app/v1/transactions/{txnId}`: it checks `Authorization: Bearer <hs_token>`
//! (`<prefix>as<i>`), answers a txnId it has already accepted with `{}` without looking at it
//! again, and records, for every event whose content carries the sender's `bench_ts_us`
//! stamp, the moment the request body had been read. Latency is that moment minus the send
//! start stamped into the event (both are this process's UNIX clock in µs).
//!
//! They also answer `POST /_matrix/app/v1/ping` (`{}`), and count the pings.
//!
//! In backlog mode the receivers answer 503 to everything, pings included (as a proxy does for
//! a service behind it that is down), until [`Receivers::set_failing`] turns them on, so the
//! homeserver builds up a backlog it must then catch up on; what they were sent meanwhile is
//! counted (`rejected_txns`, `rejected_pings`).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::reader::unix_micros;
use crate::stats::{ordered_object, round3, Summary};

/// How the appservice figures are defined; echoed into the result line.
pub const DEFINITION: &str = "appservice_latency_ms: arrival at the receiver (PUT /transactions body fully read) minus the send start stamped in content.bench_ts_us, over every distinct bench event a receiver accepted; appservice_unseen: acked sends missing at a receiver when the wait ended (summed over receivers); appservice_events_per_s: per receiver, distinct bench events accepted / (last arrival - load start), summed over receivers; appservice_drain_ms: last arrival minus load end (max over receivers); appservice_catchup_s: receivers switched from 503 to 200 until every acked event had arrived at every receiver, split into retry_wait (switch until a receiver's first accepted transaction, the server's retry backoff) and delivery (first accepted transaction until the last event); appservice_outage_s: receivers started (answering 503) until switched, and appservice_outage_requests what they were sent meanwhile (transactions and pings answered 503, summed over receivers); per receiver, bench_events_per_txn and txn_gap_ms (between consecutive accepted transactions carrying bench events) show the server's batching and delivery cycle";

/// What the receivers are.
pub struct Config {
    pub count: usize,
    pub port_base: u16,
    /// Receiver `as<i>` expects `hs_token` `<prefix>as<i>`.
    pub hs_token_prefix: String,
    /// Answer 503 until switched (backlog mode).
    pub failing: bool,
}

/// The appservice ID of receiver `index` (0-based): `as1`, `as2`, …
pub fn receiver_id(index: usize) -> String {
    format!("as{}", index + 1)
}

/// One bench event at one receiver.
#[derive(Clone, Copy)]
struct Arrival {
    sent_us: u64,
    arrived_us: u64,
}

#[derive(Default)]
struct Books {
    txn_ids: HashSet<String>,
    arrivals: HashMap<String, Arrival>,
    /// Accepted transactions (first time seen).
    txns: u64,
    /// A txnId seen again after it had been accepted: answered `{}` and ignored.
    duplicate_txns: u64,
    /// A bench event that came again in another transaction.
    duplicate_events: u64,
    /// Answered 503 (backlog mode).
    rejected_txns: u64,
    /// Pings answered `{}`, and answered 503 (backlog mode).
    pings: u64,
    rejected_pings: u64,
    /// Missing or wrong hs_token.
    unauthorized: u64,
    first_accepted_us: Option<u64>,
    /// Arrival of every accepted transaction that carried bench events, and how many.
    bench_txns: Vec<(u64, usize)>,
}

struct Receiver {
    id: String,
    port: u16,
    hs_token: String,
    failing: AtomicBool,
    /// Distinct bench events recorded, so the drain can poll without the lock.
    delivered: AtomicU64,
    books: Mutex<Books>,
}

impl Receiver {
    fn lock(&self) -> MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The IDs of `ids` this receiver has not recorded.
    fn missing<'a>(&self, ids: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
        let books = self.lock();
        ids.filter(|id| !books.arrivals.contains_key(*id)).collect()
    }
}

/// The running receivers.
pub struct Receivers {
    receivers: Vec<Arc<Receiver>>,
}

/// When the receivers started and the load ran and, in backlog mode, when the receivers were
/// switched on (UNIX µs).
pub struct Window {
    pub receivers_start_us: u64,
    pub load_start_us: u64,
    pub load_end_us: u64,
    pub switch_us: Option<u64>,
}

impl Receivers {
    /// Binds every receiver's port (an error names the port) and starts serving.
    pub async fn start(config: &Config) -> std::io::Result<Receivers> {
        let mut receivers = Vec::with_capacity(config.count);
        for index in 0..config.count {
            let port = u16::try_from(index)
                .ok()
                .and_then(|i| config.port_base.checked_add(i))
                .ok_or_else(|| {
                    std::io::Error::other(format!(
                        "--appservice-port-base {} + {} receivers runs past port 65535",
                        config.port_base, config.count
                    ))
                })?;
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .map_err(|e| {
                    std::io::Error::new(e.kind(), format!("appservice port 127.0.0.1:{port}: {e}"))
                })?;
            let id = receiver_id(index);
            let receiver = Arc::new(Receiver {
                hs_token: format!("{}{id}", config.hs_token_prefix),
                id,
                port,
                failing: AtomicBool::new(config.failing),
                delivered: AtomicU64::new(0),
                books: Mutex::new(Books::default()),
            });
            let app = Router::new()
                .route("/_matrix/app/v1/transactions/{txn_id}", put(transaction))
                .route("/_matrix/app/v1/ping", post(ping))
                .fallback(not_found)
                .layer(DefaultBodyLimit::disable())
                .with_state(receiver.clone());
            let listener = listener.tap_io(|tcp| {
                // Small responses; do not let Nagle hold them back.
                let _ = tcp.set_nodelay(true);
            });
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    eprintln!("appservice receiver on port {port} stopped: {e}");
                }
            });
            receivers.push(receiver);
        }
        Ok(Receivers { receivers })
    }

    /// Backlog mode: `false` makes every receiver answer transactions with 200 again.
    pub fn set_failing(&self, failing: bool) {
        for r in &self.receivers {
            r.failing.store(failing, Ordering::SeqCst);
        }
    }

    /// Waits until every receiver has every event of `acked`, or `limit` has passed; says
    /// whether everything arrived. With `progress`, reports on stderr every 5 s.
    pub async fn wait_for(&self, acked: &[String], limit: Duration, progress: bool) -> bool {
        let start = Instant::now();
        let mut last_report = Instant::now();
        // None until a receiver's count says it may be complete; then the exact list of
        // what it still lacks, rechecked until empty.
        let mut missing: Vec<Option<Vec<&str>>> = vec![None; self.receivers.len()];
        loop {
            let mut done = true;
            for (receiver, missing) in self.receivers.iter().zip(missing.iter_mut()) {
                match missing {
                    None => {
                        if receiver.delivered.load(Ordering::Relaxed) >= acked.len() as u64 {
                            let list = receiver.missing(acked.iter().map(String::as_str));
                            done &= list.is_empty();
                            *missing = Some(list);
                        } else {
                            done = false;
                        }
                    }
                    Some(list) if !list.is_empty() => {
                        *list = receiver.missing(list.iter().copied());
                        done &= list.is_empty();
                    }
                    Some(_) => {}
                }
            }
            if done {
                return true;
            }
            if start.elapsed() >= limit {
                return false;
            }
            if progress && last_report.elapsed() >= Duration::from_secs(5) {
                last_report = Instant::now();
                let least = self
                    .receivers
                    .iter()
                    .map(|r| r.delivered.load(Ordering::Relaxed))
                    .min()
                    .unwrap_or(0);
                eprintln!(
                    "appservice: {:.0}s  the slowest receiver has {least} of {} acked events",
                    start.elapsed().as_secs_f64(),
                    acked.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The result line's appservice fields, as (key, JSON text) pairs.
    pub fn report(&self, acked: &[String], window: &Window) -> Vec<(&'static str, String)> {
        let mut all_latency = Vec::new();
        let mut quarters: [Vec<f64>; 4] = Default::default();
        let mut per_receiver = Vec::new();
        let mut unseen_total = 0usize;
        let mut events_per_s_total = 0.0;
        let mut drain_max: Option<f64> = None;
        // Catch-up, over all receivers: first accepted transaction, last acked event, and
        // whether every receiver completed.
        let mut first_accepted_min: Option<u64> = None;
        let mut first_accepted_max: Option<u64> = None;
        let mut complete_max: Option<u64> = None;
        let mut all_complete = true;
        let load_span_us = window
            .load_end_us
            .saturating_sub(window.load_start_us)
            .max(1);

        for receiver in &self.receivers {
            let books = receiver.lock();
            let mut latency = Vec::with_capacity(books.arrivals.len());
            let mut last_arrival: Option<u64> = None;
            for a in books.arrivals.values() {
                let ms = a.arrived_us.saturating_sub(a.sent_us) as f64 / 1000.0;
                latency.push(ms);
                if let Some(offset) = a.sent_us.checked_sub(window.load_start_us) {
                    let q = (offset.saturating_mul(4) / load_span_us).min(3) as usize;
                    quarters[q].push(ms);
                }
                last_arrival = last_arrival.max(Some(a.arrived_us));
            }
            let mut unseen = 0usize;
            let mut complete: Option<u64> = None;
            for id in acked {
                match books.arrivals.get(id) {
                    Some(a) => complete = complete.max(Some(a.arrived_us)),
                    None => unseen += 1,
                }
            }
            unseen_total += unseen;
            let events = books.arrivals.len();
            let events_per_s = match last_arrival {
                Some(last) if last > window.load_start_us => {
                    events as f64 / ((last - window.load_start_us) as f64 / 1e6)
                }
                _ => 0.0,
            };
            events_per_s_total += events_per_s;
            let drain_ms =
                last_arrival.map(|last| last.saturating_sub(window.load_end_us) as f64 / 1000.0);
            if let Some(d) = drain_ms {
                drain_max = Some(drain_max.map_or(d, |m: f64| m.max(d)));
            }

            // How the server batches: bench events per transaction, and the time between two
            // consecutive transactions (one delivery cycle when it is behind).
            let per_txn = if books.bench_txns.is_empty() {
                0.0
            } else {
                books.bench_txns.iter().map(|t| t.1).sum::<usize>() as f64
                    / books.bench_txns.len() as f64
            };
            let gaps: Vec<f64> = books
                .bench_txns
                .windows(2)
                .map(|w| w[1].0.saturating_sub(w[0].0) as f64 / 1000.0)
                .collect();

            let mut fields = vec![
                ("id", json!(receiver.id).to_string()),
                ("port", receiver.port.to_string()),
                ("events", events.to_string()),
                ("unseen", unseen.to_string()),
                ("events_per_s", json!(round3(events_per_s)).to_string()),
                (
                    "drain_ms",
                    drain_ms
                        .map_or(Value::Null, |d| json!(round3(d)))
                        .to_string(),
                ),
                ("txns", books.txns.to_string()),
                ("bench_events_per_txn", json!(round3(per_txn)).to_string()),
                ("txn_gap_ms", Summary::of(gaps).to_json(true)),
                ("duplicate_txns", books.duplicate_txns.to_string()),
                ("duplicate_events", books.duplicate_events.to_string()),
                ("rejected_txns", books.rejected_txns.to_string()),
                ("pings", books.pings.to_string()),
                ("rejected_pings", books.rejected_pings.to_string()),
                ("unauthorized", books.unauthorized.to_string()),
            ];
            if let Some(switch) = window.switch_us {
                let done = if unseen == 0 { complete } else { None };
                all_complete &= done.is_some();
                complete_max = complete_max.max(done);
                let first = books.first_accepted_us;
                if let Some(f) = first {
                    first_accepted_min = Some(first_accepted_min.map_or(f, |m| m.min(f)));
                    first_accepted_max = first_accepted_max.max(Some(f));
                }
                fields.push(("catchup_s", secs_between(Some(switch), done)));
                fields.push(("catchup_retry_wait_s", secs_between(Some(switch), first)));
                fields.push(("catchup_delivery_s", secs_between(first, done)));
            }
            fields.push(("latency_ms", Summary::of(latency.clone()).to_json(true)));
            all_latency.extend(latency);
            per_receiver.push(ordered_object(&fields));
        }

        let mut out = vec![
            ("appservices", self.receivers.len().to_string()),
            (
                "appservice_latency_ms",
                Summary::of(all_latency).to_json(true),
            ),
            (
                "appservice_p50_by_quarter_ms",
                json!(quarters
                    .into_iter()
                    .map(|q| round3(Summary::of(q).p50))
                    .collect::<Vec<_>>())
                .to_string(),
            ),
            ("appservice_unseen", unseen_total.to_string()),
            (
                "appservice_events_per_s",
                json!(round3(events_per_s_total)).to_string(),
            ),
            (
                "appservice_drain_ms",
                drain_max
                    .map_or(Value::Null, |d| json!(round3(d)))
                    .to_string(),
            ),
        ];
        if let Some(switch) = window.switch_us {
            let complete = if all_complete { complete_max } else { None };
            let (txns, pings) = self.receivers.iter().fold((0, 0), |(t, p), r| {
                let books = r.lock();
                (t + books.rejected_txns, p + books.rejected_pings)
            });
            out.push((
                "appservice_outage_s",
                json!(round3(
                    switch.saturating_sub(window.receivers_start_us) as f64 / 1e6
                ))
                .to_string(),
            ));
            out.push((
                "appservice_outage_requests",
                json!({ "transactions": txns, "pings": pings }).to_string(),
            ));
            let delivered = (acked.len() * self.receivers.len()) as f64;
            let delivery_s = complete
                .zip(first_accepted_min)
                .map(|(c, f)| c.saturating_sub(f) as f64 / 1e6);
            out.push(("appservice_backlog_events", acked.len().to_string()));
            out.push(("appservice_catchup_s", secs_between(Some(switch), complete)));
            out.push((
                "appservice_catchup_retry_wait_s",
                secs_between(Some(switch), first_accepted_max),
            ));
            out.push((
                "appservice_catchup_delivery_s",
                secs_between(first_accepted_min, complete),
            ));
            out.push((
                "appservice_catchup_events_per_s",
                delivery_s
                    .filter(|s| *s > 0.0)
                    .map_or(Value::Null, |s| json!(round3(delivered / s)))
                    .to_string(),
            ));
        }
        out.push((
            "appservice_receivers",
            format!("[{}]", per_receiver.join(",")),
        ));
        out.push(("appservice_definition", json!(DEFINITION).to_string()));
        out
    }
}

/// Seconds from `from` to `to` (UNIX µs) as JSON, `null` when either is unknown.
fn secs_between(from: Option<u64>, to: Option<u64>) -> String {
    match (from, to) {
        (Some(f), Some(t)) => json!(round3(t.saturating_sub(f) as f64 / 1e6)).to_string(),
        _ => "null".to_owned(),
    }
}

fn matrix_error(status: StatusCode, errcode: &str, error: &str) -> Response {
    (status, Json(json!({ "errcode": errcode, "error": error }))).into_response()
}

async fn not_found() -> Response {
    matrix_error(
        StatusCode::NOT_FOUND,
        "M_NOT_FOUND",
        "not a bench receiver path",
    )
}

/// The hs_token check of every request: `None` when it may go on.
fn refused(receiver: &Receiver, headers: &HeaderMap) -> Option<Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match token {
        None => {
            receiver.lock().unauthorized += 1;
            Some(matrix_error(
                StatusCode::UNAUTHORIZED,
                "M_UNAUTHORIZED",
                "no hs_token",
            ))
        }
        Some(t) if t != receiver.hs_token => {
            receiver.lock().unauthorized += 1;
            Some(matrix_error(
                StatusCode::FORBIDDEN,
                "M_FORBIDDEN",
                "wrong hs_token",
            ))
        }
        Some(_) => None,
    }
}

/// `POST /_matrix/app/v1/ping`.
async fn ping(State(receiver): State<Arc<Receiver>>, headers: HeaderMap) -> Response {
    if let Some(refusal) = refused(&receiver, &headers) {
        return refusal;
    }
    if receiver.failing.load(Ordering::SeqCst) {
        receiver.lock().rejected_pings += 1;
        return matrix_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "M_UNKNOWN",
            "bench receiver is down (backlog mode)",
        );
    }
    receiver.lock().pings += 1;
    Json(json!({})).into_response()
}

/// `PUT /_matrix/app/v1/transactions/{txnId}`.
async fn transaction(
    State(receiver): State<Arc<Receiver>>,
    Path(txn_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // The body has been read: this is the arrival time of every event in it.
    let now_us = unix_micros();
    if let Some(refusal) = refused(&receiver, &headers) {
        return refusal;
    }
    if receiver.failing.load(Ordering::SeqCst) {
        receiver.lock().rejected_txns += 1;
        return matrix_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "M_UNKNOWN",
            "bench receiver is down (backlog mode)",
        );
    }
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return matrix_error(
                StatusCode::BAD_REQUEST,
                "M_NOT_JSON",
                &format!("body is not JSON: {e}"),
            )
        }
    };
    // Parse outside the lock; only bench messages carry the stamp.
    let bench_events: Vec<(String, u64)> = body
        .get("events")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|event| {
            let sent_us = event.pointer("/content/bench_ts_us")?.as_u64()?;
            let id = event.get("event_id")?.as_str()?;
            Some((id.to_owned(), sent_us))
        })
        .collect();

    let mut books = receiver.lock();
    if !books.txn_ids.insert(txn_id) {
        books.duplicate_txns += 1;
        return Json(json!({})).into_response();
    }
    books.txns += 1;
    books.first_accepted_us.get_or_insert(now_us);
    if !bench_events.is_empty() {
        books.bench_txns.push((now_us, bench_events.len()));
    }
    let mut new = 0u64;
    for (id, sent_us) in bench_events {
        match books.arrivals.entry(id) {
            Entry::Vacant(slot) => {
                slot.insert(Arrival {
                    sent_us,
                    arrived_us: now_us,
                });
                new += 1;
            }
            Entry::Occupied(_) => books.duplicate_events += 1,
        }
    }
    drop(books);
    receiver.delivered.fetch_add(new, Ordering::Relaxed);
    Json(json!({})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn put_txn(port: u16, txn: &str, token: &str, body: &Value) -> u16 {
        reqwest::Client::new()
            .put(format!(
                "http://127.0.0.1:{port}/_matrix/app/v1/transactions/{txn}"
            ))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    fn event(id: &str, sent_us: u64) -> Value {
        json!({ "event_id": id, "type": "m.room.message", "content": { "bench_ts_us": sent_us } })
    }

    #[tokio::test]
    async fn records_dedupes_and_fails_on_request() {
        // A port unlikely to clash with a running bench (9100+).
        let config = Config {
            count: 1,
            port_base: 39_517,
            hs_token_prefix: "t_".into(),
            failing: true,
        };
        let receivers = Receivers::start(&config).await.unwrap();
        let sent = unix_micros();
        let body =
            json!({ "events": [event("$a", sent), event("$b", sent), { "event_id": "$join" }] });
        assert_eq!(put_txn(39_517, "1", "t_as1", &body).await, 503);
        receivers.set_failing(false);
        assert_eq!(put_txn(39_517, "1", "wrong", &body).await, 403);
        assert_eq!(put_txn(39_517, "1", "t_as1", &body).await, 200);
        assert_eq!(put_txn(39_517, "1", "t_as1", &body).await, 200);
        let again = json!({ "events": [event("$b", sent)] });
        assert_eq!(put_txn(39_517, "2", "t_as1", &again).await, 200);

        let acked = vec!["$a".to_owned(), "$b".to_owned(), "$c".to_owned()];
        assert!(!receivers.wait_for(&acked, Duration::ZERO, false).await);
        assert!(receivers.wait_for(&acked[..2], Duration::ZERO, false).await);
        let window = Window {
            receivers_start_us: sent,
            load_start_us: sent,
            load_end_us: unix_micros(),
            switch_us: None,
        };
        let fields = receivers.report(&acked, &window);
        let get = |k: &str| -> Value {
            serde_json::from_str(&fields.iter().find(|(key, _)| *key == k).unwrap().1).unwrap()
        };
        assert_eq!(get("appservice_unseen"), json!(1));
        assert_eq!(get("appservice_latency_ms")["samples"], json!(2));
        let r = &get("appservice_receivers")[0];
        assert_eq!(r["txns"], json!(2));
        assert_eq!(r["duplicate_txns"], json!(1));
        assert_eq!(r["duplicate_events"], json!(1));
        assert_eq!(r["rejected_txns"], json!(1));
        assert_eq!(r["unauthorized"], json!(1));
    }
}
