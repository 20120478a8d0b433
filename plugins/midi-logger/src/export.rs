//! A recording as a Standard MIDI File: the records in the order of their time on the room's
//! timeline, one millisecond a tick (division 500 at the default tempo of 500 000 µs a
//! quarter note, written as a tempo meta event in the conductor track), pauses longer than
//! the configured gap shortened to it, and one track per sender and channel. Note-ons and
//! note-offs are paired per sender, channel and key, each on its own track so that one
//! player's release never ends another's note, not even for a reader that pairs them per
//! track: a note struck again while it sounds is released first, a release of a note that
//! does not sound is dropped, and notes still sounding at the end are released there. The
//! file starts at its first note.

use std::collections::BTreeMap;

use crate::note::Note;
use crate::smf::{self, Track, MAX_DELTA};

/// Ticks per quarter note.
pub const DIVISION: u16 = 500;

/// Microseconds per quarter note: with [`DIVISION`], one tick is one millisecond.
pub const TEMPO: u32 = 500_000;

/// The release velocity of the note-offs the export adds (the MIDI default for keyboards
/// without release velocity).
pub const ADDED_RELEASE_VELOCITY: u8 = 64;

/// A file and what is in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// The Standard MIDI File.
    pub file: Vec<u8>,
    /// Notes in it (note-on / note-off pairs).
    pub notes: u64,
    /// Its channels (1–16), in order.
    pub channels: Vec<u8>,
    /// From the first note-on to the last event, in milliseconds.
    pub duration_ms: u64,
    /// Note-offs of notes that did not sound, left out.
    pub unmatched_offs: u64,
    /// Notes still sounding at the end, released there.
    pub closed_at_end: u64,
}

/// One sender's notes on one channel: a track.
struct Voice {
    track: Track,
    sounding: [bool; 128],
    /// A note sounded on it: a track of only stray releases is left out.
    used: bool,
}

/// The file of `notes` (in recording order; `senders` names their senders by number), or
/// `None` when no note in them sounds. `max_gap_ms` is capped at the longest delta a file
/// can hold.
pub fn export(
    notes: &[Note],
    senders: &BTreeMap<u32, String>,
    max_gap_ms: u64,
    name: &str,
) -> Option<Export> {
    let max_gap = max_gap_ms.min(MAX_DELTA);
    let mut order: Vec<&Note> = notes.iter().collect();
    // Stable: events of the same millisecond stay in the order they were recorded.
    order.sort_by_key(|n| n.time);
    // By channel, then sender: the tracks' order in the file.
    let mut voices: BTreeMap<(u8, u32), Voice> = BTreeMap::new();
    let mut first_on: Option<u64> = None;
    let mut out = Export {
        file: Vec::new(),
        notes: 0,
        channels: Vec::new(),
        duration_ms: 0,
        unmatched_offs: 0,
        closed_at_end: 0,
    };
    let (mut time, mut last) = (0u64, order.first().map_or(0, |n| n.time));
    for n in &order {
        // Sorted: the difference is never negative.
        let gap = u64::try_from(n.time.saturating_sub(last)).unwrap_or(0);
        time = time.saturating_add(gap.min(max_gap));
        last = n.time;
        let ch = n.channel.saturating_sub(1) & 0x0F;
        let key = usize::from(n.note & 0x7F);
        let voice = voices.entry((ch, n.sender)).or_insert_with(|| Voice {
            track: Track::named(&track_name(ch + 1, senders.get(&n.sender))),
            sounding: [false; 128],
            used: false,
        });
        if n.sounds() {
            // The file's time starts at its first note-on.
            let tick = time - *first_on.get_or_insert(time);
            if voice.sounding[key] {
                voice
                    .track
                    .note_off(tick, ch, n.note, ADDED_RELEASE_VELOCITY);
            }
            voice.track.note_on(tick, ch, n.note, n.velocity);
            voice.sounding[key] = true;
            voice.used = true;
            out.notes += 1;
        } else if let (true, Some(start)) = (voice.sounding[key], first_on) {
            // A note-on of velocity 0 is a release without a release velocity.
            let velocity = if n.on {
                ADDED_RELEASE_VELOCITY
            } else {
                n.velocity
            };
            voice.track.note_off(time - start, ch, n.note, velocity);
            voice.sounding[key] = false;
        } else {
            out.unmatched_offs += 1;
        }
    }
    let start = first_on?;
    let end = time - start;
    let mut conductor = Track::named(name);
    conductor.tempo(0, TEMPO);
    let mut all = vec![conductor];
    for ((ch, _), mut voice) in voices {
        if !voice.used {
            continue;
        }
        for (key, on) in voice.sounding.iter().enumerate() {
            if *on {
                voice
                    .track
                    .note_off(end, ch, key as u8, ADDED_RELEASE_VELOCITY);
                out.closed_at_end += 1;
            }
        }
        if out.channels.last() != Some(&(ch + 1)) {
            out.channels.push(ch + 1);
        }
        all.push(voice.track);
    }
    out.duration_ms = end;
    out.file = smf::write(DIVISION, all, end);
    Some(out)
}

/// `Channel 1 (@alice:example.org)`, or `Channel 1` for records whose sender is unknown.
fn track_name(channel: u8, sender: Option<&String>) -> String {
    match sender {
        Some(user) => format!("Channel {channel} ({user})"),
        None => format!("Channel {channel}"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use midly::{MetaMessage, MidiMessage, Smf, Timing, TrackEventKind};

    fn n(time: i64, channel: u8, key: u8, velocity: u8, on: bool) -> Note {
        by(1, time, channel, key, velocity, on)
    }

    fn by(sender: u32, time: i64, channel: u8, key: u8, velocity: u8, on: bool) -> Note {
        Note {
            server_ts: 0,
            time,
            sender,
            note: key,
            velocity,
            channel,
            on,
        }
    }

    /// `(absolute tick, channel 1–16, key, velocity, on)` of a note event.
    pub(crate) type Heard = (u64, u8, u8, u8, bool);

    /// The note events of a file, per track.
    pub(crate) fn events(file: &[u8]) -> Vec<Vec<Heard>> {
        let smf = Smf::parse(file).expect("midly parses the file");
        assert_eq!(smf.header.timing, Timing::Metrical(DIVISION.into()));
        smf.tracks
            .iter()
            .map(|t| {
                let mut tick = 0u64;
                let mut out = Vec::new();
                for e in t {
                    tick += u64::from(e.delta.as_int());
                    if let TrackEventKind::Midi { channel, message } = e.kind {
                        let ch = channel.as_int() + 1;
                        match message {
                            MidiMessage::NoteOn { key, vel } => {
                                out.push((tick, ch, key.as_int(), vel.as_int(), true))
                            }
                            MidiMessage::NoteOff { key, vel } => {
                                out.push((tick, ch, key.as_int(), vel.as_int(), false))
                            }
                            other => panic!("unexpected {other:?}"),
                        }
                    }
                }
                out
            })
            .collect()
    }

    /// The track names of a file, conductor first (empty for a track without one).
    pub(crate) fn track_names(file: &[u8]) -> Vec<String> {
        Smf::parse(file)
            .expect("midly parses the file")
            .tracks
            .iter()
            .map(|t| {
                t.iter()
                    .find_map(|e| match e.kind {
                        TrackEventKind::Meta(MetaMessage::TrackName(n)) => {
                            Some(String::from_utf8_lossy(n).into_owned())
                        }
                        _ => None,
                    })
                    .unwrap_or_default()
            })
            .collect()
    }

    #[test]
    fn pairs_become_notes_on_one_track_per_channel_from_the_first_note() {
        let notes = [
            n(10_000, 1, 60, 100, true),
            n(10_250, 10, 36, 127, true),
            n(10_500, 1, 60, 40, false),
            n(10_600, 10, 36, 0, false),
            n(11_000, 1, 64, 80, true),
            n(11_999, 1, 64, 0, false),
        ];
        let x = export(&notes, &BTreeMap::new(), 60_000, "test").unwrap();
        assert_eq!(x.channels, [1, 10]);
        assert_eq!((x.notes, x.unmatched_offs, x.closed_at_end), (3, 0, 0));
        assert_eq!(x.duration_ms, 1_999);
        let tracks = events(&x.file);
        assert_eq!(tracks.len(), 3);
        assert!(tracks[0].is_empty());
        assert_eq!(
            tracks[1],
            [
                (0, 1, 60, 100, true),
                (500, 1, 60, 40, false),
                (1000, 1, 64, 80, true),
                (1999, 1, 64, 0, false)
            ]
        );
        assert_eq!(
            tracks[2],
            [(250, 10, 36, 127, true), (600, 10, 36, 0, false)]
        );
        let smf = Smf::parse(&x.file).unwrap();
        assert!(smf.tracks[0].iter().any(|e| matches!(
            e.kind,
            TrackEventKind::Meta(MetaMessage::Tempo(t)) if t.as_int() == TEMPO
        )));
        // Every track ends at the last event.
        for t in &smf.tracks {
            let end: u32 = t.iter().map(|e| e.delta.as_int()).sum();
            assert_eq!(end, 1999);
        }
    }

    #[test]
    fn records_are_put_in_the_order_of_their_time() {
        let notes = [n(2_000, 1, 60, 10, false), n(1_000, 1, 60, 90, true)];
        let x = export(&notes, &BTreeMap::new(), 60_000, "t").unwrap();
        assert_eq!(
            events(&x.file)[1],
            [(0, 1, 60, 90, true), (1000, 1, 60, 10, false)]
        );
    }

    #[test]
    fn a_strike_of_a_sounding_note_releases_it_first_and_stray_releases_are_dropped() {
        let notes = [
            n(0, 3, 60, 20, false),
            n(100, 3, 60, 90, true),
            n(200, 3, 60, 91, true),
            n(300, 3, 60, 5, false),
            n(400, 3, 60, 5, false),
        ];
        let x = export(&notes, &BTreeMap::new(), 60_000, "t").unwrap();
        assert_eq!((x.notes, x.unmatched_offs), (2, 2));
        assert_eq!(
            events(&x.file)[1],
            [
                (0, 3, 60, 90, true),
                (100, 3, 60, ADDED_RELEASE_VELOCITY, false),
                (100, 3, 60, 91, true),
                (200, 3, 60, 5, false)
            ]
        );
        assert_eq!(x.duration_ms, 300);
    }

    #[test]
    fn a_note_on_of_velocity_zero_releases_the_note() {
        let notes = [n(0, 1, 60, 90, true), n(40, 1, 60, 0, true)];
        let x = export(&notes, &BTreeMap::new(), 60_000, "t").unwrap();
        assert_eq!(
            events(&x.file)[1],
            [
                (0, 1, 60, 90, true),
                (40, 1, 60, ADDED_RELEASE_VELOCITY, false)
            ]
        );
    }

    #[test]
    fn notes_still_sounding_are_released_at_the_end() {
        let notes = [
            n(0, 1, 60, 90, true),
            n(10, 2, 62, 90, true),
            n(500, 1, 64, 90, true),
            n(700, 1, 64, 1, false),
        ];
        let x = export(&notes, &BTreeMap::new(), 60_000, "t").unwrap();
        assert_eq!(x.closed_at_end, 2);
        let tracks = events(&x.file);
        assert_eq!(
            tracks[1].last(),
            Some(&(700, 1, 60, ADDED_RELEASE_VELOCITY, false))
        );
        assert_eq!(
            tracks[2].last(),
            Some(&(700, 2, 62, ADDED_RELEASE_VELOCITY, false))
        );
    }

    #[test]
    fn long_pauses_are_shortened_to_the_gap() {
        let notes = [
            n(0, 1, 60, 90, true),
            n(100, 1, 60, 0, false),
            n(10_000_000, 1, 62, 90, true),
            n(10_000_300, 1, 62, 0, false),
        ];
        let x = export(&notes, &BTreeMap::new(), 2_000, "t").unwrap();
        assert_eq!(
            events(&x.file)[1],
            [
                (0, 1, 60, 90, true),
                (100, 1, 60, 0, false),
                (2_100, 1, 62, 90, true),
                (2_400, 1, 62, 0, false)
            ]
        );
        // A gap configured past what a file holds is held at the longest delta.
        let far = [
            n(0, 1, 60, 90, true),
            n(crate::note::MAX_MIDI_TS, 1, 60, 0, false),
        ];
        let x = export(&far, &BTreeMap::new(), u64::MAX, "t").unwrap();
        assert_eq!(events(&x.file)[1][1].0, MAX_DELTA);
    }

    #[test]
    fn nothing_that_sounds_is_no_file() {
        assert_eq!(export(&[], &BTreeMap::new(), 1000, "t"), None);
        assert_eq!(
            export(
                &[n(0, 1, 60, 9, false), n(5, 1, 61, 0, true)],
                &BTreeMap::new(),
                1000,
                "t"
            ),
            None
        );
    }

    #[test]
    fn each_sender_has_a_track_per_channel_named_after_them() {
        let notes = [
            by(2, 0, 1, 60, 90, true),
            by(1, 100, 1, 60, 80, true),
            by(2, 200, 1, 60, 10, false),
            by(1, 250, 1, 60, 0, true),
            by(1, 300, 1, 60, 5, false),
            by(0, 300, 1, 62, 70, true),
            by(1, 400, 9, 36, 100, true),
        ];
        let senders = BTreeMap::from([(1, "@a:x".to_string()), (2, "@b:x".to_string())]);
        let x = export(&notes, &senders, 60_000, "t").unwrap();
        assert_eq!(x.channels, [1, 9]);
        assert_eq!((x.notes, x.unmatched_offs, x.closed_at_end), (4, 1, 2));
        let tracks = events(&x.file);
        assert_eq!(
            tracks[1..],
            [
                vec![
                    (300, 1, 62, 70, true),
                    (400, 1, 62, ADDED_RELEASE_VELOCITY, false)
                ],
                vec![
                    (100, 1, 60, 80, true),
                    (250, 1, 60, ADDED_RELEASE_VELOCITY, false)
                ],
                vec![(0, 1, 60, 90, true), (200, 1, 60, 10, false)],
                vec![
                    (400, 9, 36, 100, true),
                    (400, 9, 36, ADDED_RELEASE_VELOCITY, false)
                ],
            ]
        );
        assert_eq!(
            track_names(&x.file),
            [
                "t",
                "Channel 1",
                "Channel 1 (@a:x)",
                "Channel 1 (@b:x)",
                "Channel 9 (@a:x)"
            ]
        );
    }
}
