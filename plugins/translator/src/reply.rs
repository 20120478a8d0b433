//! What the translator posts: `m.notice` replies to the message they answer, and notices to a
//! room, each with a txn id made from what it answers, so that a call retried after a
//! failure does not post twice. A room that will not take the post (the bot was kicked, the
//! message is too large) is logged and passed over instead of failing the call for ever.

use plugboard_sdk::prelude::*;
use serde_json::{json, Value};

/// The event a reply answers: enough of it to build the reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Answered<'a> {
    /// The room.
    pub room: &'a str,
    /// The message's id.
    pub event_id: &'a str,
    /// Its sender, who is mentioned.
    pub sender: &'a str,
}

/// A prefix for txn ids, made once per store: a reinstalled plugin (an empty store, its
/// sequence numbers from 0 again) must not reuse the txn ids of its earlier life.
fn epoch() -> Result<String, Error> {
    if let Some(e) = kv::get_json::<String>("txn_epoch")? {
        return Ok(e);
    }
    let e = format!("{:x}", plugboard_sdk::random::u64());
    kv::set_json("txn_epoch", &e)?;
    Ok(e)
}

/// Errors of a send that a retry will not fix.
fn permanent(e: &Error) -> bool {
    [
        "M_FORBIDDEN",
        "M_NOT_FOUND",
        "M_TOO_LARGE",
        "M_BAD_JSON",
        "M_INVALID_PARAM",
    ]
    .iter()
    .any(|c| e.is(c))
}

fn send(room: &str, content: Value, txn: &str) -> Result<(), Error> {
    let txn = format!("translator-{}-{txn}", epoch()?);
    match homeserver::send_event(None, room, "m.room.message", &content, Some(&txn)) {
        Ok(_) => Ok(()),
        Err(e) if permanent(&e) => {
            log::warn(&format!(
                "cannot post in {room}: {} {}",
                e.errcode, e.message
            ));
            kv::increment("counts/unsent", 1)?;
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Answers `to` with a notice; `extra` fields go into the content.
pub fn notice_reply(
    to: &Answered,
    body: &str,
    extra: Option<(&str, Value)>,
    txn: &str,
) -> Result<(), Error> {
    let event = Event::new(
        to.event_id.to_string(),
        to.room.to_string(),
        to.sender.to_string(),
        "m.room.message".into(),
        None,
        0,
        json!({}),
        String::new(),
        false,
    );
    let mut content = Content::notice(body).reply_to(&event);
    if let Some((k, v)) = extra {
        content = content.with(k, v);
    }
    send(to.room, content.into_value(), txn)
}

/// A notice to `room`.
pub fn notice(room: &str, body: &str, txn: &str) -> Result<(), Error> {
    send(room, Content::notice(body).into_value(), txn)
}
