//! What the indexer remembers of an edited message, so that redacting an edit can bring back
//! what a client shows then (the newest edit left, else the original's own text): under
//! `edits/{original}` the original's text and its newest [`KEEP`] edits; under
//! `edits/{edit}` the original each kept edit belongs to, so that one read tells a redaction
//! what it redacts. A message is remembered from its first edit on (the original's text is
//! read then from its stored document): indexing one never edited costs nothing here.

use plugboard_sdk::{kv, Error};

use crate::encoding::{Corrupt, Reader, Writer};

/// Edits kept per original. An edit is redacted to take it back, seldom more than one or two
/// in a row; a kept version may be 16 KiB of text, so an entry stays under 80 KiB, one row of
/// the store, rewritten whole by each edit. A message edited more often (a bot's live status)
/// forgets its oldest edits: were all the kept ones redacted, the original's text would show
/// where a client would show the newest edit forgotten.
pub const KEEP: usize = 4;

const FORMAT: u8 = 1;

fn key(event_id: &str) -> String {
    format!("edits/{event_id}")
}

/// The text of one version of a message: the original's, or an edit's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub id: String,
    pub ts: u64,
    pub text: String,
    /// The document that holds this text, live while it is shown, dead after: what a
    /// redaction erases.
    pub doc: Option<u32>,
}

impl Version {
    /// Newer versions sort after: by `origin_server_ts`, then by event id (the spec's order).
    fn order(&self) -> (u64, &str) {
        (self.ts, &self.id)
    }
}

/// An edited message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edits {
    pub room: String,
    /// The original's sender: the only one whose edits count.
    pub sender: String,
    /// None while the original has not come (its edits came first).
    pub original: Option<Version>,
    /// Oldest first, at most [`KEEP`].
    pub edits: Vec<Version>,
}

/// What is remembered under an event's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// It is an edited message.
    Original(Edits),
    /// It is an edit of this original.
    EditOf(String),
}

/// What [`Edits::insert`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// The edit is known already.
    Duplicate,
    /// Older than every kept edit, with no room left: not kept.
    Dropped,
    /// Kept; whether it is now the newest, and the edit forgotten to make room.
    Kept {
        newest: bool,
        evicted: Option<Version>,
    },
}

impl Edits {
    /// The version a client shows: the newest edit, else the original.
    pub fn shown(&self) -> Option<&Version> {
        self.edits.last().or(self.original.as_ref())
    }

    fn shown_mut(&mut self) -> Option<&mut Version> {
        match self.edits.last_mut() {
            Some(v) => Some(v),
            None => self.original.as_mut(),
        }
    }

    /// Notes that document `doc` now holds the shown text; answers the one that held it
    /// before, whose copy of the text is not needed any more.
    pub fn shown_in(&mut self, doc: u32) -> Option<u32> {
        self.shown_mut().and_then(|v| v.doc.replace(doc))
    }

    /// The time a hit shows: the original's, or, until it comes, its earliest edit's.
    pub fn ts(&self) -> u64 {
        self.original
            .as_ref()
            .or(self.edits.first())
            .map_or(0, |v| v.ts)
    }

    /// The documents holding the texts remembered of this message.
    pub fn docs(&self) -> impl Iterator<Item = u32> + '_ {
        self.original
            .iter()
            .chain(&self.edits)
            .filter_map(|v| v.doc)
    }

    pub fn insert(&mut self, edit: Version) -> Inserted {
        if self.edits.iter().any(|e| e.id == edit.id) {
            return Inserted::Duplicate;
        }
        let at = self.edits.partition_point(|e| e.order() < edit.order());
        if at == 0 && self.edits.len() >= KEEP {
            return Inserted::Dropped;
        }
        let newest = at == self.edits.len();
        self.edits.insert(at, edit);
        let evicted = (self.edits.len() > KEEP).then(|| self.edits.remove(0));
        Inserted::Kept { newest, evicted }
    }

    /// Takes the edit `id` out; whether it was the one shown.
    pub fn take(&mut self, id: &str) -> Option<(Version, bool)> {
        let i = self.edits.iter().position(|e| e.id == id)?;
        let shown = i + 1 == self.edits.len();
        Some((self.edits.remove(i), shown))
    }

    fn write(&self, w: &mut Writer) {
        w.str(&self.room);
        w.str(&self.sender);
        match &self.original {
            Some(v) => {
                w.u8(1);
                write_version(w, v);
            }
            None => w.u8(0),
        }
        w.varint(self.edits.len() as u64);
        for v in &self.edits {
            write_version(w, v);
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Edits, Corrupt> {
        let room = r.str()?.to_string();
        let sender = r.str()?.to_string();
        let original = match r.u8()? {
            0 => None,
            1 => Some(read_version(r)?),
            _ => return Err(Corrupt("bad edits entry")),
        };
        let n = r.count()?;
        let mut edits = Vec::with_capacity(n);
        for _ in 0..n {
            edits.push(read_version(r)?);
        }
        Ok(Edits {
            room,
            sender,
            original,
            edits,
        })
    }
}

fn write_version(w: &mut Writer, v: &Version) {
    w.str(&v.id);
    w.varint(v.ts);
    w.str(&v.text);
    w.varint(v.doc.map_or(0, |d| u64::from(d) + 1));
}

fn read_version(r: &mut Reader<'_>) -> Result<Version, Corrupt> {
    let id = r.str()?.to_string();
    let ts = r.varint()?;
    let text = r.str()?.to_string();
    let doc = match r.varint()? {
        0 => None,
        d => Some(u32::try_from(d - 1).map_err(|_| Corrupt("number out of range"))?),
    };
    Ok(Version { id, ts, text, doc })
}

fn decode(bytes: &[u8]) -> Result<Entry, Corrupt> {
    let mut r = Reader::new(bytes);
    if r.u8()? != FORMAT {
        return Err(Corrupt("unknown edits format"));
    }
    match r.u8()? {
        0 => Ok(Entry::Original(Edits::read(&mut r)?)),
        1 => Ok(Entry::EditOf(r.str()?.to_string())),
        _ => Err(Corrupt("bad edits entry")),
    }
}

/// What is remembered under `event_id`.
pub fn load(event_id: &str) -> Result<Option<Entry>, Error> {
    match kv::get(&key(event_id))? {
        Some(bytes) => Ok(Some(decode(&bytes)?)),
        None => Ok(None),
    }
}

/// Stores `edits` as what is remembered of `original`.
pub fn save(original: &str, edits: &Edits) -> Result<(), Error> {
    let mut w = Writer::new();
    w.u8(FORMAT);
    w.u8(0);
    edits.write(&mut w);
    kv::set(&key(original), &w.buf)
}

/// Notes that `edit` is an edit of `original`.
pub fn point(edit: &str, original: &str) -> Result<(), Error> {
    let mut w = Writer::new();
    w.u8(FORMAT);
    w.u8(1);
    w.str(original);
    kv::set(&key(edit), &w.buf)
}

/// Forgets what is remembered under `event_id`.
pub fn remove(event_id: &str) -> Result<(), Error> {
    kv::delete(&key(event_id)).map(drop)
}

/// Forgets `original` and the edits kept of it.
pub fn forget(original: &str, edits: &Edits) -> Result<(), Error> {
    for e in &edits.edits {
        remove(&e.id)?;
    }
    remove(original)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(id: &str, ts: u64) -> Version {
        Version {
            id: id.into(),
            ts,
            text: format!("text of {id}"),
            doc: None,
        }
    }

    fn ids(e: &Edits) -> Vec<&str> {
        e.edits.iter().map(|v| v.id.as_str()).collect()
    }

    #[test]
    fn edits_are_kept_newest_last_by_time_then_id_and_the_oldest_go() {
        let mut e = Edits {
            room: "!r".into(),
            sender: "@a".into(),
            original: Some(v("$o", 1)),
            edits: vec![],
        };
        let kept = |newest| Inserted::Kept {
            newest,
            evicted: None,
        };
        assert_eq!(e.insert(v("$b", 10)), kept(true));
        assert_eq!(
            e.insert(v("$a", 10)),
            kept(false),
            "same time: the larger id is newer"
        );
        assert_eq!(e.insert(v("$c", 5)), kept(false));
        assert_eq!(e.insert(v("$b", 10)), Inserted::Duplicate);
        assert_eq!(e.insert(v("$d", 20)), kept(true));
        assert_eq!(ids(&e), ["$c", "$a", "$b", "$d"]);
        assert_eq!(e.insert(v("$z", 1)), Inserted::Dropped);
        assert_eq!(
            e.insert(v("$e", 7)),
            Inserted::Kept {
                newest: false,
                evicted: Some(v("$c", 5))
            }
        );
        assert_eq!(
            e.insert(v("$f", 30)),
            Inserted::Kept {
                newest: true,
                evicted: Some(v("$e", 7))
            }
        );
        assert_eq!(ids(&e), ["$a", "$b", "$d", "$f"]);
        assert_eq!(e.shown().unwrap().id, "$f");
        assert_eq!(
            e.take("$b").map(|(v, shown)| (v.id, shown)),
            Some(("$b".into(), false))
        );
        assert_eq!(e.take("$f").map(|(_, shown)| shown), Some(true));
        assert_eq!(e.shown().unwrap().id, "$d");
        e.take("$a");
        e.take("$d");
        assert_eq!(e.shown().unwrap().id, "$o", "no edit left: the original");
        assert_eq!(e.ts(), 1);
    }

    #[test]
    fn entries_read_back() {
        let mut e = Edits {
            room: "!r".into(),
            sender: "@a".into(),
            original: None,
            edits: vec![v("$x", 3)],
        };
        assert_eq!(e.shown_in(7), None);
        assert_eq!(e.shown_in(9), Some(7), "the copy shown before");
        let mut w = Writer::new();
        w.u8(FORMAT);
        w.u8(0);
        e.write(&mut w);
        assert_eq!(decode(&w.buf).unwrap(), Entry::Original(e.clone()));
        assert_eq!(e.ts(), 3, "no original yet: the earliest edit's time");
        assert_eq!(e.docs().collect::<Vec<_>>(), [9]);
        assert!(decode(&[9, 0]).is_err());
        assert!(decode(&[FORMAT, 0, 1]).is_err());
    }
}
