//! The bounded cache of room heads: at most `capacity` rooms, weighing at most `max_weight`
//! together (a head's weight is what its holder last said it is: its state's bytes), keep
//! their write state in memory; the least recently used are evicted, and a room that comes
//! back is reloaded from storage. The weight bound is what keeps a few very large rooms from
//! holding gigabytes where a count of rooms would let them.
//!
//! A head is evicted only while the cache holds its only reference (`Arc::strong_count` of 1,
//! read under the cache's lock, which every other reference is cloned under). Everyone who
//! builds on a head, and every event of it still waiting for its commit, holds a reference:
//! so an evicted head has nothing in flight, storage has all of it, and a room never has two
//! heads at once (two locks would let two events build on the same parent).

use crate::lock::lock;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

pub(crate) struct HeadCache<T> {
    inner: Mutex<Lru<T>>,
}

struct Lru<T> {
    capacity: usize,
    max_weight: usize,
    /// The weights of the entries, together.
    weight: usize,
    /// Moves on every use; an entry's last use orders the evictions.
    clock: u64,
    entries: HashMap<String, Entry<T>>,
    by_use: BTreeMap<u64, String>,
}

struct Entry<T> {
    value: Arc<T>,
    used: u64,
    weight: usize,
}

impl<T> HeadCache<T> {
    pub(crate) fn new(capacity: usize, max_weight: usize) -> Self {
        HeadCache {
            inner: Mutex::new(Lru {
                capacity,
                max_weight,
                weight: 0,
                clock: 0,
                entries: HashMap::new(),
                by_use: BTreeMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru<T>> {
        lock(&self.inner)
    }

    /// The entry of `key`, if there is one.
    pub(crate) fn get(&self, key: &str) -> Option<Arc<T>> {
        self.lock().touch(key)
    }

    /// The entry of `key`, or a new one made by `make` (evicting past the capacity).
    pub(crate) fn get_or_insert_with(&self, key: &str, make: impl FnOnce() -> T) -> Arc<T> {
        let mut lru = self.lock();
        if let Some(found) = lru.touch(key) {
            return found;
        }
        let value = Arc::new(make());
        lru.insert(key, value.clone());
        value
    }

    /// Puts `value` in for `key`, replacing what was there.
    pub(crate) fn insert(&self, key: &str, value: Arc<T>) {
        let mut lru = self.lock();
        lru.remove(key);
        lru.insert(key, value);
    }

    /// Drops the entry of `key` whoever holds it.
    pub(crate) fn remove(&self, key: &str) {
        self.lock().remove(key);
    }

    /// Whether `value` is the entry of `key`.
    pub(crate) fn holds(&self, key: &str, value: &Arc<T>) -> bool {
        let lru = self.lock();
        lru.entries
            .get(key)
            .is_some_and(|e| Arc::ptr_eq(&e.value, value))
    }

    /// Drops the entry of `key` if it is still `value`.
    pub(crate) fn remove_if(&self, key: &str, value: &Arc<T>) {
        let mut lru = self.lock();
        if lru
            .entries
            .get(key)
            .is_some_and(|e| Arc::ptr_eq(&e.value, value))
        {
            lru.remove(key);
        }
    }

    /// Sets the weight of the entry of `key` if it is still `value`, evicting past the bound
    /// (never `value` itself, which its caller holds).
    pub(crate) fn weigh(&self, key: &str, value: &Arc<T>, weight: usize) {
        let mut lru = self.lock();
        let lru = &mut *lru;
        match lru.entries.get_mut(key) {
            Some(e) if Arc::ptr_eq(&e.value, value) => {
                lru.weight = lru.weight - e.weight + weight;
                e.weight = weight;
            }
            _ => return,
        }
        lru.evict();
    }

    /// The weights of the entries, together.
    #[cfg(test)]
    pub(crate) fn weight(&self) -> usize {
        self.lock().weight
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().entries.len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Lru<T> {
    fn touch(&mut self, key: &str) -> Option<Arc<T>> {
        self.clock += 1;
        let clock = self.clock;
        let entry = self.entries.get_mut(key)?;
        let value = entry.value.clone();
        let key = self
            .by_use
            .remove(&entry.used)
            .unwrap_or_else(|| key.to_string());
        entry.used = clock;
        self.by_use.insert(clock, key);
        Some(value)
    }

    fn insert(&mut self, key: &str, value: Arc<T>) {
        self.clock += 1;
        let entry = Entry {
            value,
            used: self.clock,
            weight: 0,
        };
        self.entries.insert(key.to_string(), entry);
        self.by_use.insert(self.clock, key.to_string());
        self.evict();
    }

    fn remove(&mut self, key: &str) {
        if let Some(e) = self.entries.remove(key) {
            self.by_use.remove(&e.used);
            self.weight -= e.weight;
        }
    }

    fn over(&self) -> bool {
        self.entries.len() > self.capacity || self.weight > self.max_weight
    }

    /// Evicts the least recently used entries that nobody holds until the bounds are kept
    /// or only held ones are left; those keep their place, to be looked at first next time.
    fn evict(&mut self) {
        let mut held = Vec::new();
        while self.over() {
            let Some((used, key)) = self.by_use.pop_first() else {
                break;
            };
            match self.entries.get(&key) {
                Some(e) if Arc::strong_count(&e.value) > 1 => held.push((used, key)),
                _ => {
                    if let Some(e) = self.entries.remove(&key) {
                        self.weight -= e.weight;
                    }
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
        let c = HeadCache::new(2, usize::MAX);
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
        let c = HeadCache::new(1, usize::MAX);
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
        let c = HeadCache::new(2, usize::MAX);
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
        let c = HeadCache::new(4, usize::MAX);
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
    fn past_the_weight_bound_the_least_recently_used_go_but_never_a_held_one() {
        let c = HeadCache::new(10, 100);
        for k in ["a", "b", "c"] {
            let v = c.get_or_insert_with(k, || 0);
            c.weigh(k, &v, 40);
        }
        assert_eq!(keys(&c), ["b", "c"], "a went: 120 is past 100");
        assert_eq!(c.weight(), 80);

        // A room that grew while its holder had it: the others make room, it stays.
        let big = c.get_or_insert_with("d", || 0);
        c.weigh("d", &big, 150);
        assert_eq!(keys(&c), ["d"]);
        assert_eq!(c.weight(), 150);
        // Released, it is the least recently used once another comes.
        drop(big);
        let e = c.get_or_insert_with("e", || 0);
        c.weigh("e", &e, 10);
        assert_eq!(keys(&c), ["e"]);
        assert_eq!(c.weight(), 10);

        // A weight for an entry that was replaced meanwhile counts for nothing.
        c.insert("e", Arc::new(1));
        c.weigh("e", &e, 90);
        assert_eq!(c.weight(), 0);
        c.remove("e");
        assert!(c.is_empty());
    }

    #[test]
    fn a_capacity_of_zero_keeps_only_what_is_held() {
        let c = HeadCache::new(0, usize::MAX);
        let a = c.get_or_insert_with("a", || 1);
        assert_eq!(c.len(), 1);
        drop(a);
        c.get_or_insert_with("b", || 2);
        assert_eq!(keys(&c), ["b"], "a went as soon as another came");
    }
}
