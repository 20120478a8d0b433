//! The values a plugin receives and answers with: events, transactions, the homeserver's
//! errors, web requests. Mirrors the WIT interface `types`.

use serde_json::Value;

use crate::bindings::plugboard::appservice::e2ee;
use crate::bindings::plugboard::appservice::types as wit;
use crate::events::EventKind;

pub use wit::{Error, HttpRequest, HttpResponse};

impl Error {
    /// An error with a Matrix errcode and a message.
    pub fn new(errcode: &str, message: impl Into<String>) -> Error {
        Error {
            errcode: errcode.to_string(),
            message: message.into(),
        }
    }

    /// `M_INVALID_PARAM`: what the plugin was given is wrong.
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::new("M_INVALID_PARAM", message)
    }

    /// `M_UNKNOWN`: something went wrong that the plugin cannot say more about.
    pub fn unknown(message: impl Into<String>) -> Error {
        Error::new("M_UNKNOWN", message)
    }

    /// Whether the error has this errcode.
    pub fn is(&self, errcode: &str) -> bool {
        self.errcode == errcode
    }

    /// Whether asking again cannot help: the request itself is refused (not allowed, too
    /// large, malformed, about something that does not exist), as opposed to a server that
    /// failed, a limit that lifts or a quota an admin may raise.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self.errcode.as_str(),
            "M_FORBIDDEN"
                | "M_TOO_LARGE"
                | "M_BAD_JSON"
                | "M_NOT_JSON"
                | "M_INVALID_PARAM"
                | "M_MISSING_PARAM"
                | "M_NOT_FOUND"
                | "M_EXCLUSIVE"
                | "M_UNRECOGNIZED"
                | "M_ROOM_IN_USE"
                | "M_USER_IN_USE"
                | "M_INVALID_USERNAME"
                | "M_BAD_STATE"
                | "M_UNSUPPORTED_ROOM_VERSION"
        )
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Error {
        Error::new("M_BAD_JSON", e.to_string())
    }
}

/// One room event, its content parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The event's id.
    pub event_id: String,
    /// The room.
    pub room_id: String,
    /// Who sent it.
    pub sender: String,
    /// `m.room.message`, `m.room.member`, `m.call.invite`, …
    pub event_type: String,
    /// Set on state events.
    pub state_key: Option<String>,
    /// When its server stamped it, in milliseconds since the epoch.
    pub origin_server_ts: u64,
    /// The event's content (an empty object when it was not a JSON object).
    pub content: Value,
    /// The whole event as the server sent it, as JSON text ([`Event::raw`] parses it).
    pub json: String,
    /// Sent by one of the plugin's own users (its sender or its exclusive users namespace).
    pub from_own_user: bool,
    /// `json` parsed, once something asks: most handlers need only the fields above.
    raw: std::cell::OnceCell<Value>,
}

impl Event {
    /// An event from its parts; `json` is the whole event as the server would send it.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        event_id: String,
        room_id: String,
        sender: String,
        event_type: String,
        state_key: Option<String>,
        origin_server_ts: u64,
        content: Value,
        json: String,
        from_own_user: bool,
    ) -> Event {
        Event {
            event_id,
            room_id,
            sender,
            event_type,
            state_key,
            origin_server_ts,
            content,
            json,
            from_own_user,
            raw: std::cell::OnceCell::new(),
        }
    }

    /// The whole event as JSON (`unsigned`, a redaction's top-level `redacts`, …); `null`
    /// when it does not parse.
    pub fn raw(&self) -> &Value {
        self.raw
            .get_or_init(|| serde_json::from_str(&self.json).unwrap_or(Value::Null))
    }

    /// Whether the server sent it redacted: its content stripped, `unsigned.redacted_because`
    /// set. What was in it is gone; a handler that finds it empty need not call it malformed.
    pub fn is_redacted(&self) -> bool {
        self.raw()["unsigned"]["redacted_because"].is_object()
    }

    /// The event as a typed view ([`EventKind`]); unknown types stay JSON.
    pub fn kind(&self) -> EventKind {
        EventKind::of(self)
    }

    /// A field of the content as a string.
    pub fn content_str(&self, key: &str) -> Option<&str> {
        self.content.get(key).and_then(Value::as_str)
    }
}

impl From<wit::Event> for Event {
    fn from(e: wit::Event) -> Event {
        let content = match serde_json::from_str::<Value>(&e.content) {
            Ok(v @ Value::Object(_)) => v,
            _ => Value::Object(Default::default()),
        };
        Event::new(
            e.event_id,
            e.room_id,
            e.sender,
            e.event_type,
            e.state_key,
            e.origin_server_ts,
            content,
            e.json,
            e.from_own_user,
        )
    }
}

/// Typing notices and receipts (for plugins whose manifest sets `receive_ephemeral`).
#[derive(Debug, Clone, PartialEq)]
pub struct Ephemeral {
    /// `m.typing` or `m.receipt`.
    pub event_type: String,
    /// The room.
    pub room_id: String,
    /// The content.
    pub content: Value,
}

/// A to-device message for a device of one of the plugin's users (for plugins whose
/// manifest sets `e2ee`).
#[derive(Debug, Clone, PartialEq)]
pub struct ToDevice {
    /// Who sent it.
    pub sender: String,
    /// `m.room_key_request`, `m.room.encrypted`, …
    pub event_type: String,
    /// The content.
    pub content: Value,
    /// The plugin's user it is for.
    pub to_user_id: String,
    /// That user's device it is for.
    pub to_device_id: String,
}

/// The keys a device of the plugin's users has left on the server, when the transaction was
/// built (for plugins whose manifest sets `e2ee`).
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceKeys {
    /// The plugin's user.
    pub user_id: String,
    /// Their device.
    pub device_id: String,
    /// One-time keys not claimed yet, by algorithm.
    pub one_time_key_counts: Vec<(String, u32)>,
    /// The algorithms of its fallback keys not claimed yet.
    pub unused_fallback_key_types: Vec<String>,
}

/// One appservice transaction.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Transaction {
    /// The transaction's id (the same when it is delivered again).
    pub txn_id: String,
    /// Its room events, in stream order.
    pub events: Vec<Event>,
    /// Typing notices and receipts.
    pub ephemeral: Vec<Ephemeral>,
    /// To-device messages for the plugin's users' devices (with `e2ee`).
    pub to_device: Vec<ToDevice>,
    /// Users whose devices or keys changed, that the plugin tracks (with `e2ee`).
    pub device_lists_changed: Vec<String>,
    /// The key state of the plugin's devices (with `e2ee`).
    pub device_keys: Vec<DeviceKeys>,
}

impl From<wit::Transaction> for Transaction {
    fn from(t: wit::Transaction) -> Transaction {
        Transaction {
            txn_id: t.txn_id,
            events: t.events.into_iter().map(Event::from).collect(),
            ephemeral: t
                .ephemeral
                .into_iter()
                .map(|e| Ephemeral {
                    event_type: e.event_type,
                    room_id: e.room_id,
                    content: serde_json::from_str(&e.content).unwrap_or(Value::Null),
                })
                .collect(),
            ..Transaction::default()
        }
    }
}

impl Transaction {
    /// Adds what the host says the transaction carries for encryption
    /// (`e2ee.transaction-extras`), after what it holds already.
    pub(crate) fn add_extras(&mut self, extras: e2ee::Extras) {
        self.to_device
            .extend(extras.to_device.into_iter().map(|m| ToDevice {
                sender: m.sender,
                event_type: m.event_type,
                content: serde_json::from_str(&m.content).unwrap_or(Value::Null),
                to_user_id: m.to_user_id,
                to_device_id: m.to_device_id,
            }));
        self.device_lists_changed
            .extend(extras.device_lists_changed);
        self.device_keys
            .extend(extras.device_keys.into_iter().map(|k| DeviceKeys {
                user_id: k.user_id,
                device_id: k.device_id,
                one_time_key_counts: k.one_time_key_counts,
                unused_fallback_key_types: k.unused_fallback_key_types,
            }));
    }
}

impl HttpRequest {
    /// A header's value (names are lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A query parameter, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k) == name).then(|| decode(v))
        })
    }

    /// The body as JSON.
    pub fn json(&self) -> Result<Value, Error> {
        serde_json::from_slice(&self.body).map_err(|e| Error::new("M_NOT_JSON", e.to_string()))
    }
}

/// `%XX` and `+` decoded; a `%` not followed by two hex digits stays as it is.
fn decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl HttpResponse {
    /// An answer with a status, a content type and a body.
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into(),
        }
    }

    /// A JSON answer.
    pub fn json(status: u16, value: &Value) -> HttpResponse {
        HttpResponse::new(status, "application/json", value.to_string())
    }

    /// A Matrix error body, `{"errcode", "error"}`.
    pub fn error(status: u16, errcode: &str, message: &str) -> HttpResponse {
        HttpResponse::json(
            status,
            &serde_json::json!({ "errcode": errcode, "error": message }),
        )
    }

    /// `404 M_NOT_FOUND`.
    pub fn not_found() -> HttpResponse {
        HttpResponse::error(404, "M_NOT_FOUND", "no such endpoint")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_decoded() {
        let r = HttpRequest {
            method: "GET".into(),
            path: "/search".into(),
            query: "q=hello+world%21&room=%21a%3Ax&empty=&bad=%zz".into(),
            headers: vec![],
            body: vec![],
            user_id: None,
        };
        assert_eq!(r.query_param("q").as_deref(), Some("hello world!"));
        assert_eq!(r.query_param("room").as_deref(), Some("!a:x"));
        assert_eq!(r.query_param("empty").as_deref(), Some(""));
        assert_eq!(r.query_param("bad").as_deref(), Some("%zz"));
        assert_eq!(r.query_param("missing"), None);
    }
}

/// Whether `id` has the shape of a room id: `!opaque:server`, or from room version 12 `!` and
/// the create event's hash with no server part; at most 255 bytes, without control characters,
/// spaces or slashes (it goes into paths).
pub fn is_room_id(id: &str) -> bool {
    id.len() <= 255
        && id.len() > 1
        && id.starts_with('!')
        && !id.starts_with("!:")
        && !id
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '/')
}

#[cfg(test)]
mod room_id_tests {
    use super::is_room_id;

    #[test]
    fn room_ids_of_every_version_are_room_ids_and_other_strings_are_not() {
        for id in [
            "!r:x",
            "!r:127.0.0.1:8448",
            "!31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM",
        ] {
            assert!(is_room_id(id), "{id}");
        }
        for id in ["", "!", "!:x", "r:x", "#a:x", "!a b", "!a/b:x", "!a\u{0}:x"] {
            assert!(!is_room_id(id), "{id}");
        }
        assert!(!is_room_id(&format!("!{}", "a".repeat(255))));
    }
}
