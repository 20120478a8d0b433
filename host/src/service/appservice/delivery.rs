//! Delivery: one task per application service drains its durable queue in stream order. The
//! stored pending transaction is pushed until acknowledged (the same txnId and events on
//! every retry, with backoff and probes as [`retry`](super::retry) decides, the service marked
//! down meanwhile); then the next one is built from the events after the service's position
//! that its namespaces select.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::interest::CompiledService;
use super::queue::{take, Candidate, Item, MAX_TXN_EPHEMERAL, MAX_TXN_EVENTS};
use super::retry::{Failure, Pause, Retry, RetryPolicy, Wake};
use super::transport::{DeliveryError, Pushed, Transport};
use crate::service::rooms::pdu::Pdu;
use crate::service::samples::DurationSamples;
use crate::service::{now_ms, Error, Services};
use crate::storage::queue::QueueWrite;
use crate::storage::writer::WriteOp;

/// Events read from the stream per step; unwanted ones are passed over in the same step, and
/// the read stops early once a transaction is full.
const READ_AHEAD: i64 = 500;
/// Events read per query within a step: a service that wants everything fills its
/// transaction from the first page, without reading (and copying) the rest of the step's rows.
const READ_PAGE: i64 = MAX_TXN_EVENTS as i64;

/// What the admin sees of a service's delivery.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub up: bool,
    pub last_success_ms: Option<i64>,
    pub last_error: Option<(i64, String)>,
    pub txns_sent: u64,
    pub events_sent: u64,
    pub retries: u64,
    /// Probes sent while it was down (see [`retry`](super::retry)).
    pub probes: u64,
    /// How long successful pushes took, sent to acknowledged.
    pub push_times: DurationSamples,
}

#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error("delivery: {0}")]
    Delivery(#[from] DeliveryError),
    #[error(transparent)]
    Service(#[from] Error),
}

impl StepError {
    fn failure(&self) -> Failure {
        match self {
            StepError::Delivery(e) => e.failure(),
            StepError::Service(_) => Failure::Local,
        }
    }
}

impl From<crate::storage::StorageError> for StepError {
    fn from(e: crate::storage::StorageError) -> Self {
        StepError::Service(e.into())
    }
}

/// A service's queue as this worker keeps it. The database has the same, or will once the
/// write in `unconfirmed` commits.
///
/// Every transaction's record (txn id, events, end position) is durable before it is pushed,
/// with one exception that keeps a steady trickle of events from paying a commit before each
/// push: a transaction of one event and nothing else is pushed while its record is still on
/// its way to disk, and only once every earlier record is on disk. Were the process to die
/// before that commit, the service may hold one txnId the database does not know: the one
/// after the stored transaction (or after the position, with none stored). So after a
/// restart the first transaction built carries only the first wanted item after the stored
/// one ([`Queue::lone_first`]): the same lone event, under the same txnId. (A worker
/// restarted in the same process first waits for the writer to drain, so it always finds
/// the record.) An in-process transport's lone event goes out before its record is even
/// queued ([`Transport::in_process`]) under the same rule: once every earlier write has
/// committed, and the next push waits for its record.
///
/// In a backlog the transaction after the one in flight is built before that one is
/// pushed ([`Queue::ahead`]) and its record written in the same commit as the
/// acknowledgement, while the one after it is built during the push: every transaction is
/// still recorded before it goes out, and a backlog costs one commit per transaction.
#[derive(Default)]
struct Queue {
    position: i64,
    next_txn_id: i64,
    pending: Option<Pending>,
    /// The next transaction built carries at most one item (see above).
    lone_first: bool,
    /// The transaction in flight was pushed with no record queued: its record goes with its
    /// acknowledgement.
    unrecorded: bool,
    /// What follows the transaction in flight (a transaction or a move of the position),
    /// built while it was pushed: its record goes with that acknowledgement.
    ahead: Option<Next>,
    /// The commit of this worker's latest write when it did not wait for it. The writer
    /// commits one task's writes in the order they were queued, and stops at the first that
    /// fails, so the latest tells about all of them.
    unconfirmed: Option<Unconfirmed>,
}

/// A queued write's commit, not waited for.
type Unconfirmed = oneshot::Receiver<crate::storage::Result<i64>>;

/// The transaction in flight: its txn id and events never change until acknowledged.
struct Pending {
    txn_id: i64,
    last_stream: i64,
    body: Value,
}

impl Pending {
    /// As many events as a transaction carries: a backlog.
    fn is_full(&self) -> bool {
        self.body["events"]
            .as_array()
            .is_some_and(|e| e.len() == MAX_TXN_EVENTS)
    }

    /// One event and no ephemeral data: what may be pushed before its record commits.
    fn is_lone_event(&self) -> bool {
        self.body["events"].as_array().is_some_and(|e| e.len() == 1)
            && self.body["ephemeral"].as_array().is_none_or(Vec::is_empty)
    }
}

/// What building found after the position.
#[derive(Default)]
struct Next {
    txn: Option<Pending>,
    /// Set when nothing was wanted but the position may move.
    advance_to: Option<i64>,
}

impl Next {
    fn is_nothing(&self) -> bool {
        self.txn.is_none() && self.advance_to.is_none()
    }
}

impl Queue {
    /// This queue once `next` is written; `unconfirmed` is that write if it was not waited
    /// for.
    fn after(self, next: Next, unconfirmed: Option<Unconfirmed>) -> Queue {
        Queue {
            position: next.advance_to.unwrap_or(self.position),
            next_txn_id: self.next_txn_id,
            // Passing unwanted events does not settle what the first transaction holds.
            lone_first: self.lone_first && next.txn.is_none(),
            unrecorded: false,
            pending: next.txn,
            unconfirmed,
            ahead: None,
        }
    }

    /// The queue once `pending` is acknowledged, as far as building what follows goes.
    fn after_ack_of(pending: &Pending) -> Queue {
        Queue {
            position: pending.last_stream,
            next_txn_id: pending.txn_id + 1,
            ..Queue::default()
        }
    }

    /// Keeps `following` (built after the transaction now in flight) for its push; a
    /// failed build only means the next step builds it again.
    fn follow_with(
        &mut self,
        following: Option<Result<Next, StepError>>,
    ) -> Result<Step, StepError> {
        match following {
            Some(Ok(next)) if self.pending.is_some() && !next.is_nothing() => {
                self.ahead = Some(next);
                Ok(Step::Progress)
            }
            Some(Err(e)) => Err(e),
            _ => Ok(Step::Progress),
        }
    }

    /// Fails if a write this worker did not wait for has failed.
    fn check_unconfirmed(&mut self) -> Result<(), StepError> {
        let Some(rx) = self.unconfirmed.as_mut() else {
            return Ok(());
        };
        match rx.try_recv() {
            Ok(Ok(_)) => {
                self.unconfirmed = None;
                Ok(())
            }
            Ok(Err(e)) => Err(e.into()),
            Err(oneshot::error::TryRecvError::Empty) => Ok(()),
            Err(oneshot::error::TryRecvError::Closed) => {
                Err(crate::storage::StorageError::WriterGone.into())
            }
        }
    }
}

enum Step {
    /// Nothing after the position: wait for the stream to move.
    Idle,
    Progress,
}

pub struct Worker {
    pub services: Arc<Services>,
    pub service: CompiledService,
    pub transport: Arc<dyn Transport>,
    pub status: Arc<Mutex<Status>>,
    pub retry: RetryPolicy,
    /// Ends a backoff pause early: a successful ping or an admin asks for a retry now.
    pub poke: Arc<tokio::sync::Notify>,
    /// The typing serial the service has been told up to (typing lives outside the stream).
    pub typing_sent: AtomicU64,
}

impl Worker {
    pub async fn run(self) {
        let mut wake = self.services.notifier.subscribe();
        let start = self.services.notifier.position().stream;
        let mut retry = Retry::default();
        let mut queue: Option<Queue> = None;
        loop {
            let result = match queue.as_mut() {
                Some(q) => self.step(q).await,
                None => self.load_queue(start).await.map(|q| {
                    queue = Some(q);
                    Step::Progress
                }),
            };
            match result {
                Ok(Step::Progress) => retry.succeeded(),
                Ok(Step::Idle) => {
                    retry.succeeded();
                    if wake.changed().await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let pause = retry.failed(e.failure(), &self.retry);
                    tracing::warn!(
                        appservice = %self.service.id,
                        error = %e,
                        retry_in = ?pause.length,
                        probe_every = ?pause.probe_every,
                        "delivery failed"
                    );
                    {
                        let mut s = self.lock_status();
                        s.up = false;
                        s.retries += 1;
                        s.last_error = Some((now_ms(), e.to_string()));
                    }
                    let woke = self.pause(pause, &mut retry).await;
                    match woke {
                        Wake::Over => {}
                        Wake::Poked => {
                            tracing::info!(appservice = %self.service.id, "retrying at once")
                        }
                        Wake::Probe => tracing::info!(
                            appservice = %self.service.id,
                            "a probe found the service back: retrying at once"
                        ),
                    }
                    retry.woke(woke);
                }
            }
        }
    }

    /// Waits out `pause` after a failed push, probing the destination meanwhile if the pause
    /// says so; a poke, or a probe that finds the destination back, ends it early.
    async fn pause(&self, pause: Pause, retry: &mut Retry) -> Wake {
        let end = tokio::time::Instant::now() + pause.length;
        let Some(every) = pause.probe_every else {
            return tokio::select! {
                _ = tokio::time::sleep_until(end) => Wake::Over,
                _ = self.poke.notified() => Wake::Poked,
            };
        };
        let mut next = tokio::time::Instant::now() + every;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(end) => return Wake::Over,
                _ = self.poke.notified() => return Wake::Poked,
                _ = tokio::time::sleep_until(next) => {}
            }
            // A probe that does not answer within its interval counts as down.
            let probe = tokio::select! {
                probe = self.transport.probe(every) => probe,
                _ = tokio::time::sleep_until(end) => return Wake::Over,
                _ = self.poke.notified() => return Wake::Poked,
            };
            self.lock_status().probes += 1;
            if retry.probed(probe) {
                return Wake::Probe;
            }
            next = (next + every).max(tokio::time::Instant::now());
        }
    }

    fn lock_status(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the queue once: from then on this worker is the only writer of its row, so it
    /// keeps the state in memory and only writes changes. An earlier worker of the same
    /// service may have left writes in the writer's queue; an empty write waits them out.
    async fn load_queue(&self, start: i64) -> Result<Queue, StepError> {
        self.services
            .writer
            .write(WriteOp::Queue(QueueWrite {
                kind: self.transport.queue_kind(),
                id: self.service.id.clone(),
                ack: None,
                position: None,
                pending: None,
            }))
            .await?;
        let row = self
            .services
            .storage
            .queue(self.transport.queue_kind(), &self.service.id, start)
            .await?;
        let pending = match (
            row.pending_txn_id,
            row.pending_last_stream,
            row.pending_body,
        ) {
            (Some(txn_id), Some(last_stream), Some(body)) => Some(Pending {
                txn_id,
                last_stream,
                body: serde_json::from_str(&body).map_err(crate::storage::StorageError::from)?,
            }),
            _ => None,
        };
        Ok(Queue {
            position: row.position,
            next_txn_id: row.next_txn_id,
            lone_first: true,
            unrecorded: false,
            pending,
            unconfirmed: None,
            ahead: None,
        })
    }

    async fn step(&self, queue: &mut Queue) -> Result<Step, StepError> {
        queue.check_unconfirmed()?;
        if queue.pending.is_some() {
            return self.push_pending(queue).await;
        }
        let next = self.build(queue).await?;
        if next.is_nothing() {
            return Ok(Step::Idle);
        }
        let earlier = queue.unconfirmed.take();
        if self.goes_out_unrecorded(&next) {
            if let Some(rx) = earlier {
                rx.await
                    .unwrap_or(Err(crate::storage::StorageError::WriterGone))?;
            }
            *queue = std::mem::take(queue).after(next, None);
            queue.unrecorded = true;
            return Ok(Step::Progress);
        }
        let unconfirmed = self
            .record(self.queue_write(None, &next), &next, earlier)
            .await?;
        *queue = std::mem::take(queue).after(next, unconfirmed);
        Ok(Step::Progress)
    }

    /// Pushes the transaction in flight until acknowledged, then moves the queue on to what
    /// follows it, recorded with the acknowledgement or just after it.
    async fn push_pending(&self, queue: &mut Queue) -> Result<Step, StepError> {
        let Some(pending) = &queue.pending else {
            return Ok(Step::Progress);
        };
        let acked = Queue {
            // A stored transaction pushed again after a restart may have been followed
            // by a lone one that never got its record: the next one is lone too.
            lone_first: queue.lone_first,
            ..Queue::after_ack_of(pending)
        };
        // In a backlog (a full transaction) what follows is known before the push, so that
        // its record goes with this acknowledgement (one commit per transaction) and the one
        // after it is built while this one is handled. Live traffic goes out at once, what
        // follows built after it: a build beside the plugin's call would compete with it
        // for the CPU the reply needs.
        let ahead = match queue.ahead.take() {
            Some(ahead) => Some(ahead),
            None if pending.is_full() => Some(self.build(&acked).await?),
            None => None,
        };
        // What acknowledges it: its record first when it has none (one task's writes
        // commit in order, and each fails once an earlier one has).
        let mut ack = Vec::with_capacity(2);
        if queue.unrecorded {
            ack.push(self.record_of(pending));
        }
        ack.push(self.queue_step(
            Some(pending.txn_id),
            ahead.as_ref().unwrap_or(&Next::default()),
        ));
        let building = async {
            match &ahead {
                Some(Next { txn: Some(t), .. }) => Some(self.build(&Queue::after_ack_of(t)).await),
                _ => None,
            }
        };
        let (pushed, following) = tokio::join!(self.push(pending, &ack), building);
        let pushed = match pushed {
            Ok(pushed) => pushed,
            Err(e) => {
                // Built from the same position, what follows stays valid for the retry.
                queue.ahead = ahead;
                if queue.unrecorded {
                    // It stays in flight through the retries: recorded, as any other,
                    // for the restart rule to have it and the admin to see or skip it.
                    self.services
                        .writer
                        .write(WriteOp::Queue(self.record_of(pending)))
                        .await?;
                    queue.unrecorded = false;
                }
                return Err(e.into());
            }
        };
        let (next, recorded) = match ahead {
            Some(ahead) => (ahead, true),
            None => match self.build(&acked).await {
                Ok(next) => (next, false),
                Err(e) => {
                    if pushed == Pushed::Acknowledged {
                        // The database has the acknowledgement: so must this worker (and it
                        // still hears how its earlier write ended).
                        *queue = Queue {
                            unconfirmed: queue.unconfirmed.take(),
                            ..acked
                        };
                    }
                    return Err(e);
                }
            },
        };
        let earlier = queue.unconfirmed.take();
        if pushed == Pushed::Acknowledged {
            // Committed with the plugin's writes, after every earlier write of this
            // worker: those answered before it, and a failed one must still be heard.
            if let Some(rx) = earlier {
                rx.await
                    .unwrap_or(Err(crate::storage::StorageError::WriterGone))?;
            }
            if recorded {
                *queue = acked.after(next, None);
                return queue.follow_with(following);
            }
            // The pushed transaction is known to the database: a lone next one may go
            // out unrecorded at once, anything else is recorded first.
            let unrecorded = self.goes_out_unrecorded(&next);
            let unconfirmed = if next.is_nothing() || unrecorded {
                None
            } else {
                self.record(self.queue_write(None, &next), &next, None)
                    .await?
            };
            *queue = acked.after(next, unconfirmed);
            queue.unrecorded = unrecorded;
            return Ok(Step::Progress);
        }
        if queue.unrecorded {
            // Its record first, so that the acknowledgement finds it; the
            // acknowledgement's answer covers the record's.
            drop(
                self.services
                    .writer
                    .submit(WriteOp::Queue(self.record_of(pending))),
            );
        }
        // The acknowledgement and the next transaction are written together: one commit
        // per transaction.
        let write = self.queue_write(Some(pending.txn_id), &next);
        let unconfirmed = if next.is_nothing() {
            // Nothing follows yet, and the next event must not wait for this commit: a
            // crash before it only makes the service see this txnId again. (The writer
            // commits in order: if an earlier write fails, this one fails too.)
            Some(self.services.writer.submit(write))
        } else if queue.unrecorded {
            // The database does not know the transaction just pushed until this commits:
            // no other may go out before.
            self.services.writer.write(write).await?;
            None
        } else {
            self.record(write, &next, earlier).await?
        };
        *queue = acked.after(next, unconfirmed);
        queue.follow_with(following)
    }

    /// Pushes the transaction in flight, with the steps that acknowledge it, and counts it.
    async fn push(&self, pending: &Pending, ack: &[QueueWrite]) -> Result<Pushed, DeliveryError> {
        let started = std::time::Instant::now();
        let pushed = self
            .transport
            .push(&pending.txn_id.to_string(), &pending.body, ack)
            .await?;
        let took = started.elapsed();
        let mut s = self.lock_status();
        s.push_times.record(took);
        s.up = true;
        s.last_success_ms = Some(now_ms());
        s.txns_sent += 1;
        s.events_sent += pending.body["events"].as_array().map_or(0, Vec::len) as u64;
        Ok(pushed)
    }

    /// Queues `write`, which records `next`, and waits for its commit; except when `next` is
    /// a lone event, which goes out at once (see [`Queue`]): then the commit is answered as
    /// the write still to be confirmed. Waiting confirms every earlier write too.
    ///
    /// `earlier` is this worker's write still unconfirmed, if any. A lone event is pushed
    /// before its record commits only once every earlier record has: so at most one pushed
    /// transaction is ever unknown to the database, the one the restart rule rebuilds.
    async fn record(
        &self,
        write: WriteOp,
        next: &Next,
        earlier: Option<Unconfirmed>,
    ) -> Result<Option<Unconfirmed>, StepError> {
        if next.txn.as_ref().is_some_and(Pending::is_lone_event) {
            if let Some(rx) = earlier {
                rx.await
                    .unwrap_or(Err(crate::storage::StorageError::WriterGone))?;
            }
            return Ok(Some(self.services.writer.submit(write)));
        }
        self.services.writer.write(write).await?;
        Ok(None)
    }

    /// Whether `next` is pushed before any record of it is queued: a lone event to an
    /// in-process transport (see [`Queue`]).
    fn goes_out_unrecorded(&self, next: &Next) -> bool {
        self.transport.in_process() && next.txn.as_ref().is_some_and(Pending::is_lone_event)
    }

    /// The record of `pending` alone, for a transaction pushed before it had one.
    fn record_of(&self, pending: &Pending) -> QueueWrite {
        QueueWrite {
            kind: self.transport.queue_kind(),
            id: self.service.id.clone(),
            ack: None,
            position: None,
            pending: Some((
                pending.txn_id,
                pending.last_stream,
                pending.body.to_string(),
            )),
        }
    }

    /// A queue step for the group-commit writer: the acknowledgement of `ack`, then what
    /// `next` found.
    fn queue_write(&self, ack: Option<i64>, next: &Next) -> WriteOp {
        WriteOp::Queue(self.queue_step(ack, next))
    }

    fn queue_step(&self, ack: Option<i64>, next: &Next) -> QueueWrite {
        QueueWrite {
            kind: self.transport.queue_kind(),
            id: self.service.id.clone(),
            ack,
            position: next.advance_to,
            pending: next
                .txn
                .as_ref()
                .map(|p| (p.txn_id, p.last_stream, p.body.to_string())),
        }
    }

    /// The next transaction after `queue.position` (nothing in flight), or how far the
    /// position may move past events the service does not want.
    async fn build(&self, queue: &Queue) -> Result<Next, StepError> {
        let storage = &self.services.storage;
        let upto = self.services.notifier.position().stream;
        let (max_events, max_ephemeral) = if queue.lone_first {
            (1, 1)
        } else {
            (MAX_TXN_EVENTS, MAX_TXN_EPHEMERAL)
        };
        let ephemeral = self.service.registration.receive_ephemeral;
        let typing_serial = self.services.typing.serial();
        let typing_changed = ephemeral && typing_serial > self.typing_sent.load(Ordering::SeqCst);
        if queue.position >= upto && !typing_changed {
            return Ok(Next::default());
        }
        let mut rooms: HashMap<String, bool> = HashMap::new();
        let mut candidates = Vec::new();
        let mut wanted_events = 0;
        // A read cut short ends at its last event; a whole one at `upto`.
        let mut read_end = upto;
        let mut after = queue.position;
        let mut read = 0;
        'read: while read < READ_AHEAD {
            let limit = READ_PAGE.min(READ_AHEAD - read);
            let rows = storage.events_range(after, upto, limit).await?;
            let whole = (rows.len() as i64) < limit;
            read += rows.len() as i64;
            for row in rows {
                after = row.stream;
                // Interest is decided on the row's columns; only wanted events are parsed.
                let wanted = self.service.takes_events_of(&row.sender)
                    && (self.wants_room(&mut rooms, &row.room_id).await?
                        || self.service.namespaces.event_interest(
                            &row.sender,
                            &row.kind,
                            row.state_key.as_deref(),
                        ));
                let stream = row.stream;
                let payload = if wanted {
                    let pdu = Pdu::try_from(row)?;
                    wanted_events += 1;
                    Some(Item::Event(
                        self.services.rooms.client_event(&pdu, None, true).await?,
                    ))
                } else {
                    None
                };
                candidates.push(Candidate {
                    stream,
                    wanted: payload,
                });
                if wanted_events == max_events {
                    read_end = stream;
                    break 'read;
                }
            }
            if whole {
                break;
            }
            if read == READ_AHEAD {
                read_end = after;
            }
        }
        if ephemeral {
            let receipts = storage
                .receipts_range(queue.position, read_end, READ_AHEAD)
                .await?;
            for r in receipts {
                // Private receipts are for their owner's clients only.
                if r.receipt_type == "m.read.private" {
                    continue;
                }
                let wanted = self.wants_room(&mut rooms, &r.room_id).await?;
                let mut content = json!({});
                content[r.event_id.as_str()][r.receipt_type.as_str()][r.user_id.as_str()] =
                    json!({ "ts": r.ts });
                candidates.push(Candidate {
                    stream: r.stream,
                    wanted: wanted.then(|| {
                        Item::Ephemeral(
                            json!({ "type": "m.receipt", "room_id": r.room_id, "content": content }),
                        )
                    }),
                });
            }
            candidates.sort_by_key(|c| c.stream);
        }
        let mut next = take(candidates, read_end, max_events, max_ephemeral);
        // Typing is not in the stream: its current state goes with the next transaction, but
        // not with a lone first one, whose content must be just its first item.
        if typing_changed && !queue.lone_first {
            let since = self.typing_sent.load(Ordering::SeqCst);
            for room in self.services.typing.rooms_changed_since(since) {
                if next.ephemeral.len() < max_ephemeral
                    && self.wants_room(&mut rooms, &room).await?
                {
                    let users = self.services.typing.typing_in(&room);
                    next.ephemeral.push(json!({
                        "type": "m.typing",
                        "room_id": room,
                        "content": { "user_ids": users },
                    }));
                }
            }
            self.typing_sent.store(typing_serial, Ordering::SeqCst);
        }
        let last_stream = next.last_stream.max(queue.position);
        if next.is_empty() {
            return Ok(Next {
                txn: None,
                advance_to: (last_stream > queue.position).then_some(last_stream),
            });
        }
        let mut body = json!({ "events": next.events });
        if ephemeral {
            body["ephemeral"] = json!(next.ephemeral);
            body["de.sorunome.msc2409.ephemeral"] = json!(next.ephemeral);
        }
        Ok(Next {
            txn: Some(Pending {
                txn_id: queue.next_txn_id,
                last_stream,
                body,
            }),
            advance_to: None,
        })
    }

    /// Whether this service wants every event of a room: from the shared room cache, or
    /// computed from the room's aliases and local joined members and cached.
    async fn wants_room(
        &self,
        rooms: &mut HashMap<String, bool>,
        room_id: &str,
    ) -> Result<bool, StepError> {
        if let Some(wanted) = rooms.get(room_id) {
            return Ok(*wanted);
        }
        let cache = &self.services.appservices.room_cache;
        let interest = match cache.get(room_id) {
            Some(interest) => interest,
            None => {
                let generation = cache.generation();
                let storage = &self.services.storage;
                let aliases = storage.room_aliases(room_id).await?;
                let members: Vec<String> = storage
                    .room_members(room_id, Some("join"))
                    .await?
                    .into_iter()
                    .map(|m| m.user_id)
                    .collect();
                let interest = self
                    .services
                    .appservices
                    .registry()
                    .room_interest(room_id, &aliases, &members);
                cache.insert(room_id, interest.clone(), generation);
                interest
            }
        };
        let wanted = interest.wants_room(&self.service.id);
        rooms.insert(room_id.to_string(), wanted);
        Ok(wanted)
    }
}
