//! `!midi stats` and `!midi export [last 10m | all]`: what they accept and what they answer
//! in the room.

use plugboard_sdk::prelude::*;
use serde_json::json;

use crate::note::Rejected;
use crate::store::{self, RoomLog};
use crate::{duration, export, MidiLogger};

/// The usage line of `!midi`.
pub const USAGE: &str = "stats | export [last 10m | all]";

/// Which part of the recording an export takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// All of it.
    All,
    /// What the server stamped within this many milliseconds before the command.
    Last(u64),
}

impl Window {
    /// `""`, `all`, or `last` and a duration (`last 10m`).
    pub fn parse(text: &str) -> Option<Window> {
        let words: Vec<&str> = text.split_whitespace().collect();
        match words.as_slice() {
            [] => Some(Window::All),
            [all] if all.eq_ignore_ascii_case("all") => Some(Window::All),
            [last, span] if last.eq_ignore_ascii_case("last") => {
                duration::parse(&span.to_ascii_lowercase()).map(Window::Last)
            }
            _ => None,
        }
    }

    /// `all`, or `last 10m` written back from the parsed value.
    fn label(self) -> String {
        match self {
            Window::All => "all".into(),
            Window::Last(ms) => format!("last {}", short(ms)),
        }
    }
}

/// `ms` in its largest whole unit (`10m`, `90s`, `2h`).
fn short(ms: u64) -> String {
    [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m")]
        .iter()
        .find(|(unit, _)| ms.is_multiple_of(*unit))
        .map_or_else(
            || format!("{}s", ms / 1000),
            |(unit, name)| format!("{}{name}", ms / unit),
        )
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn list(channels: &[u8]) -> String {
    channels
        .iter()
        .map(u8::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn notice(event: &Event, text: &str) -> Result<(), Error> {
    homeserver::reply(event, MsgType::Notice, text).map(drop)
}

/// `!midi …`.
pub fn midi(logger: &mut MidiLogger, event: &Event, args: &Args) -> Result<(), Error> {
    let sub = args.word(0).map(str::to_ascii_lowercase);
    match sub.as_deref() {
        Some("stats") if args.after_words(1).is_empty() => stats(event),
        Some("export") => match Window::parse(args.after_words(1)) {
            Some(window) => export(logger, event, window),
            None => notice(
                event,
                &format!(
                    "Export what? `{}midi export all` or `{0}midi export last 10m` (s, m, h or d, up to 365d).",
                    logger.prefix
                ),
            ),
        },
        _ => notice(
            event,
            &format!("Usage: {}midi {USAGE}", logger.prefix),
        ),
    }
}

/// What `!midi stats` answers for `log`.
pub fn stats_text(log: &RoomLog) -> String {
    let mut text = if log.events == 0 {
        "No notes recorded in this room yet.".to_string()
    } else {
        let channels = log.channel_list();
        format!(
            "{} on {} ({}), lasting {} ({} recorded).",
            plural(log.notes, "note", "notes"),
            plural(channels.len() as u64, "channel", "channels"),
            list(&channels),
            duration::format(log.span_ms()),
            plural(log.events, "event", "events"),
        )
    };
    let total = log.rejected_total();
    if total > 0 {
        let reasons: Vec<String> = Rejected::ALL
            .iter()
            .filter_map(|r| {
                let n = *log.rejected.get(r.key())?;
                (n > 0).then(|| format!("{}: {n}", r.describe()))
            })
            .collect();
        text.push_str(&format!(
            " Rejected {} ({}).",
            plural(total, "event", "events"),
            reasons.join(", ")
        ));
    }
    text
}

fn stats(event: &Event) -> Result<(), Error> {
    let log = store::room_log(&event.room_id)?;
    notice(event, &stats_text(&log))
}

fn export(logger: &MidiLogger, event: &Event, window: Window) -> Result<(), Error> {
    let since = match window {
        Window::All => None,
        Window::Last(ms) => Some(event.origin_server_ts.saturating_sub(ms)),
    };
    let limit = usize::try_from(logger.max_events).unwrap_or(usize::MAX);
    let recording = store::read(&event.room_id, since, limit)?;
    let label = window.label();
    let name = format!("{} ({label})", event.room_id);
    let Some(x) = export::export(
        &recording.notes,
        &recording.senders,
        logger.max_gap_ms,
        &name,
    ) else {
        let text = match window {
            Window::All => "No notes to export: none recorded in this room yet.".to_string(),
            Window::Last(_) => format!("No notes to export in the {label}."),
        };
        return notice(event, &text);
    };
    let filename = format!("midi-{}.mid", label.replace(' ', "-"));
    let uri = match homeserver::upload_media(None, "audio/midi", Some(&filename), &x.file) {
        Ok(uri) => uri,
        Err(e) => {
            log::warn(&format!(
                "cannot upload {filename}: {}: {}",
                e.errcode, e.message
            ));
            return notice(
                event,
                &format!("The MIDI file could not be uploaded: {}", e.message),
            );
        }
    };
    let mut caption = format!(
        "{filename}: {} on {} ({}), {}",
        plural(x.notes, "note", "notes"),
        plural(x.channels.len() as u64, "channel", "channels"),
        list(&x.channels),
        duration::format(x.duration_ms),
    );
    if x.unmatched_offs > 0 {
        caption.push_str(&format!(
            "; {} without a sounding note left out",
            plural(x.unmatched_offs, "release", "releases")
        ));
    }
    if x.closed_at_end > 0 {
        caption.push_str(&format!(
            "; {} still sounding released at the end",
            plural(x.closed_at_end, "note", "notes")
        ));
    }
    if recording.truncated {
        caption.push_str(&format!("; only the first {} events", logger.max_events));
    }
    let content = Content::new(MsgType::File, caption)
        .with("filename", json!(filename))
        .with("url", json!(uri))
        .with(
            "info",
            json!({"mimetype": "audio/midi", "size": x.file.len()}),
        )
        .reply_to(event);
    homeserver::send_message(None, &event.room_id, content).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_windows_parse_with_all_as_the_default() {
        assert_eq!(Window::parse(""), Some(Window::All));
        assert_eq!(Window::parse(" ALL "), Some(Window::All));
        assert_eq!(Window::parse("last 10m"), Some(Window::Last(600_000)));
        assert_eq!(Window::parse("Last 2H"), Some(Window::Last(7_200_000)));
        for bad in [
            "last",
            "last ten",
            "all please",
            "10m",
            "last 10m all",
            "last 0s",
        ] {
            assert_eq!(Window::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn labels_write_windows_back_in_their_largest_unit() {
        assert_eq!(Window::All.label(), "all");
        assert_eq!(Window::Last(600_000).label(), "last 10m");
        assert_eq!(Window::Last(90_000).label(), "last 90s");
        assert_eq!(Window::Last(86_400_000).label(), "last 1d");
    }
}
