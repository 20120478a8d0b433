//! Rooms: building, authorizing, hashing, signing and appending events; the current state of
//! each room kept in memory for the write path; membership, room creation and aliases.

pub mod alias;
pub mod auth;
pub mod content;
pub mod create;
pub mod membership;
pub mod pdu;
pub mod power_levels;
pub mod recent;
pub mod timeline;
pub mod txn;
pub mod visibility;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::service::keys::ServerKey;
use crate::service::{Error, Result};
use crate::storage::writer::Writer;
use crate::storage::Storage;

use auth::StateMap;
use pdu::Pdu;

/// Called with a room id when the room's directory aliases change.
pub type AliasListener = Arc<dyn Fn(&str) + Send + Sync>;

/// What the write path needs of a room: its state and where its DAG ends.
pub struct RoomHead {
    pub state: StateMap,
    pub latest: Option<String>,
    pub depth: i64,
}

pub struct RoomService {
    storage: Storage,
    writer: Writer,
    key: Arc<ServerKey>,
    server_name: String,
    /// One lock per room serializes event creation within the room; rooms go in parallel.
    heads: Mutex<HashMap<String, Arc<tokio::sync::Mutex<RoomHead>>>>,
    txns: txn::TxnCache,
    pub recent: Arc<recent::RecentEvents>,
    /// Told the room id whenever a room's aliases change (the appservice interest cache).
    alias_changed: AliasListener,
}

impl RoomService {
    pub fn new(
        storage: Storage,
        writer: Writer,
        key: Arc<ServerKey>,
        server_name: String,
        recent: Arc<recent::RecentEvents>,
        alias_changed: AliasListener,
    ) -> Self {
        RoomService {
            storage,
            writer,
            key,
            server_name,
            heads: Mutex::new(HashMap::new()),
            txns: txn::TxnCache::default(),
            recent,
            alias_changed,
        }
    }

    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    /// The room's head, loaded from storage on first use; `NotFound` for an unknown room.
    async fn head(&self, room_id: &str) -> Result<Arc<tokio::sync::Mutex<RoomHead>>> {
        if let Some(h) = self.lock_heads().get(room_id) {
            return Ok(h.clone());
        }
        if !self.storage.room_exists(room_id).await? {
            return Err(Error::NotFound(format!("unknown room {room_id}")));
        }
        let mut state = StateMap::new();
        for row in self.storage.current_state(room_id).await? {
            let p = Arc::new(Pdu::try_from(row)?);
            let key = (p.kind.clone(), p.state_key.clone().unwrap_or_default());
            state.insert(key, p);
        }
        let (latest, depth) = match self.storage.room_head(room_id).await? {
            Some((id, depth)) => (Some(id), depth),
            None => (None, 0),
        };
        let head = Arc::new(tokio::sync::Mutex::new(RoomHead {
            state,
            latest,
            depth,
        }));
        // Another request may have loaded it meanwhile: keep the first.
        Ok(self
            .lock_heads()
            .entry(room_id.to_string())
            .or_insert(head)
            .clone())
    }

    fn lock_heads(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, Arc<tokio::sync::Mutex<RoomHead>>>> {
        self.heads.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets the cached head so the next write reloads it from storage (after a failed
    /// commit, the in-memory head is ahead of the database).
    fn invalidate(&self, room_id: &str) {
        self.lock_heads().remove(room_id);
    }

    /// The room's current state, from memory.
    pub async fn current_state(&self, room_id: &str) -> Result<StateMap> {
        let head = self.head(room_id).await?;
        let guard = head.lock().await;
        Ok(guard.state.clone())
    }

    /// One state event of the room's current state.
    pub async fn state_event(
        &self,
        room_id: &str,
        kind: &str,
        state_key: &str,
    ) -> Result<Option<Arc<Pdu>>> {
        let head = self.head(room_id).await?;
        let guard = head.lock().await;
        Ok(guard
            .state
            .get(&(kind.to_string(), state_key.to_string()))
            .cloned())
    }

    pub async fn event(&self, event_id: &str) -> Result<Option<Pdu>> {
        match self.storage.event(event_id).await? {
            Some(row) => Ok(Some(Pdu::try_from(row)?)),
            None => Ok(None),
        }
    }

    /// An event in client format for `viewer`, with its redaction applied.
    pub async fn client_event(
        &self,
        pdu: &Pdu,
        viewer: Option<(&str, &str)>,
        with_room_id: bool,
    ) -> Result<serde_json::Value> {
        let because = match &pdu.redacted_by {
            Some(id) => self.event(id).await?.map(|r| r.to_client(None, None, true)),
            None => None,
        };
        Ok(pdu.to_client(viewer, because, with_room_id))
    }

    /// Client events for a list, in order.
    pub async fn client_events(
        &self,
        pdus: &[Pdu],
        viewer: Option<(&str, &str)>,
        with_room_id: bool,
    ) -> Result<Vec<serde_json::Value>> {
        let mut out = Vec::with_capacity(pdus.len());
        for p in pdus {
            out.push(self.client_event(p, viewer, with_room_id).await?);
        }
        Ok(out)
    }
}
