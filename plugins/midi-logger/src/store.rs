//! How a room's recording lies in the plugin's kv store. Per room, a small summary
//! ([`RoomLog`]: counts, channels, time span, rejections, the chunk being filled) and the
//! records in chunks of at most [`CHUNK_RECORDS`], each chunk within one ten-minute bucket of
//! server time and keyed by it: an event rewrites one chunk of at most 3.8 KiB, and
//! `last 10m` reads from the bucket of its start on instead of the whole room.
//!
//! ```text
//! room/{room id, '/' and '%' escaped}/log                     JSON RoomLog
//! room/{…}/chunk/{bucket start, 13 digits}.{seq, 10 digits}   records, 15 bytes each
//! counts/rejected/{reason}                                    all rooms' rejections
//! ```

use std::collections::BTreeMap;

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use plugboard_sdk::prelude::*;
use serde::{Deserialize, Serialize};

use crate::note::{Note, Rejected, RECORD_LEN};

/// Milliseconds of server time one chunk may span.
pub const BUCKET_MS: u64 = 600_000;

/// Records in a full chunk.
pub const CHUNK_RECORDS: usize = 256;

/// Server times are kept below this so that their 13 digits sort as numbers.
const MAX_SERVER_TS: u64 = 9_999_999_999_999;

/// What the kv host answers a write past the plugin's quota.
pub const QUOTA_EXCEEDED: &str = "M_RESOURCE_LIMIT_EXCEEDED";

/// Characters escaped in a room id inside a key: `/` separates the key's parts.
const KEY_ESCAPES: &AsciiSet = &CONTROLS.add(b'/').add(b'%');

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
    /// The earliest `midi_ts` kept.
    pub first_midi_ts: Option<i64>,
    /// The latest `midi_ts` kept.
    pub last_midi_ts: Option<i64>,
    /// The server time of the latest record: later records are never stamped earlier.
    pub last_server_ts: u64,
    /// The chunk being filled.
    pub open: Option<OpenChunk>,
    /// The sequence number of the next chunk.
    pub next_seq: u64,
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
}

/// The start of the bucket of `server_ts`.
pub fn bucket_of(server_ts: u64) -> u64 {
    server_ts - server_ts % BUCKET_MS
}

/// Where the keys of `room` start.
pub fn room_prefix(room: &str) -> String {
    format!("room/{}/", utf8_percent_encode(room, KEY_ESCAPES))
}

fn log_key(room: &str) -> String {
    format!("{}log", room_prefix(room))
}

fn chunk_prefix(room: &str) -> String {
    format!("{}chunk/", room_prefix(room))
}

/// The room's summary (empty when nothing was recorded).
pub fn room_log(room: &str) -> Result<RoomLog, Error> {
    Ok(kv::get_json(&log_key(room))?.unwrap_or_default())
}

/// Records `note` in `room`, unless the room holds `max_events` records already or the
/// quota is used up: then answers why, counted.
pub fn append(room: &str, mut note: Note, max_events: u64) -> Result<Option<Rejected>, Error> {
    let log_key = log_key(room);
    let mut log = room_log(room)?;
    if log.events >= max_events {
        count(&log_key, &mut log, Rejected::Full)?;
        return Ok(Some(Rejected::Full));
    }
    note.server_ts = note.server_ts.max(log.last_server_ts).min(MAX_SERVER_TS);
    let bucket = bucket_of(note.server_ts);
    let (key, mut chunk) = match &log.open {
        Some(open) if open.bucket == bucket && (open.records as usize) < CHUNK_RECORDS => {
            (open.key.clone(), kv::get(&open.key)?.unwrap_or_default())
        }
        _ => {
            let key = format!("{}{bucket:013}.{:010}", chunk_prefix(room), log.next_seq);
            log.next_seq += 1;
            (key, Vec::new())
        }
    };
    // Whole records only: a damaged tail would shift every record after it.
    chunk.truncate(chunk.len() / RECORD_LEN * RECORD_LEN);
    let before = chunk.len();
    note.encode(bucket, &mut chunk);
    match kv::set(&key, &chunk) {
        Err(e) if e.is(QUOTA_EXCEEDED) => return over_quota(&log_key, &mut log),
        other => other?,
    }
    log.events += 1;
    if note.sounds() {
        log.notes += 1;
    }
    log.channels |= 1 << (note.channel.saturating_sub(1) & 0x0F);
    log.first_midi_ts = Some(
        log.first_midi_ts
            .map_or(note.midi_ts, |t| t.min(note.midi_ts)),
    );
    log.last_midi_ts = Some(
        log.last_midi_ts
            .map_or(note.midi_ts, |t| t.max(note.midi_ts)),
    );
    log.last_server_ts = note.server_ts;
    log.open = Some(OpenChunk {
        key: key.clone(),
        bucket,
        records: (chunk.len() / RECORD_LEN) as u32,
    });
    match kv::set_json(&log_key, &log) {
        Err(e) if e.is(QUOTA_EXCEEDED) => {
            // The summary grew past the quota after the chunk did: take the record back, so
            // that the two agree (a smaller value always fits).
            if before == 0 {
                kv::delete(&key)?;
            } else {
                chunk.truncate(before);
                kv::set(&key, &chunk)?;
            }
            let mut log = room_log(room)?;
            over_quota(&log_key, &mut log)
        }
        other => other.map(|()| None),
    }
}

/// Counts an event of `room` refused for `why`.
pub fn reject(room: &str, why: Rejected) -> Result<(), Error> {
    let mut log = room_log(room)?;
    count(&log_key(room), &mut log, why)
}

fn over_quota(log_key: &str, log: &mut RoomLog) -> Result<Option<Rejected>, Error> {
    count(log_key, log, Rejected::Quota)?;
    Ok(Some(Rejected::Quota))
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
}

/// The room's records stamped at `since` or later (all with `None`), at most `limit`.
pub fn read(room: &str, since: Option<u64>, limit: usize) -> Result<Recording, Error> {
    let prefix = chunk_prefix(room);
    // Keys sort by bucket then sequence; `{prefix}{bucket}` sorts just before the first
    // chunk of `since`'s bucket.
    let mut after = since.map(|ts| format!("{prefix}{:013}", bucket_of(ts.min(MAX_SERVER_TS))));
    let mut out = Recording::default();
    loop {
        let page = kv::list_keys(&prefix, after.as_deref(), 1000)?;
        for key in &page {
            let Some(bucket) = key
                .strip_prefix(prefix.as_str())
                .and_then(|rest| rest.split_once('.'))
                .and_then(|(bucket, _)| bucket.parse::<u64>().ok())
            else {
                continue;
            };
            let Some(bytes) = kv::get(key)? else {
                continue;
            };
            for record in bytes.chunks_exact(RECORD_LEN) {
                let Some(note) = Note::decode(record, bucket) else {
                    continue;
                };
                if since.is_some_and(|s| note.server_ts < s) {
                    continue;
                }
                if out.notes.len() >= limit {
                    out.truncated = true;
                    return Ok(out);
                }
                out.notes.push(note);
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
    use plugboard_sdk::testing::Harness;
    use serde_json::json;

    /// A plugin that does nothing: the harness's host is what these tests need.
    struct Bare;

    impl Plugin for Bare {
        fn init(_config: &Config) -> Result<Self, Error> {
            Ok(Bare)
        }
    }

    fn note(server_ts: u64, midi_ts: i64, key: u8, on: bool) -> Note {
        Note {
            server_ts,
            midi_ts,
            note: key,
            velocity: 90,
            channel: 2,
            on,
        }
    }

    const T0: u64 = 1_700_000_000_000;

    #[test]
    fn records_fill_chunks_of_one_bucket_and_read_back_in_order() {
        let _h = Harness::<Bare>::new(json!({})).unwrap();
        let room = "!a/b%c:test";
        let mut written = Vec::new();
        for i in 0..(CHUNK_RECORDS as u64 + 10) {
            let n = note(T0 + i, i as i64, 60, i % 2 == 0);
            assert_eq!(append(room, n, 10_000).unwrap(), None);
            written.push(n);
        }
        // Into the next bucket.
        let later = note(bucket_of(T0) + BUCKET_MS + 5, 9_999, 61, true);
        append(room, later, 10_000).unwrap();
        written.push(later);
        let read = read(room, None, 10_000).unwrap();
        assert_eq!(read.notes, written);
        assert!(!read.truncated);
        let keys = kv::list_keys("room/", None, 100).unwrap();
        assert_eq!(keys.len(), 4, "{keys:?}");
        assert!(
            keys[0].starts_with("room/!a%2Fb%25c:test/chunk/"),
            "{keys:?}"
        );
        let log = room_log(room).unwrap();
        assert_eq!(log.events, written.len() as u64);
        assert_eq!(log.notes, (CHUNK_RECORDS as u64 + 10) / 2 + 1);
        assert_eq!(log.channel_list(), [2]);
        assert_eq!(
            (log.first_midi_ts, log.last_midi_ts),
            (Some(0), Some(9_999))
        );
    }

    #[test]
    fn reading_since_a_time_skips_older_buckets_and_records() {
        let _h = Harness::<Bare>::new(json!({})).unwrap();
        let room = "!r:test";
        for i in 0..50u64 {
            append(room, note(T0 + i * 60_000, i as i64, 60, true), 1000).unwrap();
        }
        let since = T0 + 30 * 60_000;
        let got = read(room, Some(since), 1000).unwrap().notes;
        let midi: Vec<i64> = got.iter().map(|n| n.midi_ts).collect();
        assert_eq!(midi, (30..50).collect::<Vec<i64>>());
    }

    #[test]
    fn server_time_never_goes_back_within_a_room() {
        let _h = Harness::<Bare>::new(json!({})).unwrap();
        append("!r:test", note(T0 + 5_000_000, 1, 60, true), 100).unwrap();
        append("!r:test", note(T0, 2, 60, false), 100).unwrap();
        let got = read("!r:test", None, 100).unwrap().notes;
        assert_eq!(got[1].server_ts, T0 + 5_000_000);
        assert_eq!(kv::list_keys("room/", None, 100).unwrap().len(), 2);
    }

    #[test]
    fn a_full_room_counts_what_it_refuses() {
        let _h = Harness::<Bare>::new(json!({})).unwrap();
        for i in 0..5 {
            let r = append("!r:test", note(T0 + i, i as i64, 60, true), 3).unwrap();
            assert_eq!(r, (i >= 3).then_some(Rejected::Full));
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
    fn a_write_past_the_quota_is_counted_and_leaves_the_chunk_as_it_was() {
        let h = Harness::<Bare>::new(json!({})).unwrap();
        append("!r:test", note(T0, 1, 60, true), 100).unwrap();
        let chunk_key = room_log("!r:test").unwrap().open.unwrap().key;
        let chunk = h.kv(&chunk_key).unwrap();
        h.fail_next("kv_set", Error::new(QUOTA_EXCEEDED, "quota"));
        assert_eq!(
            append("!r:test", note(T0 + 1, 2, 60, false), 100).unwrap(),
            Some(Rejected::Quota)
        );
        assert_eq!(h.kv(&chunk_key).unwrap(), chunk);
        let log = room_log("!r:test").unwrap();
        assert_eq!((log.events, log.rejected["quota"]), (1, 1));
    }

    #[test]
    fn reading_stops_at_its_limit_and_says_so() {
        let _h = Harness::<Bare>::new(json!({})).unwrap();
        for i in 0..10 {
            append("!r:test", note(T0 + i, i as i64, 60, true), 100).unwrap();
        }
        let got = read("!r:test", None, 4).unwrap();
        assert_eq!(got.notes.len(), 4);
        assert!(got.truncated);
    }
}
