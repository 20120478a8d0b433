//! How a room's recording lies in the plugin's kv store. Per room, a small summary
//! ([`RoomLog`]: counts, channels, time span, rejections, the chunk being filled), each
//! sender's clock ([`SenderClock`]) and the records in chunks of at most [`CHUNK_RECORDS`],
//! each chunk within one ten-minute bucket of server time and keyed by it: an event rewrites
//! one chunk of at most 4.75 KiB, and `last 10m` reads from the bucket of its start on
//! instead of the whole room. Across rooms, a count of the records kept bounds them all.
//!
//! ```text
//! room/{room id, '/' and '%' escaped}/log                      JSON RoomLog
//! room/{…}/sender/{user id}                                    JSON SenderClock
//! room/{…}/chunk2/{bucket start, 13 digits}.{seq, 10 digits}   records, 19 bytes each
//! room/{…}/chunk/{bucket start}.{seq}                          format 1: 15 bytes, read only
//! counts/records                                               records kept in all rooms
//! counts/rejected/{reason}                                     all rooms' rejections
//! ```
//!
//! A key holds at most [`kv::MAX_KEY`] bytes and Matrix ids run to 255 (a room's, escaped,
//! to three times that): an escaped room id past [`MAX_ROOM_PART`] bytes, and a user id too
//! long for its clock's key, stand there as a digest ([`kv::key_part`]), so that no id can
//! have its events refused. A clock keeps its sender's user id for the export's names.
//!
//! Format 1 (records with the sender's own `midi_ts` and no sender, from before senders had
//! clocks) is still read: its records are taken as one sender's and put on the timeline by
//! the same rule, and a summary of that time gets its span from them once.

use std::collections::BTreeMap;

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use plugboard_sdk::prelude::*;
use serde::{Deserialize, Serialize};

use crate::clock::SenderClock;
use crate::note::{Note, Played, Rejected, RECORD_LEN, UNKNOWN_SENDER, V1_RECORD_LEN};

/// Milliseconds of server time one chunk may span.
pub const BUCKET_MS: u64 = 600_000;

/// Records in a full chunk.
pub const CHUNK_RECORDS: usize = 256;

/// Server times are kept below this so that their 13 digits sort as numbers.
const MAX_SERVER_TS: u64 = 9_999_999_999_999;

/// What the kv host answers a write past the plugin's quota.
pub const QUOTA_EXCEEDED: &str = "M_RESOURCE_LIMIT_EXCEEDED";

/// The count of records kept in all rooms.
const TOTAL_KEY: &str = "counts/records";

/// Characters escaped in a room id inside a key: `/` separates the key's parts.
const KEY_ESCAPES: &AsciiSet = &CONTROLS.add(b'/').add(b'%');

/// The longest escaped room id kept as it is in the keys; a longer one is a digest there.
/// A sender's key, the longest, then still has room for a digest of the sender.
const MAX_ROOM_PART: usize = kv::MAX_KEY - "room/".len() - "/sender/".len() - kv::DIGEST_PART_LEN;

/// How many records may be kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// In one room.
    pub per_room: u64,
    /// In all rooms together.
    pub total: u64,
}

/// The chunk being filled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenChunk {
    /// Its key.
    pub key: String,
    /// The start of its bucket.
    pub bucket: u64,
    /// Records in it.
    pub records: u32,
}

/// A room's summary: what `!midi stats` answers without reading a chunk.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomLog {
    /// Records kept (note-ons and note-offs).
    pub events: u64,
    /// Note-ons that sound (velocity above 0).
    pub notes: u64,
    /// Bit `c - 1` for each channel `c` used.
    pub channels: u16,
    /// The earliest record's time on the room's timeline.
    #[serde(default)]
    pub first_time: Option<i64>,
    /// The latest record's time on the room's timeline.
    #[serde(default)]
    pub last_time: Option<i64>,
    /// Format 1's span, on the clock of whoever played: read from an old summary, replaced
    /// by its records' span on the timeline, and never written.
    #[serde(default, skip_serializing)]
    first_midi_ts: Option<i64>,
    #[serde(default, skip_serializing)]
    last_midi_ts: Option<i64>,
    /// The server time of the latest record: later records are never stamped earlier.
    pub last_server_ts: u64,
    /// The chunk being filled.
    pub open: Option<OpenChunk>,
    /// The sequence number of the next chunk.
    pub next_seq: u64,
    /// Senders who played here: the latest one's number.
    #[serde(default)]
    pub senders: u32,
    /// The room was told that all rooms' recordings are full, and nothing was kept since.
    #[serde(default)]
    pub told_server_full: bool,
    /// Events refused, by reason ([`Rejected::key`]).
    pub rejected: BTreeMap<String, u64>,
}

impl RoomLog {
    /// The channels used, in order (1–16).
    pub fn channel_list(&self) -> Vec<u8> {
        (1..=16u8)
            .filter(|c| self.channels & (1 << (c - 1)) != 0)
            .collect()
    }

    /// Events refused, all reasons together.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().fold(0, |a, b| a.saturating_add(*b))
    }

    /// From the earliest record's time to the latest's, in milliseconds.
    pub fn span_ms(&self) -> u64 {
        match (self.first_time, self.last_time) {
            (Some(first), Some(last)) => u64::try_from(last.saturating_sub(first)).unwrap_or(0),
            _ => 0,
        }
    }

    fn widen(&mut self, time: i64) {
        self.first_time = Some(self.first_time.map_or(time, |t| t.min(time)));
        self.last_time = Some(self.last_time.map_or(time, |t| t.max(time)));
    }
}

/// The start of the bucket of `server_ts`.
pub fn bucket_of(server_ts: u64) -> u64 {
    server_ts - server_ts % BUCKET_MS
}

/// Where the keys of `room` start.
pub fn room_prefix(room: &str) -> String {
    let escaped = utf8_percent_encode(room, KEY_ESCAPES).to_string();
    format!("room/{}/", kv::key_part(&escaped, MAX_ROOM_PART))
}

fn log_key(room: &str) -> String {
    format!("{}log", room_prefix(room))
}

fn chunk_prefix(room: &str) -> String {
    format!("{}chunk2/", room_prefix(room))
}

fn v1_chunk_prefix(room: &str) -> String {
    format!("{}chunk/", room_prefix(room))
}

fn sender_prefix(room: &str) -> String {
    format!("{}sender/", room_prefix(room))
}

/// A sender's clock, keyed by the user id as it is (it ends the key, so it needs no escape),
/// or by its digest where that would make the key too long.
fn sender_key(room: &str, sender: &str) -> String {
    let prefix = sender_prefix(room);
    let part = kv::key_part(sender, kv::MAX_KEY - prefix.len());
    format!("{prefix}{part}")
}

/// The room's summary (empty when nothing was recorded).
pub fn room_log(room: &str) -> Result<RoomLog, Error> {
    let key = log_key(room);
    let mut log: RoomLog = kv::get_json(&key)?.unwrap_or_default();
    let format_1 = log.first_midi_ts.take().is_some() | log.last_midi_ts.take().is_some();
    if format_1 {
        for note in read_v1(room, None, usize::MAX)?.notes {
            log.widen(note.time);
        }
        match kv::set_json(&key, &log) {
            Err(e) if e.is(QUOTA_EXCEEDED) => {
                log::warn(&format!(
                    "cannot keep the upgraded summary of {room}: {}",
                    e.message
                ));
            }
            other => other?,
        }
    }
    Ok(log)
}

/// Records in all rooms. A store from before the count was kept gets it from the rooms'
/// summaries, once.
pub fn total_records() -> Result<u64, Error> {
    kv::kept_count(TOTAL_KEY, || {
        let mut n = 0u64;
        for key in kv::all_keys("room/")? {
            let is_log = key
                .strip_prefix("room/")
                .and_then(|k| k.strip_suffix("/log"))
                .is_some_and(|room| !room.contains('/'));
            if !is_log {
                continue;
            }
            if let Some(log) = kv::get_json::<RoomLog>(&key)? {
                n = n.saturating_add(log.events);
            }
        }
        Ok(n)
    })
}

/// Records what `sender` played in `room`, stamped `server_ts`, unless the room or all rooms
/// hold as many records as `limits` allow or the quota is used up: then answers why,
/// counted.
pub fn append(
    room: &str,
    sender: &str,
    played: Played,
    server_ts: u64,
    limits: Limits,
) -> Result<Option<Rejected>, Error> {
    let log_key = log_key(room);
    let mut log = room_log(room)?;
    if log.events >= limits.per_room {
        count(&log_key, &mut log, Rejected::Full)?;
        return Ok(Some(Rejected::Full));
    }
    let total = total_records()?;
    if total >= limits.total {
        count(&log_key, &mut log, Rejected::ServerFull)?;
        return Ok(Some(Rejected::ServerFull));
    }
    let server_ts = server_ts.max(log.last_server_ts).min(MAX_SERVER_TS);
    let clock_key = sender_key(room, sender);
    let mut clock = match kv::get_json::<SenderClock>(&clock_key)? {
        Some(clock) => clock,
        None => {
            log.senders += 1;
            SenderClock {
                user: Some(sender.to_string()),
                ..SenderClock::start(log.senders, played.midi_ts, server_ts)
            }
        }
    };
    let time = clock.place(played.midi_ts, server_ts);
    let note = played.record(server_ts, time, clock.number);
    let bucket = bucket_of(server_ts);
    let prefix = chunk_prefix(room);
    let (key, mut chunk) = match &log.open {
        Some(open)
            if open.key.starts_with(&prefix)
                && open.bucket == bucket
                && (open.records as usize) < CHUNK_RECORDS =>
        {
            (open.key.clone(), kv::get(&open.key)?.unwrap_or_default())
        }
        _ => {
            let key = format!("{prefix}{bucket:013}.{:010}", log.next_seq);
            log.next_seq += 1;
            (key, Vec::new())
        }
    };
    // Whole records only: a damaged tail would shift every record after it.
    chunk.truncate(chunk.len() / RECORD_LEN * RECORD_LEN);
    note.encode(bucket, &mut chunk);
    log.events += 1;
    if note.sounds() {
        log.notes += 1;
    }
    log.channels |= 1 << (note.channel.saturating_sub(1) & 0x0F);
    log.widen(note.time);
    log.last_server_ts = server_ts;
    log.told_server_full = false;
    log.open = Some(OpenChunk {
        key: key.clone(),
        bucket,
        records: (chunk.len() / RECORD_LEN) as u32,
    });
    let writes = [
        (key, chunk),
        (clock_key, serde_json::to_vec(&clock)?),
        (log_key.clone(), serde_json::to_vec(&log)?),
        (TOTAL_KEY.to_string(), serde_json::to_vec(&(total + 1))?),
    ];
    if set_together(&writes)? {
        return Ok(None);
    }
    let mut log = room_log(room)?;
    count(&log_key, &mut log, Rejected::Quota)?;
    Ok(Some(Rejected::Quota))
}

/// Writes every value, or, when one does not fit the quota, none: those written are set
/// back (a value no larger than before always fits) and the answer is `false`. A record
/// and the summary, the clock and the count that tell of it agree that way.
fn set_together(writes: &[(String, Vec<u8>)]) -> Result<bool, Error> {
    let mut before = Vec::with_capacity(writes.len());
    for (key, value) in writes {
        let old = kv::get(key)?;
        match kv::set(key, value) {
            Ok(()) => before.push((key, old)),
            Err(e) if e.is(QUOTA_EXCEEDED) => {
                for (key, old) in before.into_iter().rev() {
                    match old {
                        Some(old) => kv::set(key, &old)?,
                        None => kv::delete(key).map(drop)?,
                    }
                }
                return Ok(false);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Counts an event of `room` refused for `why`.
pub fn reject(room: &str, why: Rejected) -> Result<(), Error> {
    let mut log = room_log(room)?;
    count(&log_key(room), &mut log, why)
}

/// Marks `room` as told, or as not told, that all rooms' recordings are full; answers
/// whether the mark changed and is kept (a mark the quota refuses would have the room told
/// of every event).
pub fn mark_told_server_full(room: &str, told: bool) -> Result<bool, Error> {
    let mut log = room_log(room)?;
    if log.told_server_full == told {
        return Ok(false);
    }
    log.told_server_full = told;
    match kv::set_json(&log_key(room), &log) {
        Err(e) if e.is(QUOTA_EXCEEDED) => Ok(false),
        other => other.map(|()| true),
    }
}

/// Adds one to the room's and the plugin's counters of `why`. With the quota used up even
/// the counters may not grow: that is logged, not retried (a retry would fail the same way).
fn count(log_key: &str, log: &mut RoomLog, why: Rejected) -> Result<(), Error> {
    let n = log.rejected.entry(why.key().to_string()).or_default();
    *n = n.saturating_add(1);
    let counted = kv::set_json(log_key, log)
        .and_then(|()| kv::increment(&format!("counts/rejected/{}", why.key()), 1).map(drop));
    match counted {
        Err(e) if e.is(QUOTA_EXCEEDED) => {
            log::warn(&format!(
                "cannot count a rejected event ({}): {}",
                why.key(),
                e.message
            ));
            Ok(())
        }
        other => other,
    }
}

/// What [`read`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recording {
    /// The records, in the order they were recorded.
    pub notes: Vec<Note>,
    /// Whether `limit` stopped the reading before the end.
    pub truncated: bool,
    /// The user ids of the senders, by number.
    pub senders: BTreeMap<u32, String>,
}

impl Recording {
    /// Keeps `note` unless `limit` records are kept already; answers whether it was kept.
    fn keep(&mut self, note: Note, limit: usize) -> bool {
        if self.notes.len() >= limit {
            self.truncated = true;
            return false;
        }
        self.notes.push(note);
        true
    }
}

/// The room's records stamped at `since` or later (all with `None`), at most `limit`, and
/// the names of their senders.
pub fn read(room: &str, since: Option<u64>, limit: usize) -> Result<Recording, Error> {
    let mut out = read_v1(room, since, limit)?;
    let prefix = chunk_prefix(room);
    'chunks: for (key, bucket) in chunks(&prefix, since)? {
        if out.truncated {
            break;
        }
        let Some(bytes) = kv::get(&key)? else {
            continue;
        };
        for record in bytes.chunks_exact(RECORD_LEN) {
            let Some(note) = Note::decode(record, bucket) else {
                continue;
            };
            if since.is_some_and(|s| note.server_ts < s) {
                continue;
            }
            if !out.keep(note, limit) {
                break 'chunks;
            }
        }
    }
    let prefix = sender_prefix(room);
    for key in kv::all_keys(&prefix)? {
        if let Some(clock) = kv::get_json::<SenderClock>(&key)? {
            let user = clock
                .user
                .or_else(|| key.strip_prefix(prefix.as_str()).map(str::to_string));
            out.senders.insert(clock.number, user.unwrap_or_default());
        }
    }
    Ok(out)
}

/// The room's format 1 records stamped at `since` or later, placed on the timeline as one
/// sender's (whose sender was not kept). Every one is read, even for a window, so that the
/// clock is the same as for the whole recording.
fn read_v1(room: &str, since: Option<u64>, limit: usize) -> Result<Recording, Error> {
    let mut out = Recording::default();
    let mut clock: Option<SenderClock> = None;
    'chunks: for (key, bucket) in chunks(&v1_chunk_prefix(room), None)? {
        let Some(bytes) = kv::get(&key)? else {
            continue;
        };
        for record in bytes.chunks_exact(V1_RECORD_LEN) {
            let Some((server_ts, played)) = Played::decode_v1(record, bucket) else {
                continue;
            };
            let clock = clock.get_or_insert_with(|| {
                SenderClock::start(UNKNOWN_SENDER, played.midi_ts, server_ts)
            });
            let time = clock.place_unknown_sender(played.midi_ts, server_ts);
            if since.is_some_and(|s| server_ts < s) {
                continue;
            }
            if !out.keep(played.record(server_ts, time, UNKNOWN_SENDER), limit) {
                break 'chunks;
            }
        }
    }
    Ok(out)
}

/// The chunks under `prefix` in order, with their buckets, from the bucket of `since` on.
fn chunks(prefix: &str, since: Option<u64>) -> Result<Vec<(String, u64)>, Error> {
    // Keys sort by bucket then sequence; `{prefix}{bucket}` sorts just before the first
    // chunk of `since`'s bucket.
    let mut after = since.map(|ts| format!("{prefix}{:013}", bucket_of(ts.min(MAX_SERVER_TS))));
    let mut out = Vec::new();
    loop {
        let page = kv::list_keys(prefix, after.as_deref(), 1000)?;
        for key in &page {
            let bucket = key
                .strip_prefix(prefix)
                .and_then(|rest| rest.split_once('.'))
                .and_then(|(bucket, _)| bucket.parse::<u64>().ok());
            if let Some(bucket) = bucket {
                out.push((key.clone(), bucket));
            }
        }
        if page.len() < 1000 {
            return Ok(out);
        }
        after = page.last().cloned();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugboard_sdk::testing::{Bare, Harness};
    use serde_json::json;

    const ALICE: &str = "@alice:test";
    const BOB: &str = "@bob:test";
    const T0: u64 = 1_700_000_000_000;
    const T: i64 = T0 as i64;

    fn played(midi_ts: i64, key: u8, on: bool) -> Played {
        Played {
            midi_ts,
            note: key,
            velocity: 90,
            channel: 2,
            on,
        }
    }

    fn limits(per_room: u64, total: u64) -> Limits {
        Limits { per_room, total }
    }

    /// `(server_ts, time, sender, key)` of each record.
    fn seen(notes: &[Note]) -> Vec<(u64, i64, u32, u8)> {
        notes
            .iter()
            .map(|n| (n.server_ts, n.time, n.sender, n.note))
            .collect()
    }

    #[test]
    fn records_fill_chunks_of_one_bucket_and_read_back_in_order() {
        let _h = Harness::<Bare>::new(json!({})).unwrap();
        let room = "!a/b%c:test";
        let mut written = Vec::new();
        for i in 0..(CHUNK_RECORDS as u64 + 10) {
            let p = played(i as i64, 60, i % 2 == 0);
            assert_eq!(
                append(room, ALICE, p, T0 + i, limits(10_000, 10_000)).unwrap(),
                None
            );
            written.push(p.record(T0 + i, T + i as i64, 1));
        }
        // Into the next bucket.
        let later = bucket_of(T0) + BUCKET_MS + 5;
        append(
            room,
            ALICE,
            played(9_999, 61, true),
            later,
            limits(10_000, 10_000),
        )
        .unwrap();
        written.push(played(9_999, 61, true).record(later, T + 9_999, 1));
        let read = read(room, None, 10_000).unwrap();
        assert_eq!(read.notes, written);
        assert!(!read.truncated);
        assert_eq!(read.senders, BTreeMap::from([(1, ALICE.to_string())]));
        let keys = kv::list_keys("room/", None, 100).unwrap();
        assert_eq!(keys.len(), 5, "{keys:?}");
        assert!(
            keys[0].starts_with("room/!a%2Fb%25c:test/chunk2/"),
            "{keys:?}"
        );
        assert_eq!(keys[4], "room/!a%2Fb%25c:test/sender/@alice:test");
        let log = room_log(room).unwrap();
        assert_eq!(log.events, written.len() as u64);
        assert_eq!(log.notes, (CHUNK_RECORDS as u64 + 10) / 2 + 1);
        assert_eq!(log.channel_list(), [2]);
        assert_eq!((log.first_time, log.last_time), (Some(T), Some(T + 9_999)));
        assert_eq!(total_records().unwrap(), written.len() as u64);
    }

    #[test]
    fn each_sender_gets_a_number_and_a_clock_of_their_own() {
        let _h = Harness::<Bare>::new(json!({})).unwrap();
        let l = limits(100, 100);
        append("!r:test", ALICE, played(1_000_000, 60, true), T0, l).unwrap();
        append("!r:test", BOB, played(5_000, 64, true), T0 + 250, l).unwrap();
        append("!r:test", ALICE, played(1_000_500, 60, false), T0 + 510, l).unwrap();
        append("!r:test", BOB, played(5_500, 64, false), T0 + 760, l).unwrap();
        let got = read("!r:test", None, 100).unwrap();
        assert_eq!(
            seen(&got.notes),
            [
                (T0, T, 1, 60),
                (T0 + 250, T + 250, 2, 64),
                (T0 + 510, T + 500, 1, 60),
                (T0 + 760, T + 750, 2, 64)
            ]
        );
        assert_eq!(
            got.senders,
            BTreeMap::from([(1, ALICE.to_string()), (2, BOB.to_string())])
        );
        let log = room_log("!r:test").unwrap();
        assert_eq!((log.senders, log.span_ms()), (2, 750));
    }

    #[test]
    fn reading_since_a_time_skips_older_buckets_and_records() {
        let _h = Harness::<Bare>::new(json!({})).unwrap();
        let room = "!r:test";
        for i in 0..50u64 {
            let p = played(i as i64 * 60_000, 60, true);
            append(room, ALICE, p, T0 + i * 60_000, limits(1000, 1000)).unwrap();
        }
        let since = T0 + 30 * 60_000;
        let got = read(room, Some(since), 1000).unwrap().notes;
        let minutes: Vec<i64> = got.iter().map(|n| (n.time - T) / 60_000).collect();
        assert_eq!(minutes, (30..50).collect::<Vec<i64>>());
    }

    #[test]
    fn server_time_never_goes_back_within_a_room() {
        let _h = Harness::<Bare>::new(json!({})).unwrap();
        let l = limits(100, 100);
        append("!r:test", ALICE, played(1, 60, true), T0 + 5_000_000, l).unwrap();
        append("!r:test", ALICE, played(2, 60, false), T0, l).unwrap();
        let got = read("!r:test", None, 100).unwrap().notes;
        assert_eq!(got[1].server_ts, T0 + 5_000_000);
        let chunks = kv::list_keys("room/!r:test/chunk2/", None, 100).unwrap();
        assert_eq!(chunks.len(), 1);
    }

    #[test]
    fn a_full_room_counts_what_it_refuses() {
        let _h = Harness::<Bare>::new(json!({})).unwrap();
        for i in 0..5 {
            let r = append(
                "!r:test",
                ALICE,
                played(i, 60, true),
                T0 + i as u64,
                limits(3, 100),
            );
            assert_eq!(r.unwrap(), (i >= 3).then_some(Rejected::Full));
        }
        let log = room_log("!r:test").unwrap();
        assert_eq!(log.events, 3);
        assert_eq!(log.rejected["full"], 2);
        assert_eq!(
            kv::get_json::<u64>("counts/rejected/full").unwrap(),
            Some(2)
        );
    }

    #[test]
    fn all_rooms_together_keep_at_most_the_total() {
        let _h = Harness::<Bare>::new(json!({})).unwrap();
        let l = limits(100, 3);
        for (i, room) in ["!a:test", "!b:test", "!c:test"].iter().enumerate() {
            let p = played(i as i64, 60, true);
            assert_eq!(append(room, ALICE, p, T0, l).unwrap(), None);
        }
        assert_eq!(
            append("!d:test", ALICE, played(9, 60, true), T0, l).unwrap(),
            Some(Rejected::ServerFull)
        );
        assert_eq!(total_records().unwrap(), 3);
        let log = room_log("!d:test").unwrap();
        assert_eq!((log.events, log.rejected["server_full"]), (0, 1));
        assert!(mark_told_server_full("!d:test", true).unwrap());
        assert!(!mark_told_server_full("!d:test", true).unwrap());
        // With room again (an admin raised the total), a kept record clears the mark.
        append("!d:test", ALICE, played(10, 60, true), T0, limits(100, 4)).unwrap();
        assert!(!room_log("!d:test").unwrap().told_server_full);
    }

    #[test]
    fn a_store_from_before_the_count_gets_it_from_the_rooms_summaries() {
        let h = Harness::<Bare>::new(json!({})).unwrap();
        for (room, events) in [("!a:test", 7), ("!b%2Fc:test", 5)] {
            let log = RoomLog {
                events,
                ..RoomLog::default()
            };
            kv::set_json(&format!("room/{room}/log"), &log).unwrap();
        }
        kv::set_json("room/!a:test/sender/@x:test", &SenderClock::start(1, 0, 0)).unwrap();
        assert_eq!(total_records().unwrap(), 12);
        assert_eq!(h.kv_json(TOTAL_KEY), Some(json!(12)));
    }

    #[test]
    fn a_write_past_the_quota_is_counted_and_leaves_the_chunk_as_it_was() {
        let h = Harness::<Bare>::new(json!({})).unwrap();
        let l = limits(100, 100);
        append("!r:test", ALICE, played(1, 60, true), T0, l).unwrap();
        let chunk_key = room_log("!r:test").unwrap().open.unwrap().key;
        let chunk = h.kv(&chunk_key).unwrap();
        h.fail_next("kv_set", Error::new(QUOTA_EXCEEDED, "quota"));
        assert_eq!(
            append("!r:test", ALICE, played(2, 60, false), T0 + 1, l).unwrap(),
            Some(Rejected::Quota)
        );
        assert_eq!(h.kv(&chunk_key).unwrap(), chunk);
        let log = room_log("!r:test").unwrap();
        assert_eq!((log.events, log.rejected["quota"]), (1, 1));
        assert_eq!(total_records().unwrap(), 1);
    }

    /// An id of `len` bytes: `sigil`, `fill` repeated, `:test`.
    fn long_id(sigil: char, fill: char, len: usize) -> String {
        format!("{sigil}{}:test", fill.to_string().repeat(len - 6))
    }

    #[test]
    fn the_longest_ids_escaped_thrice_still_fit_the_keys_and_are_recorded() {
        let h = Harness::<Bare>::new(json!({})).unwrap();
        // Matrix ids run to 255 bytes, and each `/` of a room's takes three in a key.
        let room = long_id('!', '/', 255);
        let player = long_id('@', 'p', 255);
        let l = limits(100, 100);
        assert_eq!(
            append(&room, &player, played(0, 60, true), T0, l).unwrap(),
            None
        );
        assert_eq!(
            append(&room, BOB, played(0, 64, true), T0 + 5, l).unwrap(),
            None
        );
        assert_eq!(
            append(&room, &player, played(10, 60, false), T0 + 10, l).unwrap(),
            None
        );
        let got = read(&room, None, 100).unwrap();
        assert_eq!(
            seen(&got.notes),
            [
                (T0, T, 1, 60),
                (T0 + 5, T + 5, 2, 64),
                (T0 + 10, T + 10, 1, 60)
            ]
        );
        assert_eq!(
            got.senders,
            BTreeMap::from([(1, player.clone()), (2, BOB.to_string())])
        );
        assert_eq!(room_log(&room).unwrap().events, 3);
        assert!(h.kv_keys().iter().all(|k| k.len() <= kv::MAX_KEY));
        // A store from before the count finds this room's summary too.
        kv::delete(TOTAL_KEY).unwrap();
        assert_eq!(total_records().unwrap(), 3);
        // Another room as long is apart from it.
        let other = long_id('!', '%', 255);
        append(&other, &player, played(0, 61, true), T0, l).unwrap();
        assert_eq!(read(&room, None, 100).unwrap().notes.len(), 3);
        assert_eq!(read(&other, None, 100).unwrap().notes.len(), 1);
    }

    #[test]
    fn a_room_id_that_fits_keeps_its_keys_and_a_long_sender_gets_a_digest() {
        let h = Harness::<Bare>::new(json!({})).unwrap();
        // Kept as it is (escaped, 465 bytes); a sender's key has room for a digest only.
        let room = format!("!{}:test", "a".repeat(MAX_ROOM_PART - 6));
        let player = long_id('@', 'p', 255);
        append(&room, &player, played(0, 60, true), T0, limits(100, 100)).unwrap();
        let keys = h.kv_keys();
        assert!(keys.iter().all(|k| k.len() <= kv::MAX_KEY), "{keys:?}");
        assert!(keys.contains(&format!("room/{room}/log")), "{keys:?}");
        let got = read(&room, None, 100).unwrap();
        assert_eq!(got.senders, BTreeMap::from([(1, player)]));
    }

    #[test]
    fn a_clock_kept_without_its_user_is_named_by_its_key() {
        let _h = Harness::<Bare>::new(json!({})).unwrap();
        let l = limits(100, 100);
        append("!r:test", ALICE, played(0, 60, true), T0, l).unwrap();
        let key = sender_key("!r:test", ALICE);
        let mut clock: SenderClock = kv::get_json(&key).unwrap().unwrap();
        assert_eq!(clock.user.take().as_deref(), Some(ALICE));
        kv::set_json(&key, &clock).unwrap();
        let senders = read("!r:test", None, 100).unwrap().senders;
        assert_eq!(senders, BTreeMap::from([(1, ALICE.to_string())]));
    }

    #[test]
    fn reading_stops_at_its_limit_and_says_so() {
        let _h = Harness::<Bare>::new(json!({})).unwrap();
        for i in 0..10 {
            append(
                "!r:test",
                ALICE,
                played(i, 60, true),
                T0 + i as u64,
                limits(100, 100),
            )
            .unwrap();
        }
        let got = read("!r:test", None, 4).unwrap();
        assert_eq!(got.notes.len(), 4);
        assert!(got.truncated);
    }

    /// A record as format 1 wrote it.
    fn v1_record(server_offset: u32, midi_ts: i64, key: u8, on: bool) -> Vec<u8> {
        let mut r = server_offset.to_le_bytes().to_vec();
        r.extend_from_slice(&midi_ts.to_le_bytes());
        r.extend_from_slice(&[key, 90, 2 | if on { 0x80 } else { 0 }]);
        r
    }

    #[test]
    fn format_1_records_are_read_as_one_sender_on_the_timeline() {
        let h = Harness::<Bare>::new(json!({})).unwrap();
        let bucket = bucket_of(T0);
        let at = (T0 - bucket) as u32;
        // Two keyboards' notes, mixed in one stream as format 1 kept them, and its summary.
        let chunk = [
            v1_record(at, 1_000_000, 60, true),
            v1_record(at + 250, 5_000, 64, true),
            v1_record(at + 500, 1_000_500, 60, false),
            v1_record(at + 750, 5_500, 64, false),
            vec![0xFF; 3],
        ]
        .concat();
        let key = format!("room/!r:test/chunk/{bucket:013}.{:010}", 0);
        kv::set(&key, &chunk).unwrap();
        let old_log = json!({
            "events": 4, "notes": 2, "channels": 2,
            "first_midi_ts": 5_000, "last_midi_ts": 1_000_500, "last_server_ts": T0 + 750,
            "open": {"key": key, "bucket": bucket, "records": 4}, "next_seq": 1, "rejected": {}
        });
        kv::set_json("room/!r:test/log", &old_log).unwrap();

        // Each change of keyboard jumps the one clock by far more than a second: each is
        // placed where the server heard it.
        let log = room_log("!r:test").unwrap();
        assert_eq!((log.first_time, log.last_time), (Some(T), Some(T + 750)));
        let stored = h.kv_json("room/!r:test/log").unwrap();
        assert!(stored.get("first_midi_ts").is_none(), "{stored}");
        assert_eq!(stored["first_time"], json!(T));

        // New records go to a chunk of the new format, after the old ones.
        append(
            "!r:test",
            BOB,
            played(9_000, 67, true),
            T0 + 2_000,
            limits(100, 100),
        )
        .unwrap();
        let got = read("!r:test", None, 100).unwrap();
        assert_eq!(
            seen(&got.notes),
            [
                (T0, T, 0, 60),
                (T0 + 250, T + 250, 0, 64),
                (T0 + 500, T + 500, 0, 60),
                (T0 + 750, T + 750, 0, 64),
                (T0 + 2_000, T + 2_000, 1, 67),
            ]
        );
        assert_eq!(got.senders, BTreeMap::from([(1, BOB.to_string())]));
        let windowed = read("!r:test", Some(T0 + 400), 100).unwrap();
        assert_eq!(seen(&windowed.notes)[0], (T0 + 500, T + 500, 0, 60));
        assert_eq!(room_log("!r:test").unwrap().span_ms(), 2_000);
        assert_eq!(h.kv(&key).unwrap(), chunk, "format 1 chunks are only read");
    }
}
