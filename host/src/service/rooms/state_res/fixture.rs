//! Rooms of hand-made PDUs for the tests of state resolution and of the auth rules: forks of
//! one room, each with its own state, whose events name their auth events as the spec selects
//! them.

use std::collections::HashMap;
use std::sync::Arc;

use ruma_common::UserId;
use ruma_events::TimelineEventType;
use serde_json::{json, Value};

use super::{PduEvent, StateIds};
use crate::service::room_version::RoomVersion;
use crate::service::rooms::state::{RoomState, StateEntry};

/// One room's events, whichever fork they are on.
pub(crate) struct Fixture {
    pub(crate) version: &'static RoomVersion,
    pub(crate) room_id: String,
    pub(crate) events: HashMap<String, Arc<PduEvent>>,
    pdus: HashMap<String, Value>,
    ts: u64,
}

/// One fork: its state and its last event.
#[derive(Clone, Default)]
pub(crate) struct Fork {
    pub(crate) state: StateIds,
    last: Option<String>,
}

impl Fixture {
    /// A room of `version` created by `creator` with `create` content (the version is added),
    /// and the one fork it has so far. The create event is `$create`.
    pub(crate) fn new(
        version: &'static RoomVersion,
        creator: &str,
        mut create: Value,
    ) -> (Fixture, Fork) {
        // From version 12 the room id is the create event's id with the other sigil.
        let room_id = if version.room_id_is_create_hash {
            "!create".to_string()
        } else {
            "!room:x".to_string()
        };
        create["room_version"] = json!(version.id);
        if version.create_names_creator {
            create["creator"] = json!(creator);
        }
        let mut fixture = Fixture {
            version,
            room_id,
            events: HashMap::new(),
            pdus: HashMap::new(),
            ts: 0,
        };
        let mut fork = Fork::default();
        fixture.send(
            &mut fork,
            "$create",
            creator,
            "m.room.create",
            Some(""),
            create,
        );
        (fixture, fork)
    }

    /// The PDU `id` would be on `fork`, with its auth events picked from the fork's state.
    pub(crate) fn pdu(
        &mut self,
        fork: &Fork,
        sender: &str,
        kind: &str,
        state_key: Option<&str>,
        content: Value,
    ) -> Value {
        self.ts += 1;
        let auth_events: Vec<String> = if kind == "m.room.create" {
            Vec::new()
        } else {
            let raw = serde_json::value::to_raw_value(&content).unwrap();
            ruma_state_res::auth_types_for_event(
                &TimelineEventType::from(kind),
                &UserId::parse(sender).unwrap(),
                state_key,
                &raw,
                &self.version.ruma_rules().authorization,
            )
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(t, k)| fork.state.get(&(t.to_string(), k)).cloned())
            .collect()
        };
        let mut pdu = json!({
            "type": kind,
            "sender": sender,
            "content": content,
            "origin_server_ts": self.ts,
            "prev_events": fork.last.iter().collect::<Vec<_>>(),
            "auth_events": auth_events,
            "depth": self.ts,
        });
        if !(kind == "m.room.create" && self.version.room_id_is_create_hash) {
            pdu["room_id"] = json!(self.room_id);
        }
        if let Some(key) = state_key {
            pdu["state_key"] = json!(key);
        }
        pdu
    }

    /// Adds the event `id` to `fork` (and to its state, if it is a state event) without
    /// checking it: the tests send what they mean to be allowed.
    pub(crate) fn send(
        &mut self,
        fork: &mut Fork,
        id: &str,
        sender: &str,
        kind: &str,
        state_key: Option<&str>,
        content: Value,
    ) -> String {
        let pdu = self.pdu(fork, sender, kind, state_key, content);
        self.add(id, pdu.clone());
        if let Some(key) = state_key {
            fork.state
                .insert((kind.to_string(), key.to_string()), id.to_string());
        }
        fork.last = Some(id.to_string());
        id.to_string()
    }

    /// Stores a PDU as the event `id`.
    pub(crate) fn add(&mut self, id: &str, pdu: Value) {
        let event = PduEvent::from_pdu(id, &pdu, self.version, false).unwrap();
        self.events.insert(id.to_string(), Arc::new(event));
        self.pdus.insert(id.to_string(), pdu);
    }

    /// A joined member on `fork`.
    pub(crate) fn join(&mut self, fork: &mut Fork, user: &str) {
        let id = format!("$join-{}", &user[1..2]);
        self.send(
            fork,
            &id,
            user,
            "m.room.member",
            Some(user),
            json!({"membership": "join"}),
        );
    }

    /// The fork's state as this server's write path keeps it.
    pub(crate) fn room_state(&self, fork: &Fork) -> RoomState {
        let mut state = RoomState::default();
        for ((kind, key), id) in &fork.state {
            let pdu = &self.pdus[id];
            let entry = StateEntry::new(id, pdu["sender"].as_str().unwrap(), &pdu["content"]);
            state.set(kind, key, entry);
        }
        state
    }
}
