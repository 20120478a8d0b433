//! `timers`: durable timers. Like the store's writes, a call's timer changes are kept here
//! and committed with the call when it succeeds; the plugin's scheduler
//! ([`TimerBook`](crate::plugins::schedule::TimerBook)) then fires them through `on-timer`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use crate::plugins::bindings::timers::Host;
use crate::plugins::bindings::Error;
use crate::plugins::schedule::TimerBook;
use crate::plugins::state::Alive;
use crate::service::now_ms;
use crate::storage::plugins::{TimerChange, TimerRow};

/// Timers one plugin may have at once.
pub const MAX_TIMERS: usize = 10_000;
/// Largest payload, in bytes.
pub const MAX_PAYLOAD: usize = 64 * 1024;
/// Longest key, in bytes.
pub const MAX_KEY: usize = 512;
/// The furthest a timer may be set: about ten years.
pub const MAX_AFTER_MS: u64 = 10 * 366 * 24 * 3600 * 1000;

pub struct TimersCtx {
    book: Arc<TimerBook>,
    /// The next sequence number, shared by the plugin's instances.
    seq: Arc<AtomicI64>,
    /// This call's changes by key: the timer as set, or `None` for cancelled.
    changes: BTreeMap<String, Option<TimerRow>>,
    /// The timer this call is firing, removed when the call succeeds.
    firing: Option<(String, i64)>,
    /// Whether the lane still waits for this instance.
    alive: Alive,
}

impl TimersCtx {
    pub fn new(book: Arc<TimerBook>, seq: Arc<AtomicI64>, alive: Alive) -> TimersCtx {
        TimersCtx {
            book,
            seq,
            changes: BTreeMap::new(),
            firing: None,
            alive,
        }
    }

    /// Marks the call about to run as the firing of `(key, seq)`.
    pub fn fire(&mut self, key: String, seq: i64) {
        self.firing = Some((key, seq));
    }

    /// This call's changes in the order they apply, leaving none behind.
    pub fn take_changes(&mut self) -> Vec<TimerChange> {
        let mut out = Vec::with_capacity(self.changes.len() + 1);
        if let Some((key, seq)) = self.firing.take() {
            out.push(TimerChange::Fired { key, seq });
        }
        for (key, change) in std::mem::take(&mut self.changes) {
            out.push(match change {
                Some(row) => TimerChange::Set(row),
                None => TimerChange::Cancel(key),
            });
        }
        out
    }

    pub fn discard(&mut self) {
        self.take_changes();
    }

    fn exists(&self, key: &str) -> bool {
        match self.changes.get(key) {
            Some(change) => change.is_some(),
            None => self.book.contains(key),
        }
    }
}

impl Host for TimersCtx {
    fn set_timer(
        &mut self,
        key: String,
        after_ms: u64,
        payload: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        self.alive.check()?;
        if key.is_empty() || key.len() > MAX_KEY {
            return Ok(Err(Error::new(
                "M_INVALID_PARAM",
                format!("a timer key is 1 to {MAX_KEY} bytes"),
            )));
        }
        if payload.len() > MAX_PAYLOAD {
            return Ok(Err(Error::new(
                "M_TOO_LARGE",
                format!("a timer payload is at most {MAX_PAYLOAD} bytes"),
            )));
        }
        if after_ms > MAX_AFTER_MS {
            return Ok(Err(Error::new(
                "M_INVALID_PARAM",
                "a timer is set at most ten years ahead",
            )));
        }
        if !self.exists(&key) {
            let added = self.changes.values().filter(|c| c.is_some()).count();
            if self.book.len() + added >= MAX_TIMERS {
                return Ok(Err(Error::new(
                    "M_RESOURCE_LIMIT_EXCEEDED",
                    format!("a plugin has at most {MAX_TIMERS} timers"),
                )));
            }
        }
        let row = TimerRow {
            key: key.clone(),
            due_ms: now_ms() + after_ms as i64,
            seq: self.seq.fetch_add(1, Ordering::SeqCst),
            payload,
        };
        self.changes.insert(key, Some(row));
        Ok(Ok(()))
    }

    fn cancel_timer(&mut self, key: String) -> wasmtime::Result<bool> {
        self.alive.check()?;
        let existed = self.exists(&key);
        if existed {
            self.changes.insert(key, None);
        }
        Ok(existed)
    }
}
