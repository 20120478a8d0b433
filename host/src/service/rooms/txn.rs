//! Client transaction ids: a repeated `PUT …/send/{type}/{txnId}` from the same device answers
//! the event the first one made. Each device's stored txn ids are read once per process into
//! a set of hashes, so a new txn id (the common case) is known to be new without asking the
//! database; sends in flight and lately committed are kept whole, so that a retry racing the
//! first request finds it.

use crate::lock::lock;
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) use crate::storage::events::TxnRow as TxnKey;

/// How long a committed send stays in the recent map.
const RECENT_TTL: Duration = Duration::from_secs(60);
/// Past this many hashes a device is looked up in the database instead.
const MAX_HASHES_PER_DEVICE: usize = 1_000_000;

/// What the cache knows of a txn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// It made this event (perhaps still committing).
    Known(String),
    /// It is certainly new.
    New,
    /// The device's txn ids are not loaded: call [`TxnCache::load_device`] first.
    NotLoaded,
    /// Only the database can tell.
    AskDatabase,
}

#[derive(Default)]
pub(crate) struct TxnCache {
    devices: Mutex<HashMap<(String, String), DeviceTxns>>,
}

#[derive(Default)]
struct DeviceTxns {
    hashes: HashSet<u64>,
    /// Too many to hold: every txn of the device that is not recent goes to the database.
    overflow: bool,
    recent: HashMap<(String, String), Recent>,
    last_sweep: Option<Instant>,
}

struct Recent {
    event_id: String,
    committed: Option<Instant>,
}

fn hash_of(scope: &str, txn: &str) -> u64 {
    let mut h = DefaultHasher::new();
    (scope, txn).hash(&mut h);
    h.finish()
}

impl TxnCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), DeviceTxns>> {
        lock(&self.devices)
    }

    pub(crate) fn lookup(&self, key: &TxnKey) -> Lookup {
        let devices = self.lock();
        let Some(d) = devices.get(&(key.0.clone(), key.1.clone())) else {
            return Lookup::NotLoaded;
        };
        if let Some(r) = d.recent.get(&(key.2.clone(), key.3.clone())) {
            return Lookup::Known(r.event_id.clone());
        }
        if d.overflow || d.hashes.contains(&hash_of(&key.2, &key.3)) {
            return Lookup::AskDatabase;
        }
        Lookup::New
    }

    /// Records the device's stored `(scope, txn_id)` pairs; a device already loaded is kept.
    pub(crate) fn load_device(&self, user: &str, device: &str, stored: Vec<(String, String)>) {
        let mut devices = self.lock();
        devices
            .entry((user.to_string(), device.to_string()))
            .or_insert_with(|| {
                let overflow = stored.len() > MAX_HASHES_PER_DEVICE;
                DeviceTxns {
                    hashes: if overflow {
                        HashSet::new()
                    } else {
                        stored.iter().map(|(s, t)| hash_of(s, t)).collect()
                    },
                    overflow,
                    ..Default::default()
                }
            });
    }

    /// A send with this txn is queued for commit.
    pub(crate) fn pending(&self, key: &TxnKey, event_id: &str) {
        let mut devices = self.lock();
        let d = devices.entry((key.0.clone(), key.1.clone())).or_default();
        d.recent.insert(
            (key.2.clone(), key.3.clone()),
            Recent {
                event_id: event_id.to_string(),
                committed: None,
            },
        );
    }

    /// The send committed (`true`) or failed and may be retried as new (`false`).
    pub(crate) fn finished(&self, key: &TxnKey, committed: bool) {
        let mut devices = self.lock();
        let Some(d) = devices.get_mut(&(key.0.clone(), key.1.clone())) else {
            return;
        };
        let k = (key.2.clone(), key.3.clone());
        if !committed {
            d.recent.remove(&k);
            return;
        }
        let now = Instant::now();
        if let Some(r) = d.recent.get_mut(&k) {
            r.committed = Some(now);
        }
        if !d.overflow {
            d.hashes.insert(hash_of(&k.0, &k.1));
            if d.hashes.len() > MAX_HASHES_PER_DEVICE {
                d.hashes = HashSet::new();
                d.overflow = true;
            }
        }
        // Sweep the device's recent sends at most once per TTL: O(n) per send would add up.
        if d.last_sweep
            .is_none_or(|at| now.duration_since(at) >= RECENT_TTL)
        {
            d.recent.retain(|_, r| {
                r.committed
                    .is_none_or(|at| now.duration_since(at) < RECENT_TTL)
            });
            d.last_sweep = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(txn: &str) -> TxnKey {
        (
            "@a:x".into(),
            "D".into(),
            "!r:x/m.room.message".into(),
            txn.into(),
        )
    }

    #[test]
    fn unknown_devices_must_be_loaded_first() {
        let c = TxnCache::default();
        assert_eq!(c.lookup(&key("1")), Lookup::NotLoaded);
        c.load_device("@a:x", "D", vec![]);
        assert_eq!(c.lookup(&key("1")), Lookup::New);
    }

    #[test]
    fn stored_txns_send_the_lookup_to_the_database() {
        let c = TxnCache::default();
        c.load_device(
            "@a:x",
            "D",
            vec![("!r:x/m.room.message".into(), "old".into())],
        );
        assert_eq!(c.lookup(&key("old")), Lookup::AskDatabase);
        assert_eq!(c.lookup(&key("new")), Lookup::New);
    }

    #[test]
    fn pending_and_committed_sends_are_known() {
        let c = TxnCache::default();
        c.load_device("@a:x", "D", vec![]);
        c.pending(&key("1"), "$e1");
        assert_eq!(c.lookup(&key("1")), Lookup::Known("$e1".into()));
        c.finished(&key("1"), true);
        assert_eq!(c.lookup(&key("1")), Lookup::Known("$e1".into()));
    }

    #[test]
    fn a_failed_send_is_new_again() {
        let c = TxnCache::default();
        c.load_device("@a:x", "D", vec![]);
        c.pending(&key("1"), "$e1");
        c.finished(&key("1"), false);
        assert_eq!(c.lookup(&key("1")), Lookup::New);
    }

    #[test]
    fn loading_again_keeps_what_the_device_has() {
        let c = TxnCache::default();
        c.load_device("@a:x", "D", vec![]);
        c.pending(&key("1"), "$e1");
        c.load_device("@a:x", "D", vec![]);
        assert_eq!(c.lookup(&key("1")), Lookup::Known("$e1".into()));
    }
}
