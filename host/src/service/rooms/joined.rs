//! A room of another server, stored here when a local user joins it: the auth chain of the
//! resident server's answer kept as outliers, its state (each event checked against its own
//! auth events) and the join written as the room's history here, the join as the room's one
//! extremity, and the state after it as the room's current state.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::pdu::listed_ids;
use super::remote::Incoming;
use super::state_res::{self, StateIds};
use super::RoomService;
use crate::service::room_version::RoomVersion;
use crate::service::{Error, Result};
use crate::storage::events::NewEvent;
use crate::storage::graph::{GraphRows, NewStateGroup, ResolvedEntry, Standing};
use crate::storage::writer::WriteOp;
use crate::storage::StorageError;

impl RoomService {
    /// Stores the room `room_id` as the answer to a local user's join made it (see the module).
    pub(crate) async fn store_joined_room(
        &self,
        room_id: &str,
        version: &'static RoomVersion,
        mut auth_chain: Vec<Incoming>,
        mut state: Vec<Incoming>,
        join: Incoming,
    ) -> Result<()> {
        // The create event before anything checked against it: from version 12 no event lists
        // it, and a server may answer it in the state only.
        if let Some(create) = state.iter().find(|e| e.json["type"] == "m.room.create") {
            if !auth_chain.iter().any(|e| e.event_id == create.event_id) {
                auth_chain.push(create.clone());
            }
        }
        auth_chain.sort_by_key(depth);
        for event in &auth_chain {
            if self.store_outlier(room_id, event).await? == Standing::Rejected {
                tracing::info!(event_id = %event.event_id, "an event of a join's auth chain was rejected");
            }
        }
        state.sort_by_key(depth);
        // Every event of the answer, for the checks of each against its own auth events (the
        // state is not stored yet; the auth chain is, as outliers).
        let mut known: HashMap<String, Arc<state_res::PduEvent>> = HashMap::new();
        for event in state.iter().chain(auth_chain.iter()) {
            known.insert(event.event_id.clone(), Arc::new(event_of(event)?));
        }
        let mut before = StateIds::new();
        let mut accepted = Vec::new();
        for event in state {
            let parsed = event_of(&event)?;
            if let Err(why) = state_res::auth_check(version, &parsed, &known) {
                tracing::info!(event_id = %event.event_id, why, "left out a state event of a join's answer");
                continue;
            }
            let (Some(kind), Some(key)) = (
                event.json["type"].as_str(),
                event.json["state_key"].as_str(),
            ) else {
                continue;
            };
            before.insert((kind.to_string(), key.to_string()), event.event_id.clone());
            accepted.push(event);
        }
        let create = accepted
            .iter()
            .find(|e| e.json["type"] == "m.room.create")
            .ok_or_else(|| Error::BadState("the join's answer has no create event".into()))?;
        let creator = create.json["sender"]
            .as_str()
            .unwrap_or_default()
            .to_string();

        // The join, against the state before it.
        let parsed = event_of(&join)?;
        state_res::auth_check_against(version, &parsed, &before, &known)
            .map_err(|why| Error::Forbidden(format!("the join is not allowed: {why}")))?;

        let room_exists = self.storage.room_exists(room_id).await?;
        let old_extremities: Vec<String> = self
            .storage
            .room_extremities(room_id)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let mut stored_state = self
            .storage
            .stored_pdus(
                &accepted
                    .iter()
                    .map(|e| e.event_id.clone())
                    .collect::<Vec<_>>(),
            )
            .await?;
        stored_state.retain(|_, s| s.standing == Standing::Timeline);
        let mut waiting = Vec::new();
        let mut new_room = (!room_exists).then(|| (version.id.to_string(), creator.clone()));
        for event in &accepted {
            if stored_state.contains_key(&event.event_id) {
                continue;
            }
            let new_event = history_event(
                room_id,
                event,
                new_room.take(),
                GraphRows {
                    resolved: Some(Vec::new()),
                    ..GraphRows::default()
                },
            );
            waiting.push(self.writer.submit(WriteOp::Event(Box::new(new_event))));
        }

        let before_id = self.groups.allocate();
        let after_id = self.groups.allocate();
        let join_key = (
            "m.room.member".to_string(),
            join.json["state_key"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
        let mut after = before.clone();
        after.insert(join_key.clone(), join.event_id.clone());
        let mut by_id: HashMap<&str, &Value> = accepted
            .iter()
            .map(|e| (e.event_id.as_str(), &e.json))
            .collect();
        by_id.insert(join.event_id.as_str(), &join.json);
        let resolved = after
            .iter()
            .map(|((kind, key), id)| ResolvedEntry {
                kind: kind.clone(),
                state_key: key.clone(),
                event_id: id.clone(),
                membership: (kind == "m.room.member")
                    .then(|| by_id.get(id.as_str()))
                    .flatten()
                    .and_then(|j| j["content"]["membership"].as_str().map(str::to_string)),
            })
            .collect();
        let mut whole: Vec<(String, String, String)> = before
            .iter()
            .map(|((k, s), id)| (k.clone(), s.clone(), id.clone()))
            .collect();
        whole.sort();
        let graph = GraphRows {
            state_group: Some(after_id),
            new_groups: vec![
                NewStateGroup {
                    id: before_id,
                    room_id: room_id.to_string(),
                    parent: None,
                    chain: 0,
                    entries: whole,
                },
                NewStateGroup {
                    id: after_id,
                    room_id: room_id.to_string(),
                    parent: Some(before_id),
                    chain: 1,
                    entries: vec![(join_key.0, join_key.1, join.event_id.clone())],
                },
            ],
            // A room this server had left: its old extremities are history the resident's
            // (which the join builds on) already descends from.
            prev_events: listed_ids(&join.json, "prev_events")
                .into_iter()
                .chain(old_extremities)
                .collect(),
            extremity: true,
            current_group: Some(after_id),
            resolved: Some(resolved),
        };
        let new_event = history_event(room_id, &join, new_room.take(), graph);
        waiting.push(self.writer.submit(WriteOp::Event(Box::new(new_event))));
        // The room's head, if one was in memory (a room left before), is read anew.
        self.invalidate(room_id);
        for rx in waiting {
            rx.await.unwrap_or(Err(StorageError::WriterGone))?;
        }
        self.invalidate(room_id);
        Ok(())
    }
}

/// An event of another server's room as this server's history of it.
pub(super) fn history_event(
    room_id: &str,
    event: &Incoming,
    new_room: Option<(String, String)>,
    graph: GraphRows,
) -> NewEvent {
    let json = &event.json;
    let text = |k: &str| json[k].as_str().unwrap_or_default().to_string();
    NewEvent {
        event_id: event.event_id.clone(),
        room_id: room_id.to_string(),
        sender: text("sender"),
        kind: text("type"),
        state_key: json["state_key"].as_str().map(str::to_string),
        depth: json["depth"].as_i64().unwrap_or(0),
        origin_server_ts: json["origin_server_ts"].as_i64().unwrap_or(0),
        json: json.to_string(),
        membership: None,
        txn: None,
        redacts: None,
        new_room,
        history_visibility: None,
        room_version: event.version.id,
        push: None,
        graph,
    }
}

fn event_of(event: &Incoming) -> Result<state_res::PduEvent> {
    state_res::PduEvent::from_pdu(&event.event_id, &event.json, event.version, false)
        .map_err(|e| Error::BadJson(e.to_string()))
}

fn depth(event: &Incoming) -> i64 {
    event.json["depth"].as_i64().unwrap_or(0)
}
