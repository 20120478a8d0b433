//! What is where in the store: the small `head` (rewritten with every indexed message: the
//! counters BM25 needs and the state of the write-ahead log) and the `meta` catalog
//! (rewritten when segments or deletions change: the live segments and the dead documents).

use plugboard_sdk::{kv, Error};

use crate::blob;
use crate::encoding::{Corrupt, Reader, Writer};

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

/// The catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    pub next_seg: u64,
    /// Ascending by `lo` (segments without documents have `span` 0).
    pub segments: Vec<SegInfo>,
    /// Dead documents (edited or redacted) not yet dropped by a merge, ascending.
    pub dead: Vec<u32>,
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
        Ok(Meta {
            next_seg,
            segments,
            dead,
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
        };
        m.mark_dead(9);
        m.mark_dead(3);
        m.mark_dead(9);
        assert_eq!(m.dead, [3, 9]);
        assert!(m.is_dead(3) && !m.is_dead(4));
        assert_eq!(Meta::decode(&m.encode()).unwrap(), m);
    }
}
