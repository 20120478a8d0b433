//! The /sync reader and the bookkeeping for wake-up latency.
//!
//! One extra user, joined to the bench rooms, long-polls /sync. For every bench message it
//! sees, wake-up latency is the time its sync response arrived minus the time the sender got
//! the 200 for that event (`sync_wakeup`); a second figure, measured from the send start
//! stamped into the content as `bench_ts_us`, includes the send itself (`sync_end_to_end`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::matrix::{Matrix, Session};

/// Timeline events per room per sync response; enough for bursts between two polls at the
/// rates a single box reaches, and a `limited` timeline is reported when it is not.
const TIMELINE_LIMIT: u64 = 100;
const LONG_POLL_MS: u64 = 30_000;

/// Microseconds since the UNIX epoch: the clock of `bench_ts_us`.
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Where an event is in its journey; whichever of ack and arrival comes second completes it.
enum Seen {
    Acked(Instant),
    Arrived,
}

#[derive(Default)]
struct Inner {
    pending: HashMap<String, Seen>,
    /// Acked events the reader has not seen yet, so the end of the run can wait for them.
    awaiting: usize,
    wakeup_ms: Vec<f64>,
    end_to_end_ms: Vec<f64>,
    /// Events whose sync arrived before their sender's 200: their wake-up counts as 0.
    arrived_before_ack: u64,
    limited_timelines: u64,
}

/// Shared between the senders (acks) and the reader (arrivals).
#[derive(Default)]
pub struct Tracker {
    inner: Mutex<Inner>,
}

/// What the tracker collected, taken at the end of the run.
pub struct WakeupSamples {
    pub wakeup_ms: Vec<f64>,
    pub end_to_end_ms: Vec<f64>,
    pub arrived_before_ack: u64,
    pub unseen: usize,
    pub limited_timelines: u64,
}

impl Tracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere must not hide the numbers gathered so far.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A sender got its 200 for `event_id` at `at`.
    pub fn acked(&self, event_id: String, at: Instant) {
        let mut inner = self.lock();
        match inner.pending.remove(&event_id) {
            Some(Seen::Arrived) => {
                inner.wakeup_ms.push(0.0);
                inner.arrived_before_ack += 1;
            }
            // Transaction IDs are unique, so a second ack for one event should not happen;
            // if it does, it must not be awaited twice.
            Some(Seen::Acked(first)) => {
                inner.pending.insert(event_id, Seen::Acked(first));
            }
            None => {
                inner.pending.insert(event_id, Seen::Acked(at));
                inner.awaiting += 1;
            }
        }
    }

    /// The reader's sync response containing `event_id` arrived at `at`.
    fn arrived(&self, event_id: &str, at: Instant, end_to_end_ms: Option<f64>) {
        let mut inner = self.lock();
        if let Some(ms) = end_to_end_ms {
            inner.end_to_end_ms.push(ms);
        }
        match inner.pending.remove(event_id) {
            Some(Seen::Acked(ack)) => {
                let ms = at.saturating_duration_since(ack).as_secs_f64() * 1000.0;
                inner.wakeup_ms.push(ms);
                inner.awaiting -= 1;
            }
            Some(Seen::Arrived) | None => {
                inner.pending.insert(event_id.to_owned(), Seen::Arrived);
            }
        }
    }

    fn limited(&self) {
        self.lock().limited_timelines += 1;
    }

    /// Acked events the reader has not seen yet.
    pub fn awaiting(&self) -> usize {
        self.lock().awaiting
    }

    pub fn take(&self) -> WakeupSamples {
        let mut inner = self.lock();
        WakeupSamples {
            wakeup_ms: std::mem::take(&mut inner.wakeup_ms),
            end_to_end_ms: std::mem::take(&mut inner.end_to_end_ms),
            arrived_before_ack: inner.arrived_before_ack,
            unseen: inner.awaiting,
            limited_timelines: inner.limited_timelines,
        }
    }
}

/// The inline sync filter: only the bench rooms' timelines, nothing the reader does not need,
/// so each wake-up is caused by bench traffic.
pub fn filter_for(room_ids: &[String]) -> String {
    json!({
        "room": {
            "rooms": room_ids,
            "timeline": { "limit": TIMELINE_LIMIT },
        },
        "presence": { "types": [] },
        "account_data": { "types": [] },
    })
    .to_string()
}

/// Does the initial sync so the long-poll loop only sees events sent after it; returns the
/// `next_batch` token.
pub async fn initial_sync(
    matrix: &Matrix,
    session: &Session,
    filter: &str,
) -> Result<String, crate::matrix::Error> {
    let resp = matrix.sync(session, filter, None, 0).await?;
    next_batch(&resp.body)
        .ok_or_else(|| crate::matrix::Error::Protocol("sync reply without next_batch".into()))
}

/// With `--plugin`: the plugin's user, whose answers go to `replies`.
pub struct PluginWatch {
    pub user_id: String,
    pub replies: std::sync::Arc<crate::plugin::Replies>,
}

/// Long-polls /sync forever (the caller aborts the task), feeding arrivals to `tracker` (and
/// the plugin's answers to `plugin`).
pub async fn run(
    matrix: Matrix,
    session: Session,
    filter: String,
    mut since: String,
    tracker: std::sync::Arc<Tracker>,
    plugin: Option<PluginWatch>,
) {
    let mut consecutive_errors = 0u32;
    loop {
        match matrix
            .sync(&session, &filter, Some(&since), LONG_POLL_MS)
            .await
        {
            Ok(resp) => {
                consecutive_errors = 0;
                // One clock reading for the whole response: every event in it woke the
                // reader at the same moment.
                let now_us = unix_micros();
                record(&resp.body, resp.received_at, now_us, &tracker);
                if let Some(p) = &plugin {
                    record_answers(&resp.body, resp.received_at, p);
                }
                match next_batch(&resp.body) {
                    Some(token) => since = token,
                    None => eprintln!("reader: sync reply without next_batch; repeating"),
                }
            }
            Err(e) => {
                consecutive_errors += 1;
                eprintln!("reader: sync failed: {e}");
                // Back off a little so a dead server does not turn into a busy loop.
                let wait = Duration::from_millis(100 * u64::from(consecutive_errors.min(20)));
                tokio::time::sleep(wait).await;
            }
        }
    }
}

fn next_batch(body: &Value) -> Option<String> {
    body.get("next_batch")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn record(body: &Value, received_at: Instant, now_us: u64, tracker: &Tracker) {
    let Some(rooms) = body.pointer("/rooms/join").and_then(Value::as_object) else {
        return;
    };
    for room in rooms.values() {
        if room.pointer("/timeline/limited").and_then(Value::as_bool) == Some(true) {
            tracker.limited();
        }
        let events = room
            .pointer("/timeline/events")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for event in events {
            // Only bench messages carry the stamp; joins and room state are skipped.
            let Some(sent_us) = event
                .pointer("/content/bench_ts_us")
                .and_then(Value::as_u64)
            else {
                continue;
            };
            let Some(event_id) = event.get("event_id").and_then(Value::as_str) else {
                continue;
            };
            let end_to_end = now_us.saturating_sub(sent_us) as f64 / 1000.0;
            tracker.arrived(event_id, received_at, Some(end_to_end));
        }
    }
}

/// The plugin's answers in a sync response.
fn record_answers(body: &Value, received_at: Instant, plugin: &PluginWatch) {
    let Some(rooms) = body.pointer("/rooms/join").and_then(Value::as_object) else {
        return;
    };
    for room in rooms.values() {
        let events = room
            .pointer("/timeline/events")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for event in events {
            if event.get("sender").and_then(Value::as_str) != Some(plugin.user_id.as_str()) {
                continue;
            }
            if let Some(text) = event.pointer("/content/body").and_then(Value::as_str) {
                plugin.replies.answered(text, received_at);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_then_arrival_and_arrival_then_ack() {
        let t = Tracker::default();
        let t0 = Instant::now();
        t.acked("$a".into(), t0);
        assert_eq!(t.awaiting(), 1);
        t.arrived("$a", t0 + Duration::from_millis(5), Some(7.0));
        t.arrived("$b", t0, None);
        t.acked("$b".into(), t0 + Duration::from_millis(1));
        let s = t.take();
        assert_eq!(s.wakeup_ms.len(), 2);
        assert!((s.wakeup_ms[0] - 5.0).abs() < 1e-6);
        assert_eq!(s.wakeup_ms[1], 0.0);
        assert_eq!(s.arrived_before_ack, 1);
        assert_eq!(s.unseen, 0);
        assert_eq!(s.end_to_end_ms, vec![7.0]);
    }
}
