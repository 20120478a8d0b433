//! The newest events of each room, kept in memory as they commit, so that an incremental
//! /sync (and later the appservice dispatcher) reads what just happened without asking the
//! database. Filled by the writer's commit callback before the notifier moves, so a reader
//! woken at position P finds every event up to P here, or is told to use the database.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use super::pdu::Pdu;
use crate::storage::writer::NewEvent;

/// Events kept per room.
const PER_ROOM: usize = 256;

pub struct RecentEvents {
    rooms: Mutex<HashMap<String, Ring>>,
    /// Every event after this position has gone through `record`.
    floor: i64,
}

struct Ring {
    events: VecDeque<Arc<Pdu>>,
    /// The ring holds every event of its room with a position above this.
    complete_after: i64,
}

impl RecentEvents {
    /// `floor`: the highest position stored before this process started.
    pub fn new(floor: i64) -> Self {
        RecentEvents {
            rooms: Mutex::new(HashMap::new()),
            floor,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Ring>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A committed event; called in stream order.
    pub fn record(&self, stream: i64, e: &NewEvent) {
        let Ok(json) = serde_json::from_str(&e.json) else {
            // Unreadable here means unreadable from the database too; forget the room's ring
            // so readers go to the database and report it.
            self.lock().remove(&e.room_id);
            return;
        };
        let pdu = Arc::new(Pdu {
            stream,
            event_id: e.event_id.clone(),
            room_id: e.room_id.clone(),
            sender: e.sender.clone(),
            kind: e.kind.clone(),
            state_key: e.state_key.clone(),
            json,
            redacted_by: None,
            txn: e
                .txn
                .as_ref()
                .map(|(_, device, _, txn)| (device.clone(), txn.clone())),
            history_visibility: e.history_visibility.clone(),
        });
        let mut rooms = self.lock();
        let ring = rooms.entry(e.room_id.clone()).or_insert_with(|| Ring {
            events: VecDeque::with_capacity(16),
            complete_after: self.floor,
        });
        if let Some(target) = &e.redacts {
            if let Some(slot) = ring.events.iter_mut().find(|p| &p.event_id == target) {
                let mut redacted = (**slot).clone();
                redacted.redact(e.event_id.clone());
                *slot = Arc::new(redacted);
            }
        }
        if ring.events.len() == PER_ROOM {
            if let Some(old) = ring.events.pop_front() {
                ring.complete_after = old.stream;
            }
        }
        ring.events.push_back(pdu);
    }

    /// The room's events with `after < stream <= upto`, oldest first, or `None` when the ring
    /// does not reach back that far.
    pub fn range(&self, room_id: &str, after: i64, upto: i64) -> Option<Vec<Arc<Pdu>>> {
        let rooms = self.lock();
        match rooms.get(room_id) {
            Some(ring) if after >= ring.complete_after => Some(
                ring.events
                    .iter()
                    .filter(|p| p.stream > after && p.stream <= upto)
                    .cloned()
                    .collect(),
            ),
            Some(_) => None,
            // No event since start-up: the room has nothing above the floor.
            None if after >= self.floor => Some(Vec::new()),
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
        assert_eq!(got[0].content(), &serde_json::json!({}));
    }
}
