//! Events for tests: [`EventBuilder`] and the shortcuts [`event`] and [`invite`], each with
//! the whole JSON a server would send.

use serde_json::{json, Value};

use super::{SERVER, START_MS};
use crate::types::Event;

/// Builds an [`Event`] for a test.
#[derive(Debug, Clone)]
pub struct EventBuilder {
    pub(super) event: Event,
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
