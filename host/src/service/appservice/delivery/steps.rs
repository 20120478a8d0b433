//! What the delivery [`machine`](super::machine) and its [`worker`](super::worker) say to
//! each other: the [`Action`]s the machine asks for, the [`Event`]s the worker answers with,
//! and the writes of one step ([`Store`]) with how they are waited for.

use std::time::Duration;

use tokio::time::Instant;

use super::super::retry::{Failure, Pause, Probe, Wake};
use super::super::transport::Pushed;
use super::txn::{Built, Cursor, Stored, Txn, Write};

/// Why a step failed, as the retry rule and the admin see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fault {
    pub(crate) failure: Failure,
    pub(crate) message: String,
}

/// What this worker's write not yet waited for (the latest write it queued without waiting)
/// becomes when a [`Store`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Earlier {
    /// Left as it is.
    Keep,
    /// Waited for first: the step fails if it failed.
    Await,
    /// Forgotten: the write that follows it commits after it, and fails if it failed.
    Drop,
}

/// Whether the worker waits for a write's commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Commit {
    Wait,
    /// Queued and kept as this worker's write not yet waited for.
    Leave,
}

/// Writes of one step, in this order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Store<B> {
    /// Queued first and never waited for: the record of a transaction pushed before it had
    /// one, which the write after it (its acknowledgement) answers for.
    pub(crate) forward: Option<Write<B>>,
    pub(crate) earlier: Earlier,
    pub(crate) write: Option<(Write<B>, Commit)>,
}

impl<B: Clone> Store<B> {
    /// `write`, which records `next`: waited for, except when `next` is a lone event, which
    /// goes out at once, once every earlier write has committed.
    pub(super) fn recording(
        forward: Option<Write<B>>,
        write: Write<B>,
        next: &Built<B>,
    ) -> Store<B> {
        let (earlier, commit) = if next.is_lone_event() {
            (Earlier::Await, Commit::Leave)
        } else {
            (Earlier::Drop, Commit::Wait)
        };
        Store {
            forward,
            earlier,
            write: Some((write, commit)),
        }
    }
}

/// What the machine asks of the worker. The last action of a transition is answered by the
/// next event; the ones before it (`Failed`, `Resumed`) are only told.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action<B> {
    /// Read the stored queue (after waiting out what an earlier worker may have queued).
    Load,
    /// Hear whether this worker's write not yet waited for has failed: [`Event::Checked`].
    CheckWrites,
    /// Build what follows `Cursor`: [`Event::Built`].
    Build(Cursor),
    /// Run these writes: [`Event::Stored`].
    Store(Store<B>),
    /// Push `txn`, handing the transport the writes that acknowledge it, and meanwhile build
    /// what follows `follow`: [`Event::Pushed`].
    Push {
        txn: Txn<B>,
        ack: Vec<Write<B>>,
        follow: Option<Cursor>,
    },
    /// Wait for the stream to move: [`Event::StreamMoved`] or [`Event::StreamClosed`].
    WaitForStream,
    /// A step failed (log it, show it to the admin); a pause follows.
    Failed { fault: Fault, pause: Pause },
    /// Sleep until then, or a poke: [`Event::Time`] or [`Event::Poked`].
    Sleep { until: Instant },
    /// Probe the destination, giving up after `timeout`; the pause still ends at `until`
    /// and on a poke: [`Event::Probed`], [`Event::Time`] or [`Event::Poked`].
    Probe { timeout: Duration, until: Instant },
    /// A pause ended early, or ran out.
    Resumed(Wake),
    /// The stream is gone: the worker ends.
    Stop,
}

/// What the worker answers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Event<B> {
    Loaded(Result<Stored<B>, Fault>),
    Checked(Result<(), Fault>),
    Built(Result<Built<B>, Fault>),
    Stored(Result<(), Fault>),
    Pushed {
        result: Result<Pushed, Fault>,
        following: Option<Result<Built<B>, Fault>>,
    },
    StreamMoved,
    StreamClosed,
    /// A sleep ran out.
    Time,
    Poked,
    Probed(Probe),
}

/// The probes of a pause: every `every`, the next at `next`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Probes {
    pub(super) every: Duration,
    pub(super) next: Instant,
}
