//! Voicemail: the caller's message (text, or an audio or other file by its `mxc://` URI) is
//! forwarded to the configured mailbox room with who called, when, from which room and on
//! which call, in the body for people and under `org.plugboard.voicemail` for programs.

use std::time::{Duration, UNIX_EPOCH};

use plugboard_sdk::prelude::*;
use serde_json::{json, Value};

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
    if text.len() <= MAX_TEXT {
        return text.to_string();
    }
    let mut end = MAX_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
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

/// Forwards the voicemail; answers whether it reached the mailbox. The IVR joins the
/// mailbox room when it is not in it yet.
pub fn forward(
    mailbox: &str,
    call: &Call,
    event: &Event,
    message: &Message,
) -> Result<bool, Error> {
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
    let content = content(call, event, message);
    if send(&room, "m.room.message", &content)? {
        return Ok(true);
    }
    if let Err(e) = homeserver::join(None, &room) {
        log::warn(&format!("cannot join the mailbox {room}: {e:?}"));
        return Ok(false);
    }
    send(&room, "m.room.message", &content)
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
