//! Voicemail: the caller's message (text, or an audio or other file by its `mxc://` URI) is
//! forwarded to the configured mailbox room with who called, when, from which room and on
//! which call, in the body for people and under `org.plugboard.voicemail` for programs. A
//! message the mailbox cannot take right now is kept in kv and delivered again later, with
//! a growing pause, so an unreachable mailbox does not lose it.

use std::time::{Duration, UNIX_EPOCH};

use plugboard_sdk::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::counts::count;

use crate::call::Call;
use crate::menu::valid_mxc;
use crate::outgoing::send;

/// Longer texts are cut: a voicemail is a message, not a document.
const MAX_TEXT: usize = 4000;

/// The last millisecond of year 9999: RFC 3339 has four-digit years.
const LAST_RFC3339_MS: u64 = 253_402_300_799_999;

/// The message's time, as RFC 3339 in UTC.
pub fn format_time(ts_ms: u64) -> String {
    match UNIX_EPOCH.checked_add(Duration::from_millis(ts_ms)) {
        Some(t) if ts_ms <= LAST_RFC3339_MS => humantime::format_rfc3339_seconds(t).to_string(),
        _ => format!("{ts_ms} ms after the epoch"),
    }
}

fn cut(text: &str) -> String {
    plugboard_sdk::message::clip_marked(text, MAX_TEXT).into_owned()
}

/// The content forwarded to the mailbox.
pub fn content(call: &Call, event: &Event, message: &Message) -> Value {
    let when = format_time(event.origin_server_ts);
    let header = format!(
        "Voicemail from {} at {when} (room {}, call {})",
        call.caller, call.room_id, call.call_id
    );
    let meta = json!({
        "caller": call.caller,
        "ts": event.origin_server_ts,
        "time": when,
        "room_id": call.room_id,
        "call_id": call.call_id,
        "event_id": event.event_id,
    });
    let file = message.url.as_deref().filter(|u| valid_mxc(u));
    let content = match (file, &message.msgtype) {
        (Some(url), kind @ (MsgType::Audio | MsgType::File | MsgType::Image | MsgType::Video)) => {
            let mut info = json!({});
            if let Some(i) = &message.info {
                if let Some(m) = i.mimetype.as_deref().filter(|m| m.len() <= 255) {
                    info["mimetype"] = json!(m);
                }
                if let Some(s) = i.size {
                    info["size"] = json!(s);
                }
                if let Some(d) = i.duration {
                    info["duration"] = json!(d);
                }
            }
            Content::new(kind.clone(), format!("{header}: {}", cut(&message.body)))
                .with("url", json!(url))
                .with("info", info)
        }
        _ => Content::notice(format!("{header}:\n{}", cut(&message.body))),
    };
    content.with("org.plugboard.voicemail", meta).into_value()
}

const PENDING: &str = "voicemail/";
const REDELIVER: &str = "redeliver/";
/// Voicemail kept for a mailbox that cannot take it, at most: past that, it is refused.
const MAX_PENDING: usize = 100;
/// Tries before a kept voicemail is given up (about 12 hours of pauses in all).
const MAX_ATTEMPTS: u32 = 10;
const FIRST_PAUSE_MS: u64 = 60_000;
const LONGEST_PAUSE_MS: u64 = 4 * 60 * 60 * 1000;

/// A voicemail waiting for its mailbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pending {
    content: Value,
    attempts: u32,
}

/// What became of a voicemail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It is in the mailbox.
    Delivered,
    /// The mailbox could not take it: it is kept and tried again later.
    Kept,
    /// The mailbox could not take it and too many others wait already.
    Refused,
}

/// Sends `content` to the mailbox; answers whether it went out. The IVR joins the mailbox
/// room when it is not in it yet.
fn deliver(mailbox: &str, content: &Value) -> Result<bool, Error> {
    let room = if mailbox.starts_with('#') {
        match homeserver::resolve_alias(mailbox) {
            Ok(r) => r,
            Err(e) => {
                log::warn(&format!("the mailbox {mailbox} does not resolve: {e:?}"));
                return Ok(false);
            }
        }
    } else {
        mailbox.to_string()
    };
    if send(&room, "m.room.message", content)? {
        return Ok(true);
    }
    if let Err(e) = homeserver::join(None, &room) {
        log::warn(&format!("cannot join the mailbox {room}: {e:?}"));
        return Ok(false);
    }
    send(&room, "m.room.message", content)
}

/// Forwards the caller's message to the mailbox, or keeps it for later.
pub fn forward(
    mailbox: &str,
    call: &Call,
    event: &Event,
    message: &Message,
) -> Result<Outcome, Error> {
    let content = content(call, event, message);
    if deliver(mailbox, &content)? {
        return Ok(Outcome::Delivered);
    }
    if kv::list_keys(PENDING, None, MAX_PENDING as u32)?.len() >= MAX_PENDING {
        return Ok(Outcome::Refused);
    }
    kv::set_json(
        &format!("{PENDING}{}", call.call_id),
        &Pending {
            content,
            attempts: 1,
        },
    )?;
    timers::set_timer(&format!("{REDELIVER}{}", call.call_id), FIRST_PAUSE_MS, "")?;
    Ok(Outcome::Kept)
}

/// The call id of a redelivery timer key.
pub fn redelivery_of(key: &str) -> Option<&str> {
    key.strip_prefix(REDELIVER)
}

/// Tries a kept voicemail again (its redelivery timer fell due): delivered, it is
/// forgotten; not, it waits twice as long, until it has been tried too often.
pub fn redeliver(mailbox: Option<&str>, call_id: &str) -> Result<(), Error> {
    let key = format!("{PENDING}{call_id}");
    let Some(mut pending) = kv::get_json::<Pending>(&key).ok().flatten() else {
        kv::delete(&key)?;
        return Ok(());
    };
    if let Some(mailbox) = mailbox {
        if deliver(mailbox, &pending.content)? {
            log::info(&format!("delivered the voicemail of call {call_id} late"));
            return kv::delete(&key).map(drop);
        }
    }
    if pending.attempts >= MAX_ATTEMPTS {
        log::warn(&format!("giving up the voicemail of call {call_id}"));
        kv::delete(&key)?;
        return count("voicemail_lost");
    }
    let pause = FIRST_PAUSE_MS
        .saturating_mul(1 << pending.attempts.min(10))
        .min(LONGEST_PAUSE_MS);
    pending.attempts += 1;
    kv::set_json(&key, &pending)?;
    timers::set_timer(&format!("{REDELIVER}{call_id}"), pause, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc_3339_in_utc() {
        assert_eq!(format_time(1_700_000_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_time(u64::MAX),
            format!("{} ms after the epoch", u64::MAX)
        );
    }

    #[test]
    fn long_texts_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_TEXT);
        let c = cut(&long);
        assert!(c.len() <= MAX_TEXT + "…".len());
        assert!(c.ends_with('…'));
        assert_eq!(cut("short"), "short");
    }
}
