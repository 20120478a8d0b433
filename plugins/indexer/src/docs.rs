//! The stored documents: what a hit shows (event id, room, sender, time, text) in blocks of
//! [`BLOCK`] consecutive document numbers under `doc/{block}`, written once when the
//! write-ahead log is flushed and rewritten only to erase a redacted text.

use plugboard_sdk::Error;

use crate::blob;
use crate::encoding::{Corrupt, Reader, Writer};

/// Document numbers per block (and per flush of the write-ahead log).
pub const BLOCK: u32 = 256;

/// Longest text kept and indexed per message, in bytes; a longer one is cut (at a character
/// boundary) and counted.
pub const MAX_TEXT: usize = 16 * 1024;

/// One indexed message (or the latest edit of one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDoc {
    pub doc: u32,
    /// The event a hit links to: the original, also for an edit's text.
    pub event_id: String,
    pub room: String,
    pub sender: String,
    pub ts: u64,
    pub text: String,
}

impl StoredDoc {
    pub fn write(&self, w: &mut Writer) {
        w.varint(u64::from(self.doc));
        w.str(&self.event_id);
        w.str(&self.room);
        w.str(&self.sender);
        w.varint(self.ts);
        w.str(&self.text);
    }

    pub fn read(r: &mut Reader<'_>) -> Result<StoredDoc, Corrupt> {
        Ok(StoredDoc {
            doc: r.u32v()?,
            event_id: r.str()?.to_string(),
            room: r.str()?.to_string(),
            sender: r.str()?.to_string(),
            ts: r.varint()?,
            text: r.str()?.to_string(),
        })
    }
}

/// `text` cut to at most [`MAX_TEXT`] bytes at a character boundary; whether it was cut.
pub fn bounded(text: &str) -> (&str, bool) {
    let kept = plugboard_sdk::message::clip(text, MAX_TEXT);
    (kept, kept.len() < text.len())
}

fn key(block: u32) -> String {
    format!("doc/{block:08x}")
}

/// The documents of one block, ascending.
pub fn load(block: u32) -> Result<Vec<StoredDoc>, Error> {
    let Some(bytes) = blob::get(&key(block))? else {
        return Ok(Vec::new());
    };
    let mut r = Reader::new(&bytes);
    let n = r.count()?;
    let mut docs = Vec::with_capacity(n);
    for _ in 0..n {
        docs.push(StoredDoc::read(&mut r)?);
    }
    Ok(docs)
}

/// Stores a block's documents.
pub fn save(block: u32, docs: &[StoredDoc], rewrite: bool) -> Result<(), Error> {
    let mut w = Writer::new();
    w.varint(docs.len() as u64);
    for d in docs {
        d.write(&mut w);
    }
    blob::put(&key(block), &w.buf, rewrite)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_are_cut_at_a_character_boundary() {
        let t = "é".repeat(MAX_TEXT);
        let (cut, was) = bounded(&t);
        assert!(was && cut.len() <= MAX_TEXT && cut.len() >= MAX_TEXT - 1);
        assert_eq!(bounded("short"), ("short", false));
    }
}
