//! Who gets what: the rules of the outgoing federation queue and the shapes of what it sends,
//! pure so that they are unit-tested. The builder ([`txns`](super::txns)) reads the stream
//! and the rooms; these functions decide.
//!
//! - A PDU goes to a server when a local user sent it (a server never relays other servers'
//!   events) and the server has a member joined to the room since before it, or when it is a
//!   member event about one of the server's users (a kick, ban or leave reaches the target's
//!   server even when no one of it is left in the room). Invites do not: they go by `/invite`.
//! - EDUs are about local users only: read receipts and typing in rooms the server shares,
//!   presence and key changes of users it shares a room with.
//! - A transaction carries at most [`MAX_PDUS`] PDUs and [`MAX_EDUS`] EDUs, as the spec says;
//!   the queue's arithmetic (`appservice::queue::take`) cuts it, with every EDU counted in one
//!   quota.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use crate::service::appservice::queue::Caps;

/// PDUs a transaction carries at most (the spec's limit).
pub(crate) const MAX_PDUS: usize = 50;
/// EDUs a transaction carries at most (the spec's limit).
pub(crate) const MAX_EDUS: usize = 100;

/// A full transaction to a server: PDUs are the queue's events, every EDU an ephemeral item.
pub(crate) const CAPS: Caps = Caps {
    events: MAX_PDUS,
    ephemeral: MAX_EDUS,
    to_device: MAX_EDUS,
    device_lists: MAX_EDUS,
};

/// The server part of a user id (`@local:server` → `server`, a port included).
pub(crate) fn server_of(user_id: &str) -> Option<&str> {
    user_id
        .strip_prefix('@')
        .and_then(|rest| rest.split_once(':'))
        .map(|(_, server)| server)
}

/// What the rules look at of a stored event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EventFacts<'a> {
    pub(crate) stream: i64,
    pub(crate) sender: &'a str,
    pub(crate) kind: &'a str,
    pub(crate) state_key: Option<&'a str>,
    /// `content.membership` of a member event.
    pub(crate) membership: Option<&'a str>,
}

/// Whether `destination` is sent the event. `joined_since`: the stream position of the
/// earliest join of the destination's members now joined to the event's room (`None`: none
/// is joined).
pub(crate) fn sends_pdu(
    ours: &str,
    destination: &str,
    event: &EventFacts<'_>,
    joined_since: Option<i64>,
) -> bool {
    if server_of(event.sender) != Some(ours) || destination == ours {
        return false;
    }
    if joined_since.is_some_and(|since| since < event.stream) {
        return true;
    }
    event.kind == "m.room.member"
        && event.membership != Some("invite")
        && event.state_key.and_then(server_of) == Some(destination)
}

/// Whether a membership makes its user's server a destination: joined, or the target of a
/// kick, ban or leave. An invite or a knock does not (they go by their own routes).
pub(crate) fn makes_destination(membership: &str) -> bool {
    matches!(membership, "join" | "leave" | "ban")
}

/// An `m.receipt` EDU of one user's receipt in one room.
pub(crate) fn receipt_edu(
    room_id: &str,
    user_id: &str,
    receipt_type: &str,
    event_id: &str,
    ts: i64,
) -> Value {
    let mut content = json!({});
    content[room_id][receipt_type][user_id] = json!({
        "event_ids": [event_id],
        "data": { "ts": ts },
    });
    json!({ "edu_type": "m.receipt", "content": content })
}

/// Whether a receipt of this type goes to other servers: a private one does not.
pub(crate) fn receipt_is_public(receipt_type: &str) -> bool {
    receipt_type != "m.read.private"
}

/// An `m.presence` EDU of one user's presence, `now_ms` being when it is built.
pub(crate) fn presence_edu(
    user_id: &str,
    presence: &str,
    status_msg: Option<&str>,
    last_active_ts: i64,
    now_ms: i64,
) -> Value {
    let mut push = json!({
        "user_id": user_id,
        "presence": presence,
        "last_active_ago": (now_ms - last_active_ts).max(0),
        "currently_active": presence == "online",
    });
    if let Some(msg) = status_msg {
        push["status_msg"] = json!(msg);
    }
    json!({ "edu_type": "m.presence", "content": { "push": [push] } })
}

/// An `m.typing` EDU.
pub(crate) fn typing_edu(room_id: &str, user_id: &str, typing: bool) -> Value {
    json!({
        "edu_type": "m.typing",
        "content": { "room_id": room_id, "user_id": user_id, "typing": typing },
    })
}

/// The typing changes a server is told of in a room: who started (`true`) and who stopped
/// (`false`) since it was last told, by user id.
pub(crate) fn typing_changes(
    told: &BTreeSet<String>,
    now: &BTreeSet<String>,
) -> Vec<(String, bool)> {
    let started = now.difference(told).map(|u| (u.clone(), true));
    let stopped = told.difference(now).map(|u| (u.clone(), false));
    let mut out: Vec<(String, bool)> = started.chain(stopped).collect();
    out.sort();
    out
}

/// The `m.device_list_update` EDU of one device of a user whose keys changed at `stream`.
/// `prev_id` is empty: the receiver does not know what came before, so it asks for the whole
/// list (`/user/devices`), which is what a change it cannot place calls for anyway.
pub(crate) fn device_list_edu(
    user_id: &str,
    device_id: &str,
    stream: i64,
    keys: Option<&Value>,
) -> Value {
    let mut content = json!({
        "user_id": user_id,
        "device_id": device_id,
        "stream_id": stream,
        "prev_id": [],
        "deleted": keys.is_none(),
    });
    if let Some(keys) = keys {
        content["keys"] = keys.clone();
    }
    json!({ "edu_type": "m.device_list_update", "content": content })
}

/// The `m.signing_key_update` EDU of a user's cross-signing keys (kind → key JSON), when
/// there is a master or a self-signing key to tell of.
pub(crate) fn signing_key_edu(user_id: &str, keys: &Map<String, Value>) -> Option<Value> {
    let mut content = json!({ "user_id": user_id });
    for (kind, field) in [
        ("master", "master_key"),
        ("self_signing", "self_signing_key"),
    ] {
        if let Some(key) = keys.get(kind) {
            content[field] = key.clone();
        }
    }
    (content.as_object().map_or(0, Map::len) > 1)
        .then(|| json!({ "edu_type": "m.signing_key_update", "content": content }))
}

/// One to-device message for a user of the destination: `(user, device or "*", content)`.
pub(crate) type Addressed<'a> = (&'a str, &'a str, Value);

/// The `m.direct_to_device` EDU of one send (one stream position, one sender and type) to
/// the destination's users. Its `message_id` is the send's stream position: one per send of
/// this server.
pub(crate) fn to_device_edu(
    sender: &str,
    kind: &str,
    stream: i64,
    to: Vec<Addressed<'_>>,
) -> Value {
    let mut messages = json!({});
    for (user, device, content) in to {
        messages[user][device] = content;
    }
    json!({
        "edu_type": "m.direct_to_device",
        "content": {
            "sender": sender,
            "type": kind,
            "message_id": stream.to_string(),
            "messages": messages,
        },
    })
}

/// The body of `PUT /_matrix/federation/v1/send/{txnId}`.
pub(crate) fn txn_body(origin: &str, now_ms: i64, pdus: Vec<Value>, edus: Vec<Value>) -> Value {
    json!({
        "origin": origin,
        "origin_server_ts": now_ms,
        "pdus": pdus,
        "edus": edus,
    })
}

/// The PDUs and EDUs of a stored transaction body.
pub(crate) fn counts(body: &Value) -> (usize, usize) {
    let count = |key: &str| body[key].as_array().map_or(0, Vec::len);
    (count("pdus"), count("edus"))
}

/// The per-PDU errors of a `/send` answer (`pdus`: event id → `{}` or `{"error": …}`), for
/// the log: they are the receiver's verdicts on those PDUs, not a reason to send them again.
pub(crate) fn pdu_errors(answer: &Value) -> Vec<(String, String)> {
    let Some(pdus) = answer["pdus"].as_object() else {
        return Vec::new();
    };
    pdus.iter()
        .filter_map(|(id, result)| {
            result.get("error").map(|e| {
                (
                    id.clone(),
                    e.as_str().map_or_else(|| e.to_string(), str::to_string),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::appservice::queue::{take, Candidate, Item};

    const OURS: &str = "ours.example";
    const THEM: &str = "127.0.0.1:8448";

    fn message(sender: &str, stream: i64) -> EventFacts<'_> {
        EventFacts {
            stream,
            sender,
            kind: "m.room.message",
            state_key: None,
            membership: None,
        }
    }

    fn member<'a>(sender: &'a str, target: &'a str, membership: &'a str) -> EventFacts<'a> {
        EventFacts {
            stream: 10,
            sender,
            kind: "m.room.member",
            state_key: Some(target),
            membership: Some(membership),
        }
    }

    #[test]
    fn the_server_of_a_user_keeps_its_port() {
        assert_eq!(server_of("@u:127.0.0.1:8448"), Some(THEM));
        assert_eq!(server_of("@u:ours.example"), Some(OURS));
        assert_eq!(server_of("u:ours.example"), None);
        assert_eq!(server_of("@nobody"), None);
    }

    #[test]
    fn a_local_event_goes_to_a_server_joined_to_its_room_before_it() {
        let e = message("@alice:ours.example", 10);
        assert!(sends_pdu(OURS, THEM, &e, Some(9)));
        assert!(!sends_pdu(OURS, THEM, &e, Some(10)), "joined by this event");
        assert!(!sends_pdu(OURS, THEM, &e, Some(11)), "joined after it");
        assert!(!sends_pdu(OURS, THEM, &e, None), "not in the room");
    }

    #[test]
    fn other_servers_events_are_never_relayed() {
        let e = message("@bob:other.example", 10);
        assert!(!sends_pdu(OURS, THEM, &e, Some(1)));
        let own = message("@u:127.0.0.1:8448", 10);
        assert!(!sends_pdu(OURS, THEM, &own, Some(1)), "not even its own");
    }

    #[test]
    fn a_kick_ban_or_leave_reaches_the_targets_server_outside_the_room() {
        for membership in ["leave", "ban"] {
            let e = member("@alice:ours.example", "@u:127.0.0.1:8448", membership);
            assert!(sends_pdu(OURS, THEM, &e, None), "{membership}");
            assert!(!sends_pdu(OURS, "third.example", &e, None), "{membership}");
        }
    }

    #[test]
    fn an_invite_goes_by_the_invite_route_not_the_queue() {
        let e = member("@alice:ours.example", "@u:127.0.0.1:8448", "invite");
        assert!(!sends_pdu(OURS, THEM, &e, None));
        // In a room the server is already in, it is an event of the room like any other.
        assert!(sends_pdu(OURS, THEM, &e, Some(1)));
    }

    #[test]
    fn no_queue_sends_to_this_server_itself() {
        let e = member("@alice:ours.example", "@bob:ours.example", "leave");
        assert!(!sends_pdu(OURS, OURS, &e, Some(1)));
    }

    #[test]
    fn joins_kicks_and_bans_make_destinations_invites_and_knocks_do_not() {
        let made: Vec<bool> = ["join", "leave", "ban", "invite", "knock"]
            .iter()
            .map(|m| makes_destination(m))
            .collect();
        assert_eq!(made, [true, true, true, false, false]);
    }

    fn pdu(stream: i64) -> Candidate<i64> {
        Candidate {
            stream,
            wanted: Some(Item::Event(stream)),
        }
    }

    fn edu(stream: i64) -> Candidate<i64> {
        Candidate {
            stream,
            wanted: Some(Item::Ephemeral(stream)),
        }
    }

    #[test]
    fn a_backlog_of_120_pdus_goes_in_transactions_of_50_50_and_20_in_order() {
        let mut position = 0;
        let mut sizes = Vec::new();
        let mut sent = Vec::new();
        while position < 120 {
            let candidates = (position + 1..=120).map(pdu).collect();
            let t = take(candidates, 120, CAPS);
            sizes.push(t.events.len());
            sent.extend(t.events);
            position = t.last_stream;
        }
        assert_eq!(sizes, [50, 50, 20]);
        assert_eq!(sent, (1..=120).collect::<Vec<_>>());
    }

    #[test]
    fn edus_of_every_kind_share_one_quota_of_100() {
        let candidates: Vec<_> = (1..=150)
            .map(|s| if s % 3 == 0 { pdu(s) } else { edu(s) })
            .collect();
        let t = take(candidates, 150, CAPS);
        assert_eq!(t.ephemeral.len(), 100);
        assert_eq!(t.last_stream, 149, "the 100th EDU is at 149");
        assert_eq!(t.events.len(), 49, "the PDUs up to there");
    }

    #[test]
    fn a_receipt_edu_names_its_room_type_user_and_event() {
        let e = receipt_edu("!r:o", "@a:o", "m.read", "$e", 42);
        assert_eq!(e["edu_type"], "m.receipt");
        assert_eq!(
            e["content"]["!r:o"]["m.read"]["@a:o"]["event_ids"],
            json!(["$e"])
        );
        assert_eq!(e["content"]["!r:o"]["m.read"]["@a:o"]["data"]["ts"], 42);
        assert!(receipt_is_public("m.read"));
        assert!(!receipt_is_public("m.read.private"));
    }

    #[test]
    fn a_presence_edu_says_how_long_ago_the_user_was_active() {
        let e = presence_edu("@a:o", "online", Some("here"), 1_000, 4_000);
        let push = &e["content"]["push"][0];
        assert_eq!(push["last_active_ago"], 3_000);
        assert_eq!(push["currently_active"], true);
        assert_eq!(push["status_msg"], "here");
        let e = presence_edu("@a:o", "offline", None, 5_000, 4_000);
        assert_eq!(e["content"]["push"][0]["last_active_ago"], 0);
        assert!(e["content"]["push"][0].get("status_msg").is_none());
    }

    #[test]
    fn typing_changes_are_who_started_and_who_stopped() {
        let set = |users: &[&str]| users.iter().map(|u| u.to_string()).collect();
        let changes = typing_changes(&set(&["@a:o", "@b:o"]), &set(&["@b:o", "@c:o"]));
        assert_eq!(
            changes,
            [("@a:o".to_string(), false), ("@c:o".to_string(), true)]
        );
        assert!(typing_changes(&set(&["@a:o"]), &set(&["@a:o"])).is_empty());
        let e = typing_edu("!r:o", "@a:o", false);
        assert_eq!(
            e["content"],
            json!({"room_id": "!r:o", "user_id": "@a:o", "typing": false})
        );
    }

    #[test]
    fn a_device_list_update_asks_for_a_resync_and_says_when_a_device_is_gone() {
        let keys = json!({"device_id": "D"});
        let e = device_list_edu("@a:o", "D", 7, Some(&keys));
        assert_eq!(e["edu_type"], "m.device_list_update");
        assert_eq!(e["content"]["prev_id"], json!([]));
        assert_eq!(e["content"]["stream_id"], 7);
        assert_eq!(e["content"]["deleted"], false);
        assert_eq!(e["content"]["keys"], keys);
        let gone = device_list_edu("@a:o", "D", 8, None);
        assert_eq!(gone["content"]["deleted"], true);
    }

    #[test]
    fn a_signing_key_update_carries_the_master_and_self_signing_keys_only() {
        let mut keys = Map::new();
        assert_eq!(signing_key_edu("@a:o", &keys), None);
        keys.insert("user_signing".into(), json!({"k": 1}));
        assert_eq!(signing_key_edu("@a:o", &keys), None, "private to the user");
        keys.insert("master".into(), json!({"k": 2}));
        let e = signing_key_edu("@a:o", &keys).unwrap();
        assert_eq!(
            e["content"],
            json!({"user_id": "@a:o", "master_key": {"k": 2}})
        );
    }

    #[test]
    fn one_to_device_send_is_one_edu_addressed_by_user_and_device() {
        let e = to_device_edu(
            "@a:o",
            "m.room_key_request",
            12,
            vec![
                ("@u:t", "*", json!({"k": 1})),
                ("@u:t", "D2", json!({"k": 2})),
                ("@v:t", "D", json!({"k": 3})),
            ],
        );
        assert_eq!(e["edu_type"], "m.direct_to_device");
        assert_eq!(
            e["content"],
            json!({
                "sender": "@a:o",
                "type": "m.room_key_request",
                "message_id": "12",
                "messages": {"@u:t": {"*": {"k": 1}, "D2": {"k": 2}}, "@v:t": {"D": {"k": 3}}},
            })
        );
    }

    #[test]
    fn per_pdu_errors_of_an_answer_are_read_for_the_log() {
        let answer = json!({"pdus": {"$a": {}, "$b": {"error": "bad"}}});
        assert_eq!(pdu_errors(&answer), [("$b".to_string(), "bad".to_string())]);
        assert!(pdu_errors(&json!({})).is_empty());
        let body = txn_body("o", 1, vec![json!(1), json!(2)], vec![json!(3)]);
        assert_eq!(counts(&body), (2, 1));
        assert_eq!(body["origin"], "o");
    }
}
