//! A plugin's counters — calls by kind, errors, traps, call times, memory, store size —
//! for `plugin list` / `show` and `/metrics`, and the rule that makes a plugin failing.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use super::lane::{CallError, TrapKind};
use crate::service::now_ms;
use crate::service::samples::DurationSamples;

/// Plugin calls that fail this many times in a row mark the plugin failing.
pub(crate) const FAILING_AFTER: u32 = 5;

/// A plugin's counters, for `plugin list` / `show` and `/metrics`.
#[derive(Debug, Clone, Default)]
pub(crate) struct PluginStats {
    pub(crate) transactions: u64,
    pub(crate) events: u64,
    pub(crate) timers_fired: u64,
    pub(crate) queries: u64,
    pub(crate) http_requests: u64,
    /// Calls that failed for any reason, traps included.
    pub(crate) errors: u64,
    pub(crate) traps: BTreeMap<TrapKind, u64>,
    /// How long calls took.
    pub(crate) call_times: DurationSamples,
    /// The instance's linear memory after the latest call.
    pub(crate) memory_bytes: usize,
    pub(crate) kv_bytes: i64,
    /// Delivery calls (transactions, timers) failed since the last success.
    pub(crate) consecutive_failures: u32,
    pub(crate) last_error: Option<(i64, String)>,
    /// Recent failures, newest last, for `show`.
    pub(crate) recent_errors: VecDeque<(i64, String)>,
}

/// Failures `show` lists.
const RECENT_ERRORS: usize = 10;

/// What a call was, for the counters.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CallKind {
    Transaction { events: usize },
    Timer,
    Query,
    Http,
}

impl CallKind {
    /// Failures of these calls make a plugin failing; a bad web request does not.
    fn is_delivery(self) -> bool {
        matches!(self, CallKind::Transaction { .. } | CallKind::Timer)
    }
}

impl PluginStats {
    pub(crate) fn record<R>(
        &mut self,
        kind: CallKind,
        result: &Result<R, CallError>,
        took: Duration,
    ) {
        if matches!(result, Err(CallError::Disabled) | Err(CallError::Stale)) {
            return;
        }
        self.call_times.record(took);
        match kind {
            CallKind::Transaction { events } if result.is_ok() => {
                self.transactions += 1;
                self.events += events as u64;
            }
            CallKind::Timer if result.is_ok() => self.timers_fired += 1,
            CallKind::Query => self.queries += 1,
            CallKind::Http => self.http_requests += 1,
            _ => {}
        }
        match result {
            Ok(_) => {
                if kind.is_delivery() {
                    self.consecutive_failures = 0;
                }
            }
            Err(e) => {
                self.errors += 1;
                if let CallError::Trap { kind, .. } = e {
                    *self.traps.entry(*kind).or_default() += 1;
                }
                if kind.is_delivery() {
                    self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                }
                let entry = (now_ms(), e.to_string());
                if self.recent_errors.len() == RECENT_ERRORS {
                    self.recent_errors.pop_front();
                }
                self.recent_errors.push_back(entry.clone());
                self.last_error = Some(entry);
            }
        }
    }

    pub(crate) fn failing(&self) -> bool {
        self.consecutive_failures >= FAILING_AFTER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trap() -> Result<(), CallError> {
        Err(CallError::Trap {
            kind: TrapKind::Deadline,
            message: "slow".into(),
        })
    }

    #[test]
    fn delivery_failures_in_a_row_make_a_plugin_failing_and_web_requests_do_not() {
        let mut stats = PluginStats::default();
        let took = Duration::from_millis(1);
        for _ in 0..FAILING_AFTER - 1 {
            stats.record(CallKind::Transaction { events: 1 }, &trap(), took);
            stats.record(CallKind::Http, &trap(), took);
        }
        assert!(!stats.failing());
        stats.record(CallKind::Timer, &trap(), took);
        assert!(stats.failing());
        assert_eq!(
            stats.traps[&TrapKind::Deadline],
            2 * FAILING_AFTER as u64 - 1
        );
        stats.record(CallKind::Transaction { events: 3 }, &Ok(()), took);
        assert!(!stats.failing());
        assert_eq!((stats.transactions, stats.events), (1, 3));
    }

    #[test]
    fn a_call_refused_for_a_disabled_plugin_or_a_stale_timer_is_not_counted() {
        let mut stats = PluginStats::default();
        let took = Duration::from_millis(1);
        stats.record::<()>(CallKind::Timer, &Err(CallError::Disabled), took);
        stats.record::<()>(CallKind::Timer, &Err(CallError::Stale), took);
        assert_eq!(stats.errors, 0);
        assert!(stats.last_error.is_none());
    }
}
