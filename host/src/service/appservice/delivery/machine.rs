//! The rules of a delivery queue as a state machine: which transaction is in flight, when its
//! record is written, when it is pushed, what its acknowledgement writes, and how long to wait
//! after a failure. Pure: it neither reads nor writes nor looks at the clock. The worker
//! ([`worker`](super::worker)) does the I/O each [`Action`] asks for and answers with an
//! [`Event`] and the time; the tests drive it with a scripted destination instead.
//!
//! Nothing in it is particular to application services: a transaction is an id, the stream
//! position it ends at and a body of any type, so push gateways and remote servers are new
//! destinations for the same machine. What it keeps and writes is in [`txn`](super::txn), with
//! the rules of when a record is written; what it asks and hears is in [`steps`](super::steps).

use tokio::time::Instant;

use super::super::retry::{Retry, RetryPolicy, Wake};
use super::super::transport::Pushed;
use super::steps::{Action, Commit, Earlier, Event, Fault, Probes, Store};
use super::txn::{Built, Queue, Record, Write};

/// Where the queue is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum State<B> {
    /// Reading the stored queue: at start, and again when that failed.
    Loading,
    /// Before each step: hearing whether a write the worker did not wait for has failed.
    Checking(Queue<B>),
    /// Nothing in flight: building the next transaction after the position.
    Building(Queue<B>),
    /// Writing what was built (the transaction, or the position's move), or waiting for the
    /// writes before it, before the transaction goes out. `before` is the queue if that fails.
    Recording { before: Queue<B>, after: Queue<B> },
    /// Nothing after the position: waiting for the stream to move.
    Idle(Queue<B>),
    /// A full transaction in flight: building what follows it, to record that with the
    /// acknowledgement.
    BuildingAhead(Queue<B>),
    /// Pushing the transaction in flight; `ahead` is what follows it, if built.
    Sending {
        queue: Queue<B>,
        ahead: Option<Built<B>>,
    },
    /// A push of a transaction with no record failed: recording it, as it stays in flight
    /// through the retries (for the restart rule to have it and the admin to see or skip).
    RecordingFailed { queue: Queue<B>, fault: Fault },
    /// The push went through: building what follows it.
    Following { queue: Queue<B>, pushed: Pushed },
    /// Writing the acknowledgement and what follows. `before` is the queue if that fails;
    /// `following` was built during the push, for the transaction after.
    Acknowledging {
        before: Queue<B>,
        after: Queue<B>,
        following: Option<Result<Built<B>, Fault>>,
    },
    /// A step failed: waiting before the next one, probing meanwhile if `probes` says so.
    /// With no queue, the next step reads it.
    Paused {
        queue: Option<Queue<B>>,
        until: Instant,
        probes: Option<Probes>,
    },
    /// A probe of the paused destination is out.
    Probing {
        queue: Option<Queue<B>>,
        until: Instant,
        probes: Probes,
    },
    /// The stream is gone.
    Stopped,
}

/// One destination's queue: where it is, its run of failures, and the rules it follows.
#[derive(Debug, Clone)]
pub(crate) struct Machine<B> {
    state: State<B>,
    retry: Retry,
    policy: RetryPolicy,
    /// Pushes take less time than a commit (a plugin in this process): a lone event goes
    /// out before its record is queued, recorded with its acknowledgement.
    in_process: bool,
}

impl<B: Clone + std::fmt::Debug> Machine<B> {
    /// A machine that starts by reading the stored queue: the first action is
    /// [`Action::Load`].
    pub(crate) fn new(policy: RetryPolicy, in_process: bool) -> Machine<B> {
        Machine {
            state: State::Loading,
            retry: Retry::default(),
            policy,
            in_process,
        }
    }

    #[cfg(test)]
    pub(crate) fn state(&self) -> &State<B> {
        &self.state
    }

    /// The transition: the machine moves on `event`, answered at `now`, and says what to do.
    pub(crate) fn on(&mut self, event: Event<B>, now: Instant) -> Vec<Action<B>> {
        let state = std::mem::replace(&mut self.state, State::Stopped);
        let (state, actions) = self.transition(state, event, now);
        self.state = state;
        actions
    }

    fn transition(
        &mut self,
        state: State<B>,
        event: Event<B>,
        now: Instant,
    ) -> (State<B>, Vec<Action<B>>) {
        use Event as E;
        use State as S;
        match (state, event) {
            (S::Loading, E::Loaded(Ok(stored))) => self.progress(Queue::loaded(stored)),
            (S::Loading, E::Loaded(Err(fault))) => self.fail(None, fault, now),
            (S::Checking(queue), E::Checked(Ok(()))) => self.step(queue),
            (S::Checking(queue), E::Checked(Err(fault))) => self.fail(Some(queue), fault, now),
            (S::Building(queue), E::Built(Ok(next))) => self.built(queue, next),
            (S::Building(queue), E::Built(Err(fault))) => self.fail(Some(queue), fault, now),
            (S::Recording { after, .. }, E::Stored(Ok(()))) => self.progress(after),
            (S::Recording { before, .. }, E::Stored(Err(fault))) => {
                self.fail(Some(before), fault, now)
            }
            (S::Idle(queue), E::StreamMoved) => (S::Checking(queue), vec![Action::CheckWrites]),
            (S::Idle(_), E::StreamClosed) => (S::Stopped, vec![Action::Stop]),
            (S::BuildingAhead(queue), E::Built(Ok(ahead))) => Self::push(queue, Some(ahead)),
            (S::BuildingAhead(queue), E::Built(Err(fault))) => self.fail(Some(queue), fault, now),
            (S::Sending { queue, ahead }, E::Pushed { result, following }) => match result {
                Ok(pushed) => self.pushed(queue, ahead, pushed, following),
                Err(fault) => self.push_failed(queue, ahead, fault, now),
            },
            (S::RecordingFailed { mut queue, fault }, E::Stored(Ok(()))) => {
                if let Some(in_flight) = queue.in_flight.as_mut() {
                    in_flight.record = Record::Queued;
                }
                self.fail(Some(queue), fault, now)
            }
            (S::RecordingFailed { queue, .. }, E::Stored(Err(fault))) => {
                self.fail(Some(queue), fault, now)
            }
            (S::Following { queue, pushed }, E::Built(Ok(next))) => {
                self.acknowledge(queue, pushed, next, false, None)
            }
            (S::Following { queue, pushed }, E::Built(Err(fault))) => {
                let queue = match (pushed, &queue.in_flight) {
                    // The database has the acknowledgement: so must the worker.
                    (Pushed::Acknowledged, Some(in_flight)) => {
                        Queue::after_ack_of(&in_flight.txn, queue.lone_first)
                    }
                    _ => queue,
                };
                self.fail(Some(queue), fault, now)
            }
            (
                S::Acknowledging {
                    after, following, ..
                },
                E::Stored(Ok(())),
            ) => match follow_with(after, following) {
                (queue, None) => self.progress(queue),
                (queue, Some(fault)) => self.fail(Some(queue), fault, now),
            },
            (S::Acknowledging { before, .. }, E::Stored(Err(fault))) => {
                self.fail(Some(before), fault, now)
            }
            (
                S::Paused {
                    queue,
                    until,
                    probes,
                },
                E::Time,
            ) => {
                if now >= until {
                    return self.wake(queue, Wake::Over);
                }
                match probes {
                    Some(probes) if now >= probes.next => (
                        S::Probing {
                            queue,
                            until,
                            probes,
                        },
                        vec![Action::Probe {
                            timeout: probes.every,
                            until,
                        }],
                    ),
                    _ => Self::sleep(queue, until, probes),
                }
            }
            (S::Paused { queue, .. } | S::Probing { queue, .. }, E::Poked) => {
                self.wake(queue, Wake::Poked)
            }
            (S::Probing { queue, .. }, E::Time) => self.wake(queue, Wake::Over),
            (
                S::Probing {
                    queue,
                    until,
                    probes,
                },
                E::Probed(probe),
            ) => {
                if self.retry.probed(probe) {
                    return self.wake(queue, Wake::Probe);
                }
                let probes = Probes {
                    next: (probes.next + probes.every).max(now),
                    ..probes
                };
                Self::sleep(queue, until, Some(probes))
            }
            (state, event) => {
                // The worker answers each action with its own event: anything else is a
                // bug of the worker's, and a worker that does not know where it is stops.
                debug_assert!(false, "{event:?} in {state:?}");
                (S::Stopped, vec![Action::Stop])
            }
        }
    }

    /// A step went through: the next one starts.
    fn progress(&mut self, queue: Queue<B>) -> (State<B>, Vec<Action<B>>) {
        self.retry.succeeded();
        (State::Checking(queue), vec![Action::CheckWrites])
    }

    /// A step: push the transaction in flight, or build the next one.
    fn step(&mut self, mut queue: Queue<B>) -> (State<B>, Vec<Action<B>>) {
        let Some(in_flight) = queue.in_flight.as_mut() else {
            let cursor = queue.cursor();
            return (State::Building(queue), vec![Action::Build(cursor)]);
        };
        // In a backlog (a full transaction) what follows is known before the push, so that
        // its record goes with this acknowledgement (one commit per transaction) and the one
        // after it is built while this one is pushed. Live traffic goes out at once, what
        // follows built after it: a build beside a plugin's call would compete with it for
        // the CPU the reply needs.
        match in_flight.ahead.take() {
            Some(ahead) => Self::push(queue, Some(ahead)),
            None if in_flight.txn.is_full() => {
                // A stored transaction pushed again after a restart may have been followed by
                // a lone one that never got its record: the next one is lone too.
                let cursor = Queue::after_ack_of(&in_flight.txn, queue.lone_first).cursor();
                (State::BuildingAhead(queue), vec![Action::Build(cursor)])
            }
            None => Self::push(queue, None),
        }
    }

    /// What a build found with nothing in flight: idle, or recorded before it goes out.
    fn built(&mut self, queue: Queue<B>, next: Built<B>) -> (State<B>, Vec<Action<B>>) {
        if next.is_nothing() {
            self.retry.succeeded();
            return (State::Idle(queue), vec![Action::WaitForStream]);
        }
        let store = if self.goes_out_unrecorded(&next) {
            Store {
                forward: None,
                earlier: Earlier::Await,
                write: None,
            }
        } else {
            Store::recording(None, Write::step(None, &next), &next)
        };
        let record = if store.write.is_none() {
            Record::WithAck
        } else {
            Record::Queued
        };
        let after = queue.clone().after(next, record);
        (
            State::Recording {
                before: queue,
                after,
            },
            vec![Action::Store(store)],
        )
    }

    /// Pushes the transaction in flight, with the writes that acknowledge it: its record
    /// first when it has none (one worker's writes commit in order, and each fails once an
    /// earlier one has), then the acknowledgement with what follows, when that is known.
    fn push(queue: Queue<B>, ahead: Option<Built<B>>) -> (State<B>, Vec<Action<B>>) {
        let Some(in_flight) = &queue.in_flight else {
            debug_assert!(false, "a push with nothing in flight");
            return (State::Stopped, vec![Action::Stop]);
        };
        let mut ack = Vec::with_capacity(2);
        if in_flight.record == Record::WithAck {
            ack.push(Write::record_of(&in_flight.txn));
        }
        let nothing = Built::default();
        ack.push(Write::step(
            Some(in_flight.txn.txn_id),
            ahead.as_ref().unwrap_or(&nothing),
        ));
        let follow = ahead
            .as_ref()
            .and_then(|a| a.txn.as_ref())
            .map(|t| Queue::<B>::after_ack_of(t, false).cursor());
        let action = Action::Push {
            txn: in_flight.txn.clone(),
            ack,
            follow,
        };
        (State::Sending { queue, ahead }, vec![action])
    }

    fn push_failed(
        &mut self,
        mut queue: Queue<B>,
        ahead: Option<Built<B>>,
        fault: Fault,
        now: Instant,
    ) -> (State<B>, Vec<Action<B>>) {
        let Some(in_flight) = queue.in_flight.as_mut() else {
            return self.fail(Some(queue), fault, now);
        };
        // Built from the same position, what follows stays valid for the retry.
        in_flight.ahead = ahead;
        if in_flight.record == Record::Queued {
            return self.fail(Some(queue), fault, now);
        }
        let store = Store {
            forward: None,
            earlier: Earlier::Keep,
            write: Some((Write::record_of(&in_flight.txn), Commit::Wait)),
        };
        (
            State::RecordingFailed { queue, fault },
            vec![Action::Store(store)],
        )
    }

    /// The push went through: acknowledge it with what follows, building that first if it
    /// was not built ahead.
    fn pushed(
        &mut self,
        queue: Queue<B>,
        ahead: Option<Built<B>>,
        pushed: Pushed,
        following: Option<Result<Built<B>, Fault>>,
    ) -> (State<B>, Vec<Action<B>>) {
        match ahead {
            Some(next) => self.acknowledge(queue, pushed, next, true, following),
            None => {
                let Some(in_flight) = &queue.in_flight else {
                    debug_assert!(false, "a push with nothing in flight");
                    return (State::Stopped, vec![Action::Stop]);
                };
                let cursor = Queue::<B>::after_ack_of(&in_flight.txn, queue.lone_first).cursor();
                (
                    State::Following { queue, pushed },
                    vec![Action::Build(cursor)],
                )
            }
        }
    }

    /// The writes after an acknowledged push, and the queue once they commit. `recorded`: the
    /// record of `next` went with the acknowledgement (it was built ahead).
    fn acknowledge(
        &mut self,
        queue: Queue<B>,
        pushed: Pushed,
        next: Built<B>,
        recorded: bool,
        following: Option<Result<Built<B>, Fault>>,
    ) -> (State<B>, Vec<Action<B>>) {
        let Some(in_flight) = &queue.in_flight else {
            debug_assert!(false, "an acknowledgement with nothing in flight");
            return (State::Stopped, vec![Action::Stop]);
        };
        let acked = Queue::after_ack_of(&in_flight.txn, queue.lone_first);
        let (store, record, following) = match pushed {
            // The transport committed the acknowledgement with what the destination wrote,
            // after every earlier write of this worker: those answered before it, and a
            // failed one must still be heard.
            Pushed::Acknowledged if recorded => (
                Store {
                    forward: None,
                    earlier: Earlier::Await,
                    write: None,
                },
                Record::Queued,
                following,
            ),
            // The pushed transaction is known to the database: a lone next one may go out
            // unrecorded at once, anything else is recorded first.
            Pushed::Acknowledged => {
                let unrecorded = self.goes_out_unrecorded(&next);
                let store = if next.is_nothing() || unrecorded {
                    Store {
                        forward: None,
                        earlier: Earlier::Await,
                        write: None,
                    }
                } else {
                    let Store { write, .. } =
                        Store::recording(None, Write::step(None, &next), &next);
                    Store {
                        forward: None,
                        earlier: Earlier::Await,
                        write,
                    }
                };
                let record = if unrecorded {
                    Record::WithAck
                } else {
                    Record::Queued
                };
                (store, record, None)
            }
            Pushed::Delivered => {
                // Its record first, so that the acknowledgement finds it; the
                // acknowledgement's answer covers the record's.
                let forward =
                    (in_flight.record == Record::WithAck).then(|| Write::record_of(&in_flight.txn));
                // The acknowledgement and the next transaction are written together: one
                // commit per transaction.
                let write = Write::step(Some(in_flight.txn.txn_id), &next);
                let store = if next.is_nothing() {
                    // Nothing follows yet, and the next event must not wait for this commit:
                    // a crash before it only makes the destination see this txn id again.
                    // (The writer commits in order: if an earlier write fails, this one fails
                    // too.)
                    Store {
                        forward,
                        earlier: Earlier::Drop,
                        write: Some((write, Commit::Leave)),
                    }
                } else if in_flight.record == Record::WithAck {
                    // The database does not know the transaction just pushed until this
                    // commits: no other may go out before.
                    Store {
                        forward,
                        earlier: Earlier::Drop,
                        write: Some((write, Commit::Wait)),
                    }
                } else {
                    Store::recording(forward, write, &next)
                };
                (store, Record::Queued, following)
            }
        };
        let after = acked.after(next, record);
        (
            State::Acknowledging {
                before: queue,
                after,
                following,
            },
            vec![Action::Store(store)],
        )
    }

    /// Whether `next` is pushed before any record of it is queued: a lone event to an
    /// in-process destination.
    fn goes_out_unrecorded(&self, next: &Built<B>) -> bool {
        self.in_process && next.is_lone_event()
    }

    /// A step failed: pause before the next, which starts from `queue` (or reads it).
    fn fail(
        &mut self,
        queue: Option<Queue<B>>,
        fault: Fault,
        now: Instant,
    ) -> (State<B>, Vec<Action<B>>) {
        let pause = self.retry.failed(fault.failure, &self.policy);
        let until = now + pause.length;
        let probes = pause.probe_every.map(|every| Probes {
            every,
            next: now + every,
        });
        let (state, mut actions) = Self::sleep(queue, until, probes);
        actions.insert(0, Action::Failed { fault, pause });
        (state, actions)
    }

    fn sleep(
        queue: Option<Queue<B>>,
        until: Instant,
        probes: Option<Probes>,
    ) -> (State<B>, Vec<Action<B>>) {
        let wake_at = probes.map_or(until, |p| p.next.min(until));
        (
            State::Paused {
                queue,
                until,
                probes,
            },
            vec![Action::Sleep { until: wake_at }],
        )
    }

    /// A pause ended: the step that failed is taken again (the queue read again if that
    /// was what failed).
    fn wake(&mut self, queue: Option<Queue<B>>, wake: Wake) -> (State<B>, Vec<Action<B>>) {
        self.retry.woke(wake);
        let resumed = Action::Resumed(wake);
        match queue {
            Some(queue) => (State::Checking(queue), vec![resumed, Action::CheckWrites]),
            None => (State::Loading, vec![resumed, Action::Load]),
        }
    }
}

/// Keeps `following` (built after the transaction now in flight) for its push; a failed
/// build only means the next step builds it again, but the step fails.
fn follow_with<B>(
    mut queue: Queue<B>,
    following: Option<Result<Built<B>, Fault>>,
) -> (Queue<B>, Option<Fault>) {
    match following {
        Some(Ok(next)) if !next.is_nothing() => {
            if let Some(in_flight) = queue.in_flight.as_mut() {
                in_flight.ahead = Some(next);
            }
            (queue, None)
        }
        Some(Err(fault)) => (queue, Some(fault)),
        _ => (queue, None),
    }
}
