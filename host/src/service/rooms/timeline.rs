//! The write path of the data map: build an event, check the auth rules against the room's
//! current state, hash and sign it, queue it for group commit, and update the room's head.
//! Events of one room are built one at a time under the room's lock; the commit is awaited
//! after the lock is released so that a room's sends share fsyncs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use tokio::sync::oneshot;

use super::auth::{self, Candidate};
use super::auth_events::auth_event_ids;
use super::content;
use super::graph;
use super::pdu::Pdu;
use super::state::StateEntry;
use super::txn::{Lookup, TxnKey};
use super::{HeadSlot, LockedHead, RoomHead, RoomService};
use crate::service::push::outcome::push_row;
use crate::service::room_version::RoomVersion;
use crate::service::{now_ms, Error, Result};
use crate::storage::events::NewEvent;
use crate::storage::graph::GraphRows;
use crate::storage::writer::WriteOp;
use crate::storage::StorageError;

/// The spec's limit on a whole event.
pub(crate) const MAX_EVENT_BYTES: usize = 65_536;

/// How deep event content (and account data) may nest. The stored event wraps the content (and
/// a state event's `unsigned.prev_content`) a few levels further down, /sync wraps both further,
/// and reading them back goes through JSON parsers that stop at 128 levels (ours, and clients'):
/// deeper content would make an event, or a sync response, that cannot be read.
pub(crate) const MAX_CONTENT_DEPTH: usize = 100;

/// An event a user wants to send.
#[derive(Debug, Clone)]
pub(crate) struct Draft {
    pub(crate) kind: String,
    pub(crate) state_key: Option<String>,
    pub(crate) sender: String,
    pub(crate) content: Value,
    pub(crate) redacts: Option<String>,
    /// `origin_server_ts`, when an appservice asserts it; otherwise now.
    pub(crate) ts: Option<i64>,
    /// `(device, txn_id)` of an idempotent client send.
    pub(crate) txn: Option<(String, String)>,
}

impl Draft {
    pub(crate) fn new(sender: &str, kind: &str, state_key: Option<&str>, content: Value) -> Draft {
        Draft {
            kind: kind.to_string(),
            state_key: state_key.map(str::to_string),
            sender: sender.to_string(),
            content,
            redacts: None,
            ts: None,
            txn: None,
        }
    }
}

/// An event handed to the group commit, or the earlier event of a repeated txnId.
pub(crate) enum Queued {
    Committing {
        pdu: Pdu,
        commit: Commit,
        txn_key: Option<TxnKey>,
        room_id: String,
    },
    Repeated(Pdu),
}

/// The commit of one event. Until it lands it holds the room's head in the cache: a head
/// evicted and reloaded from storage meanwhile would not have the event. Dropped before then
/// (a request given up), it leaves that wait to a task of its own.
pub(crate) struct Commit {
    rx: Option<oneshot::Receiver<crate::storage::Result<i64>>>,
    head: Option<Arc<HeadSlot>>,
}

impl Commit {
    pub(super) fn new(
        rx: oneshot::Receiver<crate::storage::Result<i64>>,
        head: Arc<HeadSlot>,
    ) -> Commit {
        Commit {
            rx: Some(rx),
            head: Some(head),
        }
    }

    /// The event's stream position once stored. Cancel-safe: the receiver stays in `self`
    /// until it has answered.
    async fn landed(&mut self) -> crate::storage::Result<i64> {
        let result = match self.rx.as_mut() {
            Some(rx) => rx.await.unwrap_or(Err(StorageError::WriterGone)),
            None => Err(StorageError::WriterGone),
        };
        self.rx = None;
        self.head = None;
        result
    }
}

impl Drop for Commit {
    fn drop(&mut self) {
        if let (Some(rx), Some(head)) = (self.rx.take(), self.head.take()) {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = rx.await;
                    drop(head);
                });
            }
        }
    }
}

impl Queued {
    pub(crate) fn event_id(&self) -> &str {
        match self {
            Queued::Committing { pdu, .. } | Queued::Repeated(pdu) => &pdu.event_id,
        }
    }

    /// Waits until the event is stored: answers it with its stream position. A failed commit
    /// drops the room's cached head (it had moved past an event that is not stored).
    pub(crate) async fn committed(self, rooms: &RoomService) -> Result<Pdu> {
        let (pdu, mut commit, txn_key, room_id) = match self {
            Queued::Repeated(pdu) => return Ok(pdu),
            Queued::Committing {
                pdu,
                commit,
                txn_key,
                room_id,
            } => (pdu, commit, txn_key, room_id),
        };
        let result = commit.landed().await;
        if let Some(key) = &txn_key {
            rooms.txns.finished(key, result.is_ok());
        }
        match result {
            Ok(stream) => Ok(Pdu { stream, ..pdu }),
            Err(e) => {
                rooms.invalidate(&room_id);
                Err(e.into())
            }
        }
    }
}

/// A built event waiting to be queued.
pub(super) struct Built {
    pub(super) pdu: Pdu,
    new_event: NewEvent,
    /// The room's version, whose rules built the event.
    version: &'static RoomVersion,
}

impl RoomService {
    /// Sends one event to an existing room and answers it once committed. A repeated client
    /// txnId answers the event it made the first time and stores nothing.
    pub(crate) async fn append(&self, room_id: &str, draft: Draft) -> Result<Pdu> {
        self.append_queued(room_id, draft)
            .await?
            .committed(self)
            .await
    }

    /// Builds, checks and queues one event for the group commit, and answers it before the
    /// commit: the room's head has moved on (a later event of the room builds on it), and
    /// [`Queued::committed`] waits for the write. A repeated client txnId answers the event of
    /// the first send.
    pub(crate) async fn append_queued(&self, room_id: &str, draft: Draft) -> Result<Queued> {
        let txn_key = draft.txn.as_ref().map(|(device, txn)| -> TxnKey {
            (
                draft.sender.clone(),
                device.clone(),
                format!("{room_id}/{}", draft.kind),
                txn.clone(),
            )
        });
        // Decided before taking the room's lock, so that a plain send never holds it across a
        // database read; a send made meanwhile is in the cache's recent map once we hold it.
        if let Some(key) = &txn_key {
            if let Some(existing) = self.seen_txn(key).await? {
                return Ok(Queued::Repeated(self.wait_for_event(key, &existing).await?));
            }
        }
        let mut guard = self.lock_head(room_id).await?;
        if let Some(key) = &txn_key {
            if let Lookup::Known(existing) = self.txns.lookup(key) {
                drop(guard);
                return Ok(Queued::Repeated(self.wait_for_event(key, &existing).await?));
            }
        }
        let redacted = match &draft.redacts {
            Some(target) => Some(
                self.check_redaction(&guard, room_id, &draft.sender, target)
                    .await?,
            ),
            None => None,
        };
        let built = self.build(&mut guard, room_id, draft, None)?;
        if let Some(original) = redacted {
            redact_in_state(&mut guard, &original, built.version);
        }
        if let Some(key) = &txn_key {
            self.txns.pending(key, &built.pdu.event_id);
        }
        let commit = Commit::new(
            self.writer
                .submit(WriteOp::Event(Box::new(built.new_event))),
            guard.pin(),
        );
        drop(guard);
        Ok(Queued::Committing {
            pdu: built.pdu,
            commit,
            txn_key,
            room_id: room_id.to_string(),
        })
    }

    /// Sends one event that another server must sign too before it is stored (an invite of
    /// one of its users): built under the room's lock, handed to `countersign` in federation
    /// form, and stored with the signatures it comes back with. The lock is held meanwhile,
    /// so that no event builds on one that may not be stored; a refusal stores nothing.
    pub(crate) async fn append_countersigned<'f>(
        &self,
        room_id: &str,
        draft: Draft,
        countersign: impl FnOnce(
            Value,
            &'static RoomVersion,
            String,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<Value>> + Send + 'f>,
        >,
    ) -> Result<Pdu> {
        let mut guard = self.lock_head(room_id).await?;
        let mut built = self.build(&mut guard, room_id, draft, None)?;
        let answer = countersign(
            built.pdu.to_federation(),
            built.version,
            built.pdu.event_id.clone(),
        )
        .await;
        let signed = match answer {
            Ok(signed) => signed,
            Err(e) => {
                // The head moved past the event: read it anew.
                drop(guard);
                self.invalidate(room_id);
                return Err(e);
            }
        };
        if let Some(sigs) = signed["signatures"].as_object() {
            for (server, keys) in sigs {
                built.pdu.json["signatures"][server] = keys.clone();
            }
        }
        built.new_event.json = built.pdu.json.to_string();
        let commit = Commit::new(
            self.writer
                .submit(WriteOp::Event(Box::new(built.new_event))),
            guard.pin(),
        );
        drop(guard);
        Queued::Committing {
            pdu: built.pdu,
            commit,
            txn_key: None,
            room_id: room_id.to_string(),
        }
        .committed(self)
        .await
    }

    /// The event an earlier send with this txn made, if any.
    async fn seen_txn(&self, key: &TxnKey) -> Result<Option<String>> {
        let mut lookup = self.txns.lookup(key);
        if lookup == Lookup::NotLoaded {
            let stored = self.storage.device_txns(&key.0, &key.1).await?;
            self.txns.load_device(&key.0, &key.1, stored);
            lookup = self.txns.lookup(key);
        }
        match lookup {
            Lookup::Known(id) => Ok(Some(id)),
            Lookup::New => Ok(None),
            Lookup::NotLoaded | Lookup::AskDatabase => Ok(self
                .storage
                .txn_event(&key.0, &key.1, &key.2, &key.3)
                .await?),
        }
    }

    /// The event a pending or committed txn made, once it is stored. The first request is
    /// still committing it; a commit that takes longer than the bound is an internal error.
    async fn wait_for_event(&self, key: &TxnKey, event_id: &str) -> Result<Pdu> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut pause = Duration::from_millis(2);
        loop {
            if let Some(p) = self.event(event_id).await? {
                return Ok(p);
            }
            // The first request failed to commit: this one fails too rather than wait.
            if self.txns.lookup(key) != Lookup::Known(event_id.to_string()) {
                return Err(Error::Internal(format!(
                    "the first send of this transaction ({event_id}) failed"
                )));
            }
            if Instant::now() >= deadline {
                return Err(Error::Internal(format!(
                    "event {event_id} of a repeated transaction was not stored"
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    async fn check_redaction(
        &self,
        head: &RoomHead,
        room_id: &str,
        sender: &str,
        target: &str,
    ) -> Result<Pdu> {
        let Some(original) = self.event(target).await? else {
            return Err(Error::NotFound(format!("unknown event {target}")));
        };
        if original.room_id != room_id {
            return Err(Error::NotFound(format!("unknown event {target}")));
        }
        if !auth::may_redact(&head.state, sender, &original.sender) {
            return Err(Error::Forbidden(format!(
                "{sender} may not redact events of {}",
                original.sender
            )));
        }
        Ok(original)
    }

    /// Builds, authorizes and signs an event on top of `head`, and advances `head` as if it
    /// were committed. `new_room` marks a create event: `(version, creator)`.
    pub(super) fn build(
        &self,
        head: &mut RoomHead,
        room_id: &str,
        draft: Draft,
        new_room: Option<(String, String)>,
    ) -> Result<Built> {
        let Some(content) = draft.content.as_object() else {
            return Err(Error::BadJson("event content must be a JSON object".into()));
        };
        if json_depth(&draft.content) > MAX_CONTENT_DEPTH {
            return Err(Error::BadJson(format!(
                "event content may nest at most {MAX_CONTENT_DEPTH} levels deep"
            )));
        }
        content::check(&draft.kind, draft.state_key.as_deref(), content)?;
        auth::check(
            &Candidate {
                room_id,
                kind: &draft.kind,
                state_key: draft.state_key.as_deref(),
                sender: &draft.sender,
                content: &draft.content,
            },
            &head.state,
        )
        .map_err(Error::Forbidden)?;
        // The create event names the version; every later event follows the room's, which
        // the create event's own check found supported.
        let version = if draft.kind == "m.room.create" {
            RoomVersion::of_create(&draft.content)
        } else {
            head.state
                .version()
                .ok_or_else(|| "the room's version is not supported".to_string())
        }
        .map_err(Error::UnsupportedRoomVersion)?;

        // From version 12 the create event names no room: the room id is made of its hash.
        let names_room = !(draft.kind == "m.room.create" && version.room_id_is_create_hash);
        let ts = draft.ts.unwrap_or_else(now_ms);
        let mut obj = Map::new();
        obj.insert(
            "auth_events".into(),
            json!(auth_event_ids(head, &draft, version)),
        );
        obj.insert("content".into(), draft.content.clone());
        obj.insert("depth".into(), json!(head.depth + 1));
        obj.insert("origin".into(), json!(self.server_name));
        obj.insert("origin_server_ts".into(), json!(ts));
        // The spec allows 20; the deepest first, the rest stay extremities for the next.
        let prev_events: Vec<String> = head.extremities.iter().take(20).cloned().collect();
        obj.insert("prev_events".into(), json!(prev_events));
        if names_room {
            obj.insert("room_id".into(), json!(room_id));
        }
        obj.insert("sender".into(), json!(draft.sender));
        obj.insert("type".into(), json!(draft.kind));
        if let Some(sk) = &draft.state_key {
            obj.insert("state_key".into(), json!(sk));
        }
        if let Some(r) = &draft.redacts {
            // Version 11 moved it into the content, where a top-level one is invalid; before
            // it, clients of newer room versions look for it in the content too.
            if !version.redacts_in_content {
                obj.insert("redacts".into(), json!(r));
            }
            if let Some(c) = obj.get_mut("content").and_then(Value::as_object_mut) {
                c.entry("redacts").or_insert_with(|| json!(r));
            }
        }
        let mut pdu_json = Value::Object(obj);
        let event_id = self.key.hash_and_sign_event(&mut pdu_json, version);
        let room_id = if names_room {
            room_id.to_string()
        } else {
            format!("!{}", &event_id[1..])
        };
        let room_id = room_id.as_str();
        // Compact JSON has the canonical form's length: only the key order differs.
        let size = pdu_json.to_string().len();
        if size > MAX_EVENT_BYTES {
            return Err(Error::TooLarge(format!(
                "the event is {size} bytes; the limit is {MAX_EVENT_BYTES}"
            )));
        }

        if let Some(sk) = &draft.state_key {
            if let Some(prev) = head.state.get(&draft.kind, sk) {
                pdu_json["unsigned"] = json!({
                    "prev_content": prev.content(),
                    "prev_sender": prev.sender,
                    "replaces_state": prev.event_id,
                });
            }
        }
        let membership = if draft.kind == "m.room.member" {
            draft
                .state_key
                .clone()
                .zip(draft.content["membership"].as_str().map(str::to_string))
        } else {
            None
        };
        // The visibility in force for this event is the one in the state before it.
        let history_visibility = head
            .state
            .get("m.room.history_visibility", "")
            .and_then(|p| {
                p.content()["history_visibility"]
                    .as_str()
                    .map(str::to_string)
            });
        let pdu = Pdu {
            stream: 0,
            event_id: event_id.clone(),
            room_id: room_id.to_string(),
            sender: draft.sender.clone(),
            kind: draft.kind.clone(),
            state_key: draft.state_key.clone(),
            json: pdu_json,
            redacted_by: None,
            txn: draft.txn.clone(),
            history_visibility: history_visibility.clone(),
            version,
        };
        // Evaluated against the state before the event, as the room was when it was sent.
        let push = push_row(&head.state, &pdu.json, &self.server_name, &self.push_rules);
        let graph = self.graph_rows(head, room_id, &pdu, prev_events);
        let new_event = NewEvent {
            graph,
            push,
            event_id: event_id.clone(),
            room_id: room_id.to_string(),
            sender: draft.sender.clone(),
            kind: draft.kind.clone(),
            state_key: draft.state_key.clone(),
            depth: head.depth + 1,
            origin_server_ts: ts,
            json: pdu.json.to_string(),
            membership,
            txn: draft.txn.as_ref().map(|(device, txn)| {
                (
                    draft.sender.clone(),
                    device.clone(),
                    format!("{room_id}/{}", draft.kind),
                    txn.clone(),
                )
            }),
            redacts: draft.redacts.clone(),
            new_room,
            history_visibility,
            room_version: version.id,
        };
        advance(head, &pdu);
        Ok(Built {
            pdu,
            new_event,
            version,
        })
    }

    /// The graph rows of `pdu`, built on `prev_events` of `head`: the group of the state after
    /// it (a new one for a state event), which `head` takes on.
    fn graph_rows(
        &self,
        head: &mut RoomHead,
        room_id: &str,
        pdu: &Pdu,
        prev_events: Vec<String>,
    ) -> GraphRows {
        let rows = GraphRows {
            prev_events,
            extremity: true,
            ..GraphRows::default()
        };
        let current = head.group;
        let Some(state_key) = pdu.state_key.as_deref().or(current.is_none().then_some("")) else {
            return GraphRows {
                state_group: current.map(|(id, _)| id),
                ..rows
            };
        };
        // A state event, or (for a head without a group, which only a damaged room has) the
        // first event to give the room one.
        let id = self.groups.allocate();
        let is_state = pdu.state_key.is_some();
        let change = if is_state {
            vec![(
                pdu.kind.clone(),
                state_key.to_string(),
                pdu.event_id.clone(),
            )]
        } else {
            Vec::new()
        };
        let group = graph::next_group(id, room_id, current, change, || {
            let mut whole: Vec<_> = head
                .state
                .entries()
                .filter(|(kind, key, _)| !(is_state && *kind == pdu.kind && *key == state_key))
                .map(|(kind, key, e)| (kind.to_string(), key.to_string(), e.event_id.to_string()))
                .collect();
            if is_state {
                whole.push((
                    pdu.kind.clone(),
                    state_key.to_string(),
                    pdu.event_id.clone(),
                ));
            }
            whole
        });
        head.group = Some((id, group.chain));
        GraphRows {
            state_group: Some(id),
            new_groups: vec![group],
            current_group: Some(id),
            ..rows
        }
    }

    /// Queues built events in order and waits for all of them; used where one operation
    /// makes several events (room creation) under one hold of the room's lock.
    pub(super) async fn commit_all(
        &self,
        head: &LockedHead<'_>,
        room_id: &str,
        built: Vec<Built>,
    ) -> Result<Vec<Pdu>> {
        let mut waiting = Vec::with_capacity(built.len());
        for b in built {
            let rx = self.writer.submit(WriteOp::Event(Box::new(b.new_event)));
            waiting.push((b.pdu, Commit::new(rx, head.pin())));
        }
        let mut out = Vec::with_capacity(waiting.len());
        for (pdu, mut commit) in waiting {
            match commit.landed().await {
                Ok(stream) => out.push(Pdu { stream, ..pdu }),
                Err(e) => {
                    self.invalidate(room_id);
                    return Err(e.into());
                }
            }
        }
        Ok(out)
    }
}

/// Moves `head` past `pdu`, built on its extremities, as if it were committed.
pub(super) fn advance(head: &mut RoomHead, pdu: &Pdu) {
    if let Some(sk) = &pdu.state_key {
        head.state.set(
            &pdu.kind,
            sk,
            StateEntry::new(&pdu.event_id, &pdu.sender, pdu.content()),
        );
    }
    let built_on = head.extremities.len().min(20);
    head.extremities.drain(..built_on);
    head.extremities.insert(0, pdu.event_id.clone());
    head.depth += 1;
}

/// A redaction of an event that is current state redacts it in the head as well: the room's
/// state and its auth rules go on with the redacted content. Only the first redaction counts.
fn redact_in_state(head: &mut RoomHead, original: &Pdu, version: &RoomVersion) {
    if let (Some(state_key), None) = (&original.state_key, &original.redacted_by) {
        head.state.redact(
            &original.kind,
            state_key,
            &original.event_id,
            &version.redaction,
        );
    }
}

/// How many arrays and objects deep `v` nests (a scalar is 0).
pub(crate) fn json_depth(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(json_depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(json_depth).max().unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::super::heads::HeadCache;
    use super::*;

    fn slot() -> HeadSlot {
        tokio::sync::Mutex::new(None)
    }

    #[tokio::test]
    async fn a_commit_keeps_its_rooms_head_cached_until_it_lands_even_if_given_up() {
        let cache = HeadCache::new(1, usize::MAX);
        let (tx, rx) = oneshot::channel();
        let head = cache.get_or_insert_with("!a:x", slot);
        let commit = Commit::new(rx, head);
        cache.get_or_insert_with("!b:x", slot);
        assert_eq!(cache.len(), 2, "the committing room stays");

        // The request gives up before the commit lands: the wait goes on without it.
        drop(commit);
        tokio::task::yield_now().await;
        cache.get_or_insert_with("!c:x", slot);
        assert!(cache.len() >= 2, "still committing: the room stays");

        let _ = tx.send(Ok(7));
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        cache.get_or_insert_with("!d:x", slot);
        assert_eq!(cache.len(), 1, "landed: the room may go");
    }

    #[tokio::test]
    async fn a_landed_commit_answers_its_position_and_lets_the_head_go() {
        let cache = HeadCache::new(1, usize::MAX);
        let (tx, rx) = oneshot::channel();
        let mut commit = Commit::new(rx, cache.get_or_insert_with("!a:x", slot));
        let _ = tx.send(Ok(42));
        assert_eq!(commit.landed().await.ok(), Some(42));
        cache.get_or_insert_with("!b:x", slot);
        assert_eq!(cache.len(), 1);
        let (tx, rx) = oneshot::channel::<crate::storage::Result<i64>>();
        drop(tx);
        let mut lost = Commit::new(rx, cache.get_or_insert_with("!c:x", slot));
        assert!(matches!(lost.landed().await, Err(StorageError::WriterGone)));
    }
}
