//! What the bench measures of a plugin (`--plugin USER`, whose user is invited into the
//! bench rooms):
//! - send → reply latency: the senders send `!echo TEXT` (the bundled echo bot answers with
//!   TEXT) and the /sync reader times each answer from the start of the send that asked;
//! - with `--plugin-backlog`, delivery throughput through the whole host: the plugin is
//!   disabled through the admin API while plain messages are sent, then enabled, and the
//!   time until its queue is empty gives events/s.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Default)]
struct Inner {
    asked: HashMap<String, Instant>,
    reply_ms: Vec<f64>,
}

#[derive(Default)]
pub struct Replies {
    inner: Mutex<Inner>,
}

impl Replies {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A sender is about to ask for `text` back.
    pub fn asked(&self, text: String, at: Instant) {
        self.lock().asked.insert(text, at);
    }

    /// The sender gave up on `text` (its send failed): no answer is awaited.
    pub fn withdrawn(&self, text: &str) {
        self.lock().asked.remove(text);
    }

    /// The reader saw the plugin answer `text` in a sync response received at `at`.
    pub fn answered(&self, text: &str, at: Instant) {
        let mut inner = self.lock();
        if let Some(asked) = inner.asked.remove(text) {
            let ms = at.saturating_duration_since(asked).as_secs_f64() * 1000.0;
            inner.reply_ms.push(ms);
        }
    }

    /// Questions still without an answer.
    pub fn awaiting(&self) -> usize {
        self.lock().asked.len()
    }

    /// The reply latencies and how many questions got no answer.
    pub fn take(&self) -> (Vec<f64>, usize) {
        let mut inner = self.lock();
        (std::mem::take(&mut inner.reply_ms), inner.asked.len())
    }
}

/// The admin API of the server, for `--plugin-backlog`.
pub struct Admin {
    pub matrix: crate::matrix::Matrix,
    pub session: crate::matrix::Session,
    pub plugin_id: String,
}

impl Admin {
    fn path(&self, what: &str) -> String {
        format!(
            "/_plugboard/admin/v1/plugins/{}{what}",
            crate::matrix::encode(&self.plugin_id)
        )
    }

    pub async fn set_enabled(&self, on: bool) -> Result<(), crate::matrix::Error> {
        let what = if on { "/enable" } else { "/disable" };
        self.matrix
            .admin_post(&self.session, &self.path(what))
            .await
            .map(drop)
    }

    pub async fn view(&self) -> Result<serde_json::Value, crate::matrix::Error> {
        self.matrix.admin_get(&self.session, &self.path("")).await
    }

    /// Enables the plugin and waits until it has caught up (nothing behind, nothing in
    /// flight); answers how long that took, how many events it was given meanwhile and how
    /// long its calls took in all (the host's own measure of time inside the plugin).
    pub async fn catch_up(
        &self,
        limit: std::time::Duration,
    ) -> Result<CatchUp, crate::matrix::Error> {
        let before = self.view().await?;
        let started = Instant::now();
        self.set_enabled(true).await?;
        loop {
            let v = self.view().await?;
            if v["events_behind"].as_u64() == Some(0) && v["in_flight"].is_null() {
                let took = started.elapsed();
                let counted = |v: &serde_json::Value| v["events"].as_u64().unwrap_or(0);
                let called = |v: &serde_json::Value| v["call_ms"]["total"].as_f64().unwrap_or(0.0);
                return Ok(CatchUp {
                    took,
                    events: counted(&v) - counted(&before),
                    call_ms: called(&v) - called(&before),
                });
            }
            if started.elapsed() > limit {
                return Err(crate::matrix::Error::Protocol(format!(
                    "the plugin did not catch up within {limit:?}: {v}"
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

/// A plugin's catch-up on its backlog.
pub struct CatchUp {
    pub took: std::time::Duration,
    pub events: u64,
    /// Time inside the plugin's calls, as the host measured it.
    pub call_ms: f64,
}

pub const DEFINITION: &str = "plugin_reply_ms: the reader's /sync response containing the plugin's answer fully received minus the start of the send of the `!echo TEXT` it answers; plugin_replies_unseen: questions acked without an answer seen when the wait ended";

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn an_answer_is_timed_from_its_question_once() {
        let r = Replies::default();
        let t0 = Instant::now();
        r.asked("bench 0 1".into(), t0);
        r.asked("bench 0 2".into(), t0);
        r.answered("bench 0 1", t0 + Duration::from_millis(4));
        r.answered("bench 0 1", t0 + Duration::from_millis(9));
        r.answered("somebody else", t0);
        let (ms, unseen) = r.take();
        assert_eq!(ms.len(), 1);
        assert!((ms[0] - 4.0).abs() < 1e-6);
        assert_eq!(unseen, 1);
    }
}
