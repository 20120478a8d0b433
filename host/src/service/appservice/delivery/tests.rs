//! The delivery state machine against a scripted destination: a stream of numbered events, a
//! database holding the stored queue, a writer whose commits the test controls (and loses in
//! a crash), and a transport whose answers are scripted. Time is only what the machine is
//! told; nothing sleeps.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::machine::{Machine, State};
use super::steps::{Action, Commit, Earlier, Event, Fault};
use super::txn::{Built, Stored, Txn, Write};
use super::worker::StepError;
use crate::service::appservice::queue::{take, Candidate, Caps, Item};
use crate::service::appservice::retry::{Failure, Probe, RetryPolicy, Wake};
use crate::service::appservice::transport::{DeliveryError, Pushed};

/// A transaction's body here: the stream positions of its events.
type Body = Vec<i64>;

const S: Duration = Duration::from_secs(1);

fn policy() -> RetryPolicy {
    RetryPolicy {
        base: S / 2,
        cap: 60 * S,
        probe_every: Some(2 * S),
    }
}

/// How the scripted destination answers a push.
#[derive(Debug, Clone)]
enum Answer {
    /// It took it; the worker writes the acknowledgement.
    Delivered,
    /// It took it and the transport committed the acknowledgement (a plugin).
    Acknowledged,
    Fails(DeliveryError),
}

/// The stored queue, written as the storage layer writes it.
#[derive(Debug, Clone, Default)]
struct Db {
    position: i64,
    next_txn_id: i64,
    pending: Option<Txn<Body>>,
}

impl Db {
    fn apply(&mut self, w: &Write<Body>) {
        if let Some(id) = w.ack {
            if let Some(p) = self.pending.take_if(|p| p.txn_id == id) {
                self.position = p.last_stream;
                self.next_txn_id = id + 1;
            }
        }
        if let Some(to) = w.advance_to {
            if self.pending.is_none() && self.position < to {
                self.position = to;
            }
        }
        if let Some(t) = &w.txn {
            if self.pending.is_none() {
                self.pending = Some(t.clone());
            }
        }
    }
}

/// How a run ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Idle,
    Stopped,
    /// The process died (the test's crash point was reached).
    Crashed,
}

/// Everything the machine's actions reach.
struct World {
    db: Db,
    /// Writes queued to the writer and not yet committed, in order.
    queued: Vec<Write<Body>>,
    /// The writer commits queued writes only when a write is waited for.
    slow_writer: bool,
    /// The next commit fails (and what it would have committed is lost).
    failing_commits: usize,
    /// The stream: each event's position and whether the destination wants it.
    stream: Vec<(i64, bool)>,
    /// Every push: txn id and body, answered or not.
    sent: Vec<(i64, Body)>,
    /// Pushes that went through: what the destination has taken.
    taken: Vec<(i64, Body)>,
    answers: VecDeque<Answer>,
    probes: VecDeque<Probe>,
    /// A poke arrives at this time, during the next pause that reaches it.
    poke_at: Option<Instant>,
    /// Pauses, as the machine asked for them.
    pauses: Vec<Duration>,
    wakes: Vec<Wake>,
    now: Instant,
    /// The process dies once this many more pushes have been made (before their answers).
    crash_after_pushes: Option<usize>,
    /// Every action, in order.
    log: Vec<Action<Body>>,
}

impl World {
    fn new() -> World {
        World {
            db: Db {
                position: 0,
                next_txn_id: 1,
                pending: None,
            },
            queued: Vec::new(),
            slow_writer: false,
            failing_commits: 0,
            stream: Vec::new(),
            sent: Vec::new(),
            taken: Vec::new(),
            answers: VecDeque::new(),
            probes: VecDeque::new(),
            poke_at: None,
            pauses: Vec::new(),
            wakes: Vec::new(),
            now: Instant::now(),
            crash_after_pushes: None,
            log: Vec::new(),
        }
    }

    fn with_events(mut self, n: i64) -> World {
        self.append(n);
        self
    }

    /// `n` more events, every one wanted.
    fn append(&mut self, n: i64) {
        let end = self.stream.last().map_or(0, |e| e.0);
        self.stream.extend((end + 1..=end + n).map(|s| (s, true)));
    }

    fn commit(&mut self) -> Result<(), Fault> {
        let queued = std::mem::take(&mut self.queued);
        if self.failing_commits > 0 {
            self.failing_commits -= 1;
            return Err(StepError::from(crate::storage::StorageError::WriterGone).fault());
        }
        for w in &queued {
            self.db.apply(w);
        }
        Ok(())
    }

    fn build(&self, position: i64, next_txn_id: i64, lone: bool) -> Built<Body> {
        let caps = if lone { Caps::LONE } else { Caps::FULL };
        let candidates: Vec<Candidate<i64>> = self
            .stream
            .iter()
            .filter(|e| e.0 > position)
            .map(|&(stream, wanted)| Candidate {
                stream,
                wanted: wanted.then_some(Item::Event(stream)),
            })
            .collect();
        let end = self.stream.last().map_or(position, |e| e.0.max(position));
        let t = take(candidates, end, caps);
        let last_stream = t.last_stream.max(position);
        if t.is_empty() {
            return Built {
                txn: None,
                advance_to: (last_stream > position).then_some(last_stream),
            };
        }
        Built {
            txn: Some(Txn {
                txn_id: next_txn_id,
                last_stream,
                events: t.events.len(),
                ephemeral: 0,
                full: t.events.len() == Caps::FULL.events,
                body: t.events,
            }),
            advance_to: None,
        }
    }

    /// Does what `action` asks; `None` for actions that are only told.
    fn answer(&mut self, action: &Action<Body>) -> Option<Result<Event<Body>, End>> {
        let event = match action.clone() {
            Action::Load => {
                // An empty write waits out what an earlier worker queued.
                let _ = self.commit();
                Event::Loaded(Ok(Stored {
                    position: self.db.position,
                    next_txn_id: self.db.next_txn_id,
                    pending: self.db.pending.clone(),
                }))
            }
            Action::CheckWrites => {
                if !self.slow_writer {
                    let done = self.commit();
                    return Some(Ok(Event::Checked(done)));
                }
                Event::Checked(Ok(()))
            }
            Action::Build(c) => Event::Built(Ok(self.build(c.position, c.next_txn_id, c.lone))),
            Action::Store(store) => {
                if let Some(w) = store.forward {
                    self.queued.push(w);
                }
                let mut done = Ok(());
                if store.earlier == Earlier::Await {
                    done = self.commit();
                }
                if let (Ok(()), Some((w, commit))) = (&done, store.write) {
                    self.queued.push(w);
                    if commit == Commit::Wait {
                        done = self.commit();
                    }
                }
                Event::Stored(done)
            }
            Action::Push { txn, ack, follow } => {
                self.sent.push((txn.txn_id, txn.body.clone()));
                let crash = match self.crash_after_pushes.as_mut() {
                    Some(0) => true,
                    Some(n) => {
                        *n -= 1;
                        false
                    }
                    None => false,
                };
                if crash {
                    // The destination took it; its answer never came.
                    self.taken.push((txn.txn_id, txn.body.clone()));
                    return Some(Err(End::Crashed));
                }
                let result = match self.answers.pop_front().unwrap_or(Answer::Delivered) {
                    Answer::Delivered => Ok(Pushed::Delivered),
                    Answer::Acknowledged => {
                        // Committed after every earlier write of the worker.
                        self.queued.extend(ack);
                        self.commit().map(|()| Pushed::Acknowledged)
                    }
                    Answer::Fails(e) => Err(StepError::from(e).fault()),
                };
                if result.is_ok() {
                    self.taken.push((txn.txn_id, txn.body.clone()));
                }
                let following = follow.map(|c| Ok(self.build(c.position, c.next_txn_id, c.lone)));
                Event::Pushed { result, following }
            }
            Action::WaitForStream => return Some(Err(End::Idle)),
            Action::Stop => return Some(Err(End::Stopped)),
            Action::Failed { pause, .. } => {
                self.pauses.push(pause.length);
                return None;
            }
            Action::Resumed(wake) => {
                self.wakes.push(wake);
                return None;
            }
            Action::Sleep { until } => match self.poke_at {
                Some(at) if at <= until => {
                    self.poke_at = None;
                    self.now = self.now.max(at);
                    Event::Poked
                }
                _ => {
                    self.now = until;
                    Event::Time
                }
            },
            Action::Probe { .. } => Event::Probed(self.probes.pop_front().unwrap_or(Probe::Down)),
        };
        Some(Ok(event))
    }

    /// Runs `machine` from `actions` until it is idle, stops or the process dies.
    fn run(&mut self, machine: &mut Machine<Body>, mut actions: Vec<Action<Body>>) -> End {
        for _ in 0..100_000 {
            let mut event = None;
            for action in &actions {
                self.log.push(action.clone());
                match self.answer(action) {
                    Some(Ok(e)) => event = Some(e),
                    Some(Err(end)) => return end,
                    None => {}
                }
            }
            let event = event.expect("the last action is answered");
            actions = machine.on(event, self.now);
        }
        panic!("the machine did not settle");
    }

    /// Starts a worker (at start, or after a restart) and runs it until it settles.
    fn start(&mut self, in_process: bool) -> (Machine<Body>, End) {
        let mut machine = Machine::new(policy(), in_process);
        let end = self.run(&mut machine, vec![Action::Load]);
        (machine, end)
    }

    /// The stream moved: the idle machine runs until it settles again.
    fn stream_moved(&mut self, machine: &mut Machine<Body>) -> End {
        let actions = machine.on(Event::StreamMoved, self.now);
        self.run(machine, actions)
    }

    fn pushes(&self) -> Vec<i64> {
        self.sent.iter().map(|s| s.0).collect()
    }

    fn wanted(&self) -> Vec<i64> {
        self.stream.iter().filter(|e| e.1).map(|e| e.0).collect()
    }

    /// What the destination has taken, each txn id once (a destination ignores a txn id it
    /// has seen, as the spec asks of it), in order.
    fn delivered_events(&self) -> Vec<i64> {
        let mut seen = std::collections::HashSet::new();
        self.taken
            .iter()
            .filter(|(id, _)| seen.insert(*id))
            .flat_map(|(_, body)| body.clone())
            .collect()
    }

    /// Every txn id went out with one body only.
    fn assert_txn_ids_keep_their_contents(&self) {
        let mut bodies = std::collections::HashMap::new();
        for (id, body) in &self.sent {
            let first = bodies.entry(*id).or_insert(body);
            assert_eq!(*first, body, "txn {id} went out with two bodies");
        }
    }
}

fn http_failure(status: u16) -> Answer {
    Answer::Fails(DeliveryError::Status(status))
}

#[test]
fn a_queue_with_nothing_after_its_position_waits_for_the_stream() {
    let mut world = World::new();
    let (machine, end) = world.start(false);
    assert_eq!(end, End::Idle);
    assert!(matches!(machine.state(), State::Idle(_)));
    assert!(world.sent.is_empty());
}

#[test]
fn the_stream_closing_stops_an_idle_queue() {
    let mut world = World::new();
    let (mut machine, _) = world.start(false);
    let actions = machine.on(Event::StreamClosed, world.now);
    assert_eq!(actions, vec![Action::Stop]);
    assert!(matches!(machine.state(), State::Stopped));
}

#[test]
fn events_are_delivered_in_order_and_the_position_follows_the_acknowledgements() {
    let mut world = World::new().with_events(3);
    let (mut machine, end) = world.start(false);
    assert_eq!(end, End::Idle);
    world.append(4);
    assert_eq!(world.stream_moved(&mut machine), End::Idle);
    assert_eq!(world.delivered_events(), world.wanted());
    // The first transaction after a start is lone (the restart rule), then they fill up.
    assert_eq!(world.taken[0].1, vec![1]);
    assert_eq!(world.taken[1].1, vec![2, 3]);
    assert_eq!(world.taken[2].1, vec![4, 5, 6, 7]);
    assert_eq!(world.pushes(), vec![1, 2, 3]);
    assert_eq!((world.db.position, world.db.next_txn_id), (7, 4));
    assert!(world.db.pending.is_none());
}

/// How the record of txn `txn_id` was written before its first push: whether the writes
/// before it were waited for, and whether it was.
fn record_before_push(world: &World, txn_id: i64) -> Option<(Earlier, Commit)> {
    let push = world
        .log
        .iter()
        .position(|a| matches!(a, Action::Push { txn, .. } if txn.txn_id == txn_id))?;
    world.log[..push].iter().rev().find_map(|a| match a {
        Action::Store(store) => match &store.write {
            Some((w, commit)) if w.txn.as_ref().is_some_and(|t| t.txn_id == txn_id) => {
                Some((store.earlier, *commit))
            }
            _ => None,
        },
        _ => None,
    })
}

#[test]
fn a_transaction_is_recorded_before_it_is_pushed_and_a_lone_event_after_every_earlier_write() {
    let mut world = World::new().with_events(1);
    world.slow_writer = true;
    let (mut machine, _) = world.start(false);
    world.append(3);
    assert_eq!(world.stream_moved(&mut machine), End::Idle);
    world.append(1);
    assert_eq!(world.stream_moved(&mut machine), End::Idle);
    // A lone event goes out while its record commits, once every earlier write has.
    assert_eq!(
        record_before_push(&world, 1),
        Some((Earlier::Await, Commit::Leave))
    );
    // Anything more is recorded, and the record waited for, before it goes out.
    assert_eq!(
        record_before_push(&world, 2),
        Some((Earlier::Drop, Commit::Wait))
    );
    assert_eq!(
        record_before_push(&world, 3),
        Some((Earlier::Await, Commit::Leave))
    );
    assert_eq!(world.delivered_events(), world.wanted());
}

#[test]
fn an_acknowledged_transaction_is_never_pushed_again() {
    let mut world = World::new().with_events(250);
    let (_, end) = world.start(false);
    assert_eq!(end, End::Idle);
    let pushes = world.pushes();
    let mut sorted = pushes.clone();
    sorted.dedup();
    assert_eq!(pushes, sorted, "each txn id pushed once");
    assert_eq!(world.delivered_events(), world.wanted());
}

#[test]
fn a_failed_push_is_retried_with_the_same_txn_id_and_contents_after_a_pause() {
    let mut world = World::new().with_events(2);
    world.answers = VecDeque::from([http_failure(500), http_failure(500)]);
    let (_, end) = world.start(false);
    assert_eq!(end, End::Idle);
    assert_eq!(world.pushes(), vec![1, 1, 1, 2]);
    world.assert_txn_ids_keep_their_contents();
    assert_eq!(world.pauses, vec![S / 2, S]);
    assert_eq!(world.delivered_events(), world.wanted());
}

#[test]
fn pauses_double_while_pushes_keep_failing_and_start_again_after_a_success() {
    let mut world = World::new().with_events(2);
    world.answers = (0..4).map(|_| http_failure(503)).collect();
    world.answers.push_back(Answer::Delivered);
    world
        .answers
        .push_back(Answer::Fails(DeliveryError::Timeout(S)));
    let (_, end) = world.start(false);
    assert_eq!(end, End::Idle);
    assert_eq!(world.pauses, vec![S / 2, S, 2 * S, 4 * S, S / 2]);
}

#[test]
fn a_client_error_a_server_error_and_a_timeout_are_answers_but_a_bad_gateway_is_not() {
    let kinds = [
        (DeliveryError::Status(400), Failure::Answered),
        (DeliveryError::Status(500), Failure::Answered),
        (DeliveryError::Timeout(S), Failure::Answered),
        (DeliveryError::Status(502), Failure::Unreachable),
        (
            DeliveryError::Connection("refused".into()),
            Failure::Unreachable,
        ),
    ];
    for (error, failure) in kinds {
        assert_eq!(StepError::from(error).fault().failure, failure);
    }
}

/// Four failed pushes of `failure`, the fifth pause long enough to be probed, the probe
/// finding the destination alive: how that pause ends.
fn fifth_pause_with_a_live_probe(failure: DeliveryError) -> (Vec<Wake>, usize) {
    let mut world = World::new().with_events(1);
    world.answers = (0..5).map(|_| Answer::Fails(failure.clone())).collect();
    // The first pauses are not probed (shorter than the interval); the 4 s and 8 s ones are.
    world.probes = VecDeque::from([Probe::Down, Probe::Alive, Probe::Alive, Probe::Alive]);
    let (_, end) = world.start(false);
    assert_eq!(end, End::Idle);
    let probes = world
        .log
        .iter()
        .filter(|a| matches!(a, Action::Probe { .. }))
        .count();
    (world.wakes, probes)
}

#[test]
fn a_destination_found_back_by_a_probe_is_pushed_at_once() {
    let (wakes, _) = fifth_pause_with_a_live_probe(DeliveryError::Status(502));
    assert!(wakes.contains(&Wake::Probe), "{wakes:?}");
}

#[test]
fn a_probe_that_finds_alive_a_destination_answering_with_errors_does_not_end_the_pause() {
    let (wakes, probes) = fifth_pause_with_a_live_probe(DeliveryError::Status(500));
    assert!(!wakes.contains(&Wake::Probe), "{wakes:?}");
    assert!(probes > 0);
}

#[test]
fn a_failure_of_the_servers_own_is_not_probed() {
    let mut world = World::new().with_events(1);
    world.slow_writer = true;
    world.failing_commits = 6;
    let (_, end) = world.start(false);
    assert_eq!(end, End::Idle);
    assert!(world.pauses.len() >= 5);
    assert!(!world.log.iter().any(|a| matches!(a, Action::Probe { .. })));
    assert_eq!(world.delivered_events(), world.wanted());
}

#[test]
fn a_poke_ends_the_pause_at_once() {
    let mut world = World::new().with_events(1);
    world.answers = (0..6).map(|_| http_failure(500)).collect();
    let start = world.now;
    world.poke_at = Some(start + 10 * S);
    let (_, end) = world.start(false);
    assert_eq!(end, End::Idle);
    assert!(world.wakes.contains(&Wake::Poked));
    // Without the poke the six pauses would take 31.5 s.
    let waited = world.now - start;
    assert!(waited < 31 * S, "{waited:?}");
}

#[test]
fn a_backlog_is_pushed_with_the_next_transaction_recorded_in_each_acknowledgement() {
    let mut world = World::new().with_events(1);
    let (mut machine, _) = world.start(false);
    world.append(350);
    assert_eq!(world.stream_moved(&mut machine), End::Idle);
    let acks_with_next: usize = world
        .log
        .iter()
        .filter_map(|a| match a {
            Action::Push { ack, .. } => ack.last(),
            _ => None,
        })
        .filter(|w| w.ack.is_some() && w.txn.is_some())
        .count();
    // 100, 100, 100 and 50: each full one carried the record of the one after it.
    assert_eq!(acks_with_next, 3);
    assert_eq!(world.delivered_events(), world.wanted());
}

#[test]
fn what_was_built_ahead_of_a_failed_push_is_kept_for_its_retry() {
    let mut world = World::new().with_events(1);
    let (mut machine, _) = world.start(false);
    world.append(250);
    world.answers = VecDeque::from([http_failure(500)]);
    assert_eq!(world.stream_moved(&mut machine), End::Idle);
    let failed = world
        .log
        .iter()
        .position(|a| matches!(a, Action::Failed { .. }))
        .expect("a push failed");
    let retry = failed
        + world.log[failed..]
            .iter()
            .position(|a| matches!(a, Action::Push { .. }))
            .expect("retried");
    assert!(
        !world.log[failed..retry]
            .iter()
            .any(|a| matches!(a, Action::Build(_))),
        "rebuilt: {:?}",
        &world.log[failed..retry]
    );
    assert_eq!(world.delivered_events(), world.wanted());
}

#[test]
fn a_lone_event_to_an_in_process_destination_is_recorded_with_its_acknowledgement() {
    let mut world = World::new().with_events(1);
    world.answers = VecDeque::from([Answer::Acknowledged, Answer::Acknowledged]);
    let (mut machine, _) = world.start(true);
    world.append(1);
    world.answers.push_back(Answer::Acknowledged);
    assert_eq!(world.stream_moved(&mut machine), End::Idle);
    let last_push = world
        .log
        .iter()
        .rev()
        .find_map(|a| match a {
            Action::Push { ack, .. } => Some(ack.clone()),
            _ => None,
        })
        .expect("pushed");
    assert_eq!(last_push.len(), 2, "its record, then its acknowledgement");
    assert!(last_push[0].txn.is_some() && last_push[1].ack.is_some());
    assert_eq!((world.db.position, world.db.next_txn_id), (2, 3));
}

#[test]
fn a_failed_push_of_an_unrecorded_transaction_records_it_before_the_pause() {
    let mut world = World::new().with_events(1);
    let (mut machine, _) = world.start(true);
    world.append(1);
    world.answers = VecDeque::from([http_failure(500)]);
    world.crash_after_pushes = Some(1);
    assert_eq!(world.stream_moved(&mut machine), End::Crashed);
    // The failed push's transaction is stored, as any other in flight.
    assert_eq!(world.db.pending.as_ref().map(|p| p.txn_id), Some(2));
}

#[test]
fn a_transaction_cut_off_mid_push_goes_out_again_unchanged_after_a_restart() {
    let mut world = World::new().with_events(150);
    world.crash_after_pushes = Some(2);
    let (_, end) = world.start(false);
    assert_eq!(end, End::Crashed);
    world.queued.clear();
    world.crash_after_pushes = None;
    let (_, end) = world.start(false);
    assert_eq!(end, End::Idle);
    world.assert_txn_ids_keep_their_contents();
    assert_eq!(world.delivered_events(), world.wanted());
}

#[test]
fn a_queue_paused_mid_push_resumes_with_the_same_transaction() {
    // Pausing a service stops its worker wherever it is; its queued writes still commit.
    let mut world = World::new().with_events(1);
    let (mut machine, _) = world.start(false);
    world.append(5);
    world.crash_after_pushes = Some(0);
    assert_eq!(world.stream_moved(&mut machine), End::Crashed);
    world.crash_after_pushes = None;
    let (_, end) = world.start(false);
    assert_eq!(end, End::Idle);
    assert_eq!(world.pushes(), vec![1, 2, 2]);
    world.assert_txn_ids_keep_their_contents();
    assert_eq!(world.delivered_events(), world.wanted());
}

#[test]
fn a_lone_event_whose_record_was_lost_in_a_crash_goes_out_again_under_the_same_txn_id() {
    let mut world = World::new();
    world.slow_writer = true;
    let (mut machine, _) = world.start(false);
    world.append(3);
    // Txn 1 (a lone event: the first after a start) goes out while its record is queued;
    // the process dies before that commits.
    world.crash_after_pushes = Some(0);
    assert_eq!(world.stream_moved(&mut machine), End::Crashed);
    world.queued.clear();
    assert!(world.db.pending.is_none());
    world.crash_after_pushes = None;
    world.slow_writer = false;
    world.append(2);
    let (_, end) = world.start(false);
    assert_eq!(end, End::Idle);
    assert_eq!(world.sent[0], (1, vec![1]));
    assert_eq!(world.sent[1], (1, vec![1]), "the same lone event again");
    world.assert_txn_ids_keep_their_contents();
    assert_eq!(world.delivered_events(), world.wanted());
}

/// A small deterministic generator for the long run below.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn nothing_is_lost_reordered_or_sent_twice_with_other_contents_through_failures_and_crashes() {
    for (seed, in_process) in [(1, false), (2, true), (3, false), (4, true)] {
        let mut rng = Lcg(seed);
        let mut world = World::new();
        let (mut machine, mut end) = world.start(in_process);
        for _ in 0..200 {
            let end_of_stream = world.stream.last().map_or(0, |e| e.0);
            let burst = rng.below(10) == 0;
            let n = 1 + rng.below(if burst { 150 } else { 3 }) as i64;
            world
                .stream
                .extend((end_of_stream + 1..=end_of_stream + n).map(|s| (s, rng.below(4) != 0)));
            world.answers = (0..rng.below(4))
                .map(|_| match rng.below(5) {
                    0 => http_failure(500),
                    1 => http_failure(503),
                    2 => Answer::Fails(DeliveryError::Timeout(S)),
                    _ if in_process => Answer::Acknowledged,
                    _ => Answer::Delivered,
                })
                .collect();
            world.slow_writer = rng.below(2) == 0;
            world.crash_after_pushes = (rng.below(8) == 0).then(|| rng.below(3) as usize);
            end = match end {
                End::Idle => world.stream_moved(&mut machine),
                _ => End::Crashed,
            };
            if end == End::Crashed {
                world.queued.clear();
                world.crash_after_pushes = None;
                (machine, end) = world.start(in_process);
            }
            world.assert_txn_ids_keep_their_contents();
        }
        world.answers.clear();
        if end == End::Idle {
            end = world.stream_moved(&mut machine);
        }
        assert_eq!(end, End::Idle);
        assert_eq!(world.delivered_events(), world.wanted(), "seed {seed}");
    }
}

#[test]
fn a_full_read_of_one_kind_ends_the_range_at_its_last_row_and_a_short_one_leaves_it() {
    use super::builder::read_cut;
    // Fewer rows than a read takes: the whole range was read.
    assert_eq!(read_cut(900, 3, Some(40)), 900);
    assert_eq!(read_cut(900, 0, None), 900);
    // A full read: what lies after its last row waits for the next build.
    assert_eq!(read_cut(900, 500, Some(700)), 700);
    // Never past where another kind's read already ended the range.
    assert_eq!(read_cut(600, 500, Some(700)), 600);
}
