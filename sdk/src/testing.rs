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
//!
//! Behind the SDK's `testing` feature. The fake's limits and refusals are the host's own
//! (`plugboard-limits`), and [`conformance`] holds the two hosts to one table of cases. Here:
//! the [`Harness`]; `fake` the fake's state, `fake_host` its answer to each host call,
//! `history` a room's history and its visibility rule, `events` events for tests.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;
use std::rc::Rc;

use serde_json::{json, Value};

use crate::bindings::plugboard::appservice::homeserver::Media;
use crate::bindings::plugboard::appservice::log::Level;
use crate::host;
use crate::http::{Request, Response};
use crate::plugin::runner;
use crate::types::{Ephemeral, Error, Event, HttpRequest, HttpResponse, ToDevice, Transaction};
use crate::Plugin;

pub mod conformance;
mod events;
mod fake;
mod fake_e2ee;
mod fake_host;
mod history;

pub use events::{event, invite, EventBuilder};
use fake::{Call, Fake, Room};
pub use fake_e2ee::SentToDevice;
use fake_host::FakeHost;

/// The server name of the harness's users and rooms.
pub const SERVER: &str = "test";

/// The store's quota unless a test sets another ([`Harness::set_kv_quota`]): the host's
/// default `kv_quota_bytes`.
pub const KV_QUOTA_BYTES: u64 = plugboard_limits::kv::DEFAULT_QUOTA_BYTES;

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
            public_base_url: format!("https://{SERVER}"),
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
            ..Transaction::default()
        };
        self.committed(|| runner::on_transaction::<P>(txn))
    }

    /// Delivers ephemeral events (typing, receipts) in a transaction of their own.
    pub fn ephemeral(&mut self, ephemeral: Vec<Ephemeral>) -> Result<(), Error> {
        let txn = Transaction {
            txn_id: "e".into(),
            ephemeral,
            ..Transaction::default()
        };
        self.committed(|| runner::on_transaction::<P>(txn))
    }

    /// Delivers to-device messages for the plugin's users' devices in a transaction of their
    /// own, as the server does for a plugin with `e2ee`.
    pub fn to_device(&mut self, messages: Vec<ToDevice>) -> Result<(), Error> {
        let txn = Transaction {
            txn_id: format!("d{}", self.fake.borrow().next_id),
            to_device: messages,
            ..Transaction::default()
        };
        self.committed(|| runner::on_transaction::<P>(txn))
    }

    /// The to-device messages the plugin sent, in order.
    pub fn sent_to_device(&self) -> Vec<SentToDevice> {
        self.fake.borrow().e2ee.sent.clone()
    }

    /// The devices of the plugin's users, `(user, device)`, that the plugin made.
    pub fn devices(&self) -> Vec<(String, String)> {
        self.fake.borrow().e2ee.devices.keys().cloned().collect()
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

    /// Sets what [`public_base_url`](crate::homeserver::public_base_url) answers, `https://test`
    /// until then.
    pub fn set_public_base_url(&self, url: &str) {
        self.fake.borrow_mut().public_base_url = url.to_string();
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

#[cfg(test)]
mod tests;
