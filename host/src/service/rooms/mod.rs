//! Rooms: building, authorizing, hashing, signing and appending events; the current state of
//! the rooms in use kept in memory for the write path (a bounded cache, reloaded from
//! storage); membership, room creation and aliases.

pub(crate) mod alias;
pub mod auth;
pub(crate) mod auth_events;
pub(crate) mod backfilled;
pub mod content;
pub(crate) mod create;
pub(crate) mod graph;
pub(crate) mod heads;
pub(crate) mod joined;
pub(crate) mod membership;
pub mod pdu;
pub mod power_levels;
pub(crate) mod recent;
pub(crate) mod relations;
pub(crate) mod remote;
pub mod state;
// Its callers are federation's checks of incoming PDUs (service/federation, being written
// beside it); until they land, only its tests call it.
#[allow(dead_code)]
pub(crate) mod state_res;
pub(crate) mod summary;
pub(crate) mod timeline;
pub(crate) mod txn;
pub(crate) mod upgrade;
pub(crate) mod values;
pub(crate) mod visibility;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{OwnedMappedMutexGuard, OwnedMutexGuard};

use crate::service::keys::ServerKey;
use crate::service::push::kept::KeptRules;
use crate::service::{Error, Result};
use crate::storage::writer::Writer;
use crate::storage::Storage;

use heads::HeadCache;
use pdu::Pdu;
use state::RoomState;

/// Called with a room id when the room's directory aliases change.
pub(crate) type AliasListener = Arc<dyn Fn(&str) + Send + Sync>;

/// Whole state events by `(type, state_key)`, read from storage.
pub(crate) type StateMap = HashMap<(String, String), Arc<Pdu>>;

/// Rooms whose heads stay in memory unless configured otherwise. A head costs about 6 KB for
/// a small room (measured: bench/README.md, "Room memory") and far more for a large one, while
/// reloading one is a single indexed read of its state rows: the thousand rooms used last
/// stay, an idle one costs nothing here.
pub(crate) const DEFAULT_HEAD_CACHE_ROOMS: usize = 1_000;

/// What the heads in memory may weigh together (their states' bytes, see
/// [`RoomState::bytes`]) unless configured otherwise: a few rooms of tens of thousands of
/// members fill it, where a count of rooms alone would let a thousand of them stay.
pub(crate) const DEFAULT_HEAD_CACHE_BYTES: usize = 64 << 20;

/// What the write path needs of a room: its state and where its DAG ends.
pub(crate) struct RoomHead {
    pub(crate) state: RoomState,
    /// The room's forward extremities, deepest first: a new event names them as its
    /// `prev_events` (empty before the create event).
    pub(crate) extremities: Vec<String>,
    /// The deepest extremity's depth.
    pub(crate) depth: i64,
    /// The state group of `state`, and its chain (see [`graph::next_group`]); `None` before
    /// the create event.
    pub(crate) group: Option<(i64, i64)>,
}

impl RoomHead {
    /// The head of a room not yet created.
    pub(crate) fn empty() -> RoomHead {
        RoomHead {
            state: RoomState::default(),
            extremities: Vec::new(),
            depth: 0,
            group: None,
        }
    }
}

/// A room's entry in the head cache: its lock, and its head once loaded (`None` until the
/// first user loads it from storage, under the lock).
pub(crate) type HeadSlot = tokio::sync::Mutex<Option<RoomHead>>;

/// A room's head, locked: the room's events are built one at a time. It holds its cache
/// entry, which therefore stays (see [`heads`]); released, it tells the cache what the head
/// weighs now.
pub(crate) struct LockedHead<'a> {
    cache: &'a HeadCache<HeadSlot>,
    room_id: &'a str,
    slot: Arc<HeadSlot>,
    guard: OwnedMappedMutexGuard<Option<RoomHead>, RoomHead>,
}

impl<'a> LockedHead<'a> {
    fn new(
        cache: &'a HeadCache<HeadSlot>,
        room_id: &'a str,
        slot: Arc<HeadSlot>,
        guard: OwnedMutexGuard<Option<RoomHead>>,
    ) -> Result<LockedHead<'a>> {
        let guard = OwnedMutexGuard::try_map(guard, Option::as_mut)
            .map_err(|_| Error::Internal("a room head was used before it was loaded".into()))?;
        Ok(LockedHead {
            cache,
            room_id,
            slot,
            guard,
        })
    }

    /// A reference that keeps the room's cache entry from eviction while it is held.
    fn pin(&self) -> Arc<HeadSlot> {
        self.slot.clone()
    }
}

impl Drop for LockedHead<'_> {
    fn drop(&mut self) {
        let weight = self.guard.state.bytes()
            + self
                .guard
                .extremities
                .iter()
                .map(String::len)
                .sum::<usize>();
        self.cache.weigh(self.room_id, &self.slot, weight);
    }
}

impl std::ops::Deref for LockedHead<'_> {
    type Target = RoomHead;

    fn deref(&self) -> &RoomHead {
        &self.guard
    }
}

impl std::ops::DerefMut for LockedHead<'_> {
    fn deref_mut(&mut self) -> &mut RoomHead {
        &mut self.guard
    }
}

pub(crate) struct RoomService {
    storage: Storage,
    writer: Writer,
    key: Arc<ServerKey>,
    server_name: String,
    /// One slot per room serializes event creation within the room; rooms go in parallel.
    heads: HeadCache<HeadSlot>,
    txns: txn::TxnCache,
    pub(crate) recent: Arc<recent::RecentEvents>,
    /// Told the room id whenever a room's aliases change (the appservice interest cache).
    alias_changed: AliasListener,
    /// The push rules of the users who changed theirs, for evaluating each new event.
    pub(crate) push_rules: Arc<KeptRules>,
    /// The `origin_server_ts` of the last create event made (see [`RoomService::next_create_ts`]).
    last_create_ts: std::sync::atomic::AtomicI64,
    /// State group ids, and the groups read lately.
    pub(crate) groups: Arc<graph::StateGroups>,
    /// Events of other servers queued for the timeline and not committed yet.
    arriving: remote::Arriving,
}

impl RoomService {
    pub(crate) fn new(
        storage: Storage,
        writer: Writer,
        key: Arc<ServerKey>,
        server_name: String,
        recent: Arc<recent::RecentEvents>,
        alias_changed: AliasListener,
        groups: Arc<graph::StateGroups>,
    ) -> Self {
        RoomService {
            storage,
            writer,
            key,
            server_name,
            heads: HeadCache::new(DEFAULT_HEAD_CACHE_ROOMS, DEFAULT_HEAD_CACHE_BYTES),
            txns: txn::TxnCache::default(),
            recent,
            alias_changed,
            push_rules: Default::default(),
            last_create_ts: Default::default(),
            groups,
            arriving: Default::default(),
        }
    }

    /// A timestamp for a new room's create event: now, or one past the last one when that is
    /// not earlier. A version 12 room id is the hash of its create event, which two creations
    /// of the same content by the same user in one millisecond would otherwise share.
    fn next_create_ts(&self) -> i64 {
        use std::sync::atomic::Ordering;
        let now = crate::service::now_ms();
        let previous = self
            .last_create_ts
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
                Some(now.max(last + 1))
            })
            .unwrap_or(now);
        now.max(previous + 1)
    }

    /// Keeps at most `rooms` heads, of at most `bytes` together, in memory (more only while
    /// they are in use).
    pub(crate) fn with_head_cache(mut self, rooms: usize, bytes: usize) -> Self {
        self.heads = HeadCache::new(rooms, bytes);
        self
    }

    /// Evaluates new events with these kept push rules (loaded at start-up).
    pub(crate) fn with_push_rules(mut self, kept: KeptRules) -> Self {
        self.push_rules = Arc::new(kept);
        self
    }

    /// Locks the room's head, loading it from storage if it is not in memory; `NotFound` for
    /// an unknown room.
    async fn lock_head<'a>(&'a self, room_id: &'a str) -> Result<LockedHead<'a>> {
        loop {
            let slot = match self.heads.get(room_id) {
                Some(slot) => slot,
                // Checked before taking a place in the cache: asking for rooms that do not
                // exist pushes nothing out.
                None if !self.storage.room_exists(room_id).await? => {
                    return Err(Error::NotFound(format!("unknown room {room_id}")))
                }
                None => self
                    .heads
                    .get_or_insert_with(room_id, || tokio::sync::Mutex::new(None)),
            };
            let mut guard = slot.clone().lock_owned().await;
            // Dropped from the cache while we waited (a failed load or commit): the room's
            // one slot is the cache's current one.
            if !self.heads.holds(room_id, &slot) {
                continue;
            }
            if guard.is_none() {
                match self.load_head(room_id).await {
                    Ok(head) => *guard = Some(head),
                    Err(e) => {
                        self.heads.remove_if(room_id, &slot);
                        return Err(e);
                    }
                }
            }
            return LockedHead::new(&self.heads, room_id, slot, guard);
        }
    }

    /// Puts the empty head of a room being created in the cache, locked.
    async fn lock_new_head<'a>(&'a self, room_id: &'a str) -> Result<LockedHead<'a>> {
        let slot = Arc::new(tokio::sync::Mutex::new(Some(RoomHead::empty())));
        let guard = slot.clone().lock_owned().await;
        self.heads.insert(room_id, slot.clone());
        LockedHead::new(&self.heads, room_id, slot, guard)
    }

    async fn load_head(&self, room_id: &str) -> Result<RoomHead> {
        let mut events = Vec::new();
        for row in self.storage.current_state(room_id).await? {
            events.push(Pdu::try_from(row)?);
        }
        let extremities = self.storage.room_extremities(room_id).await?;
        let depth = extremities.iter().map(|(_, d)| *d).max().unwrap_or(0);
        let group = match self.storage.room_state_group(room_id).await? {
            Some(id) => Some((id, self.storage.state_group_chain(id).await?)),
            None => None,
        };
        Ok(RoomHead {
            state: events.into_iter().collect(),
            extremities: extremities.into_iter().map(|(id, _)| id).collect(),
            depth,
            group,
        })
    }

    /// Forgets the cached head so the next write reloads it from storage (after a failed
    /// commit, the in-memory head is ahead of the database).
    fn invalidate(&self, room_id: &str) {
        self.heads.remove(room_id);
    }

    /// `NotFound` unless the room exists (asked of storage when its head is not in memory,
    /// so that a read does not load it).
    pub(crate) async fn require_room(&self, room_id: &str) -> Result<()> {
        if self.heads.get(room_id).is_some() || self.storage.room_exists(room_id).await? {
            return Ok(());
        }
        Err(Error::NotFound(format!("unknown room {room_id}")))
    }

    /// Reads the room's current state as the write path has it.
    pub(crate) async fn read_state<R>(
        &self,
        room_id: &str,
        read: impl FnOnce(&RoomState) -> R,
    ) -> Result<R> {
        let head = self.lock_head(room_id).await?;
        Ok(read(&head.state))
    }

    /// The content of one event of the room's current state.
    pub(crate) async fn state_content(
        &self,
        room_id: &str,
        kind: &str,
        state_key: &str,
    ) -> Result<Option<serde_json::Value>> {
        self.read_state(room_id, |s| s.get(kind, state_key).map(|e| e.content()))
            .await
    }

    /// The room's current state, whole events, from storage.
    pub(crate) async fn current_state(&self, room_id: &str) -> Result<StateMap> {
        self.require_room(room_id).await?;
        let mut state = StateMap::new();
        for row in self.storage.current_state(room_id).await? {
            let p = Pdu::try_from(row)?;
            let key = (p.kind.clone(), p.state_key.clone().unwrap_or_default());
            state.insert(key, Arc::new(p));
        }
        Ok(state)
    }

    /// One event of the room's current state, from storage.
    pub(crate) async fn state_event(
        &self,
        room_id: &str,
        kind: &str,
        state_key: &str,
    ) -> Result<Option<Arc<Pdu>>> {
        self.require_room(room_id).await?;
        match self.storage.state_event(room_id, kind, state_key).await? {
            Some(row) => Ok(Some(Arc::new(Pdu::try_from(row)?))),
            None => Ok(None),
        }
    }

    pub(crate) async fn event(&self, event_id: &str) -> Result<Option<Pdu>> {
        match self.storage.event(event_id).await? {
            Some(row) => Ok(Some(Pdu::try_from(row)?)),
            None => Ok(None),
        }
    }

    /// An event in client format for `viewer`, with its redaction applied and, for a user,
    /// its relations aggregated.
    pub(crate) async fn client_event(
        &self,
        pdu: &Pdu,
        viewer: Option<(&str, &str)>,
        with_room_id: bool,
    ) -> Result<serde_json::Value> {
        let mut one = self
            .client_events(std::slice::from_ref(pdu), viewer, with_room_id)
            .await?;
        Ok(one.pop().unwrap_or_default())
    }

    /// Client events for a list, in order, as [`RoomService::client_event`] serves each.
    pub(crate) async fn client_events(
        &self,
        pdus: &[Pdu],
        viewer: Option<(&str, &str)>,
        with_room_id: bool,
    ) -> Result<Vec<serde_json::Value>> {
        let mut out = Vec::with_capacity(pdus.len());
        for pdu in pdus {
            let because = match &pdu.redacted_by {
                Some(id) => self.event(id).await?.map(|r| r.to_client(None, None, true)),
                None => None,
            };
            out.push(pdu.to_client(viewer, because, with_room_id));
        }
        if let Some((user, _)) = viewer {
            self.bundle_relations(pdus, &mut out, user).await?;
        }
        Ok(out)
    }
}
