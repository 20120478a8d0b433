//! Delivery: one task per destination drains its durable queue in stream order. The stored
//! transaction in flight is pushed until acknowledged (the same txn id and contents on every
//! retry, with backoff and probes as [`retry`](super::retry) decides, the destination shown
//! down meanwhile); then the next one is built from what follows the position.
//!
//! - [`machine`]: the queue's rules, a pure state machine, unit-tested in `tests.rs`;
//! - [`steps`]: what the machine asks of the worker and what the worker answers;
//! - [`txn`]: what the machine keeps and writes (transactions, the queue, its write steps);
//! - [`worker`]: the task that does the I/O the machine asks for, for any destination;
//! - [`builder`]: what an application service's (HTTP or plugin) next transaction holds;
//!   a pusher's is `push::delivery`'s, a remote server's `federation::sender`'s.

mod builder;
mod machine;
mod steps;
mod txn;
mod worker;

#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

pub(crate) use builder::{e2ee, read_cut, READ_AHEAD};
pub(crate) use txn::{Built, Cursor, Stored, Txn, Write};
pub(crate) use worker::{load_queue, Body, Destination, Status, StepError};

use super::registration::CompiledService;
use super::retry::RetryPolicy;
use super::transport::Transport;
use crate::service::Services;

/// Starts the delivery task of application service `service`.
pub(crate) fn spawn(
    services: &Arc<Services>,
    service: CompiledService,
    transport: Arc<dyn Transport>,
    retry: RetryPolicy,
    status: Arc<Mutex<Status>>,
    poke: Arc<Notify>,
) -> tokio::task::JoinHandle<()> {
    let worker = worker::Worker {
        destination: builder::AppserviceTxns::new(
            services.clone(),
            service,
            transport.queue_kind(),
        ),
        writer: services.writer.clone(),
        notifier: services.notifier.clone(),
        transport,
        retry,
        poke,
        status,
    };
    tokio::spawn(worker.run())
}

/// Starts the delivery task of a destination of another kind (a pusher's gateway, a remote
/// server). `poke` ends a pause after a failure at once (a remote server seen again);
/// `status` is what the admin sees of it.
pub(crate) fn spawn_destination<D: Destination + 'static>(
    services: &Arc<Services>,
    destination: D,
    transport: Arc<dyn Transport>,
    retry: RetryPolicy,
    poke: Arc<Notify>,
    status: Arc<Mutex<Status>>,
) -> tokio::task::JoinHandle<()> {
    let worker = worker::Worker {
        destination,
        writer: services.writer.clone(),
        notifier: services.notifier.clone(),
        transport,
        retry,
        poke,
        status,
    };
    tokio::spawn(worker.run())
}
