//! The MIDI logger: records the talk's `org.matrix.midi` events of every room it is in, per
//! room in kv, answers `!midi stats` and `!midi export [last 10m | all]` (a Standard MIDI
//! File posted as an `m.file`), and serves a room's file to its members at
//! `/_plugboard/plugins/midi-logger/rooms/{roomId}.mid`.

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

use crate::note::{Note, Rejected};

/// The most records a room may be configured to keep. An export holds about 50 bytes of
/// memory a record at once (the records, their order, the tracks, the file and its copy to
/// the host): some 25 MB at this cap, inside the default 64 MiB.
pub const MAX_EVENTS_PER_ROOM: u64 = 500_000;

/// The plugin, with its configuration.
pub struct MidiLogger {
    prefix: String,
    max_events: u64,
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
        match Note::check(midi, event.origin_server_ts) {
            Ok(note) => store::append(&event.room_id, note, self.max_events).map(drop),
            Err(why) => store::reject(&event.room_id, why),
        }
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

export_plugin!(MidiLogger);
