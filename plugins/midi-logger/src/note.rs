//! One recorded MIDI event: the checks an `org.matrix.midi` event passes before it is kept,
//! the reasons it is refused, and its fixed-size binary form in the store.

use plugboard_sdk::events::Midi;

/// Bytes of one stored record.
pub const RECORD_LEN: usize = 15;

/// The largest `midi_ts` kept: the largest integer a JavaScript client can send exactly.
pub const MAX_MIDI_TS: i64 = (1 << 53) - 1;

/// A checked MIDI event, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Note {
    /// When the server stamped the event (milliseconds since the epoch), never earlier than
    /// the room's previous record.
    pub server_ts: u64,
    /// Milliseconds on the sender's clock.
    pub midi_ts: i64,
    /// 0–127.
    pub note: u8,
    /// 0–127.
    pub velocity: u8,
    /// 1–16, as people count MIDI channels.
    pub channel: u8,
    /// `state: on`.
    pub on: bool,
}

/// Why an event was not recorded; each has its counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// `note` not in 0–127.
    Note,
    /// `velocity` not in 0–127.
    Velocity,
    /// `channel` not in 1–16.
    Channel,
    /// `state` neither `on` nor `off`.
    State,
    /// `midi_ts` negative or past [`MAX_MIDI_TS`].
    MidiTs,
    /// A field missing or of the wrong type.
    Malformed,
    /// The room has `max_events_per_room` records already.
    Full,
    /// The plugin's kv quota is used up.
    Quota,
}

impl Rejected {
    /// Every reason, in the order `!midi stats` lists them.
    pub const ALL: [Rejected; 8] = [
        Rejected::Note,
        Rejected::Velocity,
        Rejected::Channel,
        Rejected::State,
        Rejected::MidiTs,
        Rejected::Malformed,
        Rejected::Full,
        Rejected::Quota,
    ];

    /// Its name in counters' keys.
    pub fn key(self) -> &'static str {
        match self {
            Rejected::Note => "note",
            Rejected::Velocity => "velocity",
            Rejected::Channel => "channel",
            Rejected::State => "state",
            Rejected::MidiTs => "midi_ts",
            Rejected::Malformed => "malformed",
            Rejected::Full => "full",
            Rejected::Quota => "quota",
        }
    }

    /// Its description for people.
    pub fn describe(self) -> &'static str {
        match self {
            Rejected::Note => "note not in 0–127",
            Rejected::Velocity => "velocity not in 0–127",
            Rejected::Channel => "channel not in 1–16",
            Rejected::State => "state neither on nor off",
            Rejected::MidiTs => "midi_ts out of range",
            Rejected::Malformed => "malformed",
            Rejected::Full => "room log full",
            Rejected::Quota => "storage quota used up",
        }
    }
}

impl Note {
    /// `midi` as a record stamped `server_ts`, or the first check it fails.
    pub fn check(midi: &Midi, server_ts: u64) -> Result<Note, Rejected> {
        let note = u8::try_from(midi.note)
            .ok()
            .filter(|n| *n <= 127)
            .ok_or(Rejected::Note)?;
        let velocity = u8::try_from(midi.velocity)
            .ok()
            .filter(|v| *v <= 127)
            .ok_or(Rejected::Velocity)?;
        let channel = u8::try_from(midi.channel)
            .ok()
            .filter(|c| (1..=16).contains(c))
            .ok_or(Rejected::Channel)?;
        let on = match midi.state.as_str() {
            "on" => true,
            "off" => false,
            _ => return Err(Rejected::State),
        };
        if !(0..=MAX_MIDI_TS).contains(&midi.midi_ts) {
            return Err(Rejected::MidiTs);
        }
        Ok(Note {
            server_ts,
            midi_ts: midi.midi_ts,
            note,
            velocity,
            channel,
            on,
        })
    }

    /// Whether it starts a sound: MIDI takes a note-on of velocity 0 for a note-off.
    pub fn sounds(&self) -> bool {
        self.on && self.velocity > 0
    }

    /// Appends the record, its server time as an offset from `base` (at most `u32::MAX`
    /// milliseconds before it: the caller's bucket is far shorter).
    pub fn encode(&self, base: u64, out: &mut Vec<u8>) {
        let offset = u32::try_from(self.server_ts.saturating_sub(base)).unwrap_or(u32::MAX);
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&self.midi_ts.to_le_bytes());
        out.push(self.note);
        out.push(self.velocity);
        out.push(self.channel | if self.on { 0x80 } else { 0 });
    }

    /// A record written by [`Note::encode`] with the same `base`; `None` for bytes that no
    /// record has (a damaged value is skipped, not trusted).
    pub fn decode(record: &[u8], base: u64) -> Option<Note> {
        let record: &[u8; RECORD_LEN] = record.try_into().ok()?;
        let offset = u32::from_le_bytes(record[0..4].try_into().ok()?);
        let midi_ts = i64::from_le_bytes(record[4..12].try_into().ok()?);
        let (note, velocity, flags) = (record[12], record[13], record[14]);
        let channel = flags & 0x7f;
        let valid = note <= 127
            && velocity <= 127
            && (1..=16).contains(&channel)
            && (0..=MAX_MIDI_TS).contains(&midi_ts);
        valid.then_some(Note {
            server_ts: base.saturating_add(u64::from(offset)),
            midi_ts,
            note,
            velocity,
            channel,
            on: flags & 0x80 != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn midi(note: i64, velocity: i64, state: &str, channel: i64, midi_ts: i64) -> Midi {
        Midi {
            note,
            velocity,
            state: state.into(),
            channel,
            midi_ts,
        }
    }

    #[test]
    fn values_at_the_edges_of_their_ranges_are_kept() {
        for m in [
            midi(0, 0, "on", 1, 0),
            midi(127, 127, "off", 16, MAX_MIDI_TS),
        ] {
            assert!(Note::check(&m, 5).is_ok(), "{m:?}");
        }
    }

    #[test]
    fn each_out_of_range_field_has_its_reason() {
        let cases = [
            (midi(128, 1, "on", 1, 0), Rejected::Note),
            (midi(-1, 1, "on", 1, 0), Rejected::Note),
            (midi(i64::MAX, 1, "on", 1, 0), Rejected::Note),
            (midi(60, 128, "on", 1, 0), Rejected::Velocity),
            (midi(60, -5, "on", 1, 0), Rejected::Velocity),
            (midi(60, 1, "on", 0, 0), Rejected::Channel),
            (midi(60, 1, "on", 17, 0), Rejected::Channel),
            (midi(60, 1, "ON", 1, 0), Rejected::State),
            (midi(60, 1, "", 1, 0), Rejected::State),
            (midi(60, 1, "on", 1, -1), Rejected::MidiTs),
            (midi(60, 1, "on", 1, MAX_MIDI_TS + 1), Rejected::MidiTs),
        ];
        for (m, why) in cases {
            assert_eq!(Note::check(&m, 0), Err(why), "{m:?}");
        }
    }

    #[test]
    fn a_record_decodes_to_what_was_encoded() {
        let n = Note::check(&midi(64, 100, "on", 10, 123_456_789_012), 1_700_000_000_500).unwrap();
        let mut bytes = Vec::new();
        n.encode(1_700_000_000_000, &mut bytes);
        assert_eq!(bytes.len(), RECORD_LEN);
        assert_eq!(Note::decode(&bytes, 1_700_000_000_000), Some(n));
    }

    #[test]
    fn damaged_records_decode_to_nothing() {
        let n = Note::check(&midi(64, 100, "off", 3, 7), 10).unwrap();
        let mut bytes = Vec::new();
        n.encode(0, &mut bytes);
        assert_eq!(Note::decode(&bytes[..RECORD_LEN - 1], 0), None);
        for (at, value) in [(12, 200), (13, 128), (14, 0), (14, 17), (11, 0x80)] {
            let mut bad = bytes.clone();
            bad[at] = value;
            assert_eq!(Note::decode(&bad, 0), None, "byte {at} = {value}");
        }
    }

    #[test]
    fn a_note_on_of_velocity_zero_does_not_sound() {
        assert!(!Note::check(&midi(60, 0, "on", 1, 0), 0).unwrap().sounds());
        assert!(Note::check(&midi(60, 1, "on", 1, 0), 0).unwrap().sounds());
        assert!(!Note::check(&midi(60, 90, "off", 1, 0), 0).unwrap().sounds());
    }
}
