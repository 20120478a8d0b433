//! The delivery worker: one task per destination that does the I/O its queue's
//! [`Machine`] asks for (reads the stored queue, builds transactions, writes records and
//! acknowledgements, pushes through the [`Transport`], sleeps and probes) and answers it with
//! what happened. What a destination's transactions hold and how its queue is stored is its
//! [`Destination`]; everything else is the same for every kind of destination.

use std::future::Future;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

use super::machine::Machine;
use super::steps::{Action, Commit, Earlier, Event, Fault, Store};
use super::txn::{Built, Cursor, Stored, Txn, Write};
use crate::service::appservice::retry::{Failure, RetryPolicy, Wake};
use crate::service::appservice::transport::{DeliveryError, Pushed, Transport};
use crate::service::samples::DurationSamples;
use crate::service::sync::Notifier;
use crate::service::{now_ms, Error};
use crate::storage::queue::{QueueKind, QueueWrite};
use crate::storage::writer::{WriteOp, Writer};
use crate::storage::{Storage, StorageError};

/// What the admin sees of a destination's delivery.
#[derive(Debug, Clone, Default)]
pub(crate) struct Status {
    pub(crate) up: bool,
    pub(crate) last_success_ms: Option<i64>,
    pub(crate) last_error: Option<(i64, String)>,
    pub(crate) txns_sent: u64,
    pub(crate) events_sent: u64,
    pub(crate) retries: u64,
    /// Probes sent while it was down (see [`retry`](crate::service::appservice::retry)).
    pub(crate) probes: u64,
    /// How long successful pushes took, sent to acknowledged.
    pub(crate) push_times: DurationSamples,
}

/// A transaction's body as pushed: JSON, shared between the queue's record and the push.
pub(crate) type Body = Arc<Value>;

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StepError {
    #[error("delivery: {0}")]
    Delivery(#[from] DeliveryError),
    #[error(transparent)]
    Service(#[from] Error),
}

impl StepError {
    pub(super) fn fault(&self) -> Fault {
        let failure = match self {
            StepError::Delivery(e) => e.failure(),
            StepError::Service(_) => Failure::Local,
        };
        Fault {
            failure,
            message: self.to_string(),
        }
    }
}

impl From<StorageError> for StepError {
    fn from(e: StorageError) -> Self {
        StepError::Service(e.into())
    }
}

/// A kind of destination: what its transactions hold and where its queue is stored. The
/// rules, the retries and the I/O of pushing are the worker's.
pub(crate) trait Destination: Send + Sync {
    /// Its name in the logs.
    fn name(&self) -> &str;

    /// The stored queue, made at stream position `start` when there is none.
    fn load(&self, start: i64) -> impl Future<Output = Result<Stored<Body>, StepError>> + Send;

    /// What follows `from`: the next transaction, or how far the position may move.
    fn build(&self, from: Cursor) -> impl Future<Output = Result<Built<Body>, StepError>> + Send;

    /// `write` as the writer's queue step.
    fn queue_write(&self, write: &Write<Body>) -> QueueWrite;
}

impl Write<Body> {
    /// This step as the writer's step of queue `id` of `kind`.
    pub(crate) fn to_queue(&self, kind: QueueKind, id: &str) -> QueueWrite {
        QueueWrite {
            kind,
            id: id.to_string(),
            ack: self.ack,
            position: self.advance_to,
            pending: self
                .txn
                .as_ref()
                .map(|t| (t.txn_id, t.last_stream, t.body.to_string())),
        }
    }
}

/// Queue `id` of `kind` as stored, made at stream position `start` when there is none; `txn`
/// makes the transaction in flight from its id, last stream position and body.
pub(crate) async fn load_queue(
    storage: &Storage,
    kind: QueueKind,
    id: &str,
    start: i64,
    txn: impl FnOnce(i64, i64, Value) -> Txn<Body>,
) -> Result<Stored<Body>, StepError> {
    let row = storage.queue(kind, id, start).await?;
    Ok(Stored::from_row(row, txn).map_err(StorageError::from)?)
}

/// The commit of a queued write, not waited for.
type Unconfirmed = oneshot::Receiver<crate::storage::Result<i64>>;

/// One worker's writes. The writer commits one task's writes in the order they were queued,
/// and stops at the first that fails, so the latest not waited for tells about all of them.
struct Writes {
    writer: Writer,
    unconfirmed: Option<Unconfirmed>,
}

impl Writes {
    /// Fails if a write this worker did not wait for has failed.
    fn check(&mut self) -> Result<(), StepError> {
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
            Err(oneshot::error::TryRecvError::Closed) => Err(StorageError::WriterGone.into()),
        }
    }

    async fn store(
        &mut self,
        store: Store<Body>,
        destination: &impl Destination,
    ) -> Result<(), StepError> {
        let op = |w: &Write<Body>| WriteOp::Queue(destination.queue_write(w));
        if let Some(forward) = &store.forward {
            drop(self.writer.submit(op(forward)));
        }
        match store.earlier {
            Earlier::Keep => {}
            Earlier::Await => {
                if let Some(rx) = self.unconfirmed.take() {
                    rx.await.unwrap_or(Err(StorageError::WriterGone))?;
                }
            }
            Earlier::Drop => self.unconfirmed = None,
        }
        match &store.write {
            Some((write, Commit::Wait)) => {
                self.writer.write(op(write)).await?;
            }
            Some((write, Commit::Leave)) => self.unconfirmed = Some(self.writer.submit(op(write))),
            None => {}
        }
        Ok(())
    }
}

/// A destination's delivery task, with the few services it uses.
pub(crate) struct Worker<D> {
    pub(crate) destination: D,
    pub(crate) writer: Writer,
    /// Tells the stream's end and wakes an idle queue when it moves.
    pub(crate) notifier: Notifier,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) retry: RetryPolicy,
    /// Ends a backoff pause early: a successful ping or an admin asks for a retry now.
    pub(crate) poke: Arc<Notify>,
    pub(crate) status: Arc<Mutex<Status>>,
}

impl<D: Destination> Worker<D> {
    /// Drives the machine until the stream is gone (or the task is aborted: a push cut off
    /// is sent again, with the same txn id, by the next worker).
    pub(crate) async fn run(self) {
        let mut stream = self.notifier.subscribe();
        let start = self.notifier.position().stream;
        let mut machine = Machine::new(self.retry, self.transport.in_process());
        let mut writes = Writes {
            writer: self.writer.clone(),
            unconfirmed: None,
        };
        let mut actions = vec![Action::Load];
        loop {
            let mut event = None;
            for action in actions {
                event = match action {
                    Action::Load => Some(Event::Loaded(self.load(start).await)),
                    Action::CheckWrites => {
                        Some(Event::Checked(writes.check().map_err(|e| e.fault())))
                    }
                    Action::Build(from) => Some(Event::Built(self.build(from).await)),
                    Action::Store(store) => Some(Event::Stored(
                        writes
                            .store(store, &self.destination)
                            .await
                            .map_err(|e| e.fault()),
                    )),
                    Action::Push { txn, ack, follow } => Some(self.push(&txn, &ack, follow).await),
                    Action::WaitForStream => Some(match stream.changed().await {
                        Ok(()) => Event::StreamMoved,
                        Err(_) => Event::StreamClosed,
                    }),
                    Action::Failed { fault, pause } => {
                        tracing::warn!(
                            appservice = %self.destination.name(),
                            error = %fault.message,
                            retry_in = ?pause.length,
                            probe_every = ?pause.probe_every,
                            "delivery failed"
                        );
                        let mut s = self.lock_status();
                        s.up = false;
                        s.retries += 1;
                        s.last_error = Some((now_ms(), fault.message));
                        None
                    }
                    Action::Sleep { until } => Some(tokio::select! {
                        _ = tokio::time::sleep_until(until) => Event::Time,
                        _ = self.poke.notified() => Event::Poked,
                    }),
                    Action::Probe { timeout, until } => Some(tokio::select! {
                        probe = self.transport.probe(timeout) => {
                            self.lock_status().probes += 1;
                            Event::Probed(probe)
                        }
                        _ = tokio::time::sleep_until(until) => Event::Time,
                        _ = self.poke.notified() => Event::Poked,
                    }),
                    Action::Resumed(wake) => {
                        match wake {
                            Wake::Over => {}
                            Wake::Poked => {
                                tracing::info!(appservice = %self.destination.name(), "retrying at once")
                            }
                            Wake::Probe => tracing::info!(
                                appservice = %self.destination.name(),
                                "a probe found the service back: retrying at once"
                            ),
                        }
                        None
                    }
                    Action::Stop => None,
                };
            }
            let Some(event) = event else {
                return;
            };
            actions = machine.on(event, Instant::now());
        }
    }

    fn lock_status(&self) -> std::sync::MutexGuard<'_, Status> {
        crate::lock::lock(&self.status)
    }

    /// Reads the queue once: from then on this worker is the only writer of its row, so it
    /// keeps the state in memory and only writes changes. An earlier worker of the same
    /// destination may have left writes in the writer's queue; an empty write waits them out.
    async fn load(&self, start: i64) -> Result<Stored<Body>, Fault> {
        let nothing = self.destination.queue_write(&Write::nothing());
        async {
            self.writer.write(WriteOp::Queue(nothing)).await?;
            self.destination.load(start).await
        }
        .await
        .map_err(|e| e.fault())
    }

    async fn build(&self, from: Cursor) -> Result<Built<Body>, Fault> {
        self.destination.build(from).await.map_err(|e| e.fault())
    }

    /// Pushes `txn` with the writes that acknowledge it, and counts it; meanwhile builds
    /// what follows `follow`.
    async fn push(
        &self,
        txn: &Txn<Body>,
        ack: &[Write<Body>],
        follow: Option<Cursor>,
    ) -> Event<Body> {
        let ack: Vec<QueueWrite> = ack
            .iter()
            .map(|w| self.destination.queue_write(w))
            .collect();
        let pushing = async {
            let started = std::time::Instant::now();
            let pushed = self
                .transport
                .push(&txn.txn_id.to_string(), &txn.body, &ack)
                .await?;
            let took = started.elapsed();
            let mut s = self.lock_status();
            s.push_times.record(took);
            s.up = true;
            s.last_success_ms = Some(now_ms());
            s.txns_sent += 1;
            s.events_sent += txn.events as u64;
            Ok::<Pushed, DeliveryError>(pushed)
        };
        let building = async {
            match follow {
                Some(from) => Some(self.build(from).await),
                None => None,
            }
        };
        let (pushed, following) = tokio::join!(pushing, building);
        Event::Pushed {
            result: pushed.map_err(|e| StepError::from(e).fault()),
            following,
        }
    }
}
