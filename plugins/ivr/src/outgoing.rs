//! What the IVR sends into a call's room: its call events (answer, end of candidates,
//! negotiate answer, hangup, reject, all version 1 with the IVR's party id) and its notices
//! and audio prompts, each tagged with the call id. A send the homeserver refuses for good
//! (the IVR left the room, say) is logged and passed over; only what a retry can fix fails
//! the call into the plugin.

use std::cell::RefCell;

use plugboard_sdk::prelude::*;
use serde_json::{json, Value};

/// The content key that ties the IVR's messages to their call.
pub const CALL_ID_KEY: &str = "org.plugboard.call_id";

thread_local! {
    /// The txn-id base of the sends of a timer call, and how many it made: a timer retried
    /// after a failure sends with the same txn ids, so the homeserver does not repeat them.
    /// Sends while handling a transaction get theirs from the SDK.
    static TXN: RefCell<Option<(String, u32)>> = const { RefCell::new(None) };
}

/// Runs `f` with the sends' txn ids derived from `base`.
pub fn with_txn_base<R>(base: String, f: impl FnOnce() -> R) -> R {
    TXN.with(|t| *t.borrow_mut() = Some((base, 0)));
    let r = f();
    TXN.with(|t| *t.borrow_mut() = None);
    r
}

fn next_txn() -> Option<String> {
    TXN.with(|t| {
        t.borrow_mut().as_mut().map(|(base, n)| {
            *n += 1;
            format!("{base}.{n}")
        })
    })
}

/// Whether a refusal is one a retry cannot change.
fn permanent(e: &Error) -> bool {
    [
        "M_FORBIDDEN",
        "M_NOT_FOUND",
        "M_BAD_JSON",
        "M_NOT_JSON",
        "M_TOO_LARGE",
        "M_INVALID_PARAM",
        "M_EXCLUSIVE",
    ]
    .iter()
    .any(|c| e.is(c))
}

/// Sends one event; answers whether it went out.
pub fn send(room: &str, event_type: &str, content: &Value) -> Result<bool, Error> {
    let txn = next_txn();
    match homeserver::send_event(None, room, event_type, content, txn.as_deref()) {
        Ok(_) => Ok(true),
        Err(e) if permanent(&e) => {
            log::warn(&format!("cannot send {event_type} to {room}: {e:?}"));
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

fn call_content(call_id: &str, party_id: &str, mut extra: Value) -> Value {
    extra["call_id"] = json!(call_id);
    extra["party_id"] = json!(party_id);
    extra["version"] = json!("1");
    extra
}

/// `m.call.answer` with the SDP answer.
pub fn answer(room: &str, call_id: &str, party_id: &str, sdp: &str) -> Result<bool, Error> {
    let content = call_content(
        call_id,
        party_id,
        json!({"answer": {"type": "answer", "sdp": sdp}}),
    );
    send(room, "m.call.answer", &content)
}

/// `m.call.candidates` with only the end-of-candidates marker: the IVR has no candidates of
/// its own, and the spec asks every party to say when it has sent its last.
pub fn end_of_candidates(
    room: &str,
    call_id: &str,
    party_id: &str,
    mid: Option<&str>,
) -> Result<bool, Error> {
    let mut candidate = json!({"candidate": "", "sdpMLineIndex": 0});
    if let Some(mid) = mid {
        candidate["sdpMid"] = json!(mid);
    }
    let content = call_content(call_id, party_id, json!({"candidates": [candidate]}));
    send(room, "m.call.candidates", &content)
}

/// `m.call.negotiate` answering a renegotiation.
pub fn negotiate_answer(
    room: &str,
    call_id: &str,
    party_id: &str,
    sdp: &str,
    lifetime: u64,
) -> Result<bool, Error> {
    let content = call_content(
        call_id,
        party_id,
        json!({"lifetime": lifetime, "description": {"type": "answer", "sdp": sdp}}),
    );
    send(room, "m.call.negotiate", &content)
}

/// `m.call.hangup` with a spec reason.
pub fn hangup(room: &str, call_id: &str, party_id: &str, reason: &str) -> Result<bool, Error> {
    let content = call_content(call_id, party_id, json!({"reason": reason}));
    send(room, "m.call.hangup", &content)
}

/// `m.call.reject`: the IVR does not take the call.
pub fn reject(room: &str, call_id: &str, party_id: &str) -> Result<bool, Error> {
    send(
        room,
        "m.call.reject",
        &call_content(call_id, party_id, json!({})),
    )
}

/// A notice in the call's room, tagged with the call.
pub fn notice(room: &str, call_id: &str, text: &str) -> Result<bool, Error> {
    let content = Content::notice(text)
        .with(CALL_ID_KEY, json!(call_id))
        .into_value();
    send(room, "m.room.message", &content)
}

/// An audio prompt (`m.audio` of an `mxc://` file), tagged with the call.
pub fn audio(room: &str, call_id: &str, uri: &str, body: &str) -> Result<bool, Error> {
    let content = Content::new(MsgType::Audio, body)
        .with("url", json!(uri))
        .with(CALL_ID_KEY, json!(call_id))
        .into_value();
    send(room, "m.room.message", &content)
}
