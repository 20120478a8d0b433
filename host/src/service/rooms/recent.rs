//! The newest events of the rooms last written to, kept in memory as they commit, so that an
//! incremental /sync (and later the appservice dispatcher) reads what just happened without
//! asking the database. Filled by the writer's commit callback before the notifier moves, so a
//! reader woken at position P finds every event up to P here, or is told to use the database.
//!
//! Bounded: at most [`PER_ROOM`] events a room, and at most `max_events` in all, past which
//! the rings of the rooms written to longest ago are dropped. Events are kept as the stored
//! row (the event's JSON as text: a parsed `Value` is several times larger) and parsed when
//! read, as from the database.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::lock::lock;
use crate::storage::events::{EventRow, NewEvent};

/// Events kept per room.
const PER_ROOM: usize = 256;

/// Events kept in all, unless configured otherwise.
pub(crate) const DEFAULT_MAX_EVENTS: usize = 20_000;

pub(crate) struct RecentEvents {
    inner: Mutex<Inner>,
}

struct Inner {
    rooms: HashMap<String, Ring>,
    /// Each room with a ring, by the position of its newest event: the order rings go in.
    by_newest: BTreeMap<i64, String>,
    /// A room without a ring has no event after this position: it is the highest position
    /// stored before this process started, raised to the newest event of each dropped ring.
    floor: i64,
    events: usize,
    max_events: usize,
}

struct Ring {
    events: VecDeque<Arc<EventRow>>,
    /// The ring holds every event of its room with a position above this.
    complete_after: i64,
    /// The position of its newest event (its key in `by_newest`).
    newest: i64,
}

impl RecentEvents {
    /// `floor`: the highest position stored before this process started.
    pub(crate) fn new(floor: i64) -> Self {
        RecentEvents {
            inner: Mutex::new(Inner {
                rooms: HashMap::new(),
                by_newest: BTreeMap::new(),
                floor,
                events: 0,
                max_events: DEFAULT_MAX_EVENTS,
            }),
        }
    }

    /// Keeps at most `events` events in all.
    pub(crate) fn with_max_events(self, events: usize) -> Self {
        self.lock().max_events = events;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    /// A committed event; called in stream order.
    pub(crate) fn record(&self, stream: i64, e: &NewEvent) {
        let row = Arc::new(EventRow {
            stream,
            event_id: e.event_id.clone(),
            room_id: e.room_id.clone(),
            sender: e.sender.clone(),
            kind: e.kind.clone(),
            state_key: e.state_key.clone(),
            json: e.json.clone(),
            redacted_by: None,
            txn_device: e.txn.as_ref().map(|(_, device, _, _)| device.clone()),
            txn_id: e.txn.as_ref().map(|(_, _, _, txn)| txn.clone()),
            history_visibility: e.history_visibility.clone(),
            room_version: Some(e.room_version.to_string()),
        });
        let mut inner = self.lock();
        let inner = &mut *inner;
        let floor = inner.floor;
        let ring = inner
            .rooms
            .entry(e.room_id.clone())
            .or_insert_with(|| Ring {
                events: VecDeque::with_capacity(16),
                complete_after: floor,
                newest: floor,
            });
        if let Some(target) = &e.redacts {
            if let Some(slot) = ring.events.iter_mut().find(|r| &r.event_id == target) {
                if slot.redacted_by.is_none() {
                    let mut redacted = (**slot).clone();
                    redacted.redacted_by = Some(e.event_id.clone());
                    *slot = Arc::new(redacted);
                }
            }
        }
        if !ring.events.is_empty() {
            inner.by_newest.remove(&ring.newest);
        }
        if ring.events.len() == PER_ROOM {
            if let Some(old) = ring.events.pop_front() {
                ring.complete_after = old.stream;
                inner.events -= 1;
            }
        }
        ring.events.push_back(row);
        inner.events += 1;
        ring.newest = stream;
        inner.by_newest.insert(stream, e.room_id.clone());
        while inner.events > inner.max_events {
            let Some((newest, room)) = inner.by_newest.pop_first() else {
                break;
            };
            if let Some(dropped) = inner.rooms.remove(&room) {
                inner.events -= dropped.events.len();
            }
            inner.floor = inner.floor.max(newest);
        }
    }

    /// The room's events with `after < stream <= upto`, oldest first, or `None` when the ring
    /// does not reach back that far.
    pub(crate) fn range(&self, room_id: &str, after: i64, upto: i64) -> Option<Vec<Arc<EventRow>>> {
        let inner = self.lock();
        match inner.rooms.get(room_id) {
            Some(ring) if after >= ring.complete_after => Some(
                ring.events
                    .iter()
                    .filter(|r| r.stream > after && r.stream <= upto)
                    .cloned()
                    .collect(),
            ),
            Some(_) => None,
            // No ring: the room has nothing above the floor.
            None if after >= inner.floor => Some(Vec::new()),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(room: &str, id: &str) -> NewEvent {
        NewEvent {
            event_id: id.into(),
            room_id: room.into(),
            sender: "@a:x".into(),
            kind: "m.room.message".into(),
            state_key: None,
            depth: 1,
            origin_server_ts: 0,
            json: r#"{"content":{"body":"x"}}"#.into(),
            membership: None,
            txn: None,
            redacts: None,
            new_room: None,
            history_visibility: None,
            room_version: "10",
            push: None,
            graph: Default::default(),
        }
    }

    #[test]
    fn answers_ranges_above_the_floor() {
        let r = RecentEvents::new(10);
        r.record(11, &event("!a:x", "$1"));
        r.record(12, &event("!b:x", "$2"));
        r.record(13, &event("!a:x", "$3"));
        let ids: Vec<String> = r
            .range("!a:x", 10, 13)
            .unwrap()
            .iter()
            .map(|p| p.event_id.clone())
            .collect();
        assert_eq!(ids, ["$1", "$3"]);
        assert_eq!(r.range("!a:x", 11, 12).unwrap().len(), 0);
        assert!(r.range("!a:x", 9, 13).is_none(), "below the floor");
        assert_eq!(r.range("!c:x", 10, 13).unwrap().len(), 0);
        assert!(r.range("!c:x", 5, 13).is_none());
    }

    #[test]
    fn eviction_raises_what_the_ring_can_answer() {
        let r = RecentEvents::new(0);
        for i in 1..=(PER_ROOM as i64 + 5) {
            r.record(i, &event("!a:x", &format!("${i}")));
        }
        assert!(r.range("!a:x", 4, 300).is_none());
        assert_eq!(r.range("!a:x", 5, 300).unwrap().len(), PER_ROOM);
    }

    #[test]
    fn a_redaction_strips_the_ring_copy() {
        let r = RecentEvents::new(0);
        r.record(1, &event("!a:x", "$1"));
        let mut red = event("!a:x", "$2");
        red.redacts = Some("$1".into());
        r.record(2, &red);
        let got = r.range("!a:x", 0, 2).unwrap();
        assert_eq!(got[0].redacted_by.as_deref(), Some("$2"));
        let pdu = crate::service::rooms::pdu::Pdu::try_from((*got[0]).clone()).unwrap();
        assert_eq!(pdu.content(), &serde_json::json!({}));
    }

    #[test]
    fn past_the_total_the_rooms_written_to_longest_ago_lose_their_rings() {
        let r = RecentEvents::new(10).with_max_events(3);
        r.record(11, &event("!a:x", "$1"));
        r.record(12, &event("!b:x", "$2"));
        r.record(13, &event("!a:x", "$3"));
        r.record(14, &event("!c:x", "$4"));
        // !b:x, written to at 12, went: a sync from before 12 must ask the database.
        assert!(r.range("!b:x", 11, 14).is_none());
        assert_eq!(r.range("!b:x", 12, 14).unwrap().len(), 0);
        assert_eq!(r.range("!a:x", 10, 14).unwrap().len(), 2);
        assert_eq!(r.range("!c:x", 10, 14).unwrap().len(), 1);
        // A room never written to is now known empty only from 12 on too.
        assert!(r.range("!d:x", 11, 14).is_none());
        r.record(15, &event("!b:x", "$5"));
        let ids: Vec<String> = r
            .range("!b:x", 12, 15)
            .unwrap()
            .iter()
            .map(|e| e.event_id.clone())
            .collect();
        assert_eq!(ids, ["$5"], "a new ring starts complete above the floor");
        assert!(r.range("!a:x", 10, 15).is_none(), "!a:x went for it");
    }
}
