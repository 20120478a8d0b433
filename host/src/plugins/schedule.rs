//! A plugin's durable timers as its scheduler sees them: the committed timers in memory
//! ([`TimerBook`], loaded from the database at start and kept in step with every commit), and
//! the task that fires the soonest one through the plugin's lane when it is due.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::host::timers::TimerSet;
use crate::lock::lock;
use crate::service::appservice::queue::backoff;
use crate::service::now_ms;
use crate::storage::plugins::{TimerChange, TimerRow};

#[derive(Default)]
pub struct TimerBook {
    timers: Mutex<BTreeMap<String, TimerRow>>,
    changed: Notify,
}

impl TimerBook {
    pub fn new(rows: Vec<TimerRow>) -> TimerBook {
        TimerBook {
            timers: Mutex::new(rows.into_iter().map(|t| (t.key.clone(), t)).collect()),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, TimerRow>> {
        lock(&self.timers)
    }

    pub(crate) fn contains(&self, key: &str) -> bool {
        self.lock().contains_key(key)
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Whether timer `key` is still the one set as `seq`.
    pub(crate) fn holds(&self, key: &str, seq: i64) -> bool {
        self.lock().get(key).is_some_and(|t| t.seq == seq)
    }

    /// Puts off a timer whose call failed, in memory only (the stored due time stays), so
    /// that the others are not held up behind it.
    pub(crate) fn postpone(&self, key: &str, seq: i64, until_ms: i64) {
        if let Some(t) = self.lock().get_mut(key).filter(|t| t.seq == seq) {
            t.due_ms = until_ms;
        }
        self.changed.notify_one();
    }

    /// The timer due first (ties in the order they were set).
    pub(crate) fn next(&self) -> Option<TimerRow> {
        self.lock()
            .values()
            .min_by_key(|t| (t.due_ms, t.seq))
            .cloned()
    }

    /// Applies committed changes, in order, and wakes the scheduler.
    pub(crate) fn apply(&self, changes: &[TimerChange]) {
        if changes.is_empty() {
            return;
        }
        {
            let mut timers = self.lock();
            for change in changes {
                match change {
                    TimerChange::Set(t) => {
                        timers.insert(t.key.clone(), t.clone());
                    }
                    TimerChange::Cancel(key) => {
                        timers.remove(key);
                    }
                    TimerChange::Fired { key, seq } => {
                        if timers.get(key).is_some_and(|t| t.seq == *seq) {
                            timers.remove(key);
                        }
                    }
                }
            }
        }
        self.changed.notify_one();
    }
}

impl TimerSet for TimerBook {
    fn contains(&self, key: &str) -> bool {
        TimerBook::contains(self, key)
    }

    fn count(&self) -> usize {
        self.len()
    }
}

/// Fires the timers of `book` (plugin `id`'s) with `fire` as they fall due, until the task is
/// aborted. A timer whose call fails stays and is fired again after a pause that grows with
/// each failure.
pub(crate) async fn run<F, Fut, E>(
    id: String,
    book: Arc<TimerBook>,
    fire: F,
    retry_base: Duration,
    retry_cap: Duration,
) where
    F: Fn(TimerRow) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut failures: std::collections::HashMap<String, u32> = Default::default();
    loop {
        let changed = book.changed.notified();
        tokio::pin!(changed);
        let Some(next) = book.next() else {
            changed.await;
            continue;
        };
        let wait = next.due_ms - now_ms();
        if wait > 0 {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
                _ = &mut changed => {}
            }
            continue;
        }
        match fire(next.clone()).await {
            Ok(()) => {
                failures.remove(&next.key);
            }
            Err(e) => {
                // Each failing timer backs off on its own; the others fire meanwhile.
                let n = failures.entry(next.key.clone()).or_insert(0u32);
                let pause = backoff(*n, retry_base, retry_cap);
                *n = n.saturating_add(1);
                tracing::warn!(plugin = %id, timer = %next.key, error = %e, retry_in = ?pause, "timer call failed");
                book.postpone(&next.key, next.seq, now_ms() + pause.as_millis() as i64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, due_ms: i64, seq: i64) -> TimerRow {
        TimerRow {
            key: key.into(),
            due_ms,
            seq,
            payload: String::new(),
        }
    }

    #[test]
    fn the_soonest_timer_fires_first_and_ties_go_in_setting_order() {
        let book = TimerBook::new(vec![row("b", 20, 1), row("a", 10, 3), row("c", 10, 2)]);
        assert_eq!(book.next().unwrap().key, "c");
        book.apply(&[TimerChange::Cancel("c".into())]);
        assert_eq!(book.next().unwrap().key, "a");
    }

    #[test]
    fn a_fired_timer_goes_unless_it_was_set_again() {
        let book = TimerBook::new(vec![row("a", 10, 1)]);
        // The call for seq 1 set the timer again (seq 2) before its firing was committed.
        book.apply(&[
            TimerChange::Fired {
                key: "a".into(),
                seq: 1,
            },
            TimerChange::Set(row("a", 50, 2)),
        ]);
        assert_eq!(book.next().unwrap().seq, 2);
        book.apply(&[TimerChange::Fired {
            key: "a".into(),
            seq: 2,
        }]);
        assert!(book.is_empty());
    }
}
