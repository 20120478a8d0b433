//! A room's history as other servers ask for it: events by id, the state and auth chain at
//! an event, the events missing between two points, backfill, the event nearest a time. Only
//! a server with a member in the room (or a world-readable room) is answered.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;

use crate::service::room_version::RoomVersion;
use crate::service::rooms::pdu::{create_event_named_by, listed_ids};
use crate::service::rooms::state_res::StateIds;
use crate::service::{Error, Result, Services};
use crate::storage::events::Direction;
use crate::storage::graph::Standing;

/// Events one `/get_missing_events` or `/backfill` answers at most.
pub(crate) const MAX_HISTORY_EVENTS: usize = 100;

impl Services {
    /// `Forbidden` unless `server` may see the room's history: one of its users is in the room
    /// (joined, invited or knocking), or the room is world-readable.
    pub(crate) async fn require_server_in_room(&self, room_id: &str, server: &str) -> Result<()> {
        self.rooms.require_room(room_id).await?;
        self.check_acl(room_id, server).await?;
        let allowed = self
            .rooms
            .read_state(room_id, |s| {
                let world = s
                    .get("m.room.history_visibility", "")
                    .is_some_and(|e| e.content()["history_visibility"] == "world_readable");
                world
                    || s.of_kind("m.room.member").any(|(user, e)| {
                        crate::service::identifiers::server_of(user) == server
                            && matches!(
                                e.content()["membership"].as_str(),
                                Some("join" | "invite" | "knock")
                            )
                    })
            })
            .await?;
        if allowed {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "{server} is not in room {room_id}"
            )))
        }
    }

    /// The PDUs of `ids` as other servers are sent them (redacted ones pruned), skipping those
    /// not stored or rejected; in the order of `ids`.
    pub(crate) async fn federation_pdus(&self, ids: &[String]) -> Result<Vec<Value>> {
        let stored = self.storage.stored_pdus(ids).await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(s) = stored.get(id) else { continue };
            match s.standing {
                Standing::Rejected => continue,
                Standing::Timeline => {
                    if let Some(pdu) = self.rooms.event(id).await? {
                        out.push(pdu.to_federation());
                    }
                }
                Standing::Outlier | Standing::SoftFailed => {
                    let mut json: Value = serde_json::from_str(&s.json)
                        .map_err(crate::storage::StorageError::Corrupt)?;
                    if let Some(o) = json.as_object_mut() {
                        o.remove("unsigned");
                    }
                    out.push(json);
                }
            }
        }
        Ok(out)
    }

    /// One event of a room `origin` is in.
    pub(crate) async fn event_for_server(&self, origin: &str, event_id: &str) -> Result<Value> {
        let Some(stored) = self.storage.stored_pdu(event_id).await? else {
            return Err(Error::NotFound(format!("unknown event {event_id}")));
        };
        self.require_server_in_room(&stored.room_id, origin).await?;
        self.federation_pdus(&[event_id.to_string()])
            .await?
            .pop()
            .ok_or_else(|| Error::NotFound(format!("unknown event {event_id}")))
    }

    /// The ids of the auth chains of `ids` (without `ids` themselves unless in a chain).
    pub(crate) async fn auth_chain_ids(&self, ids: &[String]) -> Result<Vec<String>> {
        let mut seen: HashSet<String> = HashSet::new();
        let mut todo: Vec<String> = Vec::new();
        // From room version 12 the room id names the create event, which no event lists: it
        // is in every chain all the same, for the other server to check the rest against.
        let auth_of = |s: &crate::storage::graph::StoredPdu| {
            let mut ids = listed_ids(&parsed(&s.json), "auth_events");
            ids.extend(create_event_named_by(&s.room_id));
            ids
        };
        let first = self.storage.stored_pdus(ids).await?;
        for s in first.values() {
            todo.extend(auth_of(s));
        }
        while !todo.is_empty() {
            todo.retain(|id| !seen.contains(id));
            todo.sort();
            todo.dedup();
            seen.extend(todo.iter().cloned());
            let found = self.storage.stored_pdus(&todo).await?;
            todo = found.values().flat_map(auth_of).collect();
        }
        let mut out: Vec<String> = seen.into_iter().collect();
        out.sort();
        Ok(out)
    }

    /// The state of the room before `event_id` (the state the event was checked against):
    /// `(state ids, auth chain ids)`.
    pub(crate) async fn state_ids_at(
        &self,
        origin: &str,
        room_id: &str,
        event_id: &str,
    ) -> Result<(Vec<String>, Vec<String>)> {
        self.require_server_in_room(room_id, origin).await?;
        let Some(stored) = self.storage.stored_pdu(event_id).await? else {
            return Err(Error::NotFound(format!("unknown event {event_id}")));
        };
        if stored.room_id != room_id || stored.standing == Standing::Rejected {
            return Err(Error::NotFound(format!("unknown event {event_id}")));
        }
        let json = stored.value()?;
        let version = self.room_version_of(room_id).await?;
        let state = self.state_before(version, &json).await?;
        let mut pdu_ids: Vec<String> = state.into_values().collect();
        pdu_ids.sort();
        let auth_chain = self.auth_chain_ids(&pdu_ids).await?;
        Ok((pdu_ids, auth_chain))
    }

    /// The state before the stored event `json` of a room of `version`.
    pub(crate) async fn state_before(
        &self,
        version: &RoomVersion,
        json: &Value,
    ) -> Result<StateIds> {
        let prevs: Vec<String> = json["prev_events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        self.rooms.state_before_ids(version, &prevs).await
    }

    /// The events before `latest` and after `earliest`, walking `prev_events` back, at most
    /// `limit` and none shallower than `min_depth`; oldest first.
    pub(crate) async fn missing_events(
        &self,
        origin: &str,
        room_id: &str,
        earliest: &[String],
        latest: &[String],
        limit: usize,
        min_depth: i64,
    ) -> Result<Vec<Value>> {
        self.require_server_in_room(room_id, origin).await?;
        let limit = limit.min(MAX_HISTORY_EVENTS);
        let stop: HashSet<&String> = earliest.iter().collect();
        let mut seen: HashSet<String> = latest.iter().cloned().collect();
        let mut found: BTreeMap<(i64, String), ()> = BTreeMap::new();
        let mut frontier: Vec<String> = Vec::new();
        for s in self.storage.stored_pdus(latest).await?.values() {
            frontier.extend(listed_ids(&parsed(&s.json), "prev_events"));
        }
        while !frontier.is_empty() && found.len() < limit {
            frontier.retain(|id| !stop.contains(id) && seen.insert(id.clone()));
            let stored = self.storage.stored_pdus(&frontier).await?;
            let mut next = Vec::new();
            for (id, s) in stored {
                if s.room_id != room_id || s.standing == Standing::Rejected {
                    continue;
                }
                let json = parsed(&s.json);
                let depth = json["depth"].as_i64().unwrap_or(0);
                if depth < min_depth || found.len() >= limit {
                    continue;
                }
                found.insert((depth, id), ());
                next.extend(listed_ids(&json, "prev_events"));
            }
            frontier = next;
        }
        let ids: Vec<String> = found.into_keys().map(|(_, id)| id).collect();
        self.federation_pdus(&ids).await
    }

    /// Up to `limit` events at and before the events `from`, newest first, for `/backfill`.
    pub(crate) async fn backfill(
        &self,
        origin: &str,
        room_id: &str,
        from: &[String],
        limit: usize,
    ) -> Result<Vec<Value>> {
        self.require_server_in_room(room_id, origin).await?;
        let limit = limit.min(MAX_HISTORY_EVENTS);
        let mut seen: HashSet<String> = HashSet::new();
        let mut found: BTreeMap<(i64, String), ()> = BTreeMap::new();
        let mut frontier: Vec<String> = from.to_vec();
        while !frontier.is_empty() && found.len() < limit {
            frontier.retain(|id| seen.insert(id.clone()));
            let stored = self.storage.stored_pdus(&frontier).await?;
            let mut next = Vec::new();
            for (id, s) in stored {
                if s.room_id != room_id || s.standing != Standing::Timeline || found.len() >= limit
                {
                    continue;
                }
                let json = parsed(&s.json);
                found.insert((json["depth"].as_i64().unwrap_or(0), id), ());
                next.extend(listed_ids(&json, "prev_events"));
            }
            frontier = next;
        }
        let ids: Vec<String> = found.into_keys().rev().map(|(_, id)| id).collect();
        self.federation_pdus(&ids).await
    }

    /// `/timestamp_to_event` for another server: the id and time of the room's event nearest
    /// `ts` in direction `dir`, which that server may then fetch with `/event`.
    pub(crate) async fn event_near_time_for_server(
        &self,
        origin: &str,
        room_id: &str,
        ts: i64,
        dir: Direction,
    ) -> Result<Value> {
        self.require_server_in_room(room_id, origin).await?;
        self.event_near_time(room_id, ts, dir, None).await
    }
}

/// A stored PDU's JSON, parsed once for the fields the walks read (an unreadable one lists
/// nothing).
fn parsed(json: &str) -> Value {
    serde_json::from_str(json).unwrap_or(Value::Null)
}
