//! The rooms this server is joining through another server right now. The resident server
//! sends the room's next events as soon as it has taken the join, which can be before the
//! room is stored here: a PDU of such a room waits for the join instead of being refused as
//! one of a room this server is not in (and lost, since the sender counts it delivered).
//! Also each room's turn for our users' joins: one at a time, so that a join that finds the
//! room stored by the one before it joins here instead of storing the room a second time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedMutexGuard};

use crate::lock::lock;

/// Joins in progress, by room.
#[derive(Default)]
pub(crate) struct Joining {
    rooms: Mutex<HashMap<String, usize>>,
    /// Told whenever a join ends.
    ended: Notify,
    /// Each room's turn for joins, while some join of it holds or waits for it.
    turns: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// A room's turn for one join; the next waiting join has it when this is dropped.
pub(crate) struct Turn<'a> {
    joining: &'a Joining,
    room_id: String,
    guard: Option<OwnedMutexGuard<()>>,
}

/// A join in progress; it ends when dropped (stored, failed or cut off).
pub(crate) struct JoinInProgress<'a> {
    joining: &'a Joining,
    room_id: String,
}

impl Joining {
    /// Marks a join of `room_id` as in progress until the answer is dropped.
    pub(crate) fn start(&self, room_id: &str) -> JoinInProgress<'_> {
        *lock(&self.rooms).entry(room_id.to_string()).or_default() += 1;
        JoinInProgress {
            joining: self,
            room_id: room_id.to_string(),
        }
    }

    /// Waits for `room_id`'s turn for a join: until the joins of it that came first ended.
    pub(crate) async fn turn(&self, room_id: &str) -> Turn<'_> {
        let mutex = lock(&self.turns)
            .entry(room_id.to_string())
            .or_default()
            .clone();
        Turn {
            joining: self,
            room_id: room_id.to_string(),
            guard: Some(mutex.lock_owned().await),
        }
    }

    fn in_progress(&self, room_id: &str) -> bool {
        lock(&self.rooms).contains_key(room_id)
    }

    /// Waits, `limit` at most, until no join of `room_id` is in progress; answers whether
    /// one was.
    pub(crate) async fn wait(&self, room_id: &str, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        let mut waited = false;
        loop {
            // Registered before the check, so that a join ending in between still wakes it.
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if !self.in_progress(room_id) {
                return waited;
            }
            waited = true;
            if tokio::time::timeout_at(deadline, ended).await.is_err() {
                return true;
            }
        }
    }
}

impl Drop for JoinInProgress<'_> {
    fn drop(&mut self) {
        let mut rooms = lock(&self.joining.rooms);
        if let Some(n) = rooms.get_mut(&self.room_id) {
            *n -= 1;
            if *n == 0 {
                rooms.remove(&self.room_id);
            }
        }
        drop(rooms);
        self.joining.ended.notify_waiters();
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut turns = lock(&self.joining.turns);
        drop(self.guard.take());
        // The map's own reference is the last one: no join holds or waits for the turn.
        if turns
            .get(&self.room_id)
            .is_some_and(|m| Arc::strong_count(m) == 1)
        {
            turns.remove(&self.room_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wait_ends_when_the_last_join_of_the_room_ends() {
        let joining = Joining::default();
        assert!(!joining.wait("!r", Duration::from_secs(5)).await);
        let first = joining.start("!r");
        let second = joining.start("!r");
        let other = joining.start("!other");
        let waiting = joining.wait("!r", Duration::from_secs(5));
        tokio::pin!(waiting);
        drop(first);
        drop(other);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), waiting.as_mut())
                .await
                .is_err(),
            "a join of the room is still in progress"
        );
        drop(second);
        assert!(waiting.await);
    }

    #[tokio::test]
    async fn joins_of_a_room_take_turns_and_the_last_one_leaves_nothing_behind() {
        let joining = Joining::default();
        let first = joining.turn("!r").await;
        let other = joining.turn("!other").await;
        let second = joining.turn("!r");
        tokio::pin!(second);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), second.as_mut())
                .await
                .is_err(),
            "the first join of the room still has its turn"
        );
        drop(first);
        let second = second.await;
        drop(other);
        drop(second);
        assert!(lock(&joining.turns).is_empty());
    }

    #[tokio::test]
    async fn a_wait_gives_up_at_its_limit() {
        let joining = Joining::default();
        let _stuck = joining.start("!r");
        assert!(joining.wait("!r", Duration::from_millis(20)).await);
    }
}
