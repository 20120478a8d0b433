//! What the delivery machine keeps and writes: a transaction, what a build finds, where the
//! next build starts, the queue as stored and as the worker keeps it, and the steps that
//! write it. Plain data with the small rules that go with it.
//!
//! Every transaction's record (txn id, body, end position) is durable before it is pushed,
//! with one exception that keeps a steady trickle of events from paying a commit before each
//! push: a transaction of one event and nothing else (a lone event) is pushed while its
//! record is still on its way to disk, and only once every earlier write has committed. Were
//! the process to die before that commit, the destination may hold one txn id the database
//! does not know: the one after the stored transaction (or after the position, with none
//! stored). So after a restart the first transaction built carries only the first wanted item
//! after the stored one ([`Queue::lone_first`]): the same lone event, under the same txn id.
//! An in-process destination's lone event goes out before its record is even queued
//! ([`Record::WithAck`]) under the same rule: once every earlier write has committed, and the
//! next push waits for its record.
//!
//! In a backlog (a full transaction in flight) the transaction after it is built before it is
//! pushed ([`InFlight::ahead`]) and its record written in the same commit as the
//! acknowledgement, while the one after that is built during the push: every transaction is
//! still recorded before it goes out, and a backlog costs one commit per transaction.

/// A transaction of the queue: its id and contents never change until it is acknowledged.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Txn<B> {
    pub(crate) txn_id: i64,
    /// Where the position moves once it is acknowledged.
    pub(crate) last_stream: i64,
    pub(crate) body: B,
    /// How many events and ephemeral items the body holds.
    pub(crate) events: usize,
    pub(crate) ephemeral: usize,
    /// It holds as many events as its destination's transactions carry (100 for an
    /// application service, 50 PDUs for a remote server): a backlog.
    pub(crate) full: bool,
}

impl<B> Txn<B> {
    /// As many events as a transaction carries: a backlog.
    pub(super) fn is_full(&self) -> bool {
        self.full
    }

    /// One event and nothing else: what may be pushed before its record commits.
    pub(super) fn is_lone_event(&self) -> bool {
        self.events == 1 && self.ephemeral == 0
    }
}

/// What a build found after a position: a transaction, or how far the position may move past
/// items the destination does not want, or nothing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Built<B> {
    pub(crate) txn: Option<Txn<B>>,
    pub(crate) advance_to: Option<i64>,
}

impl<B> Default for Built<B> {
    fn default() -> Self {
        Built {
            txn: None,
            advance_to: None,
        }
    }
}

impl<B> Built<B> {
    pub(crate) fn is_nothing(&self) -> bool {
        self.txn.is_none() && self.advance_to.is_none()
    }

    pub(super) fn is_lone_event(&self) -> bool {
        self.txn.as_ref().is_some_and(Txn::is_lone_event)
    }
}

/// Where a build starts: after `position`, numbering its transaction `next_txn_id`, carrying
/// one item at most when `lone`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub(crate) position: i64,
    pub(crate) next_txn_id: i64,
    pub(crate) lone: bool,
}

/// The queue as it is stored.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stored<B> {
    pub(crate) position: i64,
    pub(crate) next_txn_id: i64,
    pub(crate) pending: Option<Txn<B>>,
}

impl<B> Stored<B> {
    /// The queue as storage read it; `txn` makes the transaction in flight from its id, last
    /// stream position and body (each destination counts its own).
    pub(crate) fn from_row(
        row: crate::storage::queue::QueueRow,
        txn: impl FnOnce(i64, i64, serde_json::Value) -> Txn<B>,
    ) -> Result<Stored<B>, serde_json::Error> {
        let pending = match (
            row.pending_txn_id,
            row.pending_last_stream,
            row.pending_body,
        ) {
            (Some(txn_id), Some(last_stream), Some(body)) => {
                Some(txn(txn_id, last_stream, serde_json::from_str(&body)?))
            }
            _ => None,
        };
        Ok(Stored {
            position: row.position,
            next_txn_id: row.next_txn_id,
            pending,
        })
    }
}

/// One step of the stored queue, applied in this order: acknowledge transaction `ack`, move
/// the position to `advance_to` (with nothing in flight), record `txn` as the one in flight.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Write<B> {
    pub(crate) ack: Option<i64>,
    pub(crate) advance_to: Option<i64>,
    pub(crate) txn: Option<Txn<B>>,
}

impl<B: Clone> Write<B> {
    /// Nothing: queued only to wait for the writes queued before it.
    pub(crate) fn nothing() -> Write<B> {
        Write {
            ack: None,
            advance_to: None,
            txn: None,
        }
    }

    /// The acknowledgement of `ack` (if any), then what `next` found.
    pub(super) fn step(ack: Option<i64>, next: &Built<B>) -> Write<B> {
        Write {
            ack,
            advance_to: next.advance_to,
            txn: next.txn.clone(),
        }
    }

    /// The record of `txn` alone, for a transaction pushed before it had one.
    pub(super) fn record_of(txn: &Txn<B>) -> Write<B> {
        Write {
            ack: None,
            advance_to: None,
            txn: Some(txn.clone()),
        }
    }
}

/// How the transaction in flight is known to the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Record {
    /// Its record is on disk, or queued to the writer before it was pushed.
    Queued,
    /// It was pushed before any record of it was queued (a lone event to an in-process
    /// destination): its record goes with its acknowledgement.
    WithAck,
}

/// The transaction in flight.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct InFlight<B> {
    pub(crate) txn: Txn<B>,
    pub(crate) record: Record,
    /// What follows it (a transaction or a move of the position), built while it was pushed:
    /// its record goes with the acknowledgement.
    pub(crate) ahead: Option<Built<B>>,
}

/// The queue as the worker keeps it. The database has the same, or will once the worker's
/// latest write commits.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Queue<B> {
    pub(crate) position: i64,
    pub(crate) next_txn_id: i64,
    /// The next transaction built carries at most one item (the restart rule above).
    pub(crate) lone_first: bool,
    pub(crate) in_flight: Option<InFlight<B>>,
}

impl<B: Clone> Queue<B> {
    /// The queue as read at start: from then on the worker is the only writer of its row.
    pub(super) fn loaded(stored: Stored<B>) -> Queue<B> {
        Queue {
            position: stored.position,
            next_txn_id: stored.next_txn_id,
            lone_first: true,
            in_flight: stored.pending.map(|txn| InFlight {
                txn,
                record: Record::Queued,
                ahead: None,
            }),
        }
    }

    pub(super) fn cursor(&self) -> Cursor {
        Cursor {
            position: self.position,
            next_txn_id: self.next_txn_id,
            lone: self.lone_first,
        }
    }

    /// This queue once `next` is written, its transaction known to the database as `record`.
    pub(super) fn after(self, next: Built<B>, record: Record) -> Queue<B> {
        Queue {
            position: next.advance_to.unwrap_or(self.position),
            next_txn_id: self.next_txn_id,
            // Passing unwanted items does not settle what the first transaction holds.
            lone_first: self.lone_first && next.txn.is_none(),
            in_flight: next.txn.map(|txn| InFlight {
                txn,
                record,
                ahead: None,
            }),
        }
    }

    /// The queue once `txn` is acknowledged, as far as building what follows goes.
    pub(super) fn after_ack_of(txn: &Txn<B>, lone_first: bool) -> Queue<B> {
        Queue {
            position: txn.last_stream,
            next_txn_id: txn.txn_id + 1,
            lone_first,
            in_flight: None,
        }
    }
}
