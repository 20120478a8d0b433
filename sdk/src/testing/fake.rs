//! The fake homeserver's state behind the harness: users, rooms with their members, state
//! and history, aliases, what the plugin sent, its store and timers, media, log lines, and
//! the failures a test asked for. [`FakeHost`](super::fake_host::FakeHost) answers the
//! plugin's host calls from it; the [`Harness`](super::Harness) sets it up and reads it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::fake_e2ee::FakeE2ee;
use super::history::History;
use super::{Line, Sent, SERVER};
use crate::bindings::plugboard::appservice::homeserver::{Media, RoomAccess};
use crate::bindings::plugboard::appservice::types::Event as WitEvent;
use crate::http::{Request, Response};
use crate::types::Error;
use plugboard_limits::{kv as limits, Refusal};

#[derive(Default)]
pub(super) struct Room {
    pub(super) members: BTreeMap<String, String>,
    pub(super) state: BTreeMap<(String, String), Value>,
    pub(super) events: Vec<WitEvent>,
    /// What the visibility rule needs of each event, in order.
    pub(super) history: History,
}

impl Room {
    /// Sets a state event; a membership also sets who is in the room.
    pub(super) fn set_state(&mut self, event_type: &str, state_key: &str, content: Value) {
        if event_type == "m.room.member" {
            let m = content["membership"].as_str().unwrap_or("leave");
            self.members.insert(state_key.to_string(), m.to_string());
        }
        self.state
            .insert((event_type.to_string(), state_key.to_string()), content);
    }

    /// The history visibility in force now.
    pub(super) fn visibility(&self) -> String {
        self.state
            .get(&("m.room.history_visibility".to_string(), String::new()))
            .and_then(|c| c["history_visibility"].as_str())
            .unwrap_or("shared")
            .to_string()
    }

    /// Adds an event to the history (once: a delivery seen again is not a new event) and
    /// applies it to the state when it is a state event.
    pub(super) fn happen(
        &mut self,
        event_id: &str,
        event_type: &str,
        state_key: Option<&str>,
        content: &Value,
    ) {
        let visibility = self.visibility();
        if !self
            .history
            .add(event_id, event_type, state_key, content, visibility)
        {
            return;
        }
        if let Some(key) = state_key {
            self.set_state(event_type, key, content.clone());
        }
    }

    /// What `user` may read of the room now.
    pub(super) fn access(&self, user: &str) -> RoomAccess {
        let joined = self.members.get(user).map(String::as_str) == Some("join");
        self.history.access(user, joined, &self.visibility())
    }

    /// Whether `user` may see the event `event_id` of this room.
    pub(super) fn sees(&self, user: &str, event_id: &str) -> bool {
        self.history.sees_event(user, event_id, &self.visibility())
    }
}

/// What the call running now changed, which the host's per-call limits count.
#[derive(Default)]
pub(super) struct Call {
    /// Keys written or deleted.
    pub(super) written: BTreeSet<String>,
    /// Timers when the call began.
    pub(super) timers_before: usize,
    /// Timers set (`true`) or cancelled (`false`), by key.
    pub(super) timer_changes: BTreeMap<String, bool>,
}

/// What answers the plugin's outbound HTTP in a test.
pub(super) type Responder = Box<dyn FnMut(&Request) -> Result<Response, Error>>;

#[derive(Default)]
pub(super) struct Fake {
    pub(super) sender: String,
    pub(super) public_base_url: String,
    pub(super) now_ms: u64,
    pub(super) next_id: u64,
    pub(super) users: BTreeSet<String>,
    pub(super) rooms: BTreeMap<String, Room>,
    pub(super) aliases: BTreeMap<String, String>,
    pub(super) sent: Vec<Sent>,
    pub(super) kv: BTreeMap<String, Vec<u8>>,
    /// What the store's keys and values take of the quota.
    pub(super) kv_bytes: u64,
    pub(super) kv_quota: u64,
    /// Set while the plugin is in a call; writes from the test itself are not counted.
    pub(super) call: Option<Call>,
    pub(super) timers: BTreeMap<String, (u64, u64, String)>,
    pub(super) timer_seq: u64,
    /// The state of the harness's random numbers (xorshift64*): the same every run.
    pub(super) random: u64,
    pub(super) logs: Vec<Line>,
    pub(super) media: BTreeMap<String, Media>,
    /// Errors the next calls of a function answer, by function name.
    pub(super) failures: BTreeMap<String, Vec<Error>>,
    /// The server admins.
    pub(super) admins: BTreeSet<String>,
    /// Answers outbound HTTP requests; none refuses them all.
    pub(super) http: Option<Responder>,
    pub(super) requests: Vec<Request>,
    /// Devices, keys and to-device messages of the plugin's users.
    pub(super) e2ee: FakeE2ee,
}

impl Fake {
    pub(super) fn id(&mut self, sigil: char) -> String {
        self.next_id += 1;
        match sigil {
            '$' => format!("$e{}", self.next_id),
            _ => format!("{sigil}r{}:{SERVER}", self.next_id),
        }
    }

    pub(super) fn user(&self, as_user: Option<&str>) -> String {
        as_user.map_or_else(|| self.sender.clone(), str::to_string)
    }

    pub(super) fn injected(&mut self, function: &str) -> Result<(), Error> {
        match self
            .failures
            .get_mut(function)
            .and_then(|v| (!v.is_empty()).then(|| v.remove(0)))
        {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Sets (`Some`) or deletes `key` as the host's store does, refused past the keys one
    /// call may write or past the quota, in the host's order and words.
    pub(super) fn write(&mut self, key: &str, value: Option<&[u8]>) -> Result<(), Error> {
        let before = self.kv.get(key).map(|v| limits::entry_size(key, v.len()));
        if value.is_none() && before.is_none() {
            return Ok(());
        }
        if let Some(call) = &self.call {
            if !call.written.contains(key) && call.written.len() >= limits::MAX_WRITES_PER_CALL {
                return Err(refused(limits::too_many_writes()));
            }
        }
        let after_entry = value.map_or(0, |v| limits::entry_size(key, v.len()));
        let before = before.unwrap_or(0);
        if after_entry > before {
            let after = self.kv_bytes + after_entry - before;
            if after > self.kv_quota {
                return Err(refused(limits::over_quota(after, self.kv_quota)));
            }
        }
        self.kv_bytes = self.kv_bytes + after_entry - before;
        match value {
            Some(v) => self.kv.insert(key.to_string(), v.to_vec()),
            None => self.kv.remove(key),
        };
        if let Some(call) = &mut self.call {
            call.written.insert(key.to_string());
        }
        Ok(())
    }

    pub(super) fn room(&mut self, room: &str) -> Result<&mut Room, Error> {
        self.rooms
            .get_mut(room)
            .ok_or_else(|| Error::new("M_NOT_FOUND", format!("no room {room}")))
    }

    pub(super) fn joined(&mut self, room: &str, user: &str) -> Result<&mut Room, Error> {
        let r = self.room(room)?;
        if r.members.get(user).map(String::as_str) != Some("join") {
            return Err(Error::new(
                "M_FORBIDDEN",
                format!("{user} is not in {room}"),
            ));
        }
        Ok(r)
    }

    pub(super) fn record(
        &mut self,
        user: String,
        room: &str,
        event_type: &str,
        state_key: Option<&str>,
        content: Value,
    ) -> String {
        let event_id = self.id('$');
        let ts = self.now_ms;
        if let Some(r) = self.rooms.get_mut(room) {
            r.happen(&event_id, event_type, state_key, &content);
            let mut raw = json!({"event_id": event_id, "room_id": room, "sender": user,
                "type": event_type, "content": content, "origin_server_ts": ts});
            if let Some(k) = state_key {
                raw["state_key"] = json!(k);
            }
            r.events.push(WitEvent {
                event_id: event_id.clone(),
                room_id: room.to_string(),
                sender: user.clone(),
                event_type: event_type.to_string(),
                state_key: state_key.map(str::to_string),
                origin_server_ts: ts,
                content: content.to_string(),
                json: raw.to_string(),
                from_own_user: true,
            });
        }
        self.sent.push(Sent {
            user,
            room: room.to_string(),
            event_type: event_type.to_string(),
            state_key: state_key.map(str::to_string),
            content,
            event_id: event_id.clone(),
        });
        event_id
    }

    pub(super) fn membership(
        &mut self,
        actor: String,
        room: &str,
        target: &str,
        membership: &str,
        reason: Option<&str>,
    ) -> Result<(), Error> {
        self.room(room)?;
        let mut content = json!({ "membership": membership });
        if let Some(r) = reason {
            content["reason"] = json!(r);
        }
        self.record(actor, room, "m.room.member", Some(target), content);
        Ok(())
    }
}

/// A limit's refusal as the error the plugin gets.
pub(super) fn refused(r: Refusal) -> Error {
    Error::new(r.errcode, r.message)
}
