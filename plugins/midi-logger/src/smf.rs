//! A writer of Standard MIDI Files, format 1: the `MThd` header chunk and one `MTrk` chunk
//! per track, whose events carry their delta times as variable-length quantities. Running
//! status is not used: every event carries its status byte, which every reader accepts.

/// The largest delta time a variable-length quantity holds (four bytes of seven bits).
pub const MAX_DELTA: u64 = 0x0FFF_FFFF;

/// One track being written.
#[derive(Debug, Clone, Default)]
pub struct Track {
    bytes: Vec<u8>,
    tick: u64,
}

impl Track {
    /// A track named `name` (meta event `03`).
    pub fn named(name: &str) -> Track {
        let mut t = Track::default();
        t.meta(0, 0x03, name.as_bytes());
        t
    }

    /// The tick of the latest event.
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// An event at absolute `tick` (not before the previous one). A gap longer than one
    /// delta holds ([`MAX_DELTA`]) is bridged by empty text events, so that every later
    /// event of the track stays on its tick.
    fn delta_to(&mut self, tick: u64) {
        let mut delta = tick.saturating_sub(self.tick);
        self.tick = self.tick.max(tick);
        while delta > MAX_DELTA {
            write_vlq(&mut self.bytes, MAX_DELTA as u32);
            self.bytes.extend_from_slice(&[0xFF, 0x01, 0x00]);
            delta -= MAX_DELTA;
        }
        write_vlq(&mut self.bytes, delta as u32);
    }

    /// A meta event of `kind` with `data`.
    pub fn meta(&mut self, tick: u64, kind: u8, data: &[u8]) {
        self.delta_to(tick);
        self.bytes.extend_from_slice(&[0xFF, kind]);
        write_vlq(&mut self.bytes, data.len() as u32);
        self.bytes.extend_from_slice(data);
    }

    /// A tempo change (meta event `51`): microseconds per quarter note, 24 bits.
    pub fn tempo(&mut self, tick: u64, micros_per_quarter: u32) {
        let b = micros_per_quarter.min(0xFF_FFFF).to_be_bytes();
        self.meta(tick, 0x51, &b[1..]);
    }

    /// A note-on on `channel` (0–15).
    pub fn note_on(&mut self, tick: u64, channel: u8, note: u8, velocity: u8) {
        self.delta_to(tick);
        self.bytes
            .extend_from_slice(&[0x90 | (channel & 0x0F), note & 0x7F, velocity & 0x7F]);
    }

    /// A note-off on `channel` (0–15) with its release velocity.
    pub fn note_off(&mut self, tick: u64, channel: u8, note: u8, velocity: u8) {
        self.delta_to(tick);
        self.bytes
            .extend_from_slice(&[0x80 | (channel & 0x0F), note & 0x7F, velocity & 0x7F]);
    }

    /// The chunk, closed with End of Track (meta event `2F`) at `tick`.
    fn finish(mut self, tick: u64) -> Vec<u8> {
        self.meta(tick, 0x2F, &[]);
        let mut chunk = Vec::with_capacity(self.bytes.len() + 8);
        chunk.extend_from_slice(b"MTrk");
        chunk.extend_from_slice(&(self.bytes.len() as u32).to_be_bytes());
        chunk.extend_from_slice(&self.bytes);
        chunk
    }
}

/// A format 1 file of `tracks` (the first is the conductor track, by convention) with
/// `division` ticks per quarter note, every track ending at `end`.
pub fn write(division: u16, tracks: Vec<Track>, end: u64) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"MThd");
    out.extend_from_slice(&6u32.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(tracks.len().min(u16::MAX as usize) as u16).to_be_bytes());
    // The top bit set would mean SMPTE time instead of ticks per quarter note.
    out.extend_from_slice(&(division & 0x7FFF).to_be_bytes());
    for t in tracks.into_iter().take(u16::MAX as usize) {
        let at = end.max(t.tick());
        out.extend_from_slice(&t.finish(at));
    }
    out
}

/// `value` (at most [`MAX_DELTA`]) as a variable-length quantity: seven bits a byte, most
/// significant first, the top bit set on all but the last.
pub fn write_vlq(out: &mut Vec<u8>, value: u32) {
    let value = value.min(MAX_DELTA as u32);
    let mut groups = [0u8; 4];
    let mut n = 0;
    let mut v = value;
    loop {
        groups[n] = (v & 0x7F) as u8;
        n += 1;
        v >>= 7;
        if v == 0 {
            break;
        }
    }
    for i in (0..n).rev() {
        out.push(if i > 0 { groups[i] | 0x80 } else { groups[i] });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_length_quantities_match_the_examples_of_the_spec() {
        for (value, bytes) in [
            (0x00, vec![0x00]),
            (0x40, vec![0x40]),
            (0x7F, vec![0x7F]),
            (0x80, vec![0x81, 0x00]),
            (0x2000, vec![0xC0, 0x00]),
            (0x3FFF, vec![0xFF, 0x7F]),
            (0x4000, vec![0x81, 0x80, 0x00]),
            (0x1F_FFFF, vec![0xFF, 0xFF, 0x7F]),
            (0x20_0000, vec![0x81, 0x80, 0x80, 0x00]),
            (0x0FFF_FFFF, vec![0xFF, 0xFF, 0xFF, 0x7F]),
        ] {
            let mut out = Vec::new();
            write_vlq(&mut out, value);
            assert_eq!(out, bytes, "{value:#x}");
        }
    }

    #[test]
    fn a_file_parses_with_midly_with_its_tracks_and_times() {
        let mut conductor = Track::named("conductor");
        conductor.tempo(0, 500_000);
        let mut piano = Track::named("piano");
        piano.note_on(0, 0, 60, 100);
        piano.note_off(480, 0, 60, 64);
        piano.note_on(MAX_DELTA + 480 + 5, 9, 36, 127);
        let file = write(480, vec![conductor, piano], 1000);
        let smf = midly::Smf::parse(&file).unwrap();
        assert_eq!(smf.header.format, midly::Format::Parallel);
        assert_eq!(
            smf.header.timing,
            midly::Timing::Metrical(midly::num::u15::new(480))
        );
        assert_eq!(smf.tracks.len(), 2);
        let deltas: Vec<u32> = smf.tracks[1].iter().map(|e| e.delta.as_int()).collect();
        // The long gap: an empty text event one delta long, then the rest.
        assert_eq!(deltas, [0, 0, 480, MAX_DELTA as u32, 5, 0]);
        assert!(matches!(
            smf.tracks[1][3].kind,
            midly::TrackEventKind::Meta(midly::MetaMessage::Text(t)) if t.is_empty()
        ));
        let at: u64 = deltas[..5].iter().map(|&d| u64::from(d)).sum();
        assert_eq!(at, MAX_DELTA + 480 + 5, "the note keeps its tick");
        assert!(matches!(
            smf.tracks[1][4].kind,
            midly::TrackEventKind::Midi {
                channel,
                message: midly::MidiMessage::NoteOn { key, vel }
            } if channel.as_int() == 9 && key.as_int() == 36 && vel.as_int() == 127
        ));
        assert!(matches!(
            smf.tracks[0][1].kind,
            midly::TrackEventKind::Meta(midly::MetaMessage::Tempo(t)) if t.as_int() == 500_000
        ));
        // The conductor track ends where the file does.
        let conductor_end: u32 = smf.tracks[0].iter().map(|e| e.delta.as_int()).sum();
        assert_eq!(conductor_end, 1000);
    }
}
