//! The fake host: the harness's answer to each host call, from the state in
//! [`Fake`](super::fake::Fake), refusing what the real host refuses with the same limits
//! and words ([`plugboard_limits`]).

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::{json, Value};

use super::fake::{refused, Fake, Room};
use super::{Line, SERVER};
use crate::bindings::plugboard::appservice::e2ee::Extras;
use crate::bindings::plugboard::appservice::homeserver::{Media, Member, RoomAccess, RoomOptions};
use crate::bindings::plugboard::appservice::log::Level;
use crate::bindings::plugboard::appservice::types::Event as WitEvent;
use crate::host::Host;
use crate::http::{Request, Response};
use crate::types::Error;
use plugboard_limits::{homeserver as hs_limits, kv as kv_limits, timers as timer_limits};

/// The fake host the harness installs; it shares its state with the [`Harness`].
pub(super) struct FakeHost(pub(super) Rc<RefCell<Fake>>);

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

/// The host's refusal of a key or a value past its limits, as the host words it.
fn check_kv(key: &str, value: Option<&[u8]>) -> Result<(), Error> {
    kv_limits::check_key(key).map_err(refused)?;
    match value {
        Some(v) => kv_limits::check_value(v.len()).map_err(refused),
        None => Ok(()),
    }
}

impl Host for FakeHost {
    fn sender(&mut self) -> String {
        self.0.borrow().sender.clone()
    }

    fn public_base_url(&mut self) -> String {
        self.0.borrow().public_base_url.clone()
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
        hs_limits::check_ids(rooms.len(), "rooms").map_err(refused)?;
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
        hs_limits::check_ids(events.len(), "event ids").map_err(refused)?;
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
            .take(limit.min(kv_limits::MAX_LIST) as usize)
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
        check_kv(key, None)?;
        if let Some(new) = new {
            kv_limits::check_swapped_value(new.len()).map_err(refused)?;
        }
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
        timer_limits::check(key, after_ms, payload).map_err(refused)?;
        if !f.timers.contains_key(key) {
            // As the host counts them: until the call ends, a timer it cancelled is still
            // there and one it set again is there twice.
            let timers = match &f.call {
                Some(c) => c.timers_before + c.timer_changes.values().filter(|set| **set).count(),
                None => f.timers.len(),
            };
            if timers >= timer_limits::MAX_TIMERS {
                return Err(refused(timer_limits::too_many()));
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

    fn transaction_extras(&mut self) -> Extras {
        // The harness puts what a transaction carries in the transaction itself.
        Extras {
            to_device: Vec::new(),
            device_lists_changed: Vec::new(),
            device_keys: Vec::new(),
        }
    }

    fn create_device(
        &mut self,
        as_user: Option<&str>,
        device_id: &str,
        _display_name: Option<&str>,
    ) -> Result<bool, Error> {
        let mut f = self.0.borrow_mut();
        f.injected("create_device")?;
        let user = f.user(as_user);
        Ok(f.e2ee.create_device(&user, device_id))
    }

    fn delete_device(&mut self, as_user: Option<&str>, device_id: &str) -> Result<(), Error> {
        let mut f = self.0.borrow_mut();
        f.injected("delete_device")?;
        let user = f.user(as_user);
        f.e2ee.delete_device(&user, device_id)
    }

    fn upload_keys(
        &mut self,
        as_user: Option<&str>,
        device_id: &str,
        keys: &str,
    ) -> Result<String, Error> {
        let mut f = self.0.borrow_mut();
        f.injected("upload_keys")?;
        let user = f.user(as_user);
        Ok(f.e2ee.upload(&user, device_id, keys)?.to_string())
    }

    fn query_keys(&mut self, _as_user: Option<&str>, query: &str) -> Result<String, Error> {
        let mut f = self.0.borrow_mut();
        f.injected("query_keys")?;
        Ok(f.e2ee.query(query)?.to_string())
    }

    fn claim_keys(&mut self, _as_user: Option<&str>, claim: &str) -> Result<String, Error> {
        let mut f = self.0.borrow_mut();
        f.injected("claim_keys")?;
        Ok(f.e2ee.claim(claim)?.to_string())
    }

    fn send_to_device(
        &mut self,
        as_user: Option<&str>,
        device_id: &str,
        event_type: &str,
        txn_id: &str,
        messages: &str,
    ) -> Result<(), Error> {
        let mut f = self.0.borrow_mut();
        f.injected("send_to_device")?;
        let user = f.user(as_user);
        f.e2ee.send(&user, device_id, event_type, txn_id, messages)
    }
}
