//! The room → interested services cache: which services want every event of a room because
//! of its id, its aliases or its local members. A committed membership change or an alias
//! change drops the room's entry; a registry change drops them all. Matching an event is then
//! a map lookup plus the event's own sender and state key, not a scan of the room.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::registration::Interest;
use crate::lock::lock;

#[derive(Default)]
pub(crate) struct RoomInterestCache {
    rooms: Mutex<HashMap<String, Interest>>,
    /// Moves on every invalidation, so that an interest computed before one is not cached
    /// after it.
    generation: AtomicU64,
}

impl RoomInterestCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Interest>> {
        lock(&self.rooms)
    }

    pub(crate) fn get(&self, room_id: &str) -> Option<Interest> {
        self.lock().get(room_id).cloned()
    }

    /// Read before computing an interest; hand it back to [`RoomInterestCache::insert`].
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Caches `interest`, unless something changed since `generation` was read.
    pub(crate) fn insert(&self, room_id: &str, interest: Interest, generation: u64) {
        let mut rooms = self.lock();
        if self.generation.load(Ordering::SeqCst) == generation {
            rooms.insert(room_id.to_string(), interest);
        }
    }

    pub(crate) fn forget_room(&self, room_id: &str) {
        let mut rooms = self.lock();
        self.generation.fetch_add(1, Ordering::SeqCst);
        rooms.remove(room_id);
    }

    pub(crate) fn clear(&self) {
        let mut rooms = self.lock();
        self.generation.fetch_add(1, Ordering::SeqCst);
        rooms.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_change_drops_its_entry() {
        let c = RoomInterestCache::default();
        c.insert("!a:x", Interest::default(), c.generation());
        assert!(c.get("!a:x").is_some());
        c.forget_room("!a:x");
        assert!(c.get("!a:x").is_none());
    }

    #[test]
    fn an_interest_computed_before_a_change_is_not_cached() {
        let c = RoomInterestCache::default();
        let before = c.generation();
        c.forget_room("!a:x");
        c.insert("!a:x", Interest::default(), before);
        assert!(c.get("!a:x").is_none());
    }

    #[test]
    fn clearing_drops_every_room() {
        let c = RoomInterestCache::default();
        c.insert("!a:x", Interest::default(), c.generation());
        c.insert("!b:x", Interest::default(), c.generation());
        c.clear();
        assert!(c.get("!a:x").is_none() && c.get("!b:x").is_none());
    }
}
