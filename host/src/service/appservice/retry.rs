//! When a failed push is tried again: the rule every destination of the durable queue shares
//! (HTTP application services and plugins now; push gateways and remote servers next). Pure,
//! so the rule is unit-tested; the delivery worker does the waiting and the requests.
//!
//! Pushes back off, doubling from a base up to a cap, so that a destination that stays down
//! is not sent its transaction over and over. A cap long enough to spare it (a minute) also
//! means that a destination which comes back waits up to that long for its backlog: after a
//! 90 s outage the next push came 34 s after the service was back. So, while a pause lasts
//! longer than the probe interval, a transport that has a cheap probe (one that costs the
//! destination nothing: an HTTP service's ping) probes it at that interval, and a probe that
//! finds the destination back ends the pause at once.
//!
//! "Back" means a change was seen: the last thing seen of the destination (a push, or a probe)
//! was that it could not be reached, and now a probe reached it. A probe that gets an answer
//! from a destination whose pushes fail for another reason (it answers them with an error, or
//! too slowly) tells nothing new and changes nothing; and when a push that a probe set off
//! fails again, the probe's answer is not trusted again until a probe finds it down: a
//! destination that answers probes but not pushes gets at most one extra push per change of
//! its state, never one per probe.

use std::time::Duration;

use super::queue::backoff;

/// How delivery retries: the first pause, the longest, and how often a destination is probed
/// during a longer pause (`None`: never).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    pub(crate) base: Duration,
    pub(crate) cap: Duration,
    pub(crate) probe_every: Option<Duration>,
}

/// What a failed push showed of its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Nothing answered, or a gateway in front of it said the service behind is down.
    Unreachable,
    /// It answered, with an error, or not in time: reaching it is not what failed.
    Answered,
    /// The failure was this server's own (its database): probing the destination cannot
    /// help.
    Local,
}

/// What a probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Probe {
    /// The destination answered.
    Alive,
    /// Nothing answered, or a gateway said the destination is down.
    Down,
}

/// How a pause after a failed push ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// It ran its length.
    Over,
    /// A sign of life from outside: a successful ping, the admin's retry, a plugin upgraded.
    Poked,
    /// A probe found the destination back.
    Probe,
}

/// The pause after a failed push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pause {
    pub(crate) length: Duration,
    /// Probe this often meanwhile (`None`: just wait).
    pub(crate) probe_every: Option<Duration>,
}

/// One destination's run of failed pushes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Retry {
    failures: u32,
    /// The last thing seen of the destination is that it could not be reached: a probe that
    /// reaches it shows it came back.
    unreachable: bool,
    /// The push under way was set off by a probe.
    after_probe: bool,
}

impl Retry {
    /// Failed pushes in a row.
    #[cfg(test)]
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    /// A push failed: the pause before the next one.
    pub(crate) fn failed(&mut self, failure: Failure, policy: &RetryPolicy) -> Pause {
        let length = backoff(self.failures, policy.base, policy.cap);
        self.failures = self.failures.saturating_add(1);
        // After a probe's answer a push that still cannot reach the destination says the
        // probe reaches something the pushes do not: its answers are not news.
        self.unreachable = failure == Failure::Unreachable && !self.after_probe;
        self.after_probe = false;
        let probe_every = match failure {
            Failure::Local => None,
            Failure::Unreachable | Failure::Answered => {
                policy.probe_every.filter(|every| *every < length)
            }
        };
        Pause {
            length,
            probe_every,
        }
    }

    /// A probe answered during a pause: whether to push again now.
    pub(crate) fn probed(&mut self, probe: Probe) -> bool {
        match probe {
            Probe::Down => {
                self.unreachable = true;
                false
            }
            Probe::Alive => {
                let back = self.unreachable;
                self.unreachable = false;
                back
            }
        }
    }

    /// The pause ended; the push is sent again.
    pub(crate) fn woke(&mut self, wake: Wake) {
        self.after_probe = wake == Wake::Probe;
    }

    /// A push went through: the next failure starts a new run.
    pub(crate) fn succeeded(&mut self) {
        *self = Retry::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn policy() -> RetryPolicy {
        RetryPolicy {
            base: S / 2,
            cap: 60 * S,
            probe_every: Some(2 * S),
        }
    }

    /// The pauses of `n` failures in a row of kind `failure`, each waited out.
    fn pauses(retry: &mut Retry, failure: Failure, n: usize) -> Vec<Pause> {
        (0..n)
            .map(|_| {
                let pause = retry.failed(failure, &policy());
                retry.woke(Wake::Over);
                pause
            })
            .collect()
    }

    #[test]
    fn pauses_double_up_to_the_cap() {
        let lengths: Vec<Duration> = pauses(&mut Retry::default(), Failure::Unreachable, 10)
            .iter()
            .map(|p| p.length)
            .collect();
        let secs: Vec<f64> = lengths.iter().map(Duration::as_secs_f64).collect();
        assert_eq!(
            secs,
            [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
        );
    }

    #[test]
    fn only_a_pause_longer_than_the_probe_interval_is_probed() {
        let probed: Vec<bool> = pauses(&mut Retry::default(), Failure::Unreachable, 5)
            .iter()
            .map(|p| p.probe_every.is_some())
            .collect();
        assert_eq!(probed, [false, false, false, true, true]);
        assert_eq!(
            pauses(&mut Retry::default(), Failure::Unreachable, 8)[7].probe_every,
            Some(2 * S)
        );
    }

    #[test]
    fn a_transport_without_a_probe_just_waits() {
        let mut retry = Retry::default();
        let no_probe = RetryPolicy {
            probe_every: None,
            ..policy()
        };
        for _ in 0..10 {
            assert_eq!(
                retry.failed(Failure::Unreachable, &no_probe).probe_every,
                None
            );
        }
    }

    #[test]
    fn a_failure_of_our_own_is_not_probed() {
        let mut retry = Retry::default();
        pauses(&mut retry, Failure::Local, 6);
        assert_eq!(retry.failed(Failure::Local, &policy()).probe_every, None);
    }

    #[test]
    fn a_destination_found_back_after_being_unreachable_is_pushed_at_once() {
        let mut retry = Retry::default();
        pauses(&mut retry, Failure::Unreachable, 7);
        retry.failed(Failure::Unreachable, &policy());
        assert!(retry.probed(Probe::Alive), "the failed push saw it down");
    }

    #[test]
    fn probes_that_find_it_down_wait_for_the_one_that_finds_it_back() {
        let mut retry = Retry::default();
        pauses(&mut retry, Failure::Unreachable, 7);
        retry.failed(Failure::Unreachable, &policy());
        for _ in 0..20 {
            assert!(!retry.probed(Probe::Down));
        }
        assert!(retry.probed(Probe::Alive));
    }

    #[test]
    fn a_destination_that_answers_pushes_with_errors_is_not_pushed_on_a_probes_answer() {
        let mut retry = Retry::default();
        pauses(&mut retry, Failure::Answered, 7);
        retry.failed(Failure::Answered, &policy());
        for _ in 0..20 {
            assert!(!retry.probed(Probe::Alive), "it was never unreachable");
        }
    }

    #[test]
    fn a_destination_that_answered_with_errors_then_went_down_is_pushed_when_back() {
        let mut retry = Retry::default();
        retry.failed(Failure::Answered, &policy());
        assert!(!retry.probed(Probe::Alive));
        assert!(!retry.probed(Probe::Down));
        assert!(retry.probed(Probe::Alive), "down, then back: a change");
    }

    #[test]
    fn a_push_a_probe_set_off_that_fails_again_makes_probes_wait_for_a_change() {
        let mut retry = Retry::default();
        pauses(&mut retry, Failure::Unreachable, 7);
        retry.failed(Failure::Unreachable, &policy());
        assert!(retry.probed(Probe::Alive));
        retry.woke(Wake::Probe);
        // Probes reach something that pushes do not (a ping route behind another proxy).
        retry.failed(Failure::Unreachable, &policy());
        for _ in 0..20 {
            assert!(
                !retry.probed(Probe::Alive),
                "one extra push per change, at most"
            );
        }
        assert!(!retry.probed(Probe::Down));
        assert!(retry.probed(Probe::Alive), "a real change counts again");
    }

    #[test]
    fn a_push_the_pause_set_off_that_cannot_reach_it_trusts_probes_again() {
        let mut retry = Retry::default();
        pauses(&mut retry, Failure::Unreachable, 7);
        retry.failed(Failure::Unreachable, &policy());
        assert!(retry.probed(Probe::Alive));
        retry.woke(Wake::Probe);
        retry.failed(Failure::Unreachable, &policy());
        assert!(!retry.probed(Probe::Alive));
        retry.woke(Wake::Over);
        retry.failed(Failure::Unreachable, &policy());
        assert!(retry.probed(Probe::Alive));
    }

    #[test]
    fn probes_go_on_at_the_cap_and_the_failures_keep_counting() {
        let mut retry = Retry::default();
        let all = pauses(&mut retry, Failure::Unreachable, 30);
        assert_eq!(retry.failures(), 30);
        assert!(all[8..]
            .iter()
            .all(|p| p.length == 60 * S && p.probe_every == Some(2 * S)));
    }

    #[test]
    fn a_success_starts_a_new_run() {
        let mut retry = Retry::default();
        pauses(&mut retry, Failure::Unreachable, 8);
        retry.succeeded();
        assert_eq!(retry, Retry::default());
        assert_eq!(retry.failed(Failure::Unreachable, &policy()).length, S / 2);
    }

    #[test]
    fn over_a_ninety_second_outage_a_probed_service_is_pushed_within_a_probe_of_coming_back() {
        // The schedule a delivery worker follows, in virtual time: the service is down for
        // the first 90 s; pushes and probes both fail until then.
        let back_at = 90.0;
        let every = 2.0;
        let mut retry = Retry::default();
        let mut now = 0.0;
        let mut pushes = 0;
        let mut probes = 0;
        loop {
            pushes += 1;
            if now >= back_at {
                break;
            }
            let pause = retry.failed(Failure::Unreachable, &policy());
            let end = now + pause.length.as_secs_f64();
            let mut wake = Wake::Over;
            if let Some(p) = pause.probe_every {
                let mut at = now + p.as_secs_f64();
                while at < end {
                    probes += 1;
                    let probe = if at >= back_at {
                        Probe::Alive
                    } else {
                        Probe::Down
                    };
                    if retry.probed(probe) {
                        wake = Wake::Probe;
                        now = at;
                        break;
                    }
                    at += every;
                }
            }
            if wake == Wake::Over {
                now = end;
            }
            retry.woke(wake);
        }
        assert!(now - back_at <= every, "pushed {:.1}s after", now - back_at);
        assert_eq!(pushes, 9, "eight failed pushes, the ninth goes through");
        // Probes only where a pause is longer than their interval: from the 4 s pause on.
        assert!((35..=45).contains(&probes), "{probes} probes");
    }
}
