//! Events of other servers joining a room's graph: the state before one (the state after its
//! `prev_events`, merged by state resolution when they fork), its auth checks against its auth
//! events and that state (else rejected) and against the room's current state (else
//! soft-failed), and its place in the timeline with the room's new extremities and current
//! state. Federation calls this once the event's signatures and hashes are checked and its
//! prev and auth events are stored.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};

use super::auth::{self, Candidate};
use super::auth_events::auth_event_ids;
use super::graph::{changes, next_group};
use super::pdu::{create_event_named_by, listed_ids, Pdu};
use super::state::StateEntry;
use super::state_res::{self, PduEvent, StateIds};
use super::timeline::{Commit, Draft, Queued};
use super::RoomService;
use crate::lock::lock;
use crate::service::push::outcome::push_row;
use crate::service::room_version::RoomVersion;
use crate::service::{now_ms, Error, Result};
use crate::storage::events::NewEvent;
use crate::storage::graph::{GraphRows, NewStateGroup, ResolvedEntry, SideEvent, Standing};
use crate::storage::writer::WriteOp;
use crate::storage::StorageError;

/// A PDU of another server, checked: its signatures verified and, when its content hash did
/// not match, redacted.
#[derive(Debug, Clone)]
pub(crate) struct Incoming {
    pub(crate) event_id: String,
    pub(crate) json: Value,
    pub(crate) version: &'static RoomVersion,
}

/// What became of an incoming event.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// In the timeline, stored at its stream position.
    Timeline(Box<Pdu>),
    /// Stored beside the timeline: allowed by the state before it, not by the current state.
    SoftFailed(String),
    Rejected(String),
    /// Stored already.
    Known,
}

/// Events read for the auth rules and state resolution, by id.
type Events = HashMap<String, Arc<PduEvent>>;

impl Incoming {
    fn str(&self, key: &str) -> Option<&str> {
        self.json[key].as_str()
    }

    fn ids(&self, key: &str) -> Vec<String> {
        listed_ids(&self.json, key)
    }

    /// The events its auth check reads besides the state: its auth events and, from version
    /// 12 (whose events do not name it), the create event its room id is the hash of.
    pub(super) fn auth_ids(&self) -> Vec<String> {
        let mut ids = self.ids("auth_events");
        if self.version.room_id_is_create_hash {
            ids.extend(self.str("room_id").and_then(create_event_named_by));
        }
        ids
    }

    fn parsed(&self, rejected: bool) -> Result<PduEvent> {
        PduEvent::from_pdu(&self.event_id, &self.json, self.version, rejected)
            .map_err(|e| Error::BadJson(e.to_string()))
    }

    /// The state keys the auth rules read for this event.
    fn auth_keys(&self) -> Vec<(String, String)> {
        let mut keys = vec![
            ("m.room.create".to_string(), String::new()),
            ("m.room.power_levels".to_string(), String::new()),
        ];
        if let Some(sender) = self.str("sender") {
            keys.push(("m.room.member".into(), sender.into()));
        }
        if self.str("type") == Some("m.room.member") {
            keys.push(("m.room.join_rules".into(), String::new()));
            if let Some(target) = self.str("state_key") {
                keys.push(("m.room.member".into(), target.into()));
            }
            let content = &self.json["content"];
            if let Some(via) = content["join_authorised_via_users_server"].as_str() {
                keys.push(("m.room.member".into(), via.into()));
            }
            if let Some(token) = content["third_party_invite"]["signed"]["token"].as_str() {
                keys.push(("m.room.third_party_invite".into(), token.into()));
            }
        }
        keys
    }
}

impl RoomService {
    /// The room's forward extremities, deepest first.
    pub(crate) async fn extremities(&self, room_id: &str) -> Result<Vec<String>> {
        Ok(self.lock_head(room_id).await?.extremities.clone())
    }

    /// The state before an event whose `prev_events` are `prevs` (empty when none is known).
    pub(crate) async fn state_before_ids(
        &self,
        version: &RoomVersion,
        prevs: &[String],
    ) -> Result<StateIds> {
        Ok(self
            .state_before(version, prevs)
            .await?
            .map(|(state, _)| state)
            .unwrap_or_default())
    }

    /// A member event of a user of another server, unsigned, for that server to fill in and
    /// sign (`make_join`, `make_leave`, `make_knock`): built on the room's extremities, with
    /// the auth events it needs, refused as the auth rules would refuse the event.
    pub(crate) async fn member_template(
        &self,
        room_id: &str,
        user_id: &str,
        membership: &str,
    ) -> Result<(Value, &'static RoomVersion)> {
        let head = self.lock_head(room_id).await?;
        let version = head.state.version().ok_or_else(|| {
            Error::UnsupportedRoomVersion("the room's version is not supported".into())
        })?;
        let content = json!({ "membership": membership });
        let draft = Draft::new(user_id, "m.room.member", Some(user_id), content.clone());
        auth::check(
            &Candidate {
                room_id,
                kind: "m.room.member",
                state_key: Some(user_id),
                sender: user_id,
                content: &content,
            },
            &head.state,
        )
        .map_err(Error::Forbidden)?;
        let origin = crate::service::identifiers::server_of(user_id);
        let prev_events: Vec<&String> = head.extremities.iter().take(20).collect();
        let template = json!({
            "auth_events": auth_event_ids(&head, &draft, version),
            "content": content,
            "depth": head.depth + 1,
            "origin": origin,
            "origin_server_ts": now_ms(),
            "prev_events": prev_events,
            "room_id": room_id,
            "sender": user_id,
            "state_key": user_id,
            "type": "m.room.member",
        });
        Ok((template, version))
    }

    /// The stored events of `ids` as the algorithms read them, and with `chains` every event of
    /// their auth chains too.
    pub(crate) async fn graph_events(
        &self,
        ids: impl IntoIterator<Item = String>,
        version: &RoomVersion,
        chains: bool,
    ) -> Result<Events> {
        let mut out = Events::new();
        let mut todo: Vec<String> = ids.into_iter().collect();
        while !todo.is_empty() {
            todo.retain(|id| !out.contains_key(id));
            todo.sort();
            todo.dedup();
            let found = self.storage.stored_pdus(&todo).await?;
            let mut next = Vec::new();
            for (id, stored) in found {
                let json = stored.value()?;
                let rejected = stored.standing == Standing::Rejected;
                let event = PduEvent::from_pdu(&id, &json, version, rejected)
                    .map_err(|e| Error::Internal(e.to_string()))?;
                if chains {
                    next.extend(
                        json["auth_events"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|v| v.as_str().map(str::to_string)),
                    );
                }
                out.insert(id, Arc::new(event));
            }
            todo = next;
        }
        Ok(out)
    }

    /// Stores an event fetched to check others (an auth or state event) outside the timeline,
    /// after checking it against its own auth events, which must be stored; answers how it
    /// stands.
    pub(crate) async fn store_outlier(&self, room_id: &str, event: &Incoming) -> Result<Standing> {
        if let Some(stored) = self.storage.stored_pdu(&event.event_id).await? {
            return Ok(stored.standing);
        }
        let parsed = event.parsed(false)?;
        let events = self
            .graph_events(event.auth_ids(), event.version, false)
            .await?;
        let (standing, reason) = match state_res::auth_check(event.version, &parsed, &events) {
            Ok(()) => (Standing::Outlier, None),
            Err(why) => {
                tracing::info!(event_id = %event.event_id, reason = %why, "an outlier fails its auth events");
                (Standing::Rejected, Some(why))
            }
        };
        self.write_side(room_id, event, standing, reason, None, Vec::new())
            .await?;
        Ok(standing)
    }

    async fn write_side(
        &self,
        room_id: &str,
        event: &Incoming,
        standing: Standing,
        reason: Option<String>,
        state_group: Option<i64>,
        new_groups: Vec<NewStateGroup>,
    ) -> Result<()> {
        self.writer
            .write(WriteOp::Side(Box::new(SideEvent {
                event_id: event.event_id.clone(),
                room_id: room_id.to_string(),
                standing,
                reason,
                json: event.json.to_string(),
                state_group,
                new_groups,
                received_ts: now_ms(),
                member: None,
            })))
            .await?;
        Ok(())
    }

    /// The state before an event whose `prev_events` are `prevs` (stored): the state after
    /// the one, or the states after them merged. With it, the group it is stored in (or is
    /// a change of) and that group's chain; `None` when no prev event has a state.
    async fn state_before(
        &self,
        version: &RoomVersion,
        prevs: &[String],
    ) -> Result<Option<(StateIds, Option<(i64, i64)>)>> {
        let mut forks = Vec::new();
        let mut base = None;
        for prev in prevs {
            let Some(stored) = self.storage.stored_pdu(prev).await? else {
                continue;
            };
            let state = match stored.state_group {
                Some(group) => {
                    if base.is_none() {
                        base = Some((group, self.storage.state_group_chain(group).await?));
                    }
                    self.groups.load(&self.storage, group).await?
                }
                None => match self.groups.state_after(&self.storage, prev).await? {
                    Some(state) => state,
                    None => continue,
                },
            };
            forks.push(state);
        }
        let Some(first) = forks.first() else {
            return Ok(None);
        };
        if forks.iter().all(|f| f == first) {
            return Ok(Some(((**first).clone(), base)));
        }
        let states: Vec<StateIds> = forks.iter().map(|f| (**f).clone()).collect();
        let resolved = self.resolve(version, &states, None).await?;
        Ok(Some((resolved, None)))
    }

    /// The state of forks with states `forks`, by state resolution; `new` is an event of
    /// one of them that is not stored yet (the one being taken in), whose auth events are.
    async fn resolve(
        &self,
        version: &RoomVersion,
        forks: &[StateIds],
        new: Option<(&Incoming, &PduEvent)>,
    ) -> Result<StateIds> {
        let ids = forks
            .iter()
            .flat_map(|f| f.values().cloned())
            .chain(new.map(|(e, _)| e.auth_ids()).unwrap_or_default());
        let mut events = self.graph_events(ids, version, true).await?;
        // The resolution leaves out what it cannot read: without it, the new event would
        // lose any key the room's current state lacks.
        if let Some((event, parsed)) = new {
            events.insert(event.event_id.clone(), Arc::new(parsed.clone()));
        }
        state_res::resolve(version, forks, &events).map_err(|e| Error::Internal(e.to_string()))
    }

    /// Checks `event` against `state`, reading the events the rules need.
    async fn allowed_by(
        &self,
        event: &Incoming,
        parsed: &PduEvent,
        state: &StateIds,
    ) -> Result<std::result::Result<(), String>> {
        let ids = event
            .auth_keys()
            .into_iter()
            .filter_map(|k| state.get(&k).cloned())
            .chain(event.auth_ids());
        let events = self.graph_events(ids, event.version, false).await?;
        Ok(state_res::auth_check_against(
            event.version,
            parsed,
            state,
            &events,
        ))
    }

    /// Takes an event of another server into the room's graph (see the module). Its prev and
    /// auth events must be stored.
    pub(crate) async fn accept_remote(&self, room_id: &str, event: Incoming) -> Result<Verdict> {
        let mut head = self.lock_head(room_id).await?;
        let placed = self
            .storage
            .stored_pdu(&event.event_id)
            .await?
            .is_some_and(|s| s.standing.placed());
        if placed || self.arriving.contains(&event.event_id) {
            return Ok(Verdict::Known);
        }
        let parsed = event.parsed(false)?;
        let auth = self
            .graph_events(event.auth_ids(), event.version, false)
            .await?;
        if let Err(why) = state_res::auth_check(event.version, &parsed, &auth) {
            drop(head);
            return self.reject(room_id, &event, why).await;
        }
        let prevs = event.ids("prev_events");
        let Some((before, base)) = self.state_before(event.version, &prevs).await? else {
            drop(head);
            return self
                .reject(room_id, &event, "none of its prev_events is known".into())
                .await;
        };
        if let Err(why) = self.allowed_by(&event, &parsed, &before).await? {
            drop(head);
            return self.reject(room_id, &event, why).await;
        }

        // The state after it, and its group.
        let mut after = before.clone();
        let own_key = event.str("state_key").map(|k| {
            (
                event.str("type").unwrap_or_default().to_string(),
                k.to_string(),
            )
        });
        if let Some(key) = &own_key {
            after.insert(key.clone(), event.event_id.clone());
        }
        let mut new_groups = Vec::new();
        let group = match (base, &own_key) {
            (Some((id, chain)), None) => (id, chain),
            _ => {
                let id = self.groups.allocate();
                let change = match base {
                    Some((b, _)) => changes(&*self.groups.load(&self.storage, b).await?, &after),
                    None => Vec::new(),
                };
                let g = next_group(id, room_id, base, change, || whole(&after));
                let chain = g.chain;
                new_groups.push(g);
                (id, chain)
            }
        };
        self.groups.remember(group.0, Arc::new(after.clone()));

        let current: StateIds = head
            .state
            .entries()
            .map(|(k, s, e)| ((k.to_string(), s.to_string()), e.event_id.to_string()))
            .collect();
        if let Err(why) = self.allowed_by(&event, &parsed, &current).await? {
            tracing::info!(event_id = %event.event_id, room_id, reason = %why, "soft-failed an event of another server");
            self.write_side(
                room_id,
                &event,
                Standing::SoftFailed,
                Some(why.clone()),
                Some(group.0),
                new_groups,
            )
            .await?;
            return Ok(Verdict::SoftFailed(why));
        }

        // The room's current state after it: its own when it builds on every extremity, else
        // the merge of the two.
        let builds_on_all = head.extremities.iter().all(|x| prevs.contains(x));
        let new_current = if builds_on_all || current == after {
            after.clone()
        } else {
            self.resolve(
                event.version,
                &[current.clone(), after.clone()],
                Some((&event, &parsed)),
            )
            .await?
        };
        let mut current_group = group;
        if new_current != after {
            let id = self.groups.allocate();
            let g = next_group(
                id,
                room_id,
                Some(group),
                changes(&after, &new_current),
                || whole(&new_current),
            );
            current_group = (id, g.chain);
            new_groups.push(g);
            self.groups.remember(id, Arc::new(new_current.clone()));
        }
        let changed = changes(&current, &new_current);
        let mut changed_events = self
            .storage
            .stored_pdus(
                &changed
                    .iter()
                    .map(|(_, _, id)| id.clone())
                    .collect::<Vec<_>>(),
            )
            .await?
            .into_iter()
            .map(|(id, s)| {
                let json = serde_json::from_str::<Value>(&s.json).map_err(StorageError::Corrupt)?;
                Ok((id, json))
            })
            .collect::<Result<HashMap<String, Value>>>()?;
        changed_events.insert(event.event_id.clone(), event.json.clone());
        let resolved: Vec<ResolvedEntry> = changed
            .iter()
            .map(|(kind, key, id)| ResolvedEntry {
                kind: kind.clone(),
                state_key: key.clone(),
                event_id: id.clone(),
                membership: (kind == "m.room.member")
                    .then(|| changed_events.get(id))
                    .flatten()
                    .and_then(|j| j["content"]["membership"].as_str().map(str::to_string)),
            })
            .collect();

        let kind = event.str("type").unwrap_or_default().to_string();
        let sender = event.str("sender").unwrap_or_default().to_string();
        let state_key = event.str("state_key").map(str::to_string);
        let mut json = event.json.clone();
        if let Some(obj) = json.as_object_mut() {
            obj.remove("unsigned");
        }
        if let Some((k, s)) = &own_key {
            if let Some(prev) = head.state.get(k, s) {
                json["unsigned"] = json!({
                    "prev_content": prev.content(),
                    "prev_sender": prev.sender,
                    "replaces_state": prev.event_id,
                });
            }
        }
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
            event_id: event.event_id.clone(),
            room_id: room_id.to_string(),
            sender: sender.clone(),
            kind: kind.clone(),
            state_key: state_key.clone(),
            json,
            redacted_by: None,
            txn: None,
            history_visibility: history_visibility.clone(),
            version: event.version,
        };
        let depth = event.json["depth"].as_i64().unwrap_or(0);
        let new_event = NewEvent {
            push: push_row(&head.state, &pdu.json, &self.server_name, &self.push_rules),
            event_id: event.event_id.clone(),
            room_id: room_id.to_string(),
            sender,
            kind: kind.clone(),
            state_key,
            depth,
            origin_server_ts: pdu.origin_server_ts(),
            json: pdu.json.to_string(),
            membership: None,
            txn: None,
            redacts: redacts(&event),
            new_room: None,
            history_visibility,
            room_version: event.version.id,
            graph: GraphRows {
                state_group: Some(group.0),
                new_groups,
                prev_events: prevs.clone(),
                extremity: true,
                current_group: (current_group != head.group.unwrap_or((-1, 0)))
                    .then_some(current_group.0),
                resolved: Some(resolved.clone()),
            },
        };

        // The head moves on as the commit will leave the room.
        for entry in &resolved {
            if let Some(j) = changed_events.get(&entry.event_id) {
                let sender = j["sender"].as_str().unwrap_or_default();
                head.state.set(
                    &entry.kind,
                    &entry.state_key,
                    StateEntry::new(&entry.event_id, sender, &j["content"]),
                );
            }
        }
        head.extremities.retain(|x| !prevs.contains(x));
        head.extremities.insert(0, event.event_id.clone());
        head.depth = head.depth.max(depth);
        head.group = Some(current_group);
        let arriving = self.arriving.mark(&event.event_id);
        let commit = Commit::new(
            self.writer.submit(WriteOp::Event(Box::new(new_event))),
            head.pin(),
        );
        drop(head);
        let queued = Queued::Committing {
            pdu,
            commit,
            txn_key: None,
            room_id: room_id.to_string(),
        };
        let stored = queued.committed(self).await;
        drop(arriving);
        Ok(Verdict::Timeline(Box::new(stored?)))
    }

    pub(super) async fn reject(
        &self,
        room_id: &str,
        event: &Incoming,
        why: String,
    ) -> Result<Verdict> {
        tracing::info!(event_id = %event.event_id, room_id, reason = %why, "rejected an event of another server");
        self.write_side(
            room_id,
            event,
            Standing::Rejected,
            Some(why.clone()),
            None,
            Vec::new(),
        )
        .await?;
        Ok(Verdict::Rejected(why))
    }
}

/// The events of other servers queued for the timeline and not committed yet: the same event
/// can arrive twice at once (a `/send`, and a join taking its invite in), and the second must
/// not queue it again. What is stored is read from storage; this covers the commit's wait.
#[derive(Default)]
pub(super) struct Arriving(std::sync::Mutex<std::collections::HashSet<String>>);

/// One event's mark in [`Arriving`], until it is committed (or the wait for it is given up).
pub(super) struct ArrivingMark<'a> {
    arriving: &'a Arriving,
    event_id: String,
}

impl Arriving {
    fn contains(&self, event_id: &str) -> bool {
        lock(&self.0).contains(event_id)
    }

    fn mark(&self, event_id: &str) -> ArrivingMark<'_> {
        lock(&self.0).insert(event_id.to_string());
        ArrivingMark {
            arriving: self,
            event_id: event_id.to_string(),
        }
    }
}

impl Drop for ArrivingMark<'_> {
    fn drop(&mut self) {
        lock(&self.arriving.0).remove(&self.event_id);
    }
}

/// The entries of a whole state group.
fn whole(state: &StateIds) -> Vec<(String, String, String)> {
    let mut out: Vec<_> = state
        .iter()
        .map(|((k, s), id)| (k.clone(), s.clone(), id.clone()))
        .collect();
    out.sort();
    out
}

/// The event a redaction redacts, wherever its version puts it.
fn redacts(event: &Incoming) -> Option<String> {
    if event.str("type") != Some("m.room.redaction") {
        return None;
    }
    let at = if event.version.redacts_in_content {
        &event.json["content"]["redacts"]
    } else {
        &event.json["redacts"]
    };
    at.as_str().map(str::to_string)
}
