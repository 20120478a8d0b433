//! The bounded cache of room heads: at most `capacity` rooms keep their write state in memory,
//! the least recently used are evicted, and a room that comes back is reloaded from storage.
//!
//! A head is evicted only while the cache holds its only reference (`Arc::strong_count` of 1,
//! read under the cache's lock, which every other reference is cloned under). Everyone who
//! builds on a head, and every event of it still waiting for its commit, holds a reference:
//! so an evicted head has nothing in flight, storage has all of it, and a room never has two
//! heads at once (two locks would let two events build on the same parent).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

pub struct HeadCache<T> {
    inner: Mutex<Lru<T>>,
}

struct Lru<T> {
    capacity: usize,
    /// Moves on every use; an entry's last use orders the evictions.
    clock: u64,
    entries: HashMap<String, (Arc<T>, u64)>,
    by_use: BTreeMap<u64, String>,
}

impl<T> HeadCache<T> {
    pub fn new(capacity: usize) -> Self {
        HeadCache {
            inner: Mutex::new(Lru {
                capacity,
                clock: 0,
                entries: HashMap::new(),
                by_use: BTreeMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru<T>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The entry of `key`, if there is one.
    pub fn get(&self, key: &str) -> Option<Arc<T>> {
        self.lock().touch(key)
    }

    /// The entry of `key`, or a new one made by `make` (evicting past the capacity).
    pub fn get_or_insert_with(&self, key: &str, make: impl FnOnce() -> T) -> Arc<T> {
        let mut lru = self.lock();
        if let Some(found) = lru.touch(key) {
            return found;
        }
        let value = Arc::new(make());
        lru.insert(key, value.clone());
        value
    }

    /// Puts `value` in for `key`, replacing what was there.
    pub fn insert(&self, key: &str, value: Arc<T>) {
        let mut lru = self.lock();
        lru.remove(key);
        lru.insert(key, value);
    }

    /// Drops the entry of `key` whoever holds it.
    pub fn remove(&self, key: &str) {
        self.lock().remove(key);
    }

    /// Whether `value` is the entry of `key`.
    pub fn holds(&self, key: &str, value: &Arc<T>) -> bool {
        let lru = self.lock();
        lru.entries
            .get(key)
            .is_some_and(|(v, _)| Arc::ptr_eq(v, value))
    }

    /// Drops the entry of `key` if it is still `value`.
    pub fn remove_if(&self, key: &str, value: &Arc<T>) {
        let mut lru = self.lock();
        if lru
            .entries
            .get(key)
            .is_some_and(|(v, _)| Arc::ptr_eq(v, value))
        {
            lru.remove(key);
        }
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Lru<T> {
    fn touch(&mut self, key: &str) -> Option<Arc<T>> {
        self.clock += 1;
        let clock = self.clock;
        let (value, used) = self.entries.get_mut(key)?;
        let value = value.clone();
        let key = self.by_use.remove(used).unwrap_or_else(|| key.to_string());
        *used = clock;
        self.by_use.insert(clock, key);
        Some(value)
    }

    fn insert(&mut self, key: &str, value: Arc<T>) {
        self.clock += 1;
        self.entries.insert(key.to_string(), (value, self.clock));
        self.by_use.insert(self.clock, key.to_string());
        self.evict();
    }

    fn remove(&mut self, key: &str) {
        if let Some((_, used)) = self.entries.remove(key) {
            self.by_use.remove(&used);
        }
    }

    /// Evicts the least recently used entries that nobody holds until the capacity is kept
    /// or only held ones are left; those keep their place, to be looked at first next time.
    fn evict(&mut self) {
        let mut held = Vec::new();
        while self.entries.len() > self.capacity {
            let Some((used, key)) = self.by_use.pop_first() else {
                break;
            };
            match self.entries.get(&key) {
                Some((value, _)) if Arc::strong_count(value) > 1 => held.push((used, key)),
                _ => {
                    self.entries.remove(&key);
                }
            }
        }
        self.by_use.extend(held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys<T>(c: &HeadCache<T>) -> Vec<String> {
        let lru = c.lock();
        lru.by_use.values().cloned().collect()
    }

    #[test]
    fn keeps_at_most_its_capacity_evicting_the_least_recently_used() {
        let c = HeadCache::new(2);
        c.get_or_insert_with("a", || 1);
        c.get_or_insert_with("b", || 2);
        c.get_or_insert_with("a", || 0);
        c.get_or_insert_with("c", || 3);
        assert_eq!(keys(&c), ["a", "c"]);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get("a").as_deref(), Some(&1), "a was kept");
        assert!(c.get("b").is_none());
        assert_eq!(
            *c.get_or_insert_with("b", || 4),
            4,
            "b was evicted and made anew"
        );
    }

    #[test]
    fn an_entry_someone_holds_is_never_evicted() {
        let c = HeadCache::new(1);
        let held = c.get_or_insert_with("a", || 1);
        c.get_or_insert_with("b", || 2);
        c.get_or_insert_with("c", || 3);
        assert_eq!(
            keys(&c),
            ["a", "c"],
            "over capacity rather than evict a held entry"
        );
        assert!(Arc::ptr_eq(&held, &c.get_or_insert_with("a", || 0)));
        drop(held);
        c.get_or_insert_with("d", || 4);
        assert_eq!(keys(&c), ["d"]);
    }

    #[test]
    fn a_held_entry_keeps_its_age_and_goes_first_once_released() {
        let c = HeadCache::new(2);
        let held = c.get_or_insert_with("a", || 1);
        c.get_or_insert_with("b", || 2);
        c.get_or_insert_with("c", || 3);
        assert_eq!(keys(&c), ["a", "c"]);
        drop(held);
        c.get_or_insert_with("d", || 4);
        assert_eq!(keys(&c), ["c", "d"]);
    }

    #[test]
    fn removing_only_drops_the_entry_it_names() {
        let c = HeadCache::new(4);
        let a = c.get_or_insert_with("a", || 1);
        c.insert("a", Arc::new(2));
        assert!(!c.holds("a", &a));
        c.remove_if("a", &a);
        assert_eq!(*c.get_or_insert_with("a", || 0), 2, "a newer entry stays");
        let current = c.get_or_insert_with("a", || 0);
        assert!(c.holds("a", &current));
        c.remove_if("a", &current);
        c.remove("missing");
        assert!(c.is_empty());
    }

    #[test]
    fn a_capacity_of_zero_keeps_only_what_is_held() {
        let c = HeadCache::new(0);
        let a = c.get_or_insert_with("a", || 1);
        assert_eq!(c.len(), 1);
        drop(a);
        c.get_or_insert_with("b", || 2);
        assert_eq!(keys(&c), ["b"], "a went as soon as another came");
    }
}
