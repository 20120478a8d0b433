//! The load phase: C concurrent senders, each PUTting m.room.message events into its room
//! for the configured duration, either as fast as the server answers or paced so that all
//! of them together keep a steady total rate.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::matrix::{Error, Matrix, Session};
use crate::reader::{unix_micros, Tracker};

/// One sender: whose token it uses and where it sends.
pub struct Sender {
    pub session: Session,
    pub room_id: String,
}

pub struct LoadConfig {
    /// How long the load lasts; `None` means until `max_events` have been acked.
    pub duration: Option<Duration>,
    /// Stop once this many events have been acked (sends are reserved so no more than this
    /// many succeed; a failed send gives its reservation back).
    pub max_events: Option<u64>,
    /// Total events/s over all senders; `None` means each sender goes flat out.
    pub rate: Option<f64>,
    /// Distinguishes this run's transaction IDs from earlier runs that reused a token.
    pub run_id: String,
    /// With `--plugin`: bodies ask the echo plugin for their text (`!echo …`), recorded here.
    pub replies: Option<Arc<crate::plugin::Replies>>,
}

pub struct LoadResult {
    pub events: u64,
    pub errors: u64,
    pub error_kinds: BTreeMap<String, u64>,
    pub send_latency_ms: Vec<f64>,
    /// The event IDs of every acked send, for the appservice receivers' bookkeeping.
    pub acked_event_ids: Vec<String>,
    /// From the start of the phase until the last in-flight send finished.
    pub elapsed: Duration,
}

/// What every sender task shares.
struct Shared {
    matrix: Matrix,
    tracker: Arc<Tracker>,
    replies: Option<Arc<crate::plugin::Replies>>,
    run_id: String,
    rate: Option<f64>,
    start: Instant,
    /// `None`: no time limit (`max_events` ends the load).
    deadline: Option<Instant>,
    max_events: Option<u64>,
    /// Sends started or done that count against `max_events`.
    reserved: AtomicU64,
    events: AtomicU64,
    errors: AtomicU64,
    /// The pacing schedule: slot k is due at start + k / rate.
    next_slot: AtomicU64,
}

struct Outcome {
    latencies_ms: Vec<f64>,
    acked_event_ids: Vec<String>,
    error_kinds: BTreeMap<String, u64>,
}

pub async fn run(
    matrix: &Matrix,
    senders: Vec<Sender>,
    config: &LoadConfig,
    tracker: Arc<Tracker>,
) -> LoadResult {
    let start = Instant::now();
    let shared = Arc::new(Shared {
        matrix: matrix.clone(),
        tracker,
        replies: config.replies.clone(),
        run_id: config.run_id.clone(),
        rate: config.rate,
        start,
        deadline: config.duration.map(|d| start + d),
        max_events: config.max_events,
        reserved: AtomicU64::new(0),
        events: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        next_slot: AtomicU64::new(0),
    });

    let progress = tokio::spawn(report_progress(shared.clone()));

    let mut tasks = tokio::task::JoinSet::new();
    for (index, sender) in senders.into_iter().enumerate() {
        tasks.spawn(send_loop(shared.clone(), sender, index));
    }

    let mut send_latency_ms = Vec::new();
    let mut acked_event_ids = Vec::new();
    let mut error_kinds = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(outcome) => {
                send_latency_ms.extend(outcome.latencies_ms);
                acked_event_ids.extend(outcome.acked_event_ids);
                for (kind, n) in outcome.error_kinds {
                    *error_kinds.entry(kind).or_insert(0) += n;
                }
            }
            Err(e) => eprintln!("load: a sender task died: {e}"),
        }
    }
    let elapsed = start.elapsed();
    progress.abort();

    LoadResult {
        events: shared.events.load(Ordering::Relaxed),
        errors: shared.errors.load(Ordering::Relaxed),
        error_kinds,
        send_latency_ms,
        acked_event_ids,
        elapsed,
    }
}

async fn send_loop(shared: Arc<Shared>, sender: Sender, index: usize) -> Outcome {
    let mut outcome = Outcome {
        latencies_ms: Vec::new(),
        acked_event_ids: Vec::new(),
        error_kinds: BTreeMap::new(),
    };
    let mut seq = 0u64;
    loop {
        if let Some(rate) = shared.rate {
            // Senders take slots from one shared schedule, so the total rate is steady no
            // matter how many senders there are; a sender that falls behind sends at once.
            let slot = shared.next_slot.fetch_add(1, Ordering::Relaxed);
            let due = shared.start + Duration::from_secs_f64(slot as f64 / rate);
            if shared.deadline.is_some_and(|deadline| due >= deadline) {
                break;
            }
            tokio::time::sleep_until(due.into()).await;
        } else if shared
            .deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
        {
            break;
        }
        if let Some(max) = shared.max_events {
            let reserved =
                shared
                    .reserved
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                        (n < max).then_some(n + 1)
                    });
            if reserved.is_err() {
                break;
            }
        }

        seq += 1;
        let txn_id = format!("{}-{index}-{seq}", shared.run_id);
        let text = format!("bench {index} {seq}");
        let body = match &shared.replies {
            Some(_) => format!("!echo {text}"),
            None => text.clone(),
        };
        let content = json!({
            "msgtype": "m.text",
            "body": body,
            "bench_ts_us": unix_micros(),
        });
        let sent = Instant::now();
        if let Some(r) = &shared.replies {
            r.asked(text.clone(), sent);
        }
        match shared
            .matrix
            .send_message(&sender.session, &sender.room_id, &txn_id, &content)
            .await
        {
            Ok(event_id) => {
                let acked = Instant::now();
                shared.tracker.acked(event_id.clone(), acked);
                outcome.acked_event_ids.push(event_id);
                outcome
                    .latencies_ms
                    .push((acked - sent).as_secs_f64() * 1000.0);
                shared.events.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                if let Some(r) = &shared.replies {
                    r.withdrawn(&text);
                }
                let total = shared.errors.fetch_add(1, Ordering::Relaxed) + 1;
                // The first few in full, then only the tally, so a dead server does not
                // flood stderr.
                if total <= 5 {
                    eprintln!("load: sender {index}: {e}");
                }
                *outcome.error_kinds.entry(e.kind()).or_insert(0) += 1;
                if shared.max_events.is_some() {
                    shared.reserved.fetch_sub(1, Ordering::Relaxed);
                }
                back_off(&e, shared.deadline).await;
            }
        }
    }
    outcome
}

/// Honours a 429's retry_after_ms, and otherwise pauses briefly so a refused connection
/// does not become a busy loop; never past the end of the run.
async fn back_off(e: &Error, deadline: Option<Instant>) {
    let wait = match e {
        Error::Transport(_) => Duration::from_millis(100),
        _ => e.retry_after().unwrap_or(Duration::ZERO),
    };
    let mut until = Instant::now() + wait;
    if let Some(deadline) = deadline {
        until = until.min(deadline);
    }
    tokio::time::sleep_until(until.into()).await;
}

async fn report_progress(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.tick().await;
    loop {
        tick.tick().await;
        let events = shared.events.load(Ordering::Relaxed);
        let secs = shared.start.elapsed().as_secs_f64();
        eprintln!(
            "load: {secs:.0}s  {events} events  {:.0} events/s  {} errors",
            events as f64 / secs,
            shared.errors.load(Ordering::Relaxed)
        );
    }
}
