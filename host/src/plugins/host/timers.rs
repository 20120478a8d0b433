//! `timers`: durable timers. Like the store's writes, a call's timer changes are kept here
//! and committed with the call when it succeeds; the plugin's scheduler
//! (`schedule::TimerBook`, seen here through [`TimerSet`]) then fires them through `on-timer`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use crate::plugins::bindings::timers::{self, Host};
use crate::plugins::bindings::Error;
use crate::plugins::guest::Alive;
use crate::service::now_ms;
use crate::storage::plugins::{TimerChange, TimerRow};

pub(crate) use plugboard_limits::timers::MAX_TIMERS;

/// What `timers` needs of the server: the plugin's committed timers, by key.
pub trait TimerSet: Send + Sync {
    fn contains(&self, key: &str) -> bool;
    /// How many there are.
    fn count(&self) -> usize;
}

/// Links `timers` into `linker`, its host found in the store's data by `get`.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut TimersCtx,
) -> wasmtime::Result<()> {
    timers::add_to_linker::<T, HasSelf<TimersCtx>>(linker, get)
}

pub(crate) struct TimersCtx {
    book: Arc<dyn TimerSet>,
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
    pub(crate) fn new(book: Arc<dyn TimerSet>, seq: Arc<AtomicI64>, alive: Alive) -> TimersCtx {
        TimersCtx {
            book,
            seq,
            changes: BTreeMap::new(),
            firing: None,
            alive,
        }
    }

    /// Marks the call about to run as the firing of `(key, seq)`.
    pub(crate) fn fire(&mut self, key: String, seq: i64) {
        self.firing = Some((key, seq));
    }

    /// This call's changes in the order they apply, leaving none behind.
    pub(crate) fn take_changes(&mut self) -> Vec<TimerChange> {
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

    pub(crate) fn discard(&mut self) {
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
        if let Err(refused) = plugboard_limits::timers::check(&key, after_ms, &payload) {
            return Ok(Err(refused.into()));
        }
        if !self.exists(&key) {
            let added = self.changes.values().filter(|c| c.is_some()).count();
            if self.book.count() + added >= MAX_TIMERS {
                return Ok(Err(plugboard_limits::timers::too_many().into()));
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::atomic::AtomicBool;

    use plugboard_limits::timers::{MAX_AFTER_MS, MAX_KEY, MAX_PAYLOAD};

    use super::*;

    /// Committed timers, by key.
    struct Keys(BTreeSet<String>);

    impl TimerSet for Keys {
        fn contains(&self, key: &str) -> bool {
            self.0.contains(key)
        }
        fn count(&self) -> usize {
            self.0.len()
        }
    }

    fn ctx(committed: &[&str]) -> TimersCtx {
        let keys = Keys(committed.iter().map(|k| k.to_string()).collect());
        let alive = Alive(Arc::new(AtomicBool::new(true)));
        TimersCtx::new(Arc::new(keys), Arc::new(AtomicI64::new(7)), alive)
    }

    fn set(t: &mut TimersCtx, key: &str, after_ms: u64, payload: &str) -> Result<(), Error> {
        t.set_timer(key.into(), after_ms, payload.into())
            .expect("no trap")
    }

    #[test]
    fn keys_payloads_and_delays_past_their_limits_are_refused() {
        let mut t = ctx(&[]);
        let errcode = |r: Result<(), Error>| r.unwrap_err().errcode;
        assert_eq!(errcode(set(&mut t, "", 0, "")), "M_INVALID_PARAM");
        assert_eq!(
            errcode(set(&mut t, &"k".repeat(MAX_KEY + 1), 0, "")),
            "M_INVALID_PARAM"
        );
        assert_eq!(
            errcode(set(&mut t, "k", 0, &"p".repeat(MAX_PAYLOAD + 1))),
            "M_TOO_LARGE"
        );
        assert_eq!(
            errcode(set(&mut t, "k", MAX_AFTER_MS + 1, "")),
            "M_INVALID_PARAM"
        );
        assert!(set(
            &mut t,
            &"k".repeat(MAX_KEY),
            MAX_AFTER_MS,
            &"p".repeat(MAX_PAYLOAD)
        )
        .is_ok());
    }

    #[test]
    fn a_plugin_has_at_most_ten_thousand_timers_but_may_set_one_again() {
        let committed: Vec<String> = (0..MAX_TIMERS - 1).map(|i| format!("t{i}")).collect();
        let refs: Vec<&str> = committed.iter().map(String::as_str).collect();
        let mut t = ctx(&refs);
        assert!(set(&mut t, "last", 10, "").is_ok());
        let refused = set(&mut t, "one-more", 10, "").unwrap_err();
        assert_eq!(refused.errcode, "M_RESOURCE_LIMIT_EXCEEDED");
        assert!(
            set(&mut t, "t0", 10, "").is_ok(),
            "setting one again adds none"
        );
    }

    #[test]
    fn changes_come_out_after_the_firing_in_key_order_and_cancel_what_exists() {
        let mut t = ctx(&["committed"]);
        t.fire("firing".into(), 3);
        set(&mut t, "b", 10, "x").unwrap();
        set(&mut t, "a", 10, "y").unwrap();
        assert!(t.cancel_timer("committed".into()).unwrap());
        assert!(t.cancel_timer("b".into()).unwrap());
        assert!(!t.cancel_timer("never".into()).unwrap());
        let changes = t.take_changes();
        assert!(matches!(&changes[0], TimerChange::Fired { key, seq: 3 } if key == "firing"));
        assert!(matches!(&changes[1], TimerChange::Set(row) if row.key == "a" && row.seq == 8));
        assert!(matches!(&changes[2], TimerChange::Cancel(key) if key == "b"));
        assert!(matches!(&changes[3], TimerChange::Cancel(key) if key == "committed"));
        assert_eq!(changes.len(), 4);
        assert!(t.take_changes().is_empty());
    }
}
