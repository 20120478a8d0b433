//! Queue arithmetic: which of the events after a service's position go into its next
//! transaction, and how far its position may move. Pure, so the rules are unit-tested.

/// Events a transaction carries at most (the spec leaves it to the server; Synapse uses 100).
pub(crate) const MAX_TXN_EVENTS: usize = 100;
/// Ephemeral events (typing, receipts) a transaction carries at most, besides its events.
pub(crate) const MAX_TXN_EPHEMERAL: usize = 100;
/// To-device messages (MSC2409) a transaction carries at most, as Synapse has it.
pub(crate) const MAX_TXN_TO_DEVICE: usize = 100;
/// Users whose keys changed (MSC3202 `device_lists.changed`) a transaction carries at most.
pub(crate) const MAX_TXN_DEVICE_LISTS: usize = 100;

/// What a stream position holds for a service.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Item<T> {
    Event(T),
    Ephemeral(T),
    /// A to-device message for a device of one of the service's users.
    ToDevice(T),
    /// A user whose device list changed, that the service tracks.
    DeviceList(T),
}

/// One candidate from the stream: its position and, if the service wants it, its payload.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Candidate<T> {
    pub(crate) stream: i64,
    pub(crate) wanted: Option<Item<T>>,
}

/// How many items of each kind a transaction carries at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Caps {
    pub(crate) events: usize,
    pub(crate) ephemeral: usize,
    pub(crate) to_device: usize,
    pub(crate) device_lists: usize,
}

impl Caps {
    /// A transaction as full as the spec's and Synapse's sizes allow.
    pub(crate) const FULL: Caps = Caps {
        events: MAX_TXN_EVENTS,
        ephemeral: MAX_TXN_EPHEMERAL,
        to_device: MAX_TXN_TO_DEVICE,
        device_lists: MAX_TXN_DEVICE_LISTS,
    };
    /// The first transaction after a restart: its first wanted item alone, whatever its kind.
    pub(crate) const LONE: Caps = Caps {
        events: 1,
        ephemeral: 1,
        to_device: 1,
        device_lists: 1,
    };
}

/// What the next step of a queue is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Take<T> {
    /// The events of the next transaction, in stream order.
    pub(crate) events: Vec<T>,
    pub(crate) ephemeral: Vec<T>,
    pub(crate) to_device: Vec<T>,
    pub(crate) device_lists: Vec<T>,
    /// The position the queue may move to once the transaction is acknowledged (or at once,
    /// when it is empty): past every candidate looked at.
    pub(crate) last_stream: i64,
}

impl<T> Take<T> {
    pub(crate) fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.ephemeral.is_empty()
            && self.to_device.is_empty()
            && self.device_lists.is_empty()
    }
}

/// Takes wanted items from `candidates` (in stream order) until any kind is full. When none
/// fills up, the whole read is passed: up to `read_end`, the end of what was read. Candidates
/// past `read_end` are left for the next transaction.
pub(crate) fn take<T>(candidates: Vec<Candidate<T>>, read_end: i64, caps: Caps) -> Take<T> {
    let mut t = Take {
        events: Vec::new(),
        ephemeral: Vec::new(),
        to_device: Vec::new(),
        device_lists: Vec::new(),
        last_stream: read_end,
    };
    // Items of one stream position (one to-device send to several devices) go together:
    // once a kind is full, the rest of that position still comes, then nothing.
    let mut full_at = None;
    for c in candidates {
        if c.stream > read_end || full_at.is_some_and(|at| c.stream > at) {
            break;
        }
        let full = match c.wanted {
            Some(Item::Event(e)) => {
                t.events.push(e);
                t.events.len() == caps.events
            }
            Some(Item::Ephemeral(e)) => {
                t.ephemeral.push(e);
                t.ephemeral.len() == caps.ephemeral
            }
            Some(Item::ToDevice(e)) => {
                t.to_device.push(e);
                t.to_device.len() == caps.to_device
            }
            Some(Item::DeviceList(e)) => {
                t.device_lists.push(e);
                t.device_lists.len() == caps.device_lists
            }
            None => false,
        };
        if full && full_at.is_none() {
            full_at = Some(c.stream);
            t.last_stream = c.stream;
        }
    }
    t
}

/// The pause before retry `n` (0-based) of a failed push: doubling from `base`, capped.
pub(crate) fn backoff(
    n: u32,
    base: std::time::Duration,
    cap: std::time::Duration,
) -> std::time::Duration {
    base.saturating_mul(2u32.saturating_pow(n.min(30))).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn c(stream: i64, wanted: bool) -> Candidate<i64> {
        Candidate {
            stream,
            wanted: wanted.then_some(Item::Event(stream)),
        }
    }

    fn e(stream: i64) -> Candidate<i64> {
        Candidate {
            stream,
            wanted: Some(Item::Ephemeral(stream)),
        }
    }

    #[test]
    fn nothing_read_moves_to_the_end_of_the_read() {
        let t = take::<i64>(vec![], 9, Caps::FULL);
        assert!(t.is_empty());
        assert_eq!(t.last_stream, 9);
    }

    #[test]
    fn unwanted_events_only_move_the_position() {
        let t = take(vec![c(5, false), c(6, false)], 7, Caps::FULL);
        assert!(t.is_empty());
        assert_eq!(t.last_stream, 7);
    }

    #[test]
    fn a_full_transaction_stops_at_its_last_event() {
        let cands: Vec<_> = (1..=250).map(|s| c(s, s % 2 == 0)).collect();
        let t = take(cands, 250, Caps::FULL);
        assert_eq!(t.events.len(), 100);
        assert_eq!(t.events[0], 2);
        assert_eq!(t.last_stream, 200);
    }

    #[test]
    fn a_short_read_is_taken_whole() {
        let t = take(
            vec![c(1, true), c(2, false), c(3, true), c(4, false)],
            4,
            Caps::FULL,
        );
        assert_eq!(t.events, vec![1, 3]);
        assert_eq!(t.last_stream, 4);
    }

    #[test]
    fn ephemeral_items_fill_their_own_quota() {
        let mut cands = vec![c(1, true)];
        cands.extend((2..=5).map(e));
        cands.push(c(6, true));
        let t = take(
            cands,
            6,
            Caps {
                ephemeral: 3,
                ..Caps::FULL
            },
        );
        assert_eq!(t.events, vec![1]);
        assert_eq!(t.ephemeral, vec![2, 3, 4]);
        assert_eq!(t.last_stream, 4, "the event after the full quota waits");
    }

    #[test]
    fn a_lone_take_is_the_first_wanted_item_alone() {
        // What a worker builds first after a restart with no stored transaction.
        let t = take(vec![c(1, false), c(2, true), c(3, true)], 3, Caps::LONE);
        assert_eq!((t.events, t.ephemeral, t.last_stream), (vec![2], vec![], 2));
        let t = take(vec![c(1, false), e(2), c(3, true)], 3, Caps::LONE);
        assert_eq!((t.events, t.ephemeral, t.last_stream), (vec![], vec![2], 2));
    }

    fn d(stream: i64, payload: i64) -> Candidate<i64> {
        Candidate {
            stream,
            wanted: Some(Item::ToDevice(payload)),
        }
    }

    #[test]
    fn to_device_messages_and_device_lists_come_with_the_events_in_stream_order() {
        let cands = vec![
            c(1, true),
            d(2, 20),
            Candidate {
                stream: 3,
                wanted: Some(Item::DeviceList(30)),
            },
            c(4, true),
        ];
        let t = take(cands, 4, Caps::FULL);
        assert_eq!(t.events, vec![1, 4]);
        assert_eq!(t.to_device, vec![20]);
        assert_eq!(t.device_lists, vec![30]);
        assert_eq!(t.last_stream, 4);
    }

    #[test]
    fn a_full_to_device_quota_keeps_the_rest_of_its_send_and_stops_there() {
        // One send to three devices at position 2; the quota is two.
        let cands = vec![d(1, 10), d(2, 20), d(2, 21), d(2, 22), d(3, 30), c(4, true)];
        let caps = Caps {
            to_device: 2,
            ..Caps::FULL
        };
        let t = take(cands, 4, caps);
        assert_eq!(t.to_device, vec![10, 20, 21, 22]);
        assert!(t.events.is_empty());
        assert_eq!(
            t.last_stream, 2,
            "position 3 waits for the next transaction"
        );
    }

    #[test]
    fn candidates_past_the_end_of_the_read_wait() {
        let t = take(vec![c(1, true), d(5, 50)], 3, Caps::FULL);
        assert_eq!(t.events, vec![1]);
        assert!(t.to_device.is_empty());
        assert_eq!(t.last_stream, 3);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let base = Duration::from_millis(200);
        let cap = Duration::from_secs(60);
        assert_eq!(backoff(0, base, cap), base);
        assert_eq!(backoff(3, base, cap), Duration::from_millis(1600));
        assert_eq!(backoff(40, base, cap), cap);
    }
}
