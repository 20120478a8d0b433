//! The index as the handlers use it: adding, replacing (edits) and removing (redactions)
//! documents, flushing the write-ahead log into segments, merging segments, and searching.
//! An edited message's versions are remembered ([`edits`](crate::edits)) so that redacting
//! an edit shows the version before it; a redaction or an edit that comes before its event
//! leaves the event awaited in the catalog ([`Awaited`]).
//!
//! Layout in the store (an LSM tree): `head` (counters, rewritten per message), `wal/*` (the
//! log since the last flush), `meta` (the live segments, the dead documents and the events
//! awaited), `seg/*` (immutable segments), `doc/*` (the stored documents, by blocks of
//! numbers), `edits/*` (edited messages and their edits only). What the plugin keeps in
//! memory (the log, the catalog, decoded segments, document blocks) is checked against
//! `head`'s versions at the start of every operation and read again when a failed call or
//! another instance changed the store meanwhile.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::rc::Rc;

use plugboard_sdk::{log, timers, Error};

use crate::blob;
use crate::catalog::{Awaited, Head, Meta, SegInfo};
use crate::docs::{self, StoredDoc, BLOCK};
use crate::edits::{self, Edits, Entry, Inserted, Version};
use crate::encoding::{hash, hash_bytes, Corrupt};
use crate::query::Query;
use crate::search::{self, Reach, Scored, Stats};
use crate::segment::{DocInput, Segment, REDACTED};
use crate::text;
use crate::wal::{Record, Wal, MAX_RECORDS};

/// Memory given to decoded segments; past it they are read from the store per search.
pub const SEGMENT_CACHE_BYTES: usize = 96 << 20;
/// Document blocks kept decoded.
const BLOCK_CACHE: usize = 256;
/// Segments merged at once, all of one size tier.
pub const MERGE_FAN: usize = 8;
/// Spans below this are tier 0; each tier above is `MERGE_FAN` times larger.
const TIER_BASE: u32 = BLOCK * MERGE_FAN as u32;
/// Segments of a higher tier (131,072 documents and more) are not merged again: one merge
/// stays well inside a call's deadline.
const MAX_MERGE_TIER: u32 = 2;
/// Past this many segments a flush merges at once instead of waiting for the timer.
const MAX_SEGMENTS: usize = 48;
/// The timer that merges segments in the background.
pub const COMPACT_TIMER: &str = "compact";
/// What an in-memory copy's version is set to while it is being changed: a failure half way
/// leaves it matching no head.
const CHANGING: u64 = u64::MAX;

/// A document to add.
#[derive(Debug, Clone)]
pub struct NewDoc<'a> {
    pub event_id: &'a str,
    pub room: &'a str,
    pub sender: &'a str,
    pub ts: u64,
    pub text: &'a str,
    /// The id of the event that brings it (the message, or the edit).
    pub source: &'a str,
}

/// What an edit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edited {
    /// The original's text was replaced.
    Replaced,
    /// Older than the edit shown: remembered (when among the newest kept), the text stays.
    Older,
    /// The original is not indexed (yet); the new text is, under the original's id.
    Alone,
    /// The original or the edit itself was redacted: nothing to show.
    Redacted,
    /// Someone else's message, or another room's: not an edit anyone may make.
    Refused,
    /// The event it edits is an edit itself, which the spec says cannot be edited.
    OfAnEdit,
    /// Done already (the transaction came again).
    Duplicate,
}

/// What says which of a list of event ids the searcher may see: the host's `visible-events`.
pub type Visible<'a> = dyn FnMut(&[String]) -> Result<Vec<String>, Error> + 'a;

/// A live document of an event, where it is.
#[derive(Debug, Clone)]
struct Live {
    doc: u32,
    room: String,
    sender: String,
    ts: u64,
    len: u64,
}

/// A hit, with its stored document.
#[derive(Debug, Clone)]
pub struct Hit {
    pub doc: StoredDoc,
    pub score: f64,
}

/// The best hits and how many matched.
#[derive(Debug, Clone)]
pub struct Results {
    pub hits: Vec<Hit>,
    pub total: usize,
    /// `total` counts every match the searcher may see; false when matches in rooms whose
    /// history is partly hidden from them were past the ones checked ([`search::MAX_UNSURE`]):
    /// then it counts those checked and seen only.
    pub exact: bool,
}

/// Counts for `!index` and `/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub docs: u64,
    pub in_log: u32,
    pub segments: usize,
    pub dead: usize,
}

/// The plugin's view of the index; see the module docs.
#[derive(Default)]
pub struct Index {
    wal: Wal,
    meta: Meta,
    meta_version: u64,
    loaded: bool,
    segments: HashMap<String, Rc<Segment>>,
    cached: usize,
    wal_segment: Option<(u64, Rc<Segment>)>,
    blocks: HashMap<u32, Rc<Vec<StoredDoc>>>,
}

/// The size tier of a segment.
fn tier(span: u32) -> u32 {
    let mut t = 0;
    let mut cap = TIER_BASE;
    while span >= cap && t <= MAX_MERGE_TIER {
        t += 1;
        cap = cap.saturating_mul(MERGE_FAN as u32);
    }
    t
}

/// The next merge due: `MERGE_FAN` adjacent segments of one tier that still merges.
fn plan(meta: &Meta) -> Option<Range<usize>> {
    let segs = &meta.segments;
    let mut i = 0;
    while i < segs.len() {
        let t = tier(segs[i].span);
        let mut j = i + 1;
        while j < segs.len()
            && tier(segs[j].span) == t
            && segs[j].lo == segs[j - 1].lo + segs[j - 1].span
        {
            j += 1;
        }
        if t <= MAX_MERGE_TIER && j - i >= MERGE_FAN {
            return Some(i..i + MERGE_FAN);
        }
        i = j;
    }
    None
}

fn seg_key(name: &str) -> String {
    format!("seg/{name}")
}

impl Index {
    /// Reads the head and brings the in-memory copies in line with it.
    fn begin(&mut self) -> Result<Head, Error> {
        let head = Head::load()?;
        if !self.loaded || self.wal.version != head.version {
            self.wal = Wal::load(&head)?;
            self.wal_segment = None;
            // A log that is not what this instance wrote means a call failed or another
            // instance ran: what it has of partly written blocks may be stale too.
            self.blocks.clear();
        }
        if !self.loaded || self.meta_version != head.meta_version {
            self.meta = Meta::load()?;
            self.meta_version = head.meta_version;
            let meta = &self.meta;
            self.segments
                .retain(|name, _| meta.segments.iter().any(|s| &s.name == name));
            self.cached = self.segments.values().map(|s| s.weight()).sum();
        }
        self.loaded = true;
        Ok(head)
    }

    /// Marks the in-memory log and catalog as being changed.
    fn changing(&mut self) {
        self.wal.version = CHANGING;
        self.meta_version = CHANGING;
    }

    /// Stores the head; the in-memory copies are now what it describes.
    fn commit(&mut self, head: &mut Head) -> Result<(), Error> {
        head.save()?;
        self.wal.version = head.version;
        self.meta_version = head.meta_version;
        Ok(())
    }

    fn segment(&mut self, info: &SegInfo) -> Result<Rc<Segment>, Error> {
        if let Some(s) = self.segments.get(&info.name) {
            return Ok(s.clone());
        }
        let bytes = blob::get(&seg_key(&info.name))?.ok_or(Corrupt("a segment is missing"))?;
        let seg = Rc::new(Segment::decode(&bytes)?);
        self.cache(&info.name, &seg);
        Ok(seg)
    }

    fn cache(&mut self, name: &str, seg: &Rc<Segment>) {
        let w = seg.weight();
        if self.cached + w <= SEGMENT_CACHE_BYTES {
            self.cached += w;
            self.segments.insert(name.to_string(), seg.clone());
        }
    }

    /// Every live segment, oldest first.
    fn all_segments(&mut self) -> Result<Vec<Rc<Segment>>, Error> {
        let infos = self.meta.segments.clone();
        infos.iter().map(|i| self.segment(i)).collect()
    }

    /// Stores a new segment and answers its catalog entry (not yet in the catalog).
    fn store_segment(&mut self, seg: Segment) -> Result<SegInfo, Error> {
        let bytes = seg.encode();
        let name = format!(
            "{:08x}-{:08x}",
            self.meta.next_seg,
            hash_bytes(&bytes) as u32
        );
        self.meta.next_seg += 1;
        blob::put(&seg_key(&name), &bytes, false)?;
        let info = SegInfo {
            name: name.clone(),
            lo: seg.lo,
            span: seg.span(),
            live: seg.live_docs() as u32,
            bytes: bytes.len() as u64,
        };
        self.cache(&name, &Rc::new(seg));
        Ok(info)
    }

    /// The log as a segment, for searches.
    fn wal_segment(&mut self, head: &Head) -> Rc<Segment> {
        if let Some((v, s)) = &self.wal_segment {
            if *v == head.version {
                return s.clone();
            }
        }
        let inputs: Vec<DocInput<'_>> = self.wal.docs().map(input).collect();
        let markers: Vec<u64> = self.wal.markers().collect();
        let seg = Rc::new(Segment::build(
            head.wal_lo,
            head.next_doc - head.wal_lo,
            &inputs,
            &markers,
        ));
        self.wal_segment = Some((head.version, seg.clone()));
        seg
    }

    fn block(&mut self, block: u32) -> Result<Rc<Vec<StoredDoc>>, Error> {
        if let Some(b) = self.blocks.get(&block) {
            return Ok(b.clone());
        }
        let b = Rc::new(docs::load(block)?);
        if self.blocks.len() >= BLOCK_CACHE {
            self.blocks.clear();
        }
        self.blocks.insert(block, b.clone());
        Ok(b)
    }

    /// The stored document `doc`.
    fn stored(&mut self, head: &Head, doc: u32) -> Result<Option<StoredDoc>, Error> {
        if doc >= head.wal_lo {
            return Ok(self.wal.docs().find(|d| d.doc == doc).cloned());
        }
        let block = self.block(doc / BLOCK)?;
        Ok(block
            .binary_search_by_key(&doc, |d| d.doc)
            .ok()
            .map(|i| block[i].clone()))
    }

    /// The live documents of `event_id`, and whether it was redacted.
    fn find_event(&mut self, event_id: &str) -> Result<(bool, Vec<Live>), Error> {
        let h = hash(event_id);
        let mut redacted = false;
        let mut live = Vec::new();
        for r in &self.wal.records {
            match r {
                Record::Doc { doc, .. }
                    if doc.event_id == event_id && !self.meta.is_dead(doc.doc) =>
                {
                    live.push(Live {
                        doc: doc.doc,
                        room: doc.room.clone(),
                        sender: doc.sender.clone(),
                        ts: doc.ts,
                        len: text::tokens(&doc.text).count() as u64,
                    });
                }
                Record::Redacted(x) if *x == h => redacted = true,
                _ => {}
            }
        }
        for seg in self.all_segments()? {
            for d in seg.event_docs(h) {
                if d == REDACTED {
                    redacted = true;
                } else if let Some(a) = seg.attr(d).filter(|_| !self.meta.is_dead(d)) {
                    live.push(Live {
                        doc: d,
                        room: seg.strings[a.room as usize].clone(),
                        sender: seg.strings[a.sender as usize].clone(),
                        ts: a.ts,
                        len: u64::from(a.len),
                    });
                }
            }
        }
        live.sort_by_key(|l| l.doc);
        Ok((redacted, live))
    }

    /// Appends a document to the log (flushing it when full).
    fn push_doc(&mut self, head: &mut Head, d: &NewDoc<'_>) -> Result<(), Error> {
        let (text, _) = docs::bounded(d.text);
        let len = text::tokens(text).count() as u64;
        let doc = StoredDoc {
            doc: head.next_doc,
            event_id: d.event_id.to_string(),
            room: d.room.to_string(),
            sender: d.sender.to_string(),
            ts: d.ts,
            text: text.to_string(),
        };
        head.next_doc = head
            .next_doc
            .checked_add(1)
            .ok_or_else(|| Error::unknown("the index is full (2^32 documents)"))?;
        self.wal.push(Record::Doc {
            doc,
            source: hash(d.source),
        })?;
        head.wal_len += 1;
        head.alive += 1;
        head.total_len += len;
        self.flush_if_due(head)
    }

    fn flush_if_due(&mut self, head: &mut Head) -> Result<(), Error> {
        if head.next_doc.is_multiple_of(BLOCK) || head.wal_len as usize >= MAX_RECORDS {
            self.flush(head)?;
        }
        Ok(())
    }

    /// Indexes a message; `false` when it was indexed already (a transaction came again) or
    /// redacted before it came.
    pub fn add(&mut self, d: &NewDoc<'_>) -> Result<bool, Error> {
        let mut head = self.begin()?;
        if self.wal.has_source(hash(d.source)) {
            return Ok(false);
        }
        if let Some(why) = self.meta.awaited(d.room, d.event_id) {
            return self.add_awaited(&mut head, d, why);
        }
        self.changing();
        self.push_doc(&mut head, d)?;
        self.commit(&mut head)?;
        Ok(true)
    }

    /// [`add`](Self::add) for a message whose redaction or edits came first.
    fn add_awaited(
        &mut self,
        head: &mut Head,
        d: &NewDoc<'_>,
        why: Awaited,
    ) -> Result<bool, Error> {
        let (redacted, live) = self.find_event(d.event_id)?;
        if redacted {
            return Ok(false);
        }
        if why == Awaited::Redacted {
            // Its redaction came first, naming an event not seen then; seen in the
            // redaction's room now, it gets the ordinary marker, which keeps out the edits
            // still to come for as long as the index lasts.
            self.changing();
            self.push_marker(head, d.event_id)?;
            self.commit(head)?;
            return Ok(false);
        }
        let mut edits = match edits::load(d.event_id)? {
            Some(Entry::Original(e)) if e.original.is_none() => e,
            // Here already, or indexed without edits since.
            Some(_) => return Ok(false),
            None if !live.is_empty() => return Ok(false),
            None => {
                self.changing();
                self.push_doc(head, d)?;
                self.commit(head)?;
                return Ok(true);
            }
        };
        self.changing();
        if edits.room != d.room || edits.sender != d.sender {
            // The edits were someone else's: they never counted.
            edits::forget(d.event_id, &edits)?;
            self.kill(head, &live)?;
            self.push_doc(head, d)?;
        } else {
            let (text, _) = docs::bounded(d.text);
            edits.original = Some(Version {
                id: d.event_id.to_string(),
                ts: d.ts,
                text: text.to_string(),
                doc: None,
            });
            // Indexed again: a hit shows the original's time now.
            self.show(head, d.event_id, &mut edits, &live, d.source)?;
            edits::save(d.event_id, &edits)?;
        }
        self.commit(head)?;
        Ok(true)
    }

    /// Notes the edit `d.source` of `d.event_id` (the original), sent by `d.sender` in
    /// `d.room` with the text `d.text`, and shows its text if it is the newest.
    pub fn edit(&mut self, d: &NewDoc<'_>) -> Result<Edited, Error> {
        let mut head = self.begin()?;
        if self.wal.has_source(hash(d.source)) {
            return Ok(Edited::Duplicate);
        }
        if self.meta.awaited(d.room, d.source) == Some(Awaited::Redacted)
            || self.find_event(d.source)?.0
        {
            return Ok(Edited::Redacted);
        }
        let (redacted, live) = self.find_event(d.event_id)?;
        if redacted || self.meta.awaited(d.room, d.event_id) == Some(Awaited::Redacted) {
            return Ok(Edited::Redacted);
        }
        let mut awaits = false;
        let mut edits = match edits::load(d.event_id)? {
            Some(Entry::Original(e)) => e,
            Some(Entry::EditOf(_)) => return Ok(Edited::OfAnEdit),
            // The first edit: what is indexed is the original's own text.
            None => match live.last() {
                Some(l) => {
                    let text = self.stored(&head, l.doc)?.map(|s| s.text);
                    Edits {
                        room: l.room.clone(),
                        sender: l.sender.clone(),
                        original: Some(Version {
                            id: d.event_id.to_string(),
                            ts: l.ts,
                            text: text.unwrap_or_default(),
                            doc: Some(l.doc),
                        }),
                        edits: Vec::new(),
                    }
                }
                None => {
                    awaits = true;
                    Edits {
                        room: d.room.to_string(),
                        sender: d.sender.to_string(),
                        original: None,
                        edits: Vec::new(),
                    }
                }
            },
        };
        if edits.room != d.room || edits.sender != d.sender {
            return Ok(Edited::Refused);
        }
        let (text, _) = docs::bounded(d.text);
        let version = Version {
            id: d.source.to_string(),
            ts: d.ts,
            text: text.to_string(),
            doc: None,
        };
        let (newest, evicted) = match edits.insert(version) {
            Inserted::Duplicate => return Ok(Edited::Duplicate),
            Inserted::Dropped => return Ok(Edited::Older),
            Inserted::Kept { newest, evicted } => (newest, evicted),
        };
        self.changing();
        if awaits {
            // Saved with the catalog by `show` below: this edit is the newest so far.
            self.meta.wait_for(d.room, d.event_id, Awaited::Edited);
        }
        if newest {
            self.show(&mut head, d.event_id, &mut edits, &live, d.source)?;
        }
        edits::save(d.event_id, &edits)?;
        edits::point(d.source, d.event_id)?;
        if let Some(old) = evicted {
            // Never shown again, and no longer listed for a redaction of the message to
            // find: its text, in a dead document if it was ever shown, goes now.
            if let Some(doc) = old.doc {
                self.erase(&head, doc)?;
            }
            edits::remove(&old.id)?;
        }
        self.commit(&mut head)?;
        Ok(match (newest, edits.original.is_some()) {
            (false, _) => Edited::Older,
            (true, true) => Edited::Replaced,
            (true, false) => Edited::Alone,
        })
    }

    /// Kills the documents `live` (the catalog is saved).
    fn kill(&mut self, head: &mut Head, live: &[Live]) -> Result<(), Error> {
        for l in live {
            self.meta.mark_dead(l.doc);
            head.alive = head.alive.saturating_sub(1);
            head.total_len = head.total_len.saturating_sub(l.len);
        }
        self.meta.save(head)
    }

    /// Replaces the documents `live` of `original` with one of the text `edits` shows now,
    /// if any is left, brought by the event `source`.
    fn show(
        &mut self,
        head: &mut Head,
        original: &str,
        edits: &mut Edits,
        live: &[Live],
        source: &str,
    ) -> Result<(), Error> {
        self.kill(head, live)?;
        let Some(text) = edits.shown().map(|v| v.text.clone()) else {
            return Ok(());
        };
        // The text's earlier copy (in a dead document, from when it was shown before) goes:
        // a version is in one document at most, which a redaction of it then erases.
        if let Some(old) = edits.shown_in(head.next_doc) {
            self.erase(head, old)?;
        }
        self.push_doc(
            head,
            &NewDoc {
                event_id: original,
                room: &edits.room,
                sender: &edits.sender,
                ts: edits.ts(),
                text: &text,
                source,
            },
        )
    }

    /// Appends the marker that `event_id` was redacted.
    fn push_marker(&mut self, head: &mut Head, event_id: &str) -> Result<(), Error> {
        self.wal.push(Record::Redacted(hash(event_id)))?;
        head.wal_len += 1;
        self.flush_if_due(head)
    }

    /// Handles the redaction `source` of `event_id` in `room`. A message leaves the index with
    /// its edits and its stored texts; an edit leaves its message showing the version before
    /// it; an event not seen is awaited, kept out when it comes. `false` when nothing
    /// indexed changed.
    pub fn redact(&mut self, event_id: &str, room: &str, source: &str) -> Result<bool, Error> {
        let mut head = self.begin()?;
        let edits = match edits::load(event_id)? {
            Some(Entry::EditOf(original)) => {
                return self.redact_edit(&mut head, &original, event_id, room, source)
            }
            Some(Entry::Original(e)) if e.room == room => Some(e),
            _ => None,
        };
        let (redacted, live) = self.find_event(event_id)?;
        let live: Vec<Live> = live.into_iter().filter(|l| l.room == room).collect();
        if live.is_empty() && edits.is_none() {
            if redacted || self.meta.awaited(room, event_id) == Some(Awaited::Redacted) {
                return Ok(false);
            }
            self.changing();
            self.meta.wait_for(room, event_id, Awaited::Redacted);
            self.meta.save(&mut head)?;
            self.commit(&mut head)?;
            return Ok(false);
        }
        self.changing();
        self.kill(&mut head, &live)?;
        let mut erase: Vec<u32> = live.iter().map(|l| l.doc).collect();
        if let Some(e) = &edits {
            // The texts it showed before its latest are in dead documents still.
            erase.extend(e.docs());
            edits::forget(event_id, e)?;
        }
        erase.sort_unstable();
        erase.dedup();
        for doc in erase {
            self.erase(&head, doc)?;
        }
        self.push_marker(&mut head, event_id)?;
        self.commit(&mut head)?;
        Ok(true)
    }

    /// [`redact`](Self::redact) of the edit `edit` of `original`.
    fn redact_edit(
        &mut self,
        head: &mut Head,
        original: &str,
        edit: &str,
        room: &str,
        source: &str,
    ) -> Result<bool, Error> {
        let mut edits = match edits::load(original)? {
            Some(Entry::Original(e)) if e.room != room => return Ok(false),
            Some(Entry::Original(e)) => e,
            _ => return stray(edit, original),
        };
        let Some((gone, shown)) = edits.take(edit) else {
            return stray(edit, original);
        };
        self.changing();
        if let Some(doc) = gone.doc {
            self.erase(head, doc)?;
        }
        if shown {
            let (_, live) = self.find_event(original)?;
            self.show(head, original, &mut edits, &live, source)?;
        }
        edits::remove(edit)?;
        if edits.shown().is_some() {
            edits::save(original, &edits)?;
        } else {
            edits::remove(original)?;
        }
        // Should the edit come again (a replay), it stays out.
        self.push_marker(head, edit)?;
        self.commit(head)?;
        Ok(true)
    }

    /// Erases the stored text of a redacted document.
    fn erase(&mut self, head: &Head, doc: u32) -> Result<(), Error> {
        if doc >= head.wal_lo {
            if let Some(i) = self.wal.position_of(doc) {
                if let Record::Doc { doc, .. } = &mut self.wal.records[i] {
                    doc.text.clear();
                }
                self.wal.save_chunk_of(i)?;
            }
            return Ok(());
        }
        let block = doc / BLOCK;
        let mut stored = (*self.block(block)?).clone();
        if let Ok(i) = stored.binary_search_by_key(&doc, |d| d.doc) {
            stored[i].text.clear();
            docs::save(block, &stored, true)?;
            self.blocks.insert(block, Rc::new(stored));
        }
        Ok(())
    }

    /// Turns the log into a segment and its documents into stored blocks.
    fn flush(&mut self, head: &mut Head) -> Result<(), Error> {
        let (lo, hi) = (head.wal_lo, head.next_doc);
        let live: Vec<StoredDoc> = self
            .wal
            .docs()
            .filter(|d| !self.meta.is_dead(d.doc))
            .cloned()
            .collect();
        let markers: Vec<u64> = self.wal.markers().collect();
        if hi > lo || !markers.is_empty() {
            let inputs: Vec<DocInput<'_>> = live.iter().map(input).collect();
            let seg = Segment::build(lo, hi - lo, &inputs, &markers);
            let info = self.store_segment(seg)?;
            self.meta.segments.push(info);
        }
        // Dead documents of the log were left out: nothing is left to drop.
        self.meta.dead.retain(|d| !(lo..hi).contains(d));
        let mut by_block: Vec<(u32, Vec<StoredDoc>)> = Vec::new();
        for d in live {
            let b = d.doc / BLOCK;
            match by_block.last_mut() {
                Some((lb, list)) if *lb == b => list.push(d),
                _ => by_block.push((b, vec![d])),
            }
        }
        for (b, list) in by_block {
            let partial = b * BLOCK < lo;
            let mut all = if partial {
                (*self.block(b)?).clone()
            } else {
                Vec::new()
            };
            all.extend(list);
            docs::save(b, &all, partial)?;
            self.blocks.insert(b, Rc::new(all));
        }
        self.wal.clear()?;
        head.wal_len = 0;
        head.wal_lo = hi;
        self.meta.save(head)?;
        if plan(&self.meta).is_some() {
            if self.meta.segments.len() > MAX_SEGMENTS {
                while self.meta.segments.len() > MAX_SEGMENTS && self.merge_once(head)? {}
            } else {
                timers::set_timer(COMPACT_TIMER, 0, "")?;
            }
        }
        Ok(())
    }

    /// Does the next merge due, if any.
    fn merge_once(&mut self, head: &mut Head) -> Result<bool, Error> {
        let Some(range) = plan(&self.meta) else {
            return Ok(false);
        };
        let infos: Vec<SegInfo> = self.meta.segments[range.clone()].to_vec();
        let parts: Vec<Rc<Segment>> = infos
            .iter()
            .map(|i| self.segment(i))
            .collect::<Result<_, _>>()?;
        let refs: Vec<&Segment> = parts.iter().map(Rc::as_ref).collect();
        let meta = &self.meta;
        let Some(merged) = Segment::merge(&refs, |d| meta.is_dead(d)) else {
            return Err(Corrupt("segments planned for a merge are not adjacent").into());
        };
        let (lo, hi) = (merged.lo, merged.hi());
        drop(parts);
        let info = self.store_segment(merged)?;
        self.meta.segments.splice(range, [info]);
        self.meta.dead.retain(|d| !(lo..hi).contains(d));
        for old in &infos {
            blob::delete(&seg_key(&old.name))?;
            if let Some(s) = self.segments.remove(&old.name) {
                self.cached = self.cached.saturating_sub(s.weight());
            }
        }
        self.meta.save(head)?;
        Ok(true)
    }

    /// One background merge; answers whether another is due.
    pub fn compact(&mut self) -> Result<bool, Error> {
        let mut head = self.begin()?;
        self.changing();
        let merged = self.merge_once(&mut head)?;
        if merged {
            self.commit(&mut head)?;
        } else {
            self.meta_version = head.meta_version;
            self.wal.version = head.version;
        }
        Ok(plan(&self.meta).is_some())
    }

    /// The best `limit` matches of `q` in `rooms`, each with how far the searcher reaches
    /// into it. Matches in a [`Reach::Checked`] room are shown and counted only when
    /// `visible`, handed their event ids in one list, answers them (the host's
    /// `visible-events` for the searcher).
    pub fn search(
        &mut self,
        q: &Query,
        rooms: &[(String, Reach)],
        limit: usize,
        visible: &mut Visible<'_>,
    ) -> Result<Results, Error> {
        let head = self.begin()?;
        let mut segments = self.all_segments()?;
        if head.wal_len > 0 {
            segments.push(self.wal_segment(&head));
        }
        let rooms: HashMap<&str, Reach> = rooms.iter().map(|(r, t)| (r.as_str(), *t)).collect();
        let stats = Stats {
            docs: head.alive,
            tokens: head.total_len,
        };
        let meta = &self.meta;
        let found = search::run(&segments, &|d| meta.is_dead(d), stats, q, &rooms, limit);
        let exact = found.unsure_total <= found.unsure.len();
        // Their event ids, read in document order: each block of stored documents once.
        let mut in_order: Vec<Scored> = found.unsure;
        in_order.sort_by_key(|s| s.doc);
        let mut unsure = Vec::with_capacity(in_order.len());
        for s in in_order {
            if let Some(doc) = self.stored(&head, s.doc)? {
                unsure.push((s, doc));
            }
        }
        let mut total = found.total;
        let mut ranked: Vec<(Scored, Option<StoredDoc>)> =
            found.hits.into_iter().map(|s| (s, None)).collect();
        if !unsure.is_empty() {
            let ids: Vec<String> = unsure.iter().map(|(_, d)| d.event_id.clone()).collect();
            let seen: HashSet<String> = visible(&ids)?.into_iter().collect();
            unsure.retain(|(_, d)| seen.contains(&d.event_id));
            total += unsure.len();
            ranked.extend(unsure.into_iter().map(|(s, d)| (s, Some(d))));
            ranked.sort_by(|a, b| search::rank(&a.0, &b.0));
            ranked.truncate(limit);
        }
        let mut hits = Vec::with_capacity(ranked.len());
        for (s, doc) in ranked {
            let doc = match doc {
                Some(doc) => Some(doc),
                None => self.stored(&head, s.doc)?,
            };
            match doc {
                Some(doc) => hits.push(Hit {
                    doc,
                    score: s.score,
                }),
                None => log::warn(&format!("document {} has no stored text", s.doc)),
            }
        }
        Ok(Results { hits, total, exact })
    }

    pub fn status(&mut self) -> Result<Status, Error> {
        let head = self.begin()?;
        Ok(Status {
            docs: head.alive,
            in_log: head.next_doc - head.wal_lo,
            segments: self.meta.segments.len(),
            dead: self.meta.dead.len(),
        })
    }
}

/// An edit remembered as one of `original`'s that `original` does not list: forgotten, not
/// fatal (a transaction that failed on it would be retried for ever).
fn stray(edit: &str, original: &str) -> Result<bool, Error> {
    log::warn(&format!(
        "the edit {edit} of {original} was not remembered with it"
    ));
    edits::remove(edit)?;
    Ok(false)
}

fn input(d: &StoredDoc) -> DocInput<'_> {
    DocInput {
        doc: d.doc,
        event_hash: hash(&d.event_id),
        room: &d.room,
        sender: &d.sender,
        ts: d.ts,
        text: &d.text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta_of(spans: &[u32]) -> Meta {
        let mut lo = 0;
        let segments = spans
            .iter()
            .map(|&span| {
                let s = SegInfo {
                    name: format!("s{lo}"),
                    lo,
                    span,
                    live: span,
                    bytes: 0,
                };
                lo += span;
                s
            })
            .collect();
        Meta {
            segments,
            ..Meta::default()
        }
    }

    #[test]
    fn merges_take_eight_adjacent_segments_of_one_tier() {
        assert_eq!(tier(256), 0);
        assert_eq!(tier(2048), 1);
        assert_eq!(tier(16_384), 2);
        assert_eq!(tier(131_072), 3);
        assert_eq!(tier(u32::MAX), 3);
        assert_eq!(plan(&meta_of(&[256; 7])), None);
        assert_eq!(plan(&meta_of(&[256; 9])), Some(0..8));
        assert_eq!(
            plan(&meta_of(&[2048, 256, 256, 256, 256, 256, 256, 256, 256])),
            Some(1..9)
        );
        assert_eq!(plan(&meta_of(&[131_072; 9])), None, "the top tier stays");
    }
}
