//! Events the server delivers again: a transaction whose writes were committed can still be
//! delivered a second time (the server stopped before it noted the delivery), with the same
//! events. The room keeps the hashed ids of its latest MIDI events, so such an event is
//! recorded or counted once.
//!
//! A transaction holds at most 100 events and only the latest one can come again, so the
//! last [`REMEMBERED`] ids are enough.

use plugboard_sdk::prelude::*;

use crate::store;

/// MIDI event ids remembered per room.
pub const REMEMBERED: usize = 256;

/// 64-bit FNV-1a: small, stable across builds, and collisions among a room's last 256
/// events are out of reach by chance.
fn hash(event_id: &str) -> [u8; 8] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in event_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h.to_le_bytes()
}

/// Whether `event_id` is new in `room`, remembering it. Nothing is remembered when the
/// quota is used up: then the event counts as new.
pub fn first_time(room: &str, event_id: &str) -> Result<bool, Error> {
    let key = format!("{}recent", store::room_prefix(room));
    let mut ring = kv::get(&key)?.unwrap_or_default();
    let h = hash(event_id);
    if ring.chunks_exact(8).any(|seen| seen == h) {
        return Ok(false);
    }
    ring.truncate(ring.len() / 8 * 8);
    ring.extend_from_slice(&h);
    let keep = REMEMBERED * 8;
    if ring.len() > keep {
        ring.drain(..ring.len() - keep);
    }
    match kv::set(&key, &ring) {
        Err(e) if e.is(store::QUOTA_EXCEEDED) => {
            log::warn(&format!("cannot remember {event_id}: {}", e.message));
            Ok(true)
        }
        other => other.map(|()| true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugboard_sdk::testing::Harness;
    use serde_json::json;

    struct Bare;

    impl Plugin for Bare {
        fn init(_config: &Config) -> Result<Self, Error> {
            Ok(Bare)
        }
    }

    #[test]
    fn an_event_is_new_once_per_room() {
        let _h = Harness::<Bare>::new(json!({})).unwrap();
        assert!(first_time("!a:test", "$1").unwrap());
        assert!(!first_time("!a:test", "$1").unwrap());
        assert!(first_time("!b:test", "$1").unwrap());
        assert!(first_time("!a:test", "$2").unwrap());
    }

    #[test]
    fn only_the_latest_ids_are_remembered() {
        let h = Harness::<Bare>::new(json!({})).unwrap();
        for i in 0..REMEMBERED + 10 {
            assert!(first_time("!a:test", &format!("${i}")).unwrap());
        }
        assert_eq!(h.kv("room/!a:test/recent").unwrap().len(), REMEMBERED * 8);
        assert!(!first_time("!a:test", &format!("${}", REMEMBERED + 9)).unwrap());
        assert!(!first_time("!a:test", "$10").unwrap());
        assert!(
            first_time("!a:test", "$0").unwrap(),
            "forgotten, so new again"
        );
    }
}
