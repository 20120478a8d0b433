//! Queue arithmetic: which of the events after a service's position go into its next
//! transaction, and how far its position may move. Pure, so the rules are unit-tested.

/// Events a transaction carries at most (the spec leaves it to the server; Synapse uses 100).
pub(crate) const MAX_TXN_EVENTS: usize = 100;
/// Ephemeral events (typing, receipts) a transaction carries at most, besides its events.
pub(crate) const MAX_TXN_EPHEMERAL: usize = 100;

/// What a stream position holds for a service.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Item<T> {
    Event(T),
    Ephemeral(T),
}

/// One candidate from the stream: its position and, if the service wants it, its payload.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Candidate<T> {
    pub(crate) stream: i64,
    pub(crate) wanted: Option<Item<T>>,
}

/// What the next step of a queue is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Take<T> {
    /// The events of the next transaction, in stream order.
    pub(crate) events: Vec<T>,
    pub(crate) ephemeral: Vec<T>,
    /// The position the queue may move to once the transaction is acknowledged (or at once,
    /// when it is empty): past every candidate looked at.
    pub(crate) last_stream: i64,
}

impl<T> Take<T> {
    pub(crate) fn is_empty(&self) -> bool {
        self.events.is_empty() && self.ephemeral.is_empty()
    }
}

/// Takes wanted items from `candidates` (in stream order) until either kind is full. When
/// neither fills up, the whole read is passed: up to `read_end`, the end of what was read.
pub(crate) fn take<T>(
    candidates: Vec<Candidate<T>>,
    read_end: i64,
    max_events: usize,
    max_ephemeral: usize,
) -> Take<T> {
    let mut events = Vec::new();
    let mut ephemeral = Vec::new();
    for c in candidates {
        let full = match c.wanted {
            Some(Item::Event(e)) => {
                events.push(e);
                events.len() == max_events
            }
            Some(Item::Ephemeral(e)) => {
                ephemeral.push(e);
                ephemeral.len() == max_ephemeral
            }
            None => false,
        };
        if full {
            return Take {
                events,
                ephemeral,
                last_stream: c.stream,
            };
        }
    }
    Take {
        events,
        ephemeral,
        last_stream: read_end,
    }
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
        let t = take::<i64>(vec![], 9, 100, 100);
        assert!(t.is_empty());
        assert_eq!(t.last_stream, 9);
    }

    #[test]
    fn unwanted_events_only_move_the_position() {
        let t = take(vec![c(5, false), c(6, false)], 7, 100, 100);
        assert!(t.is_empty());
        assert_eq!(t.last_stream, 7);
    }

    #[test]
    fn a_full_transaction_stops_at_its_last_event() {
        let cands: Vec<_> = (1..=250).map(|s| c(s, s % 2 == 0)).collect();
        let t = take(cands, 250, 100, 100);
        assert_eq!(t.events.len(), 100);
        assert_eq!(t.events[0], 2);
        assert_eq!(t.last_stream, 200);
    }

    #[test]
    fn a_short_read_is_taken_whole() {
        let t = take(
            vec![c(1, true), c(2, false), c(3, true), c(4, false)],
            4,
            100,
            100,
        );
        assert_eq!(t.events, vec![1, 3]);
        assert_eq!(t.last_stream, 4);
    }

    #[test]
    fn ephemeral_items_fill_their_own_quota() {
        let mut cands = vec![c(1, true)];
        cands.extend((2..=5).map(e));
        cands.push(c(6, true));
        let t = take(cands, 6, 100, 3);
        assert_eq!(t.events, vec![1]);
        assert_eq!(t.ephemeral, vec![2, 3, 4]);
        assert_eq!(t.last_stream, 4, "the event after the full quota waits");
    }

    #[test]
    fn a_lone_take_is_the_first_wanted_item_alone() {
        // What a worker builds first after a restart with no stored transaction.
        let t = take(vec![c(1, false), c(2, true), c(3, true)], 3, 1, 1);
        assert_eq!((t.events, t.ephemeral, t.last_stream), (vec![2], vec![], 2));
        let t = take(vec![c(1, false), e(2), c(3, true)], 3, 1, 1);
        assert_eq!((t.events, t.ephemeral, t.last_stream), (vec![], vec![2], 2));
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
