//! A stored event as the services handle it, and the shapes clients see: the client event
//! format, the /sync form without `room_id`, and stripped state for invites.

use serde_json::{json, Map, Value};

use super::values::Membership;
use crate::service::keys::redaction;
use crate::service::room_version::{Redaction, V10};
use crate::storage::events::EventRow;
use crate::storage::StorageError;

#[derive(Debug, Clone)]
pub struct Pdu {
    pub stream: i64,
    pub event_id: String,
    pub room_id: String,
    pub sender: String,
    pub kind: String,
    pub state_key: Option<String>,
    /// The whole PDU as signed, plus our `unsigned` additions; its content is the redacted
    /// one once `redacted_by` is set, so that state and auth see what the room has.
    pub json: Value,
    pub redacted_by: Option<String>,
    /// `(device_id, txn_id)` of the client send that made it.
    pub txn: Option<(String, String)>,
    /// The room's history visibility when it was sent (`None`: the default, shared).
    pub history_visibility: Option<String>,
}

impl TryFrom<EventRow> for Pdu {
    type Error = StorageError;

    fn try_from(row: EventRow) -> Result<Self, Self::Error> {
        let json: Value = serde_json::from_str(&row.json)?;
        // Everything here reads and writes the event as an object (its content, its
        // redaction): a stored event that is not one is corrupt, not an event.
        if !json.is_object() {
            return Err(StorageError::Corrupt(serde::de::Error::custom(
                "a stored event is not a JSON object",
            )));
        }
        let mut pdu = Pdu {
            stream: row.stream,
            json,
            event_id: row.event_id,
            room_id: row.room_id,
            sender: row.sender,
            kind: row.kind,
            state_key: row.state_key,
            redacted_by: None,
            txn: row.txn_device.zip(row.txn_id),
            history_visibility: row.history_visibility,
        };
        if let Some(by) = row.redacted_by {
            pdu.redact(by);
        }
        Ok(pdu)
    }
}

/// The redaction rules an event read back from storage is served with. Version 10 is the only
/// version rooms here have; a stored event does not carry its room's version yet, which the
/// first room of another version will need to thread through (the rooms table has it).
const STORED_EVENT_RULES: &Redaction = &V10.redaction;

impl Pdu {
    /// Marks the event redacted by `by` and strips its content as the redaction algorithm does.
    pub fn redact(&mut self, by: String) {
        let content = self
            .content()
            .as_object()
            .map(|c| redaction::redact_content(&self.kind, c, STORED_EVENT_RULES))
            .unwrap_or_default();
        self.json["content"] = Value::Object(content);
        self.redacted_by = Some(by);
    }

    pub fn content(&self) -> &Value {
        &self.json["content"]
    }

    pub fn origin_server_ts(&self) -> i64 {
        self.json["origin_server_ts"].as_i64().unwrap_or(0)
    }

    /// `content.membership` of a member event, when the spec has the value.
    pub fn membership(&self) -> Option<Membership> {
        self.content()["membership"]
            .as_str()
            .and_then(Membership::parse)
    }

    /// The client-server event format. `viewer` is the `(user, device)` it is served to:
    /// only the sending device sees its `transaction_id`. `redacted_because` is the
    /// redaction's own client form when this event has been redacted.
    pub fn to_client(
        &self,
        viewer: Option<(&str, &str)>,
        redacted_because: Option<Value>,
        with_room_id: bool,
    ) -> Value {
        let mut out = Map::new();
        let content = if redacted_because.is_some() {
            Value::Object(
                self.content()
                    .as_object()
                    .map(|c| redaction::redact_content(&self.kind, c, STORED_EVENT_RULES))
                    .unwrap_or_default(),
            )
        } else {
            self.content().clone()
        };
        out.insert("content".into(), content);
        out.insert("event_id".into(), json!(self.event_id));
        out.insert("origin_server_ts".into(), json!(self.origin_server_ts()));
        if with_room_id {
            out.insert("room_id".into(), json!(self.room_id));
        }
        out.insert("sender".into(), json!(self.sender));
        out.insert("type".into(), json!(self.kind));
        if let Some(sk) = &self.state_key {
            out.insert("state_key".into(), json!(sk));
        }
        if let Some(r) = self.json.get("redacts") {
            if redacted_because.is_none() {
                out.insert("redacts".into(), r.clone());
            }
        }
        let mut unsigned = self
            .json
            .get("unsigned")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let age = crate::service::now_ms() - self.origin_server_ts();
        unsigned.insert("age".into(), json!(age.max(0)));
        if let (Some((user, device)), Some((txn_device, txn_id))) = (viewer, &self.txn) {
            if user == self.sender && device == txn_device {
                unsigned.insert("transaction_id".into(), json!(txn_id));
            }
        }
        if let Some(because) = redacted_because {
            unsigned.remove("prev_content");
            unsigned.insert("redacted_because".into(), because);
        }
        out.insert("unsigned".into(), Value::Object(unsigned));
        Value::Object(out)
    }

    /// Stripped state, as invites carry it.
    pub fn to_stripped(&self) -> Value {
        json!({
            "type": self.kind,
            "state_key": self.state_key.clone().unwrap_or_default(),
            "content": self.content(),
            "sender": self.sender,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(json: &str, redacted_by: Option<&str>) -> EventRow {
        EventRow {
            stream: 1,
            event_id: "$e".into(),
            room_id: "!r:x".into(),
            sender: "@a:x".into(),
            kind: "m.room.member".into(),
            state_key: Some("@a:x".into()),
            json: json.into(),
            redacted_by: redacted_by.map(str::to_string),
            txn_device: None,
            txn_id: None,
            history_visibility: None,
        }
    }

    #[test]
    fn a_stored_event_that_is_not_an_object_is_refused_as_corrupt() {
        // Found by the event fuzz target: redacting such a "PDU" panicked.
        for json in [r#""m.room.member""#, "[]", "5", "null"] {
            for by in [None, Some("$r")] {
                assert!(
                    matches!(Pdu::try_from(row(json, by)), Err(StorageError::Corrupt(_))),
                    "{json}"
                );
            }
        }
        let mut pdu = Pdu::try_from(row(r#"{"content":{"membership":"join"}}"#, None)).unwrap();
        pdu.redact("$r".into());
        assert_eq!(pdu.membership(), Some(Membership::Join));
    }
}
