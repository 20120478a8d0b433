//! A stored event as the services handle it, and the shapes clients see: the client event
//! format, the /sync form without `room_id`, and stripped state for invites. An event carries
//! its room's version, whose redaction rules it is served with.

use serde_json::{json, Map, Value};

use super::values::Membership;
use crate::service::keys::redaction;
use crate::service::room_version::RoomVersion;
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
    /// The version of its room: the rules it is redacted by.
    pub version: &'static RoomVersion,
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
        // Every room here has its row with a version the server supports (it created the
        // room); one without is a damaged database, not an event to guess the rules of.
        let Some(version) = row.room_version.as_deref().and_then(RoomVersion::get) else {
            return Err(StorageError::Corrupt(serde::de::Error::custom(format!(
                "the room of a stored event has no supported version ({:?})",
                row.room_version
            ))));
        };
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
            version,
        };
        if let Some(by) = row.redacted_by {
            pdu.redact(by);
        }
        Ok(pdu)
    }
}

impl Pdu {
    /// Marks the event redacted by `by` and strips its content as its room version's
    /// redaction algorithm does.
    pub fn redact(&mut self, by: String) {
        self.json["content"] = Value::Object(self.redacted_content());
        self.redacted_by = Some(by);
    }

    /// The content as redaction by the room version's rules leaves it.
    fn redacted_content(&self) -> Map<String, Value> {
        self.content()
            .as_object()
            .map(|c| redaction::redact_content(&self.kind, c, &self.version.redaction))
            .unwrap_or_default()
    }

    pub(crate) fn content(&self) -> &Value {
        &self.json["content"]
    }

    pub(crate) fn origin_server_ts(&self) -> i64 {
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
            Value::Object(self.redacted_content())
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
        // From version 11 a redaction names its target in its content only; clients still
        // see it at the top level too, as Synapse serves it, for those that look there.
        let redacts = match self.json.get("redacts") {
            None if self.version.redacts_in_content && self.kind == "m.room.redaction" => {
                self.content().get("redacts")
            }
            r => r,
        };
        if let Some(r) = redacts {
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

    /// The PDU as other servers are sent it: as signed, without our `unsigned` additions, and
    /// pruned by the room version's redaction algorithm once redacted (its content hash no
    /// longer matches then, which tells the receiver to store it redacted too).
    pub(crate) fn to_federation(&self) -> Value {
        let mut out = if self.redacted_by.is_some() {
            redaction::redact(&self.json, &self.version.redaction)
        } else {
            self.json.clone()
        };
        if let Some(obj) = out.as_object_mut() {
            obj.remove("unsigned");
            obj.remove("event_id");
        }
        out
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

/// The id of the create event that `room_id` names, in the room versions (12 on) whose room
/// id is the create event's hash (no server part): their events list it in no `auth_events`.
pub(crate) fn create_event_named_by(room_id: &str) -> Option<String> {
    let hash = room_id.strip_prefix('!')?;
    (!hash.contains(':') && !hash.is_empty()).then(|| format!("${hash}"))
}

/// The event ids a PDU lists under `key` (`prev_events`, `auth_events`); what is not a
/// list of strings counts as none.
pub(crate) fn listed_ids(pdu: &Value, key: &str) -> Vec<String> {
    pdu[key]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// A member event of one of our users in a room this server is not in (`pdu` as stored), in
/// client format; with `invite_state`, an invite's stripped room state goes in its `unsigned`
/// as `invite_room_state`, for an application service to see what it is invited to.
pub(crate) fn out_of_room_client_event(
    pdu: &Value,
    event_id: &str,
    room_id: &str,
    invite_state: bool,
) -> Value {
    let mut unsigned = json!({});
    let stripped = &pdu["unsigned"]["invite_room_state"];
    if invite_state && pdu["content"]["membership"] == "invite" && stripped.is_array() {
        unsigned["invite_room_state"] = stripped.clone();
    }
    json!({
        "type": pdu["type"],
        "state_key": pdu["state_key"],
        "content": pdu["content"],
        "sender": pdu["sender"],
        "origin_server_ts": pdu["origin_server_ts"],
        "event_id": event_id,
        "room_id": room_id,
        "unsigned": unsigned,
    })
}

/// The state events that name and describe a room to someone outside it (an invite's or a
/// knock's stripped state), of `state`.
pub(crate) fn stripped_state(state: &super::StateMap) -> Vec<Value> {
    [
        "m.room.create",
        "m.room.join_rules",
        "m.room.name",
        "m.room.avatar",
        "m.room.canonical_alias",
        "m.room.encryption",
        "m.room.topic",
    ]
    .iter()
    .filter_map(|k| state.get(&(k.to_string(), String::new())))
    .map(|p| p.to_stripped())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::room_version::{Redaction, V10};

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
            room_version: Some("10".into()),
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

    #[test]
    fn a_stored_event_of_a_room_without_a_supported_version_is_refused_as_corrupt() {
        for version in [None, Some("1"), Some("")] {
            let mut row = row(r#"{"content":{"membership":"join"}}"#, None);
            row.room_version = version.map(str::to_string);
            assert!(
                matches!(Pdu::try_from(row), Err(StorageError::Corrupt(_))),
                "{version:?}"
            );
        }
    }

    /// A version whose redaction keeps a message's `body`, which version 10's does not.
    static KEEPS_BODIES: RoomVersion = RoomVersion {
        id: "test-keeps-bodies",
        stable: false,
        redaction: Redaction {
            top_level: V10.redaction.top_level,
            content: &[("m.room.message", &["body"])],
            whole_content: &[],
            nested: &[],
        },
        ..V10
    };

    #[test]
    fn an_event_is_redacted_by_the_rules_of_its_rooms_version() {
        let message = r#"{"type":"m.room.message","content":{"body":"hi","msgtype":"m.text"}}"#;
        let mut under_v10 = row(message, None);
        under_v10.kind = "m.room.message".into();
        let mut v10 = Pdu::try_from(under_v10.clone()).unwrap();
        assert_eq!(v10.version.id, V10.id);
        let mut other = Pdu::try_from(under_v10).unwrap();
        other.version = &KEEPS_BODIES;

        let because = Some(json!({"event_id": "$r"}));
        assert_eq!(
            v10.to_client(None, because.clone(), true)["content"],
            json!({})
        );
        assert_eq!(
            other.to_client(None, because, true)["content"],
            json!({"body": "hi"})
        );
        v10.redact("$r".into());
        other.redact("$r".into());
        assert_eq!(*v10.content(), json!({}));
        assert_eq!(*other.content(), json!({"body": "hi"}));
    }

    #[test]
    fn an_out_of_room_invite_shows_its_room_state_only_when_asked_and_never_its_signatures() {
        let stripped = json!([{"type": "m.room.name", "state_key": "", "content": {"name": "R"}}]);
        let pdu = json!({
            "type": "m.room.member", "state_key": "@b:here", "sender": "@a:there",
            "content": {"membership": "invite"}, "origin_server_ts": 5,
            "signatures": {"there": {}}, "hashes": {}, "depth": 3,
            "unsigned": {"invite_room_state": stripped},
        });
        let with = out_of_room_client_event(&pdu, "$i", "!r:there", true);
        assert_eq!(with["unsigned"]["invite_room_state"], stripped);
        assert_eq!(with["event_id"], "$i");
        assert_eq!(with["room_id"], "!r:there");
        assert!(with.get("signatures").is_none() && with.get("depth").is_none());
        let without = out_of_room_client_event(&pdu, "$i", "!r:there", false);
        assert_eq!(without["unsigned"], json!({}));
        // A refusal has no room state to show.
        let mut leave = pdu.clone();
        leave["content"]["membership"] = json!("leave");
        let leave = out_of_room_client_event(&leave, "$l", "!r:there", true);
        assert_eq!(leave["unsigned"], json!({}));
    }

    #[test]
    fn only_a_room_id_without_a_server_names_its_create_event() {
        assert_eq!(
            create_event_named_by("!abc_D-1").as_deref(),
            Some("$abc_D-1")
        );
        assert_eq!(create_event_named_by("!abc:example.org"), None);
        assert_eq!(create_event_named_by("!"), None);
        assert_eq!(create_event_named_by("#alias"), None);
    }
}
