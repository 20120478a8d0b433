//! A room's current state as the write path keeps it in memory: for each `(type, state_key)`
//! the event id, the sender and the content as compact JSON text. That is all the auth rules,
//! the auth events and a replacing event's `unsigned` need; whole events are read from storage.
//! Text, because a parsed `serde_json::Value` costs several times its text in memory (every
//! object a B-tree node, every number a string here), and a room's state stays resident.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use serde_json::{json, Value};

use super::pdu::Pdu;
use super::power_levels::{Creators, PowerLevels};
use super::values::Membership;
use crate::service::keys::redaction;
use crate::service::room_version::{Redaction, RoomVersion};

/// One event of the current state.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StateEntry {
    pub(crate) event_id: Box<str>,
    pub(crate) sender: Box<str>,
    content: Box<str>,
    /// Whether it is a member event saying `join`: kept apart so that the send path can walk
    /// a room's members (for their push rules) without parsing every content.
    joined: bool,
}

impl StateEntry {
    pub(crate) fn new(event_id: &str, sender: &str, content: &Value) -> StateEntry {
        StateEntry {
            event_id: event_id.into(),
            sender: sender.into(),
            content: content.to_string().into(),
            joined: content["membership"].as_str() == Some("join"),
        }
    }

    /// Whether this is a member event of a member who is joined.
    pub(crate) fn is_joined(&self) -> bool {
        self.joined
    }

    /// The entry of a state event, with its content as it is now (redacted or not).
    pub(crate) fn of(pdu: &Pdu) -> StateEntry {
        StateEntry::new(&pdu.event_id, &pdu.sender, pdu.content())
    }

    /// The content, parsed. It was serialized from a `Value`, so it parses; should it ever
    /// not, an empty object is what the rules see (as for a redacted event).
    pub(crate) fn content(&self) -> Value {
        serde_json::from_str(&self.content).unwrap_or_else(|_| json!({}))
    }

    /// `content.membership`, for member events, when the spec has the value.
    pub(crate) fn membership(&self) -> Option<Membership> {
        self.content()["membership"]
            .as_str()
            .and_then(Membership::parse)
    }

    /// The bytes of its text, plus what an entry costs besides (its boxes, a map slot).
    fn bytes(&self, state_key: &str) -> usize {
        ENTRY_OVERHEAD
            + state_key.len()
            + self.event_id.len()
            + self.sender.len()
            + self.content.len()
    }

    /// Strips the content as the redaction algorithm does for an event of `kind`.
    fn redact(&mut self, kind: &str, rules: &Redaction) {
        let content = self.content();
        let kept = content
            .as_object()
            .map(|c| redaction::redact_content(kind, c, rules))
            .unwrap_or_default();
        self.content = Value::Object(kept).to_string().into();
    }
}

/// What an entry costs besides its text: three boxes and a key (72 bytes), the allocator's
/// headers of four allocations, a slot of its map. An estimate, for weighing heads.
const ENTRY_OVERHEAD: usize = 160;

/// The current state: event type → state key → entry. Nested so that a lookup by `&str`
/// allocates nothing.
#[derive(Debug, Clone, Default)]
pub struct RoomState {
    events: HashMap<String, HashMap<String, StateEntry>>,
    len: usize,
    /// The entries' bytes, together (see [`RoomState::bytes`]).
    bytes: usize,
    /// The power levels the entries give, made on first use after they change: every event
    /// sent is checked against them and evaluated for push with them, so they are not parsed
    /// again for each.
    power_levels: OnceLock<Arc<PowerLevels>>,
    /// The version its create event names, made on first use for the same reason.
    version: OnceLock<Option<&'static RoomVersion>>,
}

/// The state events whose change changes [`RoomState::power_levels`] or the version.
fn shapes_derived(kind: &str) -> bool {
    kind == "m.room.power_levels" || kind == "m.room.create"
}

impl RoomState {
    /// The room's version, as its create event names it; `None` before the create event or
    /// for a version this server does not support.
    pub(crate) fn version(&self) -> Option<&'static RoomVersion> {
        *self.version.get_or_init(|| {
            let create = self.get("m.room.create", "")?;
            RoomVersion::of_create(&create.content()).ok()
        })
    }

    pub(crate) fn get(&self, kind: &str, state_key: &str) -> Option<&StateEntry> {
        self.events.get(kind)?.get(state_key)
    }

    /// The room's power levels: its `m.room.power_levels` content, or the defaults of a room
    /// without one, in which the creators have 100; version 12's creators above them all.
    pub(crate) fn power_levels(&self) -> Arc<PowerLevels> {
        self.power_levels
            .get_or_init(|| {
                let content = self.get("m.room.power_levels", "").map(StateEntry::content);
                Arc::new(PowerLevels::from_content(
                    content.as_ref(),
                    &self.creators(),
                ))
            })
            .clone()
    }

    /// Who created the room, as its version reads the create event.
    pub(crate) fn creators(&self) -> Creators {
        match (self.get("m.room.create", ""), self.version()) {
            (Some(create), Some(version)) => creators(version, &create.sender, &create.content()),
            _ => Creators::default(),
        }
    }

    /// Sets the entry of `(kind, state_key)`; answers the one it replaces.
    pub(crate) fn set(
        &mut self,
        kind: &str,
        state_key: &str,
        entry: StateEntry,
    ) -> Option<StateEntry> {
        self.bytes += entry.bytes(state_key);
        if shapes_derived(kind) {
            self.power_levels = OnceLock::new();
            self.version = OnceLock::new();
        }
        let replaced = match self.events.get_mut(kind) {
            Some(keys) => keys.insert(state_key.to_string(), entry),
            None => {
                let mut keys = HashMap::with_capacity(1);
                keys.insert(state_key.to_string(), entry);
                self.events.insert(kind.to_string(), keys);
                None
            }
        };
        match &replaced {
            Some(old) => self.bytes -= old.bytes(state_key),
            None => self.len += 1,
        }
        replaced
    }

    /// Redacts the entry of `(kind, state_key)` if it is the event `event_id`.
    pub(crate) fn redact(
        &mut self,
        kind: &str,
        state_key: &str,
        event_id: &str,
        rules: &Redaction,
    ) {
        if let Some(entry) = self
            .events
            .get_mut(kind)
            .and_then(|keys| keys.get_mut(state_key))
            .filter(|e| &*e.event_id == event_id)
        {
            let before = entry.bytes(state_key);
            entry.redact(kind, rules);
            self.bytes = self.bytes - before + entry.bytes(state_key);
            if shapes_derived(kind) {
                self.power_levels = OnceLock::new();
                self.version = OnceLock::new();
            }
        }
    }

    /// The entries of one event type, by state key.
    pub(crate) fn of_kind<'a>(
        &'a self,
        kind: &str,
    ) -> impl Iterator<Item = (&'a str, &'a StateEntry)> {
        self.events
            .get(kind)
            .into_iter()
            .flat_map(|keys| keys.iter().map(|(k, e)| (k.as_str(), e)))
    }

    /// Every entry: `(type, state_key, entry)`.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&str, &str, &StateEntry)> {
        self.events.iter().flat_map(|(kind, keys)| {
            keys.iter()
                .map(move |(key, e)| (kind.as_str(), key.as_str(), e))
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// About what the state takes in memory: its text and a fixed cost per entry. What the
    /// head cache weighs a room by.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The creators a create event of `version` names: its `creator` up to version 10, its sender
/// from 11, and from 12 its `additional_creators` too (the valid user ids among them; the auth
/// rules refuse a create event with others).
pub(crate) fn creators(version: &RoomVersion, sender: &str, content: &Value) -> Creators {
    let first = if version.create_names_creator {
        content["creator"].as_str().unwrap_or(sender)
    } else {
        sender
    };
    let mut users = vec![first.to_string()];
    if version.privileged_creators {
        let additional = content["additional_creators"]
            .as_array()
            .into_iter()
            .flatten();
        for user in additional.filter_map(Value::as_str) {
            if !users.iter().any(|u| u == user) {
                users.push(user.to_string());
            }
        }
    }
    Creators {
        users,
        privileged: version.privileged_creators,
    }
}

impl FromIterator<Pdu> for RoomState {
    /// The state made of these state events (events without a state key are skipped).
    fn from_iter<I: IntoIterator<Item = Pdu>>(events: I) -> RoomState {
        let mut state = RoomState::default();
        for p in events {
            if let Some(key) = &p.state_key {
                state.set(&p.kind, key, StateEntry::of(&p));
            }
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::room_version::V10;

    fn entry(id: &str, content: Value) -> StateEntry {
        StateEntry::new(id, "@a:x", &content)
    }

    #[test]
    fn an_entry_gives_back_the_content_it_was_made_with() {
        let content =
            json!({"membership": "join", "displayname": "Ä", "n": 12345678901234567890u64});
        let e = entry("$1", content.clone());
        assert_eq!(e.content(), content);
        assert_eq!(e.membership(), Some(Membership::Join));
        assert!(e.is_joined());
        assert_eq!(entry("$2", json!({"name": "x"})).membership(), None);
        assert!(!entry("$3", json!({"membership": "leave"})).is_joined());
    }

    #[test]
    fn setting_a_key_again_replaces_it_and_keeps_the_count() {
        let mut s = RoomState::default();
        assert!(s.is_empty());
        assert_eq!(
            s.set("m.room.name", "", entry("$1", json!({"name": "a"}))),
            None
        );
        s.set(
            "m.room.member",
            "@a:x",
            entry("$2", json!({"membership": "join"})),
        );
        let old = s.set("m.room.name", "", entry("$3", json!({"name": "b"})));
        assert_eq!(old.map(|e| e.event_id), Some("$1".into()));
        assert_eq!(s.len(), 2);
        assert_eq!(&*s.get("m.room.name", "").unwrap().event_id, "$3");
        assert!(s.get("m.room.member", "@b:x").is_none());
        assert!(s.get("m.room.topic", "").is_none());
    }

    #[test]
    fn its_bytes_follow_what_is_set_replaced_and_redacted() {
        let mut s = RoomState::default();
        assert_eq!(s.bytes(), 0);
        let join = entry("$1", json!({"membership": "join", "displayname": "Alice"}));
        let one = join.bytes("@a:x");
        s.set("m.room.member", "@a:x", join);
        assert_eq!(s.bytes(), one);
        assert!(one > "$1@a:x@a:x".len() + ENTRY_OVERHEAD);

        let name = entry("$2", json!({"name": "x".repeat(1000)}));
        let named = name.bytes("");
        s.set("m.room.name", "", name);
        assert_eq!(s.bytes(), one + named);
        assert!(named > 1000);

        s.set("m.room.name", "", entry("$3", json!({"name": "y"})));
        let renamed = s.get("m.room.name", "").unwrap().bytes("");
        assert_eq!(
            s.bytes(),
            one + renamed,
            "the replaced entry no longer counts"
        );

        s.redact("m.room.member", "@a:x", "$1", &V10.redaction);
        let redacted = s.get("m.room.member", "@a:x").unwrap().bytes("@a:x");
        assert!(redacted < one);
        assert_eq!(s.bytes(), redacted + renamed);
    }

    #[test]
    fn redacting_strips_the_content_of_that_event_only() {
        let mut s = RoomState::default();
        s.set(
            "m.room.member",
            "@a:x",
            entry("$1", json!({"membership": "join", "displayname": "A"})),
        );
        s.redact("m.room.member", "@a:x", "$other", &V10.redaction);
        assert_eq!(
            s.get("m.room.member", "@a:x").unwrap().content()["displayname"],
            "A"
        );
        s.redact("m.room.member", "@a:x", "$1", &V10.redaction);
        assert!(s.get("m.room.member", "@a:x").unwrap().is_joined());
        assert_eq!(
            s.get("m.room.member", "@a:x").unwrap().content(),
            json!({"membership": "join"})
        );
    }

    #[test]
    fn power_levels_and_version_follow_the_events_that_set_them() {
        let mut s = RoomState::default();
        assert!(s.version().is_none());
        s.set(
            "m.room.create",
            "",
            entry("$c", json!({"creator": "@a:x", "room_version": "10"})),
        );
        assert_eq!(s.version().map(|v| v.id), Some("10"));
        // Without a power levels event the creator has 100.
        assert_eq!(s.power_levels().user_level("@a:x"), 100);
        s.set(
            "m.room.power_levels",
            "",
            entry(
                "$p",
                json!({"users": {"@b:x": 70}, "ban": 60, "notifications": {"room": 20}}),
            ),
        );
        let levels = s.power_levels();
        assert_eq!(levels.user_level("@b:x"), 70);
        assert_eq!(levels.user_level("@a:x"), 0);
        assert_eq!((levels.ban, levels.notifications_room), (60, 20));
        // A redaction keeps `users` and `ban` but strips `notifications` (room v10).
        s.redact("m.room.power_levels", "", "$p", &V10.redaction);
        let levels = s.power_levels();
        assert_eq!((levels.ban, levels.notifications_room), (60, 50));
        s.set(
            "m.room.power_levels",
            "",
            entry("$p2", json!({"users": {"@b:x": 10}})),
        );
        assert_eq!(s.power_levels().user_level("@b:x"), 10);
    }

    #[test]
    fn the_creators_are_named_by_content_up_to_10_by_sender_from_11_and_with_others_in_12() {
        let content = json!({"creator": "@named:x", "additional_creators": ["@b:x", "@a:x"]});
        let of = |v: &RoomVersion| {
            let c = creators(v, "@a:x", &content);
            (c.users, c.privileged)
        };
        assert_eq!(of(&V10), (vec!["@named:x".to_string()], false));
        assert_eq!(
            of(&crate::service::room_version::V11),
            (vec!["@a:x".to_string()], false)
        );
        assert_eq!(
            of(&crate::service::room_version::V12),
            (vec!["@a:x".to_string(), "@b:x".to_string()], true)
        );
    }
}
