//! What is where in the store: the small `head` (rewritten with every indexed message: the
//! counters BM25 needs and the state of the write-ahead log) and the `meta` catalog
//! (rewritten when segments or deletions change: the live segments, the dead documents and
//! the events awaited because a redaction or an edit of them came first).

use plugboard_sdk::{kv, Error};

use crate::blob;
use crate::encoding::{hash_in_room, Corrupt, Reader, Writer};

/// Events awaited at most: the oldest is forgotten past it. Out of order means a redaction
/// or an edit overtaking its event by a few places in a replay; but every redaction of an
/// event the indexer never indexed (a reaction, a state event, a message with no text)
/// takes a place too, and the list is rewritten with `meta` (about 12 bytes an entry).
pub const MAX_AWAITED: usize = 512;

const HEAD: &str = "head";
const META: &str = "meta";

/// The counters, rewritten with every change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Head {
    /// Counts every write of the head: what the plugin's in-memory copies are checked by.
    pub version: u64,
    /// The number the next document gets.
    pub next_doc: u32,
    /// The first document number the write-ahead log may hold.
    pub wal_lo: u32,
    /// Records in the write-ahead log.
    pub wal_len: u32,
    /// Documents that are not dead: BM25's N.
    pub alive: u64,
    /// Their tokens: BM25's average length is `total_len / alive`.
    pub total_len: u64,
    /// Counts the writes of `meta`.
    pub meta_version: u64,
}

impl Head {
    pub fn load() -> Result<Head, Error> {
        let Some(bytes) = kv::get(HEAD)? else {
            return Ok(Head::default());
        };
        let mut r = Reader::new(&bytes);
        Ok(Head {
            version: r.varint()?,
            next_doc: r.u32v()?,
            wal_lo: r.u32v()?,
            wal_len: r.u32v()?,
            alive: r.varint()?,
            total_len: r.varint()?,
            meta_version: r.varint()?,
        })
    }

    /// Stores the head with its version moved on.
    pub fn save(&mut self) -> Result<(), Error> {
        self.version += 1;
        let mut w = Writer::new();
        for v in [
            self.version,
            u64::from(self.next_doc),
            u64::from(self.wal_lo),
            u64::from(self.wal_len),
            self.alive,
            self.total_len,
            self.meta_version,
        ] {
            w.varint(v);
        }
        kv::set(HEAD, &w.buf)
    }
}

/// One live segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegInfo {
    /// Its key under `seg/`: a sequence number and a hash of its bytes, so that a name
    /// always means the same bytes (an in-memory copy is never stale).
    pub name: String,
    pub lo: u32,
    pub span: u32,
    pub live: u32,
    pub bytes: u64,
}

/// Why an event that has not come is awaited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Awaited {
    /// An edit of it came: when it comes, its text is what the edits fall back to.
    Edited,
    /// Its redaction came: when it comes, it is not indexed.
    Redacted,
}

/// One awaited event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiting {
    /// [`hash_in_room`] of the event.
    pub key: u64,
    pub why: Awaited,
    /// Order of arrival, for forgetting the oldest.
    pub seq: u64,
}

/// The catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    pub next_seg: u64,
    /// Ascending by `lo` (segments without documents have `span` 0).
    pub segments: Vec<SegInfo>,
    /// Dead documents (edited or redacted) not yet dropped by a merge, ascending.
    pub dead: Vec<u32>,
    /// Ascending by key. Kept here, in memory with the rest of the catalog, so that a
    /// message looks itself up without a read of the store; nearly always empty.
    pub awaited: Vec<Waiting>,
}

impl Meta {
    pub fn load() -> Result<Meta, Error> {
        let Some(bytes) = blob::get(META)? else {
            return Ok(Meta::default());
        };
        Ok(Meta::decode(&bytes)?)
    }

    fn decode(bytes: &[u8]) -> Result<Meta, Corrupt> {
        let mut r = Reader::new(bytes);
        let next_seg = r.varint()?;
        let n = r.count()?;
        let mut segments = Vec::with_capacity(n);
        for _ in 0..n {
            segments.push(SegInfo {
                name: r.str()?.to_string(),
                lo: r.u32v()?,
                span: r.u32v()?,
                live: r.u32v()?,
                bytes: r.varint()?,
            });
        }
        let n = r.count()?;
        let mut dead = Vec::with_capacity(n);
        let mut prev = 0u32;
        for _ in 0..n {
            prev = prev
                .checked_add(r.u32v()?)
                .ok_or(Corrupt("dead list overflow"))?;
            dead.push(prev);
        }
        // A catalog written before events were awaited ends here.
        let mut awaited = Vec::new();
        if !r.is_empty() {
            let n = r.count()?;
            for _ in 0..n {
                let key = r.u64()?;
                let why = match r.u8()? {
                    0 => Awaited::Edited,
                    1 => Awaited::Redacted,
                    _ => return Err(Corrupt("unknown reason an event is awaited")),
                };
                awaited.push(Waiting {
                    key,
                    why,
                    seq: r.varint()?,
                });
            }
        }
        Ok(Meta {
            next_seg,
            segments,
            dead,
            awaited,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.varint(self.next_seg);
        w.varint(self.segments.len() as u64);
        for s in &self.segments {
            w.str(&s.name);
            w.varint(u64::from(s.lo));
            w.varint(u64::from(s.span));
            w.varint(u64::from(s.live));
            w.varint(s.bytes);
        }
        w.varint(self.dead.len() as u64);
        let mut prev = 0;
        for d in &self.dead {
            w.varint(u64::from(d - prev));
            prev = *d;
        }
        w.varint(self.awaited.len() as u64);
        for a in &self.awaited {
            w.u64(a.key);
            w.u8(match a.why {
                Awaited::Edited => 0,
                Awaited::Redacted => 1,
            });
            w.varint(a.seq);
        }
        w.into_bytes()
    }

    /// Stores the catalog and moves `head.meta_version` on (the caller saves the head).
    pub fn save(&self, head: &mut Head) -> Result<(), Error> {
        head.meta_version += 1;
        blob::put(META, &self.encode(), true)
    }

    pub fn is_dead(&self, doc: u32) -> bool {
        self.dead.binary_search(&doc).is_ok()
    }

    pub fn mark_dead(&mut self, doc: u32) {
        if let Err(i) = self.dead.binary_search(&doc) {
            self.dead.insert(i, doc);
        }
    }

    /// Why `event_id` of `room` is awaited, if it is.
    pub fn awaited(&self, room: &str, event_id: &str) -> Option<Awaited> {
        if self.awaited.is_empty() {
            return None;
        }
        let key = hash_in_room(room, event_id);
        let i = self.awaited.binary_search_by_key(&key, |a| a.key).ok()?;
        Some(self.awaited[i].why)
    }

    /// Notes that `event_id` of `room` is awaited (a redaction outranks an edit), forgetting
    /// the oldest entry past [`MAX_AWAITED`]; whether anything changed.
    pub fn wait_for(&mut self, room: &str, event_id: &str, why: Awaited) -> bool {
        let key = hash_in_room(room, event_id);
        let seq = self.awaited.iter().map(|a| a.seq + 1).max().unwrap_or(0);
        match self.awaited.binary_search_by_key(&key, |a| a.key) {
            Ok(i) if self.awaited[i].why >= why => return false,
            Ok(i) => self.awaited[i].why = why,
            Err(i) => self.awaited.insert(i, Waiting { key, why, seq }),
        }
        if self.awaited.len() > MAX_AWAITED {
            let oldest = (0..self.awaited.len()).min_by_key(|&i| self.awaited[i].seq);
            if let Some(i) = oldest {
                self.awaited.remove(i);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_reads_back() {
        let mut m = Meta {
            next_seg: 7,
            segments: vec![SegInfo {
                name: "00000001-abcd".into(),
                lo: 0,
                span: 256,
                live: 250,
                bytes: 9000,
            }],
            dead: vec![],
            awaited: vec![],
        };
        m.mark_dead(9);
        m.mark_dead(3);
        m.mark_dead(9);
        assert_eq!(m.dead, [3, 9]);
        assert!(m.is_dead(3) && !m.is_dead(4));
        assert_eq!(Meta::decode(&m.encode()).unwrap(), m);
        assert!(m.wait_for("!r", "$a", Awaited::Edited));
        assert!(m.wait_for("!r", "$b", Awaited::Redacted));
        assert!(m.wait_for("!r", "$a", Awaited::Redacted));
        assert!(
            !m.wait_for("!r", "$a", Awaited::Edited),
            "a redaction outranks an edit"
        );
        assert_eq!(m.awaited("!r", "$a"), Some(Awaited::Redacted));
        assert_eq!(m.awaited("!other", "$a"), None);
        assert_eq!(Meta::decode(&m.encode()).unwrap(), m);
    }

    #[test]
    fn a_catalog_written_before_events_were_awaited_still_reads() {
        let m = Meta {
            next_seg: 2,
            dead: vec![4],
            ..Meta::default()
        };
        let mut old = m.encode();
        old.pop();
        assert_eq!(Meta::decode(&old).unwrap(), m);
    }

    #[test]
    fn the_oldest_awaited_event_is_forgotten_first() {
        let mut m = Meta::default();
        for i in 0..=MAX_AWAITED {
            m.wait_for("!r", &format!("${i}"), Awaited::Redacted);
        }
        assert_eq!(m.awaited.len(), MAX_AWAITED);
        assert_eq!(m.awaited("!r", "$0"), None);
        assert_eq!(m.awaited("!r", "$1"), Some(Awaited::Redacted));
        assert_eq!(
            m.awaited("!r", &format!("${MAX_AWAITED}")),
            Some(Awaited::Redacted)
        );
    }
}
