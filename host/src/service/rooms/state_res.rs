//! State resolution and the auth check of one event, by ruma's implementation of the spec's
//! algorithms (ruma-state-res, the one the Rust homeservers use): a room's state merged from the
//! state sets of its forks by the rules of the room's version (v2; v2.1 for version 12), for
//! federation when it receives events whose `prev_events` fork. The events come through
//! [`EventSource`], so that the caller decides whether they are read from storage or were
//! fetched from a remote server beforehand.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use ruma_common::room_version_rules::StateResolutionVersion;
use ruma_common::{
    EventId, MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedRoomId, OwnedUserId, RoomId, UserId,
};
use ruma_events::{StateEventType, TimelineEventType};
use ruma_state_res::utils::event_id_set::EventIdSet;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::service::room_version::RoomVersion;

/// A room's state as state resolution sees it: `(type, state_key)` to event id.
pub(crate) type StateIds = HashMap<(String, String), String>;

/// Why an event could not be read, or a state not resolved.
#[derive(Debug, thiserror::Error, PartialEq)]
pub(crate) enum StateResError {
    #[error("event {0} is not a PDU ruma can read: {1}")]
    Malformed(String, String),
    #[error("state resolution failed: {0}")]
    Resolution(String),
}

/// A PDU as ruma's algorithms read it: the fields they look at, parsed once.
#[derive(Debug, Clone)]
pub(crate) struct PduEvent {
    event_id: OwnedEventId,
    room_id: Option<OwnedRoomId>,
    sender: OwnedUserId,
    origin_server_ts: MilliSecondsSinceUnixEpoch,
    kind: TimelineEventType,
    content: Box<RawValue>,
    state_key: Option<String>,
    prev_events: Vec<OwnedEventId>,
    auth_events: Vec<OwnedEventId>,
    redacts: Option<OwnedEventId>,
    rejected: bool,
}

impl PduEvent {
    /// Reads the PDU `pdu` whose id is `event_id` (room versions 3 and later do not carry it),
    /// `rejected` when it failed the checks on receipt.
    pub(crate) fn from_pdu(
        event_id: &str,
        pdu: &Value,
        version: &RoomVersion,
        rejected: bool,
    ) -> Result<PduEvent, StateResError> {
        let bad = |why: &str| StateResError::Malformed(event_id.to_string(), why.to_string());
        let id = |v: &Value| -> Result<OwnedEventId, StateResError> {
            v.as_str()
                .and_then(|s| EventId::parse(s).ok())
                .ok_or_else(|| bad("an event id is not one"))
        };
        let ids = |key: &str| -> Result<Vec<OwnedEventId>, StateResError> {
            pdu[key]
                .as_array()
                .ok_or_else(|| bad(&format!("no {key}")))?
                .iter()
                .map(id)
                .collect()
        };
        let room_id = match pdu.get("room_id") {
            None => None,
            Some(v) => Some(
                v.as_str()
                    .and_then(|s| RoomId::parse(s).ok())
                    .ok_or_else(|| bad("room_id is not a room id"))?,
            ),
        };
        let redacts = if version.redacts_in_content {
            pdu["content"].get("redacts")
        } else {
            pdu.get("redacts")
        };
        let content =
            serde_json::value::to_raw_value(&pdu["content"]).map_err(|e| bad(&e.to_string()))?;
        Ok(PduEvent {
            event_id: id(&Value::String(event_id.to_string()))?,
            room_id,
            sender: pdu["sender"]
                .as_str()
                .and_then(|s| UserId::parse(s).ok())
                .ok_or_else(|| bad("sender is not a user id"))?,
            origin_server_ts: pdu["origin_server_ts"]
                .as_u64()
                .and_then(js_int::UInt::new)
                .map(MilliSecondsSinceUnixEpoch)
                .ok_or_else(|| bad("origin_server_ts is not a timestamp"))?,
            kind: pdu["type"]
                .as_str()
                .map(TimelineEventType::from)
                .ok_or_else(|| bad("no type"))?,
            content,
            state_key: pdu
                .get("state_key")
                .map(|k| {
                    k.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| bad("state_key"))
                })
                .transpose()?,
            prev_events: ids("prev_events")?,
            auth_events: ids("auth_events")?,
            redacts: redacts.map(id).transpose()?,
            rejected,
        })
    }

    pub(crate) fn event_id(&self) -> &str {
        self.event_id.as_str()
    }
}

impl ruma_state_res::Event for PduEvent {
    type Id = OwnedEventId;

    fn event_id(&self) -> &OwnedEventId {
        &self.event_id
    }

    fn room_id(&self) -> Option<&RoomId> {
        self.room_id.as_deref()
    }

    fn sender(&self) -> &UserId {
        &self.sender
    }

    fn origin_server_ts(&self) -> MilliSecondsSinceUnixEpoch {
        self.origin_server_ts
    }

    fn event_type(&self) -> &TimelineEventType {
        &self.kind
    }

    fn content(&self) -> &RawValue {
        &self.content
    }

    fn state_key(&self) -> Option<&str> {
        self.state_key.as_deref()
    }

    fn prev_events(&self) -> Box<dyn DoubleEndedIterator<Item = &OwnedEventId> + '_> {
        Box::new(self.prev_events.iter())
    }

    fn auth_events(&self) -> Box<dyn DoubleEndedIterator<Item = &OwnedEventId> + '_> {
        Box::new(self.auth_events.iter())
    }

    fn redacts(&self) -> Option<&OwnedEventId> {
        self.redacts.as_ref()
    }

    fn rejected(&self) -> bool {
        self.rejected
    }
}

/// Where the algorithms read events from: the events of the forks' states and their auth
/// chains must all be there (an event that is not is left out, as the spec has it for events
/// that cannot be verified).
pub(crate) trait EventSource {
    fn event(&self, event_id: &str) -> Option<Arc<PduEvent>>;
}

impl EventSource for HashMap<String, Arc<PduEvent>> {
    fn event(&self, event_id: &str) -> Option<Arc<PduEvent>> {
        self.get(event_id).cloned()
    }
}

/// The state of a room whose forks have the states `forks`, by the state resolution of its
/// `version`.
pub(crate) fn resolve(
    version: &RoomVersion,
    forks: &[StateIds],
    events: &impl EventSource,
) -> Result<StateIds, StateResError> {
    let rules = version.ruma_rules();
    let StateResolutionVersion::V2(res_rules) = rules.state_res else {
        return Err(StateResError::Resolution(format!(
            "room version {} has no state resolution v2",
            version.id
        )));
    };
    let maps = forks
        .iter()
        .map(to_ruma_map)
        .collect::<Result<Vec<_>, _>>()?;
    let fetch = |id: &EventId| events.event(id.as_str());
    let mut chains = AuthChains::default();
    let auth_chains = maps
        .iter()
        .map(|m| chains.of_all(m.values(), &fetch))
        .collect();
    let resolved = ruma_state_res::resolve(
        &rules.authorization,
        &res_rules,
        &maps,
        auth_chains,
        fetch,
        |conflicted| Some(conflicted_subgraph(conflicted, &fetch)),
    )
    .map_err(|e| StateResError::Resolution(e.to_string()))?;
    Ok(resolved
        .into_iter()
        .map(|((kind, key), id)| ((kind.to_string(), key), id.to_string()))
        .collect())
}

/// ruma's auth check of `event` against its own `auth_events` (and, from version 12, the create
/// event its room id names): the state-independent rules, then the state-dependent ones over
/// that state. Federation checks every incoming PDU with it.
pub(crate) fn auth_check(
    version: &RoomVersion,
    event: &PduEvent,
    events: &impl EventSource,
) -> Result<(), String> {
    let mut state = StateIds::new();
    for id in &event.auth_events {
        if let Some(e) = events.event(id.as_str()) {
            if let Some(key) = &e.state_key {
                state.insert((e.kind.to_string(), key.clone()), e.event_id.to_string());
            }
        }
    }
    auth_check_against(version, event, &state, events)
}

/// ruma's auth check of `event` against a given state (the state before it, or the room's
/// current state for a soft-fail check), after the state-independent rules.
pub(crate) fn auth_check_against(
    version: &RoomVersion,
    event: &PduEvent,
    state: &StateIds,
    events: &impl EventSource,
) -> Result<(), String> {
    let rules = version.ruma_rules().authorization;
    let fetch = |id: &EventId| events.event(id.as_str());
    ruma_state_res::check_state_independent_auth_rules(&rules, event, fetch)?;
    // From version 12 no event names the create event among its auth events: the room id does.
    let create = if version.room_id_is_create_hash {
        event
            .room_id
            .as_ref()
            .and_then(|r| events.event(&format!("${}", r.strip_sigil())))
    } else {
        None
    };
    let fetch_state = |kind: &StateEventType, key: &str| {
        if *kind == StateEventType::RoomCreate && create.is_some() {
            return create.clone();
        }
        state
            .get(&(kind.to_string(), key.to_string()))
            .and_then(|id| events.event(id))
    };
    ruma_state_res::check_state_dependent_auth_rules(&rules, event, fetch_state)
}

fn to_ruma_map(state: &StateIds) -> Result<ruma_state_res::StateMap<OwnedEventId>, StateResError> {
    state
        .iter()
        .map(|((kind, key), id)| {
            let event_id = EventId::parse(id)
                .map_err(|e| StateResError::Malformed(id.clone(), e.to_string()))?;
            Ok(((StateEventType::from(kind.as_str()), key.clone()), event_id))
        })
        .collect()
}

/// Auth chains (every event reachable through `auth_events`), each event's computed once.
#[derive(Default)]
struct AuthChains {
    known: HashMap<OwnedEventId, Arc<HashSet<OwnedEventId>>>,
}

impl AuthChains {
    /// The union of the auth chains of `ids`.
    fn of_all<'a>(
        &mut self,
        ids: impl Iterator<Item = &'a OwnedEventId>,
        fetch: &impl Fn(&EventId) -> Option<Arc<PduEvent>>,
    ) -> EventIdSet<OwnedEventId> {
        let mut all = EventIdSet::new();
        for id in ids {
            all.extend(self.of(id, fetch).iter().cloned());
        }
        all
    }

    /// The auth chain of one event, without it; iterative, since chains are long.
    fn of(
        &mut self,
        id: &OwnedEventId,
        fetch: &impl Fn(&EventId) -> Option<Arc<PduEvent>>,
    ) -> Arc<HashSet<OwnedEventId>> {
        if let Some(chain) = self.known.get(id) {
            return chain.clone();
        }
        let mut chain = HashSet::new();
        let mut todo: Vec<OwnedEventId> =
            fetch(id).map(|e| e.auth_events.clone()).unwrap_or_default();
        while let Some(next) = todo.pop() {
            if !chain.insert(next.clone()) {
                continue;
            }
            if let Some(known) = self.known.get(&next) {
                chain.extend(known.iter().cloned());
            } else if let Some(e) = fetch(&next) {
                todo.extend(e.auth_events.iter().cloned());
            }
        }
        let chain = Arc::new(chain);
        self.known.insert(id.clone(), chain.clone());
        chain
    }
}

/// The conflicted state subgraph of state resolution v2.1 (MSC4297): the events on an
/// `auth_events` path from one conflicted event to another, that is those in the auth chain of
/// a conflicted event from which a conflicted event can be reached.
fn conflicted_subgraph(
    conflicted: &ruma_state_res::StateMap<Vec<OwnedEventId>>,
    fetch: &impl Fn(&EventId) -> Option<Arc<PduEvent>>,
) -> EventIdSet<OwnedEventId> {
    let conflicted: HashSet<&OwnedEventId> = conflicted.values().flatten().collect();
    let mut chains = AuthChains::default();
    let ancestors: HashSet<OwnedEventId> = conflicted
        .iter()
        .flat_map(|id| chains.of(id, fetch).iter().cloned().collect::<Vec<_>>())
        .collect();
    ancestors
        .iter()
        .filter(|id| {
            conflicted.contains(id)
                || chains
                    .of(id, fetch)
                    .iter()
                    .any(|ancestor| conflicted.contains(ancestor))
        })
        .cloned()
        .collect()
}

#[cfg(test)]
pub(crate) mod fixture;
#[cfg(test)]
mod tests;
