//! Queue arithmetic: which of the events after a service's position go into its next
//! transaction, and how far its position may move. Pure, so the rules are unit-tested.

/// Events a transaction carries at most (the spec leaves it to the server; Synapse uses 100).
pub const MAX_TXN_EVENTS: usize = 100;

/// One candidate from the stream: its position and, if the service wants it, its payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate<T> {
    pub stream: i64,
    pub wanted: Option<T>,
}

/// What the next step of a queue is.
#[derive(Debug, Clone, PartialEq)]
pub struct Take<T> {
    /// The events of the next transaction, in stream order; empty when none was wanted.
    pub events: Vec<T>,
    /// The position the queue may move to once `events` are acknowledged (or at once, when
    /// `events` is empty): past every candidate looked at.
    pub last_stream: i64,
}

/// Takes up to `max` wanted events from `candidates` (in stream order). Unwanted events up to
/// the last one taken are passed over; when fewer than `max` are wanted, the whole read is.
pub fn take<T>(candidates: Vec<Candidate<T>>, max: usize) -> Option<Take<T>> {
    let last = candidates.last()?.stream;
    let mut events = Vec::new();
    for c in candidates {
        if let Some(e) = c.wanted {
            events.push(e);
            if events.len() == max {
                return Some(Take {
                    events,
                    last_stream: c.stream,
                });
            }
        }
    }
    Some(Take {
        events,
        last_stream: last,
    })
}

/// The pause before retry `n` (0-based) of a failed push: doubling from `base`, capped.
pub fn backoff(n: u32, base: std::time::Duration, cap: std::time::Duration) -> std::time::Duration {
    base.saturating_mul(2u32.saturating_pow(n.min(30))).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn c(stream: i64, wanted: bool) -> Candidate<i64> {
        Candidate {
            stream,
            wanted: wanted.then_some(stream),
        }
    }

    #[test]
    fn nothing_read_is_nothing_to_do() {
        assert_eq!(take::<i64>(vec![], 100), None);
    }

    #[test]
    fn unwanted_events_only_move_the_position() {
        let t = take(vec![c(5, false), c(6, false)], 100).unwrap();
        assert!(t.events.is_empty());
        assert_eq!(t.last_stream, 6);
    }

    #[test]
    fn a_full_transaction_stops_at_its_last_event() {
        let cands: Vec<_> = (1..=250).map(|s| c(s, s % 2 == 0)).collect();
        let t = take(cands, 100).unwrap();
        assert_eq!(t.events.len(), 100);
        assert_eq!(t.events[0], 2);
        assert_eq!(t.last_stream, 200);
    }

    #[test]
    fn a_short_read_is_taken_whole() {
        let t = take(vec![c(1, true), c(2, false), c(3, true), c(4, false)], 100).unwrap();
        assert_eq!(t.events, vec![1, 3]);
        assert_eq!(t.last_stream, 4);
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
