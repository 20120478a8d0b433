//! How much of a call is left for backend requests. A call past the host's deadline traps and
//! is retried whole, so the translator cuts every request short and stops asking before the
//! call's budget is spent, leaving the rest of the work to the next call.

use std::time::{Duration, Instant};

/// Time kept back from every request for what the call does after it (kv writes, sends).
const MARGIN: Duration = Duration::from_millis(100);

/// A request shorter than this is not worth starting.
const SHORTEST_REQUEST: Duration = Duration::from_millis(50);

/// The time one call may spend on requests.
#[derive(Debug, Clone)]
pub struct Budget {
    started: Instant,
    total: Duration,
    per_request: Duration,
}

impl Budget {
    /// A budget of `total_ms` from now, `per_request_ms` at most per request.
    pub fn start(total_ms: u64, per_request_ms: u64) -> Budget {
        Budget {
            started: Instant::now(),
            total: Duration::from_millis(total_ms),
            per_request: Duration::from_millis(per_request_ms),
        }
    }

    /// How long the next request may take, or `None` when no request should start now.
    pub fn next_request(&self) -> Option<Duration> {
        let left = self
            .total
            .checked_sub(self.started.elapsed())?
            .checked_sub(MARGIN)?;
        let t = left.min(self.per_request);
        (t >= SHORTEST_REQUEST).then_some(t)
    }

    /// Whether the call has time left at all (for work that needs no request).
    pub fn has_time(&self) -> bool {
        self.started.elapsed() + MARGIN < self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_gets_at_most_its_own_limit_and_none_once_the_budget_is_spent() {
        let b = Budget::start(1000, 300);
        assert_eq!(b.next_request(), Some(Duration::from_millis(300)));
        assert!(b.has_time());
        let spent = Budget::start(120, 300);
        assert!(spent.next_request().is_none(), "120 - 100 is under 50");
        let none = Budget::start(0, 300);
        assert!(none.next_request().is_none());
        assert!(!none.has_time());
    }
}
