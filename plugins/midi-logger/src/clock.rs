//! A sender's clock: how the `midi_ts` of one sender's keyboard is put on the room's
//! timeline, which is the server's clock. Two keyboards count from unrelated zeros, so each
//! sender has an offset, taken from the server's stamp on their first event: the sender's
//! notes keep their own spacing and order (what `midi_ts` is for: server stamps carry the
//! network's jitter, and a recording uploaded or relayed in a burst arrives far faster than
//! it was played) and land where the server heard them relative to everyone else's.
//!
//! The offset is taken again only when the sender's clock steps back by more than
//! [`RESYNC_MS`] (the keyboard or its page restarted). A clock running ahead of the server is
//! no sign of a wrong clock: a burst of notes is sent faster than it was played, and a long
//! jump forward is a pause, which the export shortens to `max_gap_ms`.

use serde::{Deserialize, Serialize};

use crate::note::MAX_MIDI_TS;

/// How far a sender's clock may step back before its offset is taken again. Under it,
/// events delivered out of order are forgiven; a second is longer than that usually is.
pub const RESYNC_MS: i64 = 1_000;

/// One sender's clock in one room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SenderClock {
    /// The sender's number in the room (from 1).
    pub number: u32,
    /// What is added to the sender's `midi_ts` to put it on the room's timeline.
    pub offset: i64,
    /// The latest `midi_ts` since the offset was taken.
    pub latest: i64,
    /// The sender's user id, which names their tracks: a long one is only a digest in the
    /// clock's key. Clocks from before it was kept have their key's user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl SenderClock {
    /// The clock of sender `number`, whose first event says `midi_ts` and was stamped
    /// `server_ts` by the server.
    pub fn start(number: u32, midi_ts: i64, server_ts: u64) -> SenderClock {
        let mut clock = SenderClock {
            number,
            offset: 0,
            latest: 0,
            user: None,
        };
        clock.take_offset(midi_ts, server_ts);
        clock
    }

    /// Puts `midi_ts` where the server stamped it, `server_ts`.
    fn take_offset(&mut self, midi_ts: i64, server_ts: u64) {
        self.offset = server(server_ts) - midi_ts;
        self.latest = midi_ts;
    }

    /// Where an event of this sender saying `midi_ts`, stamped `server_ts`, lies on the
    /// room's timeline; takes the offset again first when the sender's clock restarted.
    pub fn place(&mut self, midi_ts: i64, server_ts: u64) -> i64 {
        self.place_by(midi_ts, server_ts, false)
    }

    /// [`place`](Self::place) for records whose sender was not kept (format 1): several
    /// keyboards' clocks in one stream, so a clock that runs more than [`RESYNC_MS`] ahead of
    /// the server is another keyboard too, and the offset is taken again.
    pub fn place_unknown_sender(&mut self, midi_ts: i64, server_ts: u64) -> i64 {
        self.place_by(midi_ts, server_ts, true)
    }

    fn place_by(&mut self, midi_ts: i64, server_ts: u64, mixed_clocks: bool) -> i64 {
        let stepped_back = midi_ts < self.latest - RESYNC_MS;
        let ahead = midi_ts + self.offset > server(server_ts) + RESYNC_MS;
        if stepped_back || (mixed_clocks && ahead) {
            self.take_offset(midi_ts, server_ts);
        }
        self.latest = self.latest.max(midi_ts);
        // A clock that creeps back by less than RESYNC_MS at a time can drift far; the
        // timeline still starts at the epoch.
        (midi_ts + self.offset).clamp(0, MAX_MIDI_TS)
    }
}

/// A server time as a point of the timeline (server times are kept below 10^13).
fn server(server_ts: u64) -> i64 {
    i64::try_from(server_ts)
        .unwrap_or(MAX_MIDI_TS)
        .min(MAX_MIDI_TS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000_000;
    const T: i64 = T0 as i64;

    #[test]
    fn a_senders_notes_keep_their_spacing_from_where_the_first_was_heard() {
        let mut c = SenderClock::start(1, 5_000, T0);
        // Heard late and unevenly, played 250 ms apart.
        assert_eq!(c.place(5_000, T0), T);
        assert_eq!(c.place(5_250, T0 + 600), T + 250);
        assert_eq!(c.place(5_500, T0 + 610), T + 500);
        // An hour's pause on both clocks.
        assert_eq!(c.place(3_605_500, T0 + 3_600_700), T + 3_600_500);
        assert_eq!(c.offset, T - 5_000);
    }

    #[test]
    fn events_out_of_order_within_a_second_keep_the_offset() {
        let mut c = SenderClock::start(1, 10_000, T0);
        assert_eq!(c.place(10_600, T0 + 600), T + 600);
        assert_eq!(c.place(10_100, T0 + 650), T + 100);
        assert_eq!(c.place(10_700, T0 + 700), T + 700);
    }

    #[test]
    fn a_clock_that_restarts_is_taken_again_where_it_was_heard() {
        let mut c = SenderClock::start(2, 50_000, T0);
        assert_eq!(c.place(50_100, T0 + 100), T + 100);
        assert_eq!(c.place(0, T0 + 1_000), T + 1_000);
        assert_eq!(c.place(200, T0 + 1_210), T + 1_200);
        assert_eq!(c.number, 2);
    }

    #[test]
    fn a_burst_sent_faster_than_it_was_played_keeps_the_senders_spacing() {
        // The tour's four notes, 500 ms apart and held 400 ms, from the talk's own clock,
        // all heard within 40 ms.
        let mut c = SenderClock::start(1, 374_023_441, T0);
        let placed: Vec<i64> = (0..4)
            .flat_map(|i| [i * 500, i * 500 + 400])
            .enumerate()
            .map(|(n, at)| c.place(374_023_441 + at, T0 + 5 * n as u64) - T)
            .collect();
        assert_eq!(placed, [0, 400, 500, 900, 1_000, 1_400, 1_500, 1_900]);
    }

    #[test]
    fn a_jump_ahead_is_a_pause_not_a_new_clock() {
        let mut c = SenderClock::start(1, 0, T0);
        assert_eq!(c.place(61_000, T0 + 1_000), T + 61_000);
        assert_eq!(c.place(61_500, T0 + 1_500), T + 61_500);
    }

    #[test]
    fn records_of_unknown_senders_that_run_ahead_are_another_keyboard() {
        let mut c = SenderClock::start(1, 0, T0);
        // Under a second ahead: the first event's own delay, forgiven.
        assert_eq!(c.place_unknown_sender(900, T0 + 100), T + 900);
        // A jump of a minute: another keyboard, placed where it was heard.
        assert_eq!(c.place_unknown_sender(61_000, T0 + 1_000), T + 1_000);
        assert_eq!(c.place_unknown_sender(61_500, T0 + 1_500), T + 1_500);
    }

    #[test]
    fn a_clock_creeping_back_cannot_reach_before_the_epoch() {
        let mut c = SenderClock::start(1, MAX_MIDI_TS, 0);
        assert_eq!(c.place(MAX_MIDI_TS - 900, 0), 0);
    }
}
