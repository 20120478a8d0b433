//! What a plugin's instances share of its key-value store: the bytes committed (for the
//! quota) and a cache of committed values, so that a key a plugin reads on every event (a
//! room's settings, an index's head) costs a database read once, not once per event.
//!
//! The cache stays exact because every write of a plugin's store passes through its lane:
//! calls are serial, and a call's writes reach the cache only once they have committed
//! ([`KvShared::committed`]), before the next call starts.

use crate::lock::lock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Mutex;

/// Bytes of keys and values the cache holds at most; past it, it starts over.
const CACHE_BYTES: usize = 8 << 20;
/// Larger values are read from the database each time.
const MAX_CACHED_VALUE: usize = 64 << 10;

pub struct KvShared {
    usage: AtomicI64,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    /// The committed value of a key, `None` when it has none.
    values: HashMap<String, Option<Vec<u8>>>,
    bytes: usize,
}

impl Cache {
    fn forget(&mut self, key: &str) {
        if let Some(old) = self.values.remove(key) {
            self.bytes -= key.len() + old.map_or(0, |v| v.len());
        }
    }

    fn put(&mut self, key: &str, value: &Option<Vec<u8>>) {
        self.forget(key);
        if value.as_ref().is_some_and(|v| v.len() > MAX_CACHED_VALUE) {
            return;
        }
        let size = key.len() + value.as_ref().map_or(0, Vec::len);
        if self.bytes + size > CACHE_BYTES {
            self.values.clear();
            self.bytes = 0;
        }
        self.bytes += size;
        self.values.insert(key.to_string(), value.clone());
    }
}

/// What the cache needs of a call's writes: each key with its new value, or with none to
/// keep when the value is too large for the cache (the key is then forgotten).
pub(crate) struct Written(Vec<(String, Option<Option<Vec<u8>>>)>);

impl Written {
    pub(crate) fn of(writes: &[(String, Option<Vec<u8>>)]) -> Written {
        Written(
            writes
                .iter()
                .map(|(k, v)| {
                    let kept = match v {
                        Some(v) if v.len() > MAX_CACHED_VALUE => None,
                        other => Some(other.clone()),
                    };
                    (k.clone(), kept)
                })
                .collect(),
        )
    }
}

impl KvShared {
    /// A store holding `usage` bytes, nothing cached yet.
    pub fn new(usage: i64) -> KvShared {
        KvShared {
            usage: AtomicI64::new(usage),
            cache: Mutex::new(Cache::default()),
        }
    }

    pub(crate) fn usage(&self) -> i64 {
        self.usage.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        lock(&self.cache)
    }

    /// The committed value of `key` if the cache knows it (`Some(None)`: it has none).
    pub(crate) fn cached(&self, key: &str) -> Option<Option<Vec<u8>>> {
        self.lock().values.get(key).cloned()
    }

    /// The length of the committed value of `key` if the cache knows it (`Some(None)`: it
    /// has none).
    pub(crate) fn cached_len(&self, key: &str) -> Option<Option<usize>> {
        self.lock()
            .values
            .get(key)
            .map(|v| v.as_ref().map(Vec::len))
    }

    /// Remembers what the database answered for `key`, unless the instance that read it
    /// was abandoned meanwhile: the lane may have gone on, and committed a newer value.
    pub(crate) fn read(&self, key: &str, value: &Option<Vec<u8>>, alive: &AtomicBool) {
        let mut cache = self.lock();
        if alive.load(Ordering::SeqCst) {
            cache.put(key, value);
        }
    }

    /// A call's writes committed: the usage grows by `delta` and the cache has the new
    /// values.
    pub(crate) fn committed(&self, written: Written, delta: i64) {
        self.usage.fetch_add(delta, Ordering::SeqCst);
        let mut cache = self.lock();
        for (key, value) in &written.0 {
            match value {
                Some(value) => cache.put(key, value),
                None => cache.forget(key),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_answers_what_was_read_or_committed_and_never_a_stale_read() {
        let kv = KvShared::new(0);
        let alive = AtomicBool::new(true);
        assert_eq!(kv.cached("a"), None);
        kv.read("a", &None, &alive);
        assert_eq!(kv.cached("a"), Some(None));
        kv.committed(Written::of(&[("a".into(), Some(b"1".to_vec()))]), 2);
        assert_eq!(kv.cached("a"), Some(Some(b"1".to_vec())));
        assert_eq!(kv.usage(), 2);
        kv.committed(Written::of(&[("a".into(), None)]), -2);
        assert_eq!(kv.cached("a"), Some(None));
        // A value too large to keep makes the cache forget the key's old one.
        kv.committed(
            Written::of(&[("a".into(), Some(vec![1; MAX_CACHED_VALUE + 1]))]),
            0,
        );
        assert_eq!(kv.cached("a"), None);
        // An abandoned instance's late read does not land.
        alive.store(false, Ordering::SeqCst);
        kv.read("b", &Some(b"old".to_vec()), &alive);
        assert_eq!(kv.cached("b"), None);
    }

    #[test]
    fn large_values_are_not_kept_and_the_cache_starts_over_when_full() {
        let kv = KvShared::new(0);
        let alive = AtomicBool::new(true);
        kv.read("big", &Some(vec![0; MAX_CACHED_VALUE + 1]), &alive);
        assert_eq!(kv.cached("big"), None);
        let chunk = vec![0; MAX_CACHED_VALUE];
        for i in 0..(CACHE_BYTES / MAX_CACHED_VALUE + 1) {
            kv.read(&format!("k{i}"), &Some(chunk.clone()), &alive);
        }
        assert!(kv.lock().bytes <= CACHE_BYTES);
        assert_eq!(
            kv.cached("k0"),
            None,
            "the first went when the cache filled"
        );
    }
}
