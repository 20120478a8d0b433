//! The MIDI logger: records the talk's `org.matrix.midi` events of every room it is in, per
//! room in kv, answers `!midi stats` and `!midi export [last 10m | all]` (a Standard MIDI
//! File posted as an `m.file`), and serves a room's file to its members at
//! `/_plugboard/plugins/midi-logger/rooms/{roomId}.mid`.

pub mod clock;
mod commands;
pub mod duration;
pub mod export;
pub mod note;
pub mod smf;
pub mod store;
#[cfg(test)]
mod tests;
mod web;

use plugboard_sdk::prelude::*;
use serde_json::Value;

use crate::note::{Played, Rejected};

/// The most records a room may be configured to keep. An export holds about 50 bytes of
/// memory a record at once (the records, their order, the tracks, the file and its copy to
/// the host): some 25 MB at this cap, inside the default 64 MiB.
pub const MAX_EVENTS_PER_ROOM: u64 = 500_000;

/// The default bound of records in all rooms together. At 19 bytes a record and a few more
/// for the keys of their chunks, 500 000 fill about 9.6 MB: under the host's default quota
/// of 16 MiB a plugin, with room to spare for the rooms' summaries, clocks and counters, so
/// that the plugin refuses, with a notice, before the host does.
pub const DEFAULT_MAX_EVENTS_TOTAL: u64 = 500_000;

/// The plugin, with its configuration.
pub struct MidiLogger {
    prefix: String,
    max_events: u64,
    max_events_total: u64,
    max_gap_ms: u64,
}

/// A whole number in `1..=max` from the configuration, or `default` without the key.
fn positive(config: &Config, key: &str, default: u64, max: u64) -> Result<u64, Error> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v.as_u64().filter(|n| (1..=max).contains(n)).ok_or_else(|| {
            Error::invalid(format!("{key}: must be a whole number from 1 to {max}"))
        }),
    }
}

impl Plugin for MidiLogger {
    fn init(config: &Config) -> Result<Self, Error> {
        let prefix = match config.get("prefix") {
            None | Some(Value::Null) => "!".to_string(),
            Some(Value::String(p)) if !p.trim().is_empty() && p.len() <= 16 => p.clone(),
            Some(_) => return Err(Error::invalid("prefix: must be 1 to 16 characters")),
        };
        Ok(MidiLogger {
            prefix,
            max_events: positive(config, "max_events_per_room", 200_000, MAX_EVENTS_PER_ROOM)?,
            max_events_total: positive(
                config,
                "max_events_total",
                DEFAULT_MAX_EVENTS_TOTAL,
                u64::from(u32::MAX),
            )?,
            max_gap_ms: positive(config, "max_gap_ms", 3_600_000, smf::MAX_DELTA)?,
        })
    }

    fn commands(&self) -> Commands<Self> {
        Commands::new(&self.prefix)
            .command(
                "midi",
                commands::USAGE,
                "the room's recorded notes: counts, or a Standard MIDI File",
                commands::midi,
            )
            // Other bots in the room answer their own commands.
            .quiet_unknown()
    }

    fn on_midi(&mut self, event: &Event, midi: &Midi) -> Result<(), Error> {
        let played = match Played::check(midi) {
            Ok(played) => played,
            Err(why) => return store::reject(&event.room_id, why),
        };
        let limits = store::Limits {
            per_room: self.max_events,
            total: self.max_events_total,
        };
        let room = &event.room_id;
        let refused = store::append(room, &event.sender, played, event.origin_server_ts, limits)?;
        if refused == Some(Rejected::ServerFull)
            && store::mark_told_server_full(room, true)?
            && !self.tell_server_full(room)
        {
            store::mark_told_server_full(room, false)?;
        }
        Ok(())
    }

    fn on_malformed(&mut self, event: &Event, why: &str) -> Result<(), Error> {
        if event.event_type != "org.matrix.midi" {
            return Ok(());
        }
        log::debug(&format!("a malformed MIDI event {}: {why}", event.event_id));
        store::reject(&event.room_id, Rejected::Malformed)
    }

    fn handle_http(&mut self, request: &HttpRequest) -> HttpResponse {
        web::serve(
            request,
            &web::Limits {
                max_events: self.max_events,
                max_gap_ms: self.max_gap_ms,
            },
        )
    }
}

impl MidiLogger {
    /// Tells `room` that no more notes are recorded; answers whether it is done with: told,
    /// or refused for good (a room the logger may not speak in is not asked again with every
    /// event). A notice that failed otherwise is logged, and the room's next refused event
    /// tries again: failing the transaction instead would hold up every room's events for
    /// as long as the notice cannot go out.
    fn tell_server_full(&self, room: &str) -> bool {
        let text = format!(
            "No more notes are recorded here: this server keeps at most {} MIDI events in all \
             rooms together, and has them. The server admin can raise max_events_total; \
             `{}midi export` still gives what was recorded.",
            self.max_events_total, self.prefix
        );
        match homeserver::send_notice(room, &text) {
            Ok(_) => true,
            Err(e) => {
                log::warn(&format!(
                    "cannot tell {room} that the recordings are full: {}: {}",
                    e.errcode, e.message
                ));
                e.is_permanent()
            }
        }
    }
}

export_plugin!(MidiLogger);
