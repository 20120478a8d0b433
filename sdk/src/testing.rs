//! The native test harness: run a plugin under `cargo test` without wasm or a server. The
//! [`Harness`] stands in for the host with a small homeserver of its own (rooms, members,
//! state, media), a key-value store with the host's commit-or-drop rule and its limits (keys,
//! values, the quota, the keys one call writes), a clock for timers with the host's cap on
//! them and a log, feeds the plugin transactions and lets the test look at what it did.
//!
//! Each fake room keeps its history (the events the test delivered or set, and those the
//! plugin sent) with the history visibility in force at each, so that `access_to_rooms` and
//! `visible_events` answer by the spec's rule as the server does: a member who left sees
//! nothing sent since, `joined` and `invited` hide what came before, `world_readable` shows
//! all. Server admins are the users named with [`Harness::set_server_admin`].
//!
//! ```ignore
//! let mut h = Harness::<Echo>::new(json!({}))?;
//! h.message("!room:test", "@alice:test", "!echo hi")?;
//! assert_eq!(h.sent()[0].content["body"], "hi");
//! ```

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;
use std::rc::Rc;

use serde_json::{json, Value};

use crate::bindings::plugboard::appservice::homeserver::{Media, Member, RoomAccess, RoomOptions};
use crate::bindings::plugboard::appservice::log::Level;
use crate::bindings::plugboard::appservice::types::Event as WitEvent;
use crate::host::{self, Host};
use crate::http::{Request, Response};
use crate::kv;
use crate::plugin::runner;
use crate::timers::MAX_TIMERS;
use crate::types::{Ephemeral, Error, Event, HttpRequest, HttpResponse, Transaction};
use crate::Plugin;

mod history;
use history::History;

/// The server name of the harness's users and rooms.
pub const SERVER: &str = "test";

/// The store's quota unless a test sets another ([`Harness::set_kv_quota`]): the host's
/// default `kv_quota_bytes`.
pub const KV_QUOTA_BYTES: u64 = 16 << 20;

/// What the plugin sent, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    /// The user it acted as (its sender when it named none).
    pub user: String,
    /// The room.
    pub room: String,
    /// The event type.
    pub event_type: String,
    /// Set for state events.
    pub state_key: Option<String>,
    /// The content.
    pub content: Value,
    /// The event's id.
    pub event_id: String,
}

/// A log line the plugin wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// How much it matters.
    pub level: Level,
    /// The line.
    pub message: String,
    /// Its structured fields.
    pub fields: Vec<(String, String)>,
}

#[derive(Default)]
struct Room {
    members: BTreeMap<String, String>,
    state: BTreeMap<(String, String), Value>,
    events: Vec<WitEvent>,
    /// What the visibility rule needs of each event, in order.
    history: History,
}

impl Room {
    /// Sets a state event; a membership also sets who is in the room.
    fn set_state(&mut self, event_type: &str, state_key: &str, content: Value) {
        if event_type == "m.room.member" {
            let m = content["membership"].as_str().unwrap_or("leave");
            self.members.insert(state_key.to_string(), m.to_string());
        }
        self.state
            .insert((event_type.to_string(), state_key.to_string()), content);
    }

    /// The history visibility in force now.
    fn visibility(&self) -> String {
        self.state
            .get(&("m.room.history_visibility".to_string(), String::new()))
            .and_then(|c| c["history_visibility"].as_str())
            .unwrap_or("shared")
            .to_string()
    }

    /// Adds an event to the history (once: a delivery seen again is not a new event) and
    /// applies it to the state when it is a state event.
    fn happen(
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
    fn access(&self, user: &str) -> RoomAccess {
        let joined = self.members.get(user).map(String::as_str) == Some("join");
        self.history.access(user, joined, &self.visibility())
    }

    /// Whether `user` may see the event `event_id` of this room.
    fn sees(&self, user: &str, event_id: &str) -> bool {
        self.history.sees_event(user, event_id, &self.visibility())
    }
}

/// What the call running now changed, which the host's per-call limits count.
#[derive(Default)]
struct Call {
    /// Keys written or deleted.
    written: BTreeSet<String>,
    /// Timers when the call began.
    timers_before: usize,
    /// Timers set (`true`) or cancelled (`false`), by key.
    timer_changes: BTreeMap<String, bool>,
}

/// What answers the plugin's outbound HTTP in a test.
type Responder = Box<dyn FnMut(&Request) -> Result<Response, Error>>;

#[derive(Default)]
struct Fake {
    sender: String,
    now_ms: u64,
    next_id: u64,
    users: BTreeSet<String>,
    rooms: BTreeMap<String, Room>,
    aliases: BTreeMap<String, String>,
    sent: Vec<Sent>,
    kv: BTreeMap<String, Vec<u8>>,
    /// What the store's keys and values take of the quota.
    kv_bytes: u64,
    kv_quota: u64,
    /// Set while the plugin is in a call; writes from the test itself are not counted.
    call: Option<Call>,
    timers: BTreeMap<String, (u64, u64, String)>,
    timer_seq: u64,
    /// The state of the harness's random numbers (xorshift64*): the same every run.
    random: u64,
    logs: Vec<Line>,
    media: BTreeMap<String, Media>,
    /// Errors the next calls of a function answer, by function name.
    failures: BTreeMap<String, Vec<Error>>,
    /// The server admins.
    admins: BTreeSet<String>,
    /// Answers outbound HTTP requests; none refuses them all.
    http: Option<Responder>,
    requests: Vec<Request>,
}

impl Fake {
    fn id(&mut self, sigil: char) -> String {
        self.next_id += 1;
        match sigil {
            '$' => format!("$e{}", self.next_id),
            _ => format!("{sigil}r{}:{SERVER}", self.next_id),
        }
    }

    fn user(&self, as_user: Option<&str>) -> String {
        as_user.map_or_else(|| self.sender.clone(), str::to_string)
    }

    fn injected(&mut self, function: &str) -> Result<(), Error> {
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
    fn write(&mut self, key: &str, value: Option<&[u8]>) -> Result<(), Error> {
        let before = self.kv.get(key).map(|v| entry_size(key, v));
        if value.is_none() && before.is_none() {
            return Ok(());
        }
        if let Some(call) = &self.call {
            if !call.written.contains(key) && call.written.len() >= kv::MAX_WRITES_PER_CALL {
                return Err(Error::new(
                    "M_RESOURCE_LIMIT_EXCEEDED",
                    format!("one call writes at most {} keys", kv::MAX_WRITES_PER_CALL),
                ));
            }
        }
        let after_entry = value.map_or(0, |v| entry_size(key, v));
        let before = before.unwrap_or(0);
        if after_entry > before {
            let after = self.kv_bytes + after_entry - before;
            if after > self.kv_quota {
                return Err(Error::new(
                    "M_RESOURCE_LIMIT_EXCEEDED",
                    format!(
                        "the plugin's store would hold {after} bytes; its quota is {}",
                        self.kv_quota
                    ),
                ));
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

    fn room(&mut self, room: &str) -> Result<&mut Room, Error> {
        self.rooms
            .get_mut(room)
            .ok_or_else(|| Error::new("M_NOT_FOUND", format!("no room {room}")))
    }

    fn joined(&mut self, room: &str, user: &str) -> Result<&mut Room, Error> {
        let r = self.room(room)?;
        if r.members.get(user).map(String::as_str) != Some("join") {
            return Err(Error::new(
                "M_FORBIDDEN",
                format!("{user} is not in {room}"),
            ));
        }
        Ok(r)
    }

    fn record(
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

    fn membership(
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

/// The fake host the harness installs; it shares its state with the [`Harness`].
struct FakeHost(Rc<RefCell<Fake>>);

/// The largest event a server stores (the spec's 65,536 bytes), less what the fake takes
/// the envelope (ids, sender, type, hashes and signatures) to need: a content past it is
/// refused as the server would refuse the event.
const MAX_CONTENT: usize = 65_536 - 1024;

fn parse(text: &str) -> Result<Value, Error> {
    if text.len() > MAX_CONTENT {
        return Err(Error::new(
            "M_TOO_LARGE",
            format!("the event's content is {} bytes", text.len()),
        ));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(v) if v.is_object() => Ok(v),
        _ => Err(Error::new("M_BAD_JSON", "content must be a JSON object")),
    }
}

/// The host's refusal of a list of ids past what one call takes.
fn check_ids(len: usize, what: &str) -> Result<(), Error> {
    if len > crate::homeserver::MAX_IDS_PER_CALL {
        return Err(Error::new(
            "M_TOO_LARGE",
            format!(
                "at most {} {what} a call; this one has {len}",
                crate::homeserver::MAX_IDS_PER_CALL
            ),
        ));
    }
    Ok(())
}

/// What a key and its value count against the quota, as the host counts it.
fn entry_size(key: &str, value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64
}

/// The host's refusal of a key or a value past its limits, as the host words it.
fn check_kv(key: &str, value: Option<&[u8]>) -> Result<(), Error> {
    if key.is_empty() {
        return Err(Error::new("M_INVALID_PARAM", "a key must not be empty"));
    }
    if key.len() > kv::MAX_KEY {
        return Err(Error::new(
            "M_TOO_LARGE",
            format!(
                "a key is at most {} bytes; this one is {}",
                kv::MAX_KEY,
                key.len()
            ),
        ));
    }
    match value {
        Some(v) if v.len() > kv::MAX_VALUE => Err(Error::new(
            "M_TOO_LARGE",
            format!(
                "a value is at most {} bytes; this one is {}",
                kv::MAX_VALUE,
                v.len()
            ),
        )),
        _ => Ok(()),
    }
}

impl Host for FakeHost {
    fn sender(&mut self) -> String {
        self.0.borrow().sender.clone()
    }

    fn register_user(&mut self, localpart: &str) -> Result<String, Error> {
        let mut f = self.0.borrow_mut();
        f.injected("register_user")?;
        let id = format!("@{localpart}:{SERVER}");
        if !f.users.insert(id.clone()) {
            return Err(Error::new("M_USER_IN_USE", format!("{id} exists")));
        }
        Ok(id)
    }

    fn send_event(
        &mut self,
        as_user: Option<&str>,
        room: &str,
        event_type: &str,
        content: &str,
        _txn: Option<&str>,
    ) -> Result<String, Error> {
        let mut f = self.0.borrow_mut();
        f.injected("send_event")?;
        let user = f.user(as_user);
        f.joined(room, &user)?;
        let content = parse(content)?;
        Ok(f.record(user, room, event_type, None, content))
    }

    fn send_state(
        &mut self,
        as_user: Option<&str>,
        room: &str,
        event_type: &str,
        state_key: &str,
        content: &str,
    ) -> Result<String, Error> {
        let mut f = self.0.borrow_mut();
        f.injected("send_state")?;
        let user = f.user(as_user);
        f.joined(room, &user)?;
        let content = parse(content)?;
        Ok(f.record(user, room, event_type, Some(state_key), content))
    }

    fn redact(
        &mut self,
        as_user: Option<&str>,
        room: &str,
        event: &str,
        reason: Option<&str>,
    ) -> Result<String, Error> {
        let mut f = self.0.borrow_mut();
        f.injected("redact")?;
        let user = f.user(as_user);
        f.joined(room, &user)?;
        let mut content = json!({ "redacts": event });
        if let Some(r) = reason {
            content["reason"] = json!(r);
        }
        Ok(f.record(user, room, "m.room.redaction", None, content))
    }

    fn create_room(
        &mut self,
        as_user: Option<&str>,
        options: &RoomOptions,
    ) -> Result<String, Error> {
        let mut f = self.0.borrow_mut();
        f.injected("create_room")?;
        let user = f.user(as_user);
        let room = f.id('!');
        f.rooms.insert(room.clone(), Room::default());
        f.record(
            user.clone(),
            &room,
            "m.room.create",
            Some(""),
            json!({"creator": user}),
        );
        f.membership(user.clone(), &room, &user, "join", None)?;
        f.record(
            user.clone(),
            &room,
            "m.room.power_levels",
            Some(""),
            json!({"users": {user.clone(): 100}, "state_default": 50}),
        );
        if let Some(name) = &options.name {
            f.record(
                user.clone(),
                &room,
                "m.room.name",
                Some(""),
                json!({"name": name}),
            );
        }
        if let Some(alias) = &options.alias_name {
            f.aliases.insert(format!("#{alias}:{SERVER}"), room.clone());
        }
        for invitee in &options.invite {
            f.membership(user.clone(), &room, invitee, "invite", None)?;
        }
        Ok(room)
    }

    fn join(&mut self, as_user: Option<&str>, room: &str) -> Result<String, Error> {
        let mut f = self.0.borrow_mut();
        f.injected("join")?;
        let user = f.user(as_user);
        let room_id = match room.strip_prefix('#') {
            Some(_) => f
                .aliases
                .get(room)
                .cloned()
                .ok_or_else(|| Error::new("M_NOT_FOUND", format!("no room {room}")))?,
            None => room.to_string(),
        };
        f.membership(user.clone(), &room_id, &user, "join", None)?;
        Ok(room_id)
    }

    fn invite(&mut self, as_user: Option<&str>, room: &str, user: &str) -> Result<(), Error> {
        let mut f = self.0.borrow_mut();
        f.injected("invite")?;
        let actor = f.user(as_user);
        f.joined(room, &actor)?;
        f.membership(actor, room, user, "invite", None)
    }

    fn leave(&mut self, as_user: Option<&str>, room: &str) -> Result<(), Error> {
        let mut f = self.0.borrow_mut();
        f.injected("leave")?;
        let user = f.user(as_user);
        f.membership(user.clone(), room, &user, "leave", None)
    }

    fn kick(
        &mut self,
        as_user: Option<&str>,
        room: &str,
        user: &str,
        reason: Option<&str>,
    ) -> Result<(), Error> {
        let mut f = self.0.borrow_mut();
        f.injected("kick")?;
        let actor = f.user(as_user);
        f.joined(room, &actor)?;
        f.membership(actor, room, user, "leave", reason)
    }

    fn ban(
        &mut self,
        as_user: Option<&str>,
        room: &str,
        user: &str,
        reason: Option<&str>,
    ) -> Result<(), Error> {
        let mut f = self.0.borrow_mut();
        f.injected("ban")?;
        let actor = f.user(as_user);
        f.joined(room, &actor)?;
        f.membership(actor, room, user, "ban", reason)
    }

    fn set_displayname(
        &mut self,
        _as_user: Option<&str>,
        _name: Option<&str>,
    ) -> Result<(), Error> {
        self.0.borrow_mut().injected("set_displayname")
    }

    fn set_avatar(&mut self, _as_user: Option<&str>, _url: Option<&str>) -> Result<(), Error> {
        self.0.borrow_mut().injected("set_avatar")
    }

    fn resolve_alias(&mut self, alias: &str) -> Result<String, Error> {
        let mut f = self.0.borrow_mut();
        f.injected("resolve_alias")?;
        f.aliases
            .get(alias)
            .cloned()
            .ok_or_else(|| Error::new("M_NOT_FOUND", format!("no room {alias}")))
    }

    fn create_alias(
        &mut self,
        _as_user: Option<&str>,
        alias: &str,
        room: &str,
    ) -> Result<(), Error> {
        let mut f = self.0.borrow_mut();
        f.injected("create_alias")?;
        if f.aliases.contains_key(alias) {
            return Err(Error::new("M_UNKNOWN", format!("{alias} exists")));
        }
        f.aliases.insert(alias.to_string(), room.to_string());
        Ok(())
    }

    fn get_state(
        &mut self,
        _as_user: Option<&str>,
        room: &str,
        event_type: &str,
        state_key: &str,
    ) -> Result<String, Error> {
        let mut f = self.0.borrow_mut();
        f.injected("get_state")?;
        f.room(room)?
            .state
            .get(&(event_type.to_string(), state_key.to_string()))
            .map(Value::to_string)
            .ok_or_else(|| Error::new("M_NOT_FOUND", format!("no {event_type} state")))
    }

    fn get_event(
        &mut self,
        _as_user: Option<&str>,
        room: &str,
        event: &str,
    ) -> Result<WitEvent, Error> {
        let mut f = self.0.borrow_mut();
        f.injected("get_event")?;
        f.room(room)?
            .events
            .iter()
            .find(|e| e.event_id == event)
            .cloned()
            .ok_or_else(|| Error::new("M_NOT_FOUND", format!("no event {event}")))
    }

    fn room_members(&mut self, _as_user: Option<&str>, room: &str) -> Result<Vec<Member>, Error> {
        let mut f = self.0.borrow_mut();
        f.injected("room_members")?;
        Ok(f.room(room)?
            .members
            .iter()
            .map(|(user, m)| Member {
                user_id: user.clone(),
                membership: m.clone(),
                displayname: None,
            })
            .collect())
    }

    fn joined_rooms(&mut self, as_user: Option<&str>) -> Result<Vec<String>, Error> {
        let mut f = self.0.borrow_mut();
        f.injected("joined_rooms")?;
        let user = f.user(as_user);
        Ok(f.rooms
            .iter()
            .filter(|(_, r)| r.members.get(&user).map(String::as_str) == Some("join"))
            .map(|(id, _)| id.clone())
            .collect())
    }

    fn access_to_rooms(&mut self, user: &str, rooms: &[String]) -> Result<Vec<RoomAccess>, Error> {
        let mut f = self.0.borrow_mut();
        f.injected("access_to_rooms")?;
        check_ids(rooms.len(), "rooms")?;
        Ok(rooms
            .iter()
            .map(|room| {
                f.rooms.get(room).map_or(
                    RoomAccess {
                        joined: false,
                        readable: false,
                        whole_history: false,
                    },
                    |r| r.access(user),
                )
            })
            .collect())
    }

    fn visible_events(&mut self, user: &str, events: &[String]) -> Result<Vec<String>, Error> {
        let mut f = self.0.borrow_mut();
        f.injected("visible_events")?;
        check_ids(events.len(), "event ids")?;
        Ok(events
            .iter()
            .filter(|id| f.rooms.values().any(|r| r.sees(user, id)))
            .cloned()
            .collect())
    }

    fn is_server_admin(&mut self, user: &str) -> Result<bool, Error> {
        let mut f = self.0.borrow_mut();
        f.injected("is_server_admin")?;
        Ok(f.admins.contains(user))
    }

    fn upload_media(
        &mut self,
        _as_user: Option<&str>,
        content_type: &str,
        filename: Option<&str>,
        data: &[u8],
    ) -> Result<String, Error> {
        let mut f = self.0.borrow_mut();
        f.injected("upload_media")?;
        f.next_id += 1;
        let uri = format!("mxc://{SERVER}/m{}", f.next_id);
        f.media.insert(
            uri.clone(),
            Media {
                content_type: content_type.to_string(),
                filename: filename.map(str::to_string),
                data: data.to_vec(),
            },
        );
        Ok(uri)
    }

    fn download_media(&mut self, uri: &str) -> Result<Media, Error> {
        let mut f = self.0.borrow_mut();
        f.injected("download_media")?;
        f.media
            .get(uri)
            .cloned()
            .ok_or_else(|| Error::new("M_NOT_FOUND", "media not found"))
    }

    fn kv_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        let mut f = self.0.borrow_mut();
        f.injected("kv_get")?;
        check_kv(key, None)?;
        Ok(f.kv.get(key).cloned())
    }

    fn kv_set(&mut self, key: &str, value: &[u8]) -> Result<(), Error> {
        let mut f = self.0.borrow_mut();
        f.injected("kv_set")?;
        check_kv(key, Some(value))?;
        f.write(key, Some(value))
    }

    fn kv_delete(&mut self, key: &str) -> Result<bool, Error> {
        let mut f = self.0.borrow_mut();
        f.injected("kv_delete")?;
        check_kv(key, None)?;
        let existed = f.kv.contains_key(key);
        f.write(key, None)?;
        Ok(existed)
    }

    fn kv_list_keys(
        &mut self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, Error> {
        let mut f = self.0.borrow_mut();
        f.injected("kv_list_keys")?;
        let after = after.unwrap_or("");
        Ok(f.kv
            .keys()
            .filter(|k| k.starts_with(prefix) && k.as_str() > after)
            .take(limit.min(1000) as usize)
            .cloned()
            .collect())
    }

    fn kv_compare_and_swap(
        &mut self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, Error> {
        let mut f = self.0.borrow_mut();
        f.injected("kv_compare_and_swap")?;
        check_kv(key, new)?;
        if f.kv.get(key).map(Vec::as_slice) != expected {
            return Ok(false);
        }
        f.write(key, new)?;
        Ok(true)
    }

    fn log(&mut self, level: Level, message: &str, fields: &[(String, String)]) {
        self.0.borrow_mut().logs.push(Line {
            level,
            message: message.to_string(),
            fields: fields.to_vec(),
        });
    }

    fn set_timer(&mut self, key: &str, after_ms: u64, payload: &str) -> Result<(), Error> {
        let mut f = self.0.borrow_mut();
        f.injected("set_timer")?;
        if !f.timers.contains_key(key) {
            // As the host counts them: until the call ends, a timer it cancelled is still
            // there and one it set again is there twice.
            let timers = match &f.call {
                Some(c) => c.timers_before + c.timer_changes.values().filter(|set| **set).count(),
                None => f.timers.len(),
            };
            if timers >= MAX_TIMERS {
                return Err(Error::new(
                    "M_RESOURCE_LIMIT_EXCEEDED",
                    format!("a plugin has at most {MAX_TIMERS} timers"),
                ));
            }
        }
        if let Some(c) = &mut f.call {
            c.timer_changes.insert(key.to_string(), true);
        }
        f.timer_seq += 1;
        let due = f.now_ms + after_ms;
        let seq = f.timer_seq;
        f.timers
            .insert(key.to_string(), (due, seq, payload.to_string()));
        Ok(())
    }

    fn cancel_timer(&mut self, key: &str) -> bool {
        let mut f = self.0.borrow_mut();
        let existed = f.timers.remove(key).is_some();
        if let (true, Some(c)) = (existed, &mut f.call) {
            c.timer_changes.insert(key.to_string(), false);
        }
        existed
    }

    fn now_ms(&mut self) -> u64 {
        self.0.borrow().now_ms
    }

    fn random_u64(&mut self) -> u64 {
        let mut f = self.0.borrow_mut();
        let mut x = f.random.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        f.random = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn http(&mut self, request: &Request) -> Result<Response, Error> {
        let mut f = self.0.borrow_mut();
        f.injected("http")?;
        f.requests.push(request.clone());
        match f.http.as_mut() {
            Some(answer) => answer(request),
            None => Err(Error::new(
                "M_FORBIDDEN",
                "the host is not on the plugin's http_allow list",
            )),
        }
    }
}

/// A plugin that does nothing: `Harness::<Bare>` is the fake host alone, for the tests of a
/// module that calls the host itself.
pub struct Bare;

impl Plugin for Bare {
    fn init(_config: &crate::Config) -> Result<Self, Error> {
        Ok(Bare)
    }
}

/// A plugin running natively against a fake host. One per thread at a time.
pub struct Harness<P: Plugin> {
    fake: Rc<RefCell<Fake>>,
    _plugin: PhantomData<P>,
}

/// The harness's clock starts here (2023-11-14), so timestamps look real.
pub const START_MS: u64 = 1_700_000_000_000;

impl<P: Plugin> Harness<P> {
    /// Installs the fake host on this thread and calls the plugin's `init` with `config` (a
    /// JSON object); the plugin's sender is `@bot:test`.
    pub fn new(config: Value) -> Result<Harness<P>, Error> {
        Self::with_sender(config, "bot")
    }

    /// As [`Harness::new`], with the sender `@{localpart}:test`.
    pub fn with_sender(config: Value, localpart: &str) -> Result<Harness<P>, Error> {
        let sender = format!("@{localpart}:{SERVER}");
        let fake = Rc::new(RefCell::new(Fake {
            sender: sender.clone(),
            now_ms: START_MS,
            kv_quota: KV_QUOTA_BYTES,
            users: BTreeSet::from([sender]),
            ..Fake::default()
        }));
        host::install(Some(Box::new(FakeHost(fake.clone()))));
        runner::reset();
        let h = Harness {
            fake,
            _plugin: PhantomData,
        };
        h.committed(|| runner::init::<P>(&config.to_string()))?;
        Ok(h)
    }

    /// Runs one call with the host's rule for the store and timers: kept if the call
    /// succeeds, dropped if it fails.
    fn committed<R>(&self, call: impl FnOnce() -> Result<R, Error>) -> Result<R, Error> {
        let (kv, kv_bytes, timers) = {
            let f = self.fake.borrow();
            (f.kv.clone(), f.kv_bytes, f.timers.clone())
        };
        let result = self.in_call(call);
        if result.is_err() {
            let mut f = self.fake.borrow_mut();
            f.kv = kv;
            f.kv_bytes = kv_bytes;
            f.timers = timers;
        }
        result
    }

    /// Runs one call of the plugin, under the host's limits on what one call changes.
    fn in_call<R>(&self, call: impl FnOnce() -> R) -> R {
        {
            let mut f = self.fake.borrow_mut();
            f.call = Some(Call {
                timers_before: f.timers.len(),
                ..Call::default()
            });
        }
        let result = call();
        self.fake.borrow_mut().call = None;
        result
    }

    /// The plugin's sender, `@bot:test` unless chosen.
    pub fn sender(&self) -> String {
        self.fake.borrow().sender.clone()
    }

    /// Makes a room with `members` joined, with their `m.room.member` state (the plugin's
    /// sender among them when listed).
    pub fn room(&self, members: &[&str]) -> String {
        let mut f = self.fake.borrow_mut();
        let room = f.id('!');
        let mut r = Room::default();
        for m in members {
            let id = f.id('$');
            r.happen(
                &id,
                "m.room.member",
                Some(m),
                &json!({"membership": "join"}),
            );
        }
        let creator = members
            .first()
            .copied()
            .unwrap_or("@alice:test")
            .to_string();
        r.state.insert(
            ("m.room.power_levels".into(), String::new()),
            json!({"users": {creator: 100}, "state_default": 50}),
        );
        f.rooms.insert(room.clone(), r);
        room
    }

    /// Delivers one transaction. Its state events (memberships among them) are in the
    /// fake room's state first, as a server has applied an event before an appservice
    /// gets it.
    pub fn transaction(&mut self, events: Vec<Event>) -> Result<(), Error> {
        {
            let mut f = self.fake.borrow_mut();
            for e in &events {
                if let Some(r) = f.rooms.get_mut(&e.room_id) {
                    r.happen(
                        &e.event_id,
                        &e.event_type,
                        e.state_key.as_deref(),
                        &e.content,
                    );
                }
            }
        }
        let txn = Transaction {
            txn_id: format!("t{}", self.fake.borrow().next_id),
            events,
            ephemeral: Vec::new(),
        };
        self.committed(|| runner::on_transaction::<P>(txn))
    }

    /// Delivers ephemeral events (typing, receipts) in a transaction of their own.
    pub fn ephemeral(&mut self, ephemeral: Vec<Ephemeral>) -> Result<(), Error> {
        let txn = Transaction {
            txn_id: "e".into(),
            events: Vec::new(),
            ephemeral,
        };
        self.committed(|| runner::on_transaction::<P>(txn))
    }

    /// Delivers one event in a transaction of its own.
    pub fn event(&mut self, event: Event) -> Result<(), Error> {
        self.transaction(vec![event])
    }

    /// A text message from `sender` in `room`, delivered; answers the event.
    pub fn message(&mut self, room: &str, sender: &str, body: &str) -> Result<Event, Error> {
        let e = self.at_now(
            EventBuilder::new("m.room.message", json!({"msgtype": "m.text", "body": body}))
                .room(room)
                .sender(sender),
        );
        self.event(e.clone())?;
        Ok(e)
    }

    /// `builder`'s event stamped with the harness clock and a fresh id.
    pub fn at_now(&self, builder: EventBuilder) -> Event {
        let mut f = self.fake.borrow_mut();
        let id = f.id('$');
        let own = builder.event.sender == f.sender;
        builder.id(&id).ts(f.now_ms).own(own).build()
    }

    /// Moves the clock by `ms` and fires, in order, the timers that fall due; answers how
    /// many fired. A failed timer stays and the error is returned.
    pub fn advance(&mut self, ms: u64) -> Result<usize, Error> {
        let target = self.fake.borrow().now_ms + ms;
        let mut fired = 0;
        loop {
            let next = {
                let f = self.fake.borrow();
                f.timers
                    .iter()
                    .filter(|(_, (due, _, _))| *due <= target)
                    .min_by_key(|(_, (due, seq, _))| (*due, *seq))
                    .map(|(k, (due, seq, p))| (k.clone(), *due, *seq, p.clone()))
            };
            let Some((key, due, seq, payload)) = next else {
                break;
            };
            {
                let mut f = self.fake.borrow_mut();
                f.now_ms = due.max(f.now_ms);
            }
            self.committed(|| {
                let r = runner::on_timer::<P>(&key, &payload);
                if r.is_ok() {
                    let mut f = self.fake.borrow_mut();
                    if f.timers.get(&key).is_some_and(|t| t.1 == seq) {
                        f.timers.remove(&key);
                    }
                }
                r
            })?;
            fired += 1;
        }
        self.fake.borrow_mut().now_ms = target;
        Ok(fired)
    }

    /// The harness clock, in milliseconds since the epoch.
    pub fn now_ms(&self) -> u64 {
        self.fake.borrow().now_ms
    }

    /// A request to the plugin's web endpoints.
    pub fn http(&mut self, request: HttpRequest) -> HttpResponse {
        self.in_call(|| runner::handle_http::<P>(&request))
    }

    /// Asks the plugin for a user of its namespace.
    pub fn query_user(&mut self, user_id: &str) -> bool {
        self.in_call(|| runner::query_user::<P>(user_id))
    }

    /// Asks the plugin for an alias of its namespace.
    pub fn query_alias(&mut self, alias: &str) -> bool {
        self.in_call(|| runner::query_alias::<P>(alias))
    }

    /// Everything the plugin sent, in order.
    pub fn sent(&self) -> Vec<Sent> {
        self.fake.borrow().sent.clone()
    }

    /// What the plugin sent since the last call.
    pub fn take_sent(&self) -> Vec<Sent> {
        std::mem::take(&mut self.fake.borrow_mut().sent)
    }

    /// A value in the plugin's store.
    pub fn kv(&self, key: &str) -> Option<Vec<u8>> {
        self.fake.borrow().kv.get(key).cloned()
    }

    /// A value in the plugin's store, as JSON.
    pub fn kv_json(&self, key: &str) -> Option<Value> {
        self.kv(key).and_then(|v| serde_json::from_slice(&v).ok())
    }

    /// Every key in the plugin's store.
    pub fn kv_keys(&self) -> Vec<String> {
        self.fake.borrow().kv.keys().cloned().collect()
    }

    /// What the store's keys and values take of its quota, in bytes.
    pub fn kv_bytes(&self) -> u64 {
        self.fake.borrow().kv_bytes
    }

    /// Sets the store's quota (the host's `kv_quota_bytes`; [`KV_QUOTA_BYTES`] unless set):
    /// a write that would take the store past it is refused with
    /// `M_RESOURCE_LIMIT_EXCEEDED`.
    pub fn set_kv_quota(&self, bytes: u64) {
        self.fake.borrow_mut().kv_quota = bytes;
    }

    /// Every log line the plugin wrote.
    pub fn logs(&self) -> Vec<Line> {
        self.fake.borrow().logs.clone()
    }

    /// The pending timers: key, due time, payload.
    pub fn timers(&self) -> Vec<(String, u64, String)> {
        self.fake
            .borrow()
            .timers
            .iter()
            .map(|(k, (due, _, p))| (k.clone(), *due, p.clone()))
            .collect()
    }

    /// The members of a room as the fake host has them.
    pub fn members(&self, room: &str) -> BTreeMap<String, String> {
        self.fake
            .borrow()
            .rooms
            .get(room)
            .map(|r| r.members.clone())
            .unwrap_or_default()
    }

    /// Sets a state event directly (a test's setup, not something the plugin sent); it
    /// counts in the room's history as an event of its own.
    pub fn set_state(&self, room: &str, event_type: &str, state_key: &str, content: Value) {
        let mut f = self.fake.borrow_mut();
        let id = f.id('$');
        if let Some(r) = f.rooms.get_mut(room) {
            r.happen(&id, event_type, Some(state_key), &content);
        }
    }

    /// Makes `user` a server admin, or (with `false`) no longer one.
    pub fn set_server_admin(&self, user: &str, admin: bool) {
        let mut f = self.fake.borrow_mut();
        if admin {
            f.admins.insert(user.to_string());
        } else {
            f.admins.remove(user);
        }
    }

    /// A file in the fake media repository.
    pub fn media(&self, uri: &str) -> Option<Media> {
        self.fake.borrow().media.get(uri).cloned()
    }

    /// Answers the plugin's outbound HTTP requests with `answer` (without it, every request
    /// is refused as off the allow-list).
    pub fn on_http(&self, answer: impl FnMut(&Request) -> Result<Response, Error> + 'static) {
        self.fake.borrow_mut().http = Some(Box::new(answer));
    }

    /// The outbound HTTP requests the plugin made, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.fake.borrow().requests.clone()
    }

    /// The next call of host function `function` (`send_event`, `kv_set`, …) answers `error`.
    pub fn fail_next(&self, function: &str, error: Error) {
        self.fake
            .borrow_mut()
            .failures
            .entry(function.to_string())
            .or_default()
            .push(error);
    }
}

impl<P: Plugin> Drop for Harness<P> {
    fn drop(&mut self) {
        runner::reset();
        host::install(None);
    }
}

/// Builds an [`Event`] for a test.
#[derive(Debug, Clone)]
pub struct EventBuilder {
    event: Event,
    redacted_by: Option<String>,
}

impl EventBuilder {
    /// An event of `event_type` with `content` from `@alice:test` in `!room:test`.
    pub fn new(event_type: &str, content: Value) -> EventBuilder {
        EventBuilder {
            event: Event::new(
                "$event".into(),
                format!("!room:{SERVER}"),
                format!("@alice:{SERVER}"),
                event_type.to_string(),
                None,
                START_MS,
                content,
                String::new(),
                false,
            ),
            redacted_by: None,
        }
    }

    /// Its event id.
    pub fn id(mut self, id: &str) -> Self {
        self.event.event_id = id.to_string();
        self
    }

    /// Its room.
    pub fn room(mut self, room: &str) -> Self {
        self.event.room_id = room.to_string();
        self
    }

    /// Its sender.
    pub fn sender(mut self, sender: &str) -> Self {
        self.event.sender = sender.to_string();
        self
    }

    /// Makes it a state event with this key.
    pub fn state_key(mut self, key: &str) -> Self {
        self.event.state_key = Some(key.to_string());
        self
    }

    /// Its `origin_server_ts`.
    pub fn ts(mut self, ms: u64) -> Self {
        self.event.origin_server_ts = ms;
        self
    }

    /// Whether it counts as sent by one of the plugin's own users.
    pub fn own(mut self, own: bool) -> Self {
        self.event.from_own_user = own;
        self
    }

    /// Makes it an event the server sends redacted by `redaction`: its content emptied and
    /// the redaction in `unsigned.redacted_because`.
    pub fn redacted_by(mut self, redaction: &str) -> Self {
        self.event.content = json!({});
        self.redacted_by = Some(redaction.to_string());
        self
    }

    /// The event (with its whole JSON).
    pub fn build(self) -> Event {
        let e = &self.event;
        let mut raw = json!({"event_id": e.event_id, "room_id": e.room_id, "sender": e.sender,
            "type": e.event_type, "content": e.content, "origin_server_ts": e.origin_server_ts});
        if let Some(k) = &e.state_key {
            raw["state_key"] = json!(k);
        }
        if let Some(by) = &self.redacted_by {
            raw["unsigned"] = json!({"redacted_because": {"event_id": by, "type": "m.room.redaction",
                "room_id": e.room_id, "sender": e.sender, "content": {}}});
        }
        let e = self.event;
        Event::new(
            e.event_id,
            e.room_id,
            e.sender,
            e.event_type,
            e.state_key,
            e.origin_server_ts,
            e.content,
            raw.to_string(),
            e.from_own_user,
        )
    }
}

/// A quick event of `event_type` with `content`, from `@alice:test` in `!room:test`.
pub fn event(event_type: &str, content: Value) -> Event {
    EventBuilder::new(event_type, content).build()
}

/// An invite of `target` to `room` by `sender`.
pub fn invite(room: &str, sender: &str, target: &str) -> Event {
    EventBuilder::new("m.room.member", json!({"membership": "invite"}))
        .room(room)
        .sender(sender)
        .state_key(target)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timers;

    /// Writes as many keys as its timer's payload says, all in the timer's call.
    struct Writer;

    impl Plugin for Writer {
        fn init(_config: &crate::Config) -> Result<Self, Error> {
            Ok(Writer)
        }

        fn on_timer(&mut self, key: &str, payload: &str) -> Result<(), Error> {
            let n: usize = payload.parse().unwrap_or(0);
            for i in 0..n {
                kv::set(&format!("{key}/{i:05}"), b"v")?;
            }
            Ok(())
        }
    }

    fn refused_as_a_limit(r: Result<(), Error>, words: &str) {
        let e = r.unwrap_err();
        assert!(e.is("M_RESOURCE_LIMIT_EXCEEDED"), "{e:?}");
        assert!(e.message.contains(words), "{}", e.message);
    }

    #[test]
    fn one_call_writes_at_most_the_hosts_keys_and_a_refused_call_leaves_none() {
        let mut h = Harness::<Writer>::new(json!({})).unwrap();
        let most = kv::MAX_WRITES_PER_CALL;
        timers::set_timer("a", 0, &most.to_string()).unwrap();
        timers::set_timer("b", 1, &(most + 1).to_string()).unwrap();
        assert_eq!(h.advance(0).unwrap(), 1);
        assert_eq!(h.kv_keys().len(), most);
        refused_as_a_limit(h.advance(1).map(drop), "one call writes at most 10000 keys");
        assert_eq!(
            h.kv_keys().len(),
            most,
            "the refused call's writes are dropped"
        );
        // Writes made by the test itself are no call's.
        for i in 0..=most {
            kv::set(&format!("setup/{i}"), b"v").unwrap();
        }
    }

    #[test]
    fn the_store_refuses_a_write_past_its_quota_but_not_one_that_shrinks_it() {
        let h = Harness::<Bare>::new(json!({})).unwrap();
        assert_eq!(h.kv_bytes(), 0);
        h.set_kv_quota(10);
        kv::set("ab", b"12345678").unwrap();
        assert_eq!(h.kv_bytes(), 10);
        refused_as_a_limit(
            kv::set("c", b""),
            "the plugin's store would hold 11 bytes; its quota is 10",
        );
        refused_as_a_limit(kv::set("ab", b"123456789"), "would hold 11 bytes");
        kv::set("ab", b"1234567").unwrap();
        assert!(kv::compare_and_swap("ab", Some(b"1234567"), Some(b"12345678")).unwrap());
        h.set_kv_quota(5);
        kv::set("ab", b"1").unwrap();
        assert!(kv::delete("ab").unwrap());
        assert_eq!(h.kv_bytes(), 0);
        assert_eq!(h.kv_keys().len(), 0);
    }

    #[test]
    fn a_plugin_has_at_most_the_hosts_timers() {
        let _h = Harness::<Bare>::new(json!({})).unwrap();
        for i in 0..MAX_TIMERS {
            timers::set_timer(&format!("t{i}"), 1000, "").unwrap();
        }
        refused_as_a_limit(
            timers::set_timer("one more", 1000, ""),
            "a plugin has at most 10000 timers",
        );
        // Setting one again replaces it.
        timers::set_timer("t0", 5, "").unwrap();
        assert!(timers::cancel_timer("t0"));
        timers::set_timer("one more", 1000, "").unwrap();
    }

    #[test]
    fn the_fake_rooms_say_who_may_read_them_and_see_their_events_as_the_server_does() {
        use crate::homeserver::{access_to_rooms, is_server_admin, room_access, visible_events};
        let (alice, carol) = ("@alice:test", "@carol:test");
        let mut h = Harness::<Bare>::new(json!({})).unwrap();
        let room = h.room(&[alice, "@bot:test"]);
        let one = h.message(&room, alice, "one").unwrap().event_id;
        h.set_state(
            &room,
            "m.room.history_visibility",
            "",
            json!({"history_visibility": "joined"}),
        );
        let two = h.message(&room, alice, "two").unwrap().event_id;
        h.set_state(&room, "m.room.member", carol, json!({"membership": "join"}));
        let three = h.message(&room, alice, "three").unwrap().event_id;
        let all = [one.clone(), two.clone(), three.clone()];
        let carols = room_access(carol, &room).unwrap();
        assert!(carols.joined && carols.readable && !carols.whole_history);
        assert_eq!(
            visible_events(carol, &all).unwrap(),
            [one.clone(), three.clone()],
            "shared before, joined-only after"
        );
        assert!(room_access(alice, &room).unwrap().whole_history);

        h.set_state(
            &room,
            "m.room.member",
            carol,
            json!({"membership": "leave"}),
        );
        let four = h.message(&room, alice, "four").unwrap().event_id;
        let gone = room_access(carol, &room).unwrap();
        assert!(!gone.joined && !gone.readable && !gone.whole_history);
        assert_eq!(
            visible_events(carol, &[three.clone(), four]).unwrap(),
            [three],
            "what came before the leave, nothing after"
        );
        let nobody = access_to_rooms("@eve:test", &[room.clone(), "!nowhere:test".into()]).unwrap();
        assert!(nobody.iter().all(|a| !a.readable));

        assert!(!is_server_admin(alice).unwrap());
        h.set_server_admin(alice, true);
        assert!(is_server_admin(alice).unwrap());
    }

    /// Its first timer cancels another and sets a new one in the same call.
    struct Shuffler;

    impl Plugin for Shuffler {
        fn init(_config: &crate::Config) -> Result<Self, Error> {
            Ok(Shuffler)
        }

        fn on_timer(&mut self, key: &str, _payload: &str) -> Result<(), Error> {
            if key == "first" {
                timers::cancel_timer("t0");
                timers::set_timer("new", 1000, "")?;
            }
            Ok(())
        }
    }

    #[test]
    fn a_timer_cancelled_in_a_call_counts_until_the_call_ends_as_at_the_host() {
        let mut h = Harness::<Shuffler>::new(json!({})).unwrap();
        timers::set_timer("first", 0, "").unwrap();
        for i in 1..MAX_TIMERS {
            timers::set_timer(&format!("t{}", i - 1), 1000, "").unwrap();
        }
        refused_as_a_limit(h.advance(0).map(drop), "at most 10000 timers");
        assert_eq!(
            h.timers().len(),
            MAX_TIMERS,
            "t0 is back with the failed call"
        );
    }
}
