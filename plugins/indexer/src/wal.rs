//! The write-ahead log: what was indexed since the last flush, kept in the store in chunks of
//! [`CHUNK`] records under `wal/{n}` so that each message rewrites one small chunk (the host
//! keeps only a call's last value of a key, so a transaction of many messages costs a few
//! rows). At [`BLOCK`](crate::docs::BLOCK) documents it is flushed into a segment.

use plugboard_sdk::{kv, Error};

use crate::catalog::Head;
use crate::docs::StoredDoc;
use crate::encoding::{Corrupt, Reader, Writer};

/// Records per chunk key.
pub const CHUNK: usize = 16;

/// Records (documents and redaction markers) after which the log is flushed even when it has
/// fewer documents than a block: a flood of redactions must not grow it without bound.
pub const MAX_RECORDS: usize = 512;

const PREV: &str = "wal/prev";

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A document, with the hash of the event that made it (the message or its edit), by
    /// which a transaction delivered again is recognised.
    Doc { doc: StoredDoc, source: u64 },
    /// The event with this id hash was redacted.
    Redacted(u64),
}

/// The log as the plugin holds it, valid while the head's version is `version`.
#[derive(Debug, Clone, Default)]
pub struct Wal {
    pub version: u64,
    pub records: Vec<Record>,
    /// The sources of the documents of the log flushed last.
    pub prev_sources: Vec<u64>,
}

fn chunk_key(i: usize) -> String {
    format!("wal/{i:04}")
}

impl Record {
    fn write(&self, w: &mut Writer) {
        match self {
            Record::Doc { doc, source } => {
                w.u8(0);
                w.u64(*source);
                doc.write(w);
            }
            Record::Redacted(h) => {
                w.u8(1);
                w.u64(*h);
            }
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Record, Corrupt> {
        match r.u8()? {
            0 => {
                let source = r.u64()?;
                Ok(Record::Doc {
                    source,
                    doc: StoredDoc::read(r)?,
                })
            }
            1 => Ok(Record::Redacted(r.u64()?)),
            _ => Err(Corrupt("unknown log record")),
        }
    }
}

impl Wal {
    /// The log the head describes.
    pub fn load(head: &Head) -> Result<Wal, Error> {
        let len = head.wal_len as usize;
        let mut records = Vec::with_capacity(len);
        for i in 0..len.div_ceil(CHUNK) {
            let bytes = kv::get(&chunk_key(i))?.ok_or(Corrupt("a log chunk is missing"))?;
            let mut r = Reader::new(&bytes);
            while !r.is_empty() && records.len() < len {
                records.push(Record::read(&mut r)?);
            }
        }
        if records.len() != len {
            return Err(Corrupt("the log is shorter than the head says").into());
        }
        let mut prev_sources = Vec::new();
        if let Some(bytes) = kv::get(PREV)? {
            let mut r = Reader::new(&bytes);
            while !r.is_empty() {
                prev_sources.push(r.u64()?);
            }
        }
        Ok(Wal {
            version: head.version,
            records,
            prev_sources,
        })
    }

    /// Stores the chunk holding record `i`.
    pub fn save_chunk_of(&self, i: usize) -> Result<(), Error> {
        let c = i / CHUNK;
        let mut w = Writer::new();
        for r in self.records.iter().skip(c * CHUNK).take(CHUNK) {
            r.write(&mut w);
        }
        kv::set(&chunk_key(c), &w.buf)
    }

    /// Appends a record and stores its chunk.
    pub fn push(&mut self, record: Record) -> Result<(), Error> {
        self.records.push(record);
        self.save_chunk_of(self.records.len() - 1)
    }

    /// Whether the event with this hash made a document already (in this log or the last).
    pub fn has_source(&self, hash: u64) -> bool {
        self.prev_sources.contains(&hash)
            || self
                .records
                .iter()
                .any(|r| matches!(r, Record::Doc { source, .. } if *source == hash))
    }

    pub fn docs(&self) -> impl Iterator<Item = &StoredDoc> {
        self.records.iter().filter_map(|r| match r {
            Record::Doc { doc, .. } => Some(doc),
            Record::Redacted(_) => None,
        })
    }

    pub fn markers(&self) -> impl Iterator<Item = u64> + '_ {
        self.records.iter().filter_map(|r| match r {
            Record::Redacted(h) => Some(*h),
            Record::Doc { .. } => None,
        })
    }

    /// The record index of document `doc`.
    pub fn position_of(&self, doc: u32) -> Option<usize> {
        self.records
            .iter()
            .position(|r| matches!(r, Record::Doc { doc: d, .. } if d.doc == doc))
    }

    /// Empties the log after a flush, remembering the flushed documents' sources.
    pub fn clear(&mut self) -> Result<(), Error> {
        let mut w = Writer::new();
        for r in &self.records {
            if let Record::Doc { source, .. } = r {
                w.u64(*source);
            }
        }
        kv::set(PREV, &w.buf)?;
        self.prev_sources = self
            .records
            .iter()
            .filter_map(|r| match r {
                Record::Doc { source, .. } => Some(*source),
                Record::Redacted(_) => None,
            })
            .collect();
        self.records.clear();
        Ok(())
    }
}
