//! One recorded MIDI event: the checks an `org.matrix.midi` event passes before it is kept,
//! the reasons it is refused, and its fixed-size binary form in the store (and the older form
//! without senders, which is still read).

use plugboard_sdk::events::Midi;

/// Bytes of one stored record.
pub const RECORD_LEN: usize = 19;

/// Bytes of one record of format 1, written before each sender had a clock of its own.
pub const V1_RECORD_LEN: usize = 15;

/// The largest `midi_ts` kept: the largest integer a JavaScript client can send exactly.
pub const MAX_MIDI_TS: i64 = (1 << 53) - 1;

/// The sender number of format 1's records, whose sender was not kept.
pub const UNKNOWN_SENDER: u32 = 0;

/// A checked `org.matrix.midi` event: what its sender's keyboard sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Played {
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

/// A recorded event, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Note {
    /// When the server stamped the event (milliseconds since the epoch), never earlier than
    /// the room's previous record.
    pub server_ts: u64,
    /// When it was played on the room's timeline: its `midi_ts` moved by its sender's
    /// offset (see `clock`), in the server's milliseconds since the epoch.
    pub time: i64,
    /// Its sender, numbered per room from 1 in the order they first played
    /// ([`UNKNOWN_SENDER`] for format 1's records).
    pub sender: u32,
    /// 0–127.
    pub note: u8,
    /// 0–127.
    pub velocity: u8,
    /// 1–16.
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
    /// All rooms together have `max_events_total` records already.
    ServerFull,
    /// The plugin's kv quota is used up.
    Quota,
}

impl Rejected {
    /// Every reason, in the order `!midi stats` lists them.
    pub const ALL: [Rejected; 9] = [
        Rejected::Note,
        Rejected::Velocity,
        Rejected::Channel,
        Rejected::State,
        Rejected::MidiTs,
        Rejected::Malformed,
        Rejected::Full,
        Rejected::ServerFull,
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
            Rejected::ServerFull => "server_full",
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
            Rejected::ServerFull => "server's recordings full",
            Rejected::Quota => "storage quota used up",
        }
    }
}

impl Played {
    /// `midi` checked, or the first check it fails.
    pub fn check(midi: &Midi) -> Result<Played, Rejected> {
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
        Ok(Played {
            midi_ts: midi.midi_ts,
            note,
            velocity,
            channel,
            on,
        })
    }

    /// The record of this event from `sender`, stamped `server_ts`, at `time` on the room's
    /// timeline.
    pub fn record(&self, server_ts: u64, time: i64, sender: u32) -> Note {
        Note {
            server_ts,
            time,
            sender,
            note: self.note,
            velocity: self.velocity,
            channel: self.channel,
            on: self.on,
        }
    }

    /// A record of format 1 (its server time as an offset from `base`, then `midi_ts`, the
    /// note, the velocity and the channel with `on` as its top bit); `None` for bytes that
    /// no record has.
    pub fn decode_v1(record: &[u8], base: u64) -> Option<(u64, Played)> {
        let record: &[u8; V1_RECORD_LEN] = record.try_into().ok()?;
        let offset = u32::from_le_bytes(record[0..4].try_into().ok()?);
        let midi_ts = i64::from_le_bytes(record[4..12].try_into().ok()?);
        let (note, velocity, channel, on) = fields(record[12], record[13], record[14])?;
        (0..=MAX_MIDI_TS).contains(&midi_ts).then_some((
            base.saturating_add(u64::from(offset)),
            Played {
                midi_ts,
                note,
                velocity,
                channel,
                on,
            },
        ))
    }
}

/// The note, velocity, channel and `on` of a record's last three bytes, if they are valid.
fn fields(note: u8, velocity: u8, flags: u8) -> Option<(u8, u8, u8, bool)> {
    let channel = flags & 0x7f;
    let valid = note <= 127 && velocity <= 127 && (1..=16).contains(&channel);
    valid.then_some((note, velocity, channel, flags & 0x80 != 0))
}

impl Note {
    /// Whether it starts a sound: MIDI takes a note-on of velocity 0 for a note-off.
    pub fn sounds(&self) -> bool {
        self.on && self.velocity > 0
    }

    /// Appends the record: its server time as an offset from `base` (at most `u32::MAX`
    /// milliseconds before it: the caller's bucket is far shorter), its time, its sender,
    /// the note, the velocity, and the channel with `on` as its top bit.
    pub fn encode(&self, base: u64, out: &mut Vec<u8>) {
        let offset = u32::try_from(self.server_ts.saturating_sub(base)).unwrap_or(u32::MAX);
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&self.time.to_le_bytes());
        out.extend_from_slice(&self.sender.to_le_bytes());
        out.push(self.note);
        out.push(self.velocity);
        out.push(self.channel | if self.on { 0x80 } else { 0 });
    }

    /// A record written by [`Note::encode`] with the same `base`; `None` for bytes that no
    /// record has (a damaged value is skipped, not trusted).
    pub fn decode(record: &[u8], base: u64) -> Option<Note> {
        let record: &[u8; RECORD_LEN] = record.try_into().ok()?;
        let offset = u32::from_le_bytes(record[0..4].try_into().ok()?);
        let time = i64::from_le_bytes(record[4..12].try_into().ok()?);
        let sender = u32::from_le_bytes(record[12..16].try_into().ok()?);
        let (note, velocity, channel, on) = fields(record[16], record[17], record[18])?;
        let valid = sender != UNKNOWN_SENDER && (0..=MAX_MIDI_TS).contains(&time);
        valid.then_some(Note {
            server_ts: base.saturating_add(u64::from(offset)),
            time,
            sender,
            note,
            velocity,
            channel,
            on,
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
            assert!(Played::check(&m).is_ok(), "{m:?}");
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
            assert_eq!(Played::check(&m), Err(why), "{m:?}");
        }
    }

    fn record(m: Midi, server_ts: u64, time: i64, sender: u32) -> Note {
        Played::check(&m).unwrap().record(server_ts, time, sender)
    }

    #[test]
    fn a_record_decodes_to_what_was_encoded() {
        let n = record(
            midi(64, 100, "on", 10, 123_456_789_012),
            1_700_000_000_500,
            1_700_000_000_250,
            70_000,
        );
        let mut bytes = Vec::new();
        n.encode(1_700_000_000_000, &mut bytes);
        assert_eq!(bytes.len(), RECORD_LEN);
        assert_eq!(Note::decode(&bytes, 1_700_000_000_000), Some(n));
    }

    #[test]
    fn damaged_records_decode_to_nothing() {
        let n = record(midi(64, 100, "off", 3, 7), 10, 10, 1);
        let mut bytes = Vec::new();
        n.encode(0, &mut bytes);
        assert_eq!(Note::decode(&bytes[..RECORD_LEN - 1], 0), None);
        for (at, value) in [(16, 200), (17, 128), (18, 0), (18, 17), (11, 0x80), (12, 0)] {
            let mut bad = bytes.clone();
            bad[at] = value;
            assert_eq!(Note::decode(&bad, 0), None, "byte {at} = {value}");
        }
    }

    #[test]
    fn format_1_records_still_decode() {
        // Server time 500 ms into the bucket, midi_ts 123 456, note 64, velocity 100,
        // channel 10, on: as the first format wrote them.
        let mut v1 = Vec::new();
        v1.extend_from_slice(&500u32.to_le_bytes());
        v1.extend_from_slice(&123_456i64.to_le_bytes());
        v1.extend_from_slice(&[64, 100, 10 | 0x80]);
        assert_eq!(
            Played::decode_v1(&v1, 1_000),
            Some((
                1_500,
                Played::check(&midi(64, 100, "on", 10, 123_456)).unwrap()
            ))
        );
        let mut bad = v1.clone();
        bad[14] = 0x80;
        assert_eq!(Played::decode_v1(&bad, 0), None);
        assert_eq!(Played::decode_v1(&v1[..14], 0), None);
    }

    #[test]
    fn a_note_on_of_velocity_zero_does_not_sound() {
        assert!(!record(midi(60, 0, "on", 1, 0), 0, 0, 1).sounds());
        assert!(record(midi(60, 1, "on", 1, 0), 0, 0, 1).sounds());
        assert!(!record(midi(60, 90, "off", 1, 0), 0, 0, 1).sounds());
    }
}
