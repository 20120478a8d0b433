//! An immutable segment of the inverted index: for a contiguous range of document numbers,
//! the sorted term dictionary with each term's postings (document, term frequency and
//! positions, delta-encoded), each document's attributes (room, sender, time, length) for
//! filters and BM25, and a map from event-id hashes to documents for edits and redactions.
//! Segments are built from the write-ahead log, merged LSM-style, and never changed in place.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use crate::encoding::{Corrupt, Reader, Writer};
use crate::text;

/// The document an event map entry names when the event was redacted: it stays in the map,
/// so that a later edit of the event does not bring its text back.
pub const REDACTED: u32 = u32::MAX;

const FORMAT: u8 = 1;

/// What filters and scoring need of one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Attr {
    /// Whether the document is still in this segment (not dropped as dead by a merge).
    pub present: bool,
    /// Index into [`Segment::strings`].
    pub sender: u32,
    /// Index into [`Segment::strings`].
    pub room: u32,
    pub ts: u64,
    /// Its length in tokens.
    pub len: u32,
}

/// One document as it goes into a segment.
#[derive(Debug, Clone, Copy)]
pub struct DocInput<'a> {
    pub doc: u32,
    pub event_hash: u64,
    pub room: &'a str,
    pub sender: &'a str,
    pub ts: u64,
    pub text: &'a str,
}

/// A segment, decoded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Segment {
    /// Its first document number; it holds `attrs.len()` numbers from there.
    pub lo: u32,
    pub attrs: Vec<Attr>,
    /// Room and user ids, interned.
    pub strings: Vec<String>,
    terms: Vec<u8>,
    term_ends: Vec<u32>,
    post: Vec<u8>,
    post_ends: Vec<u32>,
    /// `(hash of event id, document or REDACTED)`, sorted.
    pub events: Vec<(u64, u32)>,
}

/// One document of a term's postings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Posting<'a> {
    pub doc: u32,
    pub tf: u32,
    positions: &'a [u8],
}

impl Posting<'_> {
    /// Where the term stands in the document, in token positions, ascending.
    pub fn positions(&self) -> impl Iterator<Item = u32> + '_ {
        let mut r = Reader::new(self.positions);
        let mut at = 0u32;
        std::iter::from_fn(move || {
            if r.is_empty() {
                return None;
            }
            at = at.checked_add(r.u32v().ok()?)?;
            Some(at)
        })
    }
}

/// A term's postings, decoded as they are read. Bytes that do not decode end the list.
#[derive(Debug, Clone)]
pub struct Postings<'a> {
    r: Reader<'a>,
    left: u32,
    prev: u32,
}

impl<'a> Iterator for Postings<'a> {
    type Item = Posting<'a>;

    fn next(&mut self) -> Option<Posting<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let mut step = || -> Result<Posting<'a>, Corrupt> {
            let delta = self.r.u32v()?;
            let doc = self
                .prev
                .checked_add(delta)
                .ok_or(Corrupt("doc overflow"))?;
            let tf = self.r.u32v()?;
            let positions = self.r.bytes()?;
            Ok(Posting { doc, tf, positions })
        };
        match step() {
            Ok(p) => {
                self.prev = p.doc;
                Some(p)
            }
            Err(_) => {
                self.left = 0;
                None
            }
        }
    }
}

/// The postings of one term being written: documents in ascending order.
struct PostingsWriter {
    lo: u32,
    prev: u32,
    df: u32,
    body: Writer,
}

impl PostingsWriter {
    fn new(lo: u32) -> PostingsWriter {
        PostingsWriter {
            lo,
            prev: lo,
            df: 0,
            body: Writer::new(),
        }
    }

    fn push(&mut self, doc: u32, tf: u32, positions: &[u8]) {
        let base = if self.df == 0 { self.lo } else { self.prev };
        self.body.varint(u64::from(doc - base));
        self.body.varint(u64::from(tf));
        self.body.bytes(positions);
        self.prev = doc;
        self.df += 1;
    }

    fn finish(self, out: &mut Vec<u8>) {
        let mut w = Writer { buf: Vec::new() };
        w.varint(u64::from(self.df));
        out.extend_from_slice(&w.buf);
        out.extend_from_slice(&self.body.buf);
    }
}

/// Interns strings into a segment's table.
#[derive(Default)]
struct Strings {
    list: Vec<String>,
    index: HashMap<String, u32>,
}

impl Strings {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(i) = self.index.get(s) {
            return *i;
        }
        let i = self.list.len() as u32;
        self.list.push(s.to_string());
        self.index.insert(s.to_string(), i);
        i
    }
}

impl Segment {
    /// A segment of the numbers `lo .. lo + span` holding `docs` (ascending, within the
    /// range) and the redaction `markers` (hashes of redacted event ids).
    pub fn build(lo: u32, span: u32, docs: &[DocInput<'_>], markers: &[u64]) -> Segment {
        let mut strings = Strings::default();
        let mut attrs = vec![Attr::default(); span as usize];
        let mut postings: BTreeMap<Cow<'_, str>, Vec<(u32, Vec<u32>)>> = BTreeMap::new();
        let mut events = Vec::with_capacity(docs.len() + markers.len());
        for d in docs {
            let Some(slot) = d
                .doc
                .checked_sub(lo)
                .and_then(|i| attrs.get_mut(i as usize))
            else {
                continue;
            };
            let mut len = 0u32;
            for (pos, tok) in text::tokens(d.text).enumerate() {
                let list = postings.entry(tok.term).or_default();
                match list.last_mut() {
                    Some((doc, positions)) if *doc == d.doc => positions.push(pos as u32),
                    _ => list.push((d.doc, vec![pos as u32])),
                }
                len += 1;
            }
            *slot = Attr {
                present: true,
                sender: strings.id(d.sender),
                room: strings.id(d.room),
                ts: d.ts,
                len,
            };
            events.push((d.event_hash, d.doc));
        }
        events.extend(markers.iter().map(|h| (*h, REDACTED)));
        events.sort_unstable();
        let mut seg = Segment {
            lo,
            attrs,
            strings: strings.list,
            events,
            ..Segment::default()
        };
        let mut positions = Writer::new();
        for (term, list) in postings {
            let mut pw = PostingsWriter::new(lo);
            for (doc, pos) in list {
                positions.buf.clear();
                let mut prev = 0;
                for p in &pos {
                    positions.varint(u64::from(p - prev));
                    prev = *p;
                }
                pw.push(doc, pos.len() as u32, &positions.buf);
            }
            seg.push_term(term.as_bytes(), pw);
        }
        seg
    }

    fn push_term(&mut self, term: &[u8], pw: PostingsWriter) {
        self.terms.extend_from_slice(term);
        self.term_ends.push(self.terms.len() as u32);
        pw.finish(&mut self.post);
        self.post_ends.push(self.post.len() as u32);
    }

    /// How many document numbers it spans.
    pub fn span(&self) -> u32 {
        self.attrs.len() as u32
    }

    /// One past its last document number.
    pub fn hi(&self) -> u32 {
        self.lo + self.span()
    }

    /// Documents still in it.
    pub fn live_docs(&self) -> usize {
        self.attrs.iter().filter(|a| a.present).count()
    }

    /// Roughly the memory it takes.
    pub fn weight(&self) -> usize {
        self.terms.len()
            + self.post.len()
            + 8 * self.term_ends.len()
            + 24 * self.attrs.len()
            + 12 * self.events.len()
            + self.strings.iter().map(|s| s.len() + 24).sum::<usize>()
    }

    pub fn term_count(&self) -> usize {
        self.term_ends.len()
    }

    fn term_at(&self, i: usize) -> &[u8] {
        let start = if i == 0 {
            0
        } else {
            self.term_ends[i - 1] as usize
        };
        &self.terms[start..self.term_ends[i] as usize]
    }

    fn postings_at(&self, i: usize) -> &[u8] {
        let start = if i == 0 {
            0
        } else {
            self.post_ends[i - 1] as usize
        };
        &self.post[start..self.post_ends[i] as usize]
    }

    fn find(&self, term: &str) -> Option<usize> {
        let (mut a, mut b) = (0, self.term_ends.len());
        while a < b {
            let mid = (a + b) / 2;
            match self.term_at(mid).cmp(term.as_bytes()) {
                std::cmp::Ordering::Less => a = mid + 1,
                std::cmp::Ordering::Greater => b = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    /// The postings of `term` (documents ascending), if it occurs here.
    pub fn postings(&self, term: &str) -> Option<Postings<'_>> {
        self.find(term)
            .map(|i| self.postings_from(self.postings_at(i)))
    }

    fn postings_from<'a>(&self, bytes: &'a [u8]) -> Postings<'a> {
        let mut r = Reader::new(bytes);
        let left = r.u32v().unwrap_or(0);
        Postings {
            r,
            left,
            prev: self.lo,
        }
    }

    /// In how many of its documents `term` occurs.
    pub fn df(&self, term: &str) -> u32 {
        self.postings(term).map_or(0, |p| p.left)
    }

    /// The attributes of document `doc`, if it is one of this segment's and still here.
    pub fn attr(&self, doc: u32) -> Option<&Attr> {
        let a = self.attrs.get(doc.checked_sub(self.lo)? as usize)?;
        a.present.then_some(a)
    }

    /// The documents (or [`REDACTED`]) the event with this id hash maps to.
    pub fn event_docs(&self, hash: u64) -> impl Iterator<Item = u32> + '_ {
        let start = self.events.partition_point(|(h, _)| *h < hash);
        self.events[start..]
            .iter()
            .take_while(move |(h, _)| *h == hash)
            .map(|(_, d)| *d)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(FORMAT);
        w.varint(u64::from(self.lo));
        w.varint(self.attrs.len() as u64);
        w.varint(self.strings.len() as u64);
        for s in &self.strings {
            w.str(s);
        }
        for a in &self.attrs {
            w.u8(u8::from(a.present));
            if a.present {
                w.varint(u64::from(a.sender));
                w.varint(u64::from(a.room));
                w.varint(u64::from(a.len));
                w.varint(a.ts);
            }
        }
        w.varint(self.term_ends.len() as u64);
        for i in 0..self.term_ends.len() {
            w.bytes(self.term_at(i));
            w.bytes(self.postings_at(i));
        }
        w.varint(self.events.len() as u64);
        for (h, d) in &self.events {
            w.u64(*h);
            w.varint(u64::from(*d));
        }
        w.into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Segment, Corrupt> {
        let mut r = Reader::new(bytes);
        if r.u8()? != FORMAT {
            return Err(Corrupt("unknown segment format"));
        }
        let lo = r.u32v()?;
        let span = r.count()?;
        let n_strings = r.count()?;
        let mut strings = Vec::with_capacity(n_strings);
        for _ in 0..n_strings {
            strings.push(r.str()?.to_string());
        }
        let mut attrs = Vec::with_capacity(span);
        for _ in 0..span {
            let present = r.u8()? == 1;
            let mut a = Attr {
                present,
                ..Attr::default()
            };
            if present {
                a.sender = r.u32v()?;
                a.room = r.u32v()?;
                a.len = r.u32v()?;
                a.ts = r.varint()?;
                if a.sender as usize >= strings.len() || a.room as usize >= strings.len() {
                    return Err(Corrupt("string index out of range"));
                }
            }
            attrs.push(a);
        }
        let n_terms = r.count()?;
        let mut seg = Segment {
            lo,
            attrs,
            strings,
            ..Segment::default()
        };
        seg.term_ends.reserve(n_terms);
        seg.post_ends.reserve(n_terms);
        for _ in 0..n_terms {
            let term = r.bytes()?;
            let post = r.bytes()?;
            seg.terms.extend_from_slice(term);
            seg.term_ends.push(seg.terms.len() as u32);
            seg.post.extend_from_slice(post);
            seg.post_ends.push(seg.post.len() as u32);
        }
        let n_events = r.count()?;
        seg.events.reserve(n_events);
        for _ in 0..n_events {
            let h = r.u64()?;
            let d = r.u32v()?;
            seg.events.push((h, d));
        }
        Ok(seg)
    }

    /// Adjacent segments (ascending, each starting where the one before ends) merged into one,
    /// without the documents `dead` names; `None` when they are not adjacent.
    pub fn merge(parts: &[&Segment], dead: impl Fn(u32) -> bool) -> Option<Segment> {
        let first = parts.first()?;
        let lo = first.lo;
        let mut hi = lo;
        for p in parts {
            if p.lo != hi {
                return None;
            }
            hi = p.hi();
        }
        let mut strings = Strings::default();
        let mut attrs = Vec::with_capacity((hi - lo) as usize);
        for p in parts {
            let map: Vec<u32> = p.strings.iter().map(|s| strings.id(s)).collect();
            for (i, a) in p.attrs.iter().enumerate() {
                let doc = p.lo + i as u32;
                attrs.push(if a.present && !dead(doc) {
                    Attr {
                        sender: map[a.sender as usize],
                        room: map[a.room as usize],
                        ..*a
                    }
                } else {
                    Attr::default()
                });
            }
        }
        let mut seg = Segment {
            lo,
            attrs,
            strings: strings.list,
            ..Segment::default()
        };
        let mut events: Vec<(u64, u32)> = parts
            .iter()
            .flat_map(|p| p.events.iter().copied())
            .filter(|(_, d)| *d == REDACTED || seg.attr(*d).is_some())
            .collect();
        events.sort_unstable();
        seg.events = events;
        // A k-way merge of the sorted dictionaries.
        let mut cursors = vec![0usize; parts.len()];
        loop {
            let mut least: Option<&[u8]> = None;
            for (p, &c) in parts.iter().zip(&cursors) {
                if c < p.term_count() {
                    let t = p.term_at(c);
                    if least.is_none_or(|l| t < l) {
                        least = Some(t);
                    }
                }
            }
            let Some(term) = least else { break };
            let term = term.to_vec();
            let mut pw = PostingsWriter::new(lo);
            for (p, c) in parts.iter().zip(cursors.iter_mut()) {
                if *c < p.term_count() && p.term_at(*c) == term.as_slice() {
                    for posting in p.postings_from(p.postings_at(*c)) {
                        if seg.attr(posting.doc).is_some() {
                            pw.push(posting.doc, posting.tf, posting.positions);
                        }
                    }
                    *c += 1;
                }
            }
            if pw.df > 0 {
                seg.push_term(&term, pw);
            }
        }
        Some(seg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc<'a>(doc: u32, text: &'a str) -> DocInput<'a> {
        DocInput {
            doc,
            event_hash: u64::from(doc) * 1000,
            room: "!r:test",
            sender: if doc.is_multiple_of(2) {
                "@a:test"
            } else {
                "@b:test"
            },
            ts: 1000 + u64::from(doc),
            text,
        }
    }

    fn docs_of(seg: &Segment, term: &str) -> Vec<u32> {
        seg.postings(term)
            .map(|p| p.map(|p| p.doc).collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_built_segment_answers_terms_positions_and_attributes() {
        let seg = Segment::build(
            10,
            4,
            &[
                doc(10, "the cat sat"),
                doc(11, "The dog"),
                doc(13, "cat and cat"),
            ],
            &[77],
        );
        assert_eq!(docs_of(&seg, "cat"), [10, 13]);
        assert_eq!(docs_of(&seg, "the"), [10, 11]);
        assert_eq!(seg.df("cat"), 2);
        assert_eq!(seg.df("bird"), 0);
        let p: Vec<_> = seg.postings("cat").unwrap().collect();
        assert_eq!(p[1].tf, 2);
        assert_eq!(p[1].positions().collect::<Vec<_>>(), [0, 2]);
        assert_eq!(seg.attr(11).unwrap().len, 2);
        assert_eq!(
            seg.strings[seg.attr(11).unwrap().sender as usize],
            "@b:test"
        );
        assert!(seg.attr(12).is_none() && seg.attr(14).is_none() && seg.attr(9).is_none());
        assert_eq!(seg.event_docs(11_000).collect::<Vec<_>>(), [11]);
        assert_eq!(seg.event_docs(77).collect::<Vec<_>>(), [REDACTED]);
        assert_eq!(Segment::decode(&seg.encode()).unwrap(), seg);
    }

    #[test]
    fn merging_keeps_order_and_drops_dead_documents() {
        let a = Segment::build(0, 2, &[doc(0, "alpha beta"), doc(1, "beta")], &[]);
        let b = Segment::build(2, 2, &[doc(2, "alpha"), doc(3, "gamma beta")], &[5]);
        let m = Segment::merge(&[&a, &b], |d| d == 1).unwrap();
        assert_eq!((m.lo, m.span()), (0, 4));
        assert_eq!(docs_of(&m, "beta"), [0, 3]);
        assert_eq!(docs_of(&m, "alpha"), [0, 2]);
        assert!(m.attr(1).is_none());
        assert_eq!(m.live_docs(), 3);
        assert_eq!(
            m.event_docs(1000).count(),
            0,
            "the dead document left the map"
        );
        assert_eq!(m.event_docs(5).collect::<Vec<_>>(), [REDACTED]);
        let gone = Segment::merge(&[&a], |d| d == 1).unwrap();
        assert_eq!(docs_of(&gone, "beta"), [0]);
        assert!(
            Segment::merge(&[&b, &a], |_| false).is_none(),
            "not adjacent"
        );
    }

    #[test]
    fn corrupt_bytes_do_not_decode() {
        let seg = Segment::build(0, 1, &[doc(0, "x y z")], &[]);
        let bytes = seg.encode();
        for cut in 0..bytes.len() {
            assert!(Segment::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(Segment::decode(&[9]).is_err());
    }
}
