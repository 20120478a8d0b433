//! State groups as the services use them: ids given out in memory (a group is written with
//! the event that makes it), the rule for when a new group is a delta and when a whole state,
//! the groups read back through a small cache, and the state after any stored event.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use crate::service::Result;
use crate::storage::graph::{NewStateGroup, StateIds};
use crate::storage::Storage;

/// Deltas a group may sit under before a whole state is stored again: reading a group walks
/// its chain, writing a whole one costs the room's size.
pub(crate) const MAX_CHAIN: i64 = 64;

/// Groups kept in memory, read back from storage (each a whole state's ids).
const CACHED_GROUPS: usize = 256;

/// The ids of state groups and the groups read lately.
pub(crate) struct StateGroups {
    next: AtomicI64,
    cache: Mutex<HashMap<i64, Arc<StateIds>>>,
}

impl StateGroups {
    /// Gives out ids after `max_stored`, the highest one stored.
    pub(crate) fn new(max_stored: i64) -> StateGroups {
        StateGroups {
            next: AtomicI64::new(max_stored + 1),
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn allocate(&self) -> i64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// The whole state of group `id`.
    pub(crate) async fn load(&self, storage: &Storage, id: i64) -> Result<Arc<StateIds>> {
        if let Some(state) = self.cached(id) {
            return Ok(state);
        }
        let (state, _) = storage.state_group(id).await?;
        let state = Arc::new(state);
        self.remember(id, state.clone());
        Ok(state)
    }

    fn cached(&self, id: i64) -> Option<Arc<StateIds>> {
        self.cache.lock().ok()?.get(&id).cloned()
    }

    /// Keeps a group's whole state for the next read of it.
    pub(crate) fn remember(&self, id: i64, state: Arc<StateIds>) {
        if let Ok(mut cache) = self.cache.lock() {
            // Crude but bounded: the groups read are mostly the newest of a few rooms.
            if cache.len() >= CACHED_GROUPS {
                cache.clear();
            }
            cache.insert(id, state);
        }
    }

    /// The state after the stored event `event_id`, wherever it is stored; `None` for an
    /// event not stored or stored without its state (a rejected one).
    pub(crate) async fn state_after(
        &self,
        storage: &Storage,
        event_id: &str,
    ) -> Result<Option<Arc<StateIds>>> {
        let Some(stored) = storage.stored_pdu(event_id).await? else {
            return Ok(None);
        };
        match stored.state_group {
            Some(group) => Ok(Some(self.load(storage, group).await?)),
            None => Ok(storage.linear_state_after(event_id).await?.map(Arc::new)),
        }
    }
}

/// The group of the state after `change` is applied to a room whose current group is
/// `current` (`(id, chain)`): a delta over it while the chain is short, else the whole state,
/// which `whole` lists.
pub(crate) fn next_group(
    id: i64,
    room_id: &str,
    current: Option<(i64, i64)>,
    change: Vec<(String, String, String)>,
    whole: impl FnOnce() -> Vec<(String, String, String)>,
) -> NewStateGroup {
    match current {
        Some((parent, chain)) if chain + 1 < MAX_CHAIN => NewStateGroup {
            id,
            room_id: room_id.to_string(),
            parent: Some(parent),
            chain: chain + 1,
            entries: change,
        },
        _ => NewStateGroup {
            id,
            room_id: room_id.to_string(),
            parent: None,
            chain: 0,
            entries: whole(),
        },
    }
}

/// The entries of `state` that differ from `base` (what a delta over `base` holds).
pub(crate) fn changes(base: &StateIds, state: &StateIds) -> Vec<(String, String, String)> {
    let mut out: Vec<_> = state
        .iter()
        .filter(|(key, id)| base.get(*key) != Some(*id))
        .map(|((kind, key), id)| (kind.clone(), key.clone(), id.clone()))
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(kind: &str, key: &str, id: &str) -> (String, String, String) {
        (kind.into(), key.into(), id.into())
    }

    #[test]
    fn a_new_group_is_a_delta_while_the_chain_is_short_and_whole_after() {
        let change = vec![e("m.room.name", "", "$n")];
        let whole = || vec![e("m.room.create", "", "$c"), e("m.room.name", "", "$n")];
        let delta = next_group(5, "!r", Some((4, 3)), change.clone(), whole);
        assert_eq!((delta.parent, delta.chain), (Some(4), 4));
        assert_eq!(delta.entries, change);
        let full = next_group(6, "!r", Some((5, MAX_CHAIN - 1)), change.clone(), whole);
        assert_eq!((full.parent, full.chain, full.entries.len()), (None, 0, 2));
        let first = next_group(1, "!r", None, change, whole);
        assert_eq!((first.parent, first.entries.len()), (None, 2));
    }

    #[test]
    fn changes_are_the_entries_that_are_new_or_differ() {
        let base: StateIds = [
            (("a".into(), "".into()), "$1".into()),
            (("b".into(), "".into()), "$2".into()),
        ]
        .into();
        let mut state = base.clone();
        state.insert(("b".into(), "".into()), "$3".into());
        state.insert(("c".into(), "x".into()), "$4".into());
        assert_eq!(
            changes(&base, &state),
            vec![e("b", "", "$3"), e("c", "x", "$4")]
        );
    }
}
