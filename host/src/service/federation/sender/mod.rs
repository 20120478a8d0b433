//! Outgoing federation: one durable queue per destination server, on the same delivery
//! machine as application services, plugins and push gateways (`appservice::delivery`), one
//! worker per server. Each queue walks the global event stream from its position and sends
//! what the server is to get as `PUT /_matrix/federation/v1/send/{txnId}` transactions of at
//! most 50 PDUs and 100 EDUs; a transaction keeps its txn id and contents until the server
//! answers 200, with backoff (`appservice_delivery`'s settings) and a retry at once when the
//! server is seen again ([`Services::federation_seen`]).
//!
//! - [`select`]: who gets which event and EDU, and their shapes (pure, unit-tested);
//! - [`txns`]: a server's queue as a destination of the delivery machine;
//! - [`transport`]: the signed `/send` and the `/version` probe.
//!
//! A server becomes a destination when one of its users' memberships is stored (a join, or a
//! kick, ban or leave of its user): its queue is made then, starting just before that
//! event, so that it is not sent the room's past. The membership commits first, the queue
//! after it; a start reads the memberships again and makes whatever queue a crash in between
//! left unmade. Txn ids start from the clock when a queue is made, so that a server never
//! sees one again after this server's database was reset.

mod select;
#[cfg(test)]
mod tests;
mod transport;
mod txns;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::service::appservice::delivery::{self, Status};
use crate::service::appservice::retry::RetryPolicy;
use crate::service::sync::changes::{Kind, WHOLE_SERVER};
use crate::service::{now_ms, Result, Services};
use crate::storage::queue::{Backlog, QueueKind};

/// Memberships read per query while looking for new destinations.
const MEMBERSHIPS_PER_READ: i64 = 500;

/// A destination server as the admin sees it.
#[derive(Debug, Clone)]
pub(crate) struct DestinationOverview {
    pub(crate) name: String,
    pub(crate) status: Status,
    /// Its queue; `None` before its worker read it.
    pub(crate) backlog: Option<Backlog>,
}

/// One server's delivery worker.
struct ServerWorker {
    task: JoinHandle<()>,
    poke: Arc<Notify>,
    status: Arc<Mutex<Status>>,
}

/// The delivery workers of the destination servers, and the task that finds new ones.
#[derive(Default)]
pub(crate) struct FederationSender {
    workers: Mutex<HashMap<String, ServerWorker>>,
    discovery: Mutex<Option<JoinHandle<()>>>,
    /// Set at shutdown: no worker starts after it.
    stopped: AtomicBool,
}

impl FederationSender {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ServerWorker>> {
        crate::lock::lock(&self.workers)
    }
}

impl Services {
    /// Starts the queue of every destination server, and the task that makes the queues of
    /// new ones (at server start). Nothing when federation is off.
    pub(crate) async fn start_federation_sender(self: &Arc<Self>) -> Result<()> {
        if !self.config.federation.enabled {
            return Ok(());
        }
        for destination in self.storage.queue_ids(QueueKind::Federation).await? {
            self.start_server_queue(destination);
        }
        let me = self.clone();
        let task = tokio::spawn(async move { me.find_destinations().await });
        if let Some(old) = crate::lock::lock(&self.federation_sender.discovery).replace(task) {
            old.abort();
        }
        Ok(())
    }

    /// Stops every server's delivery (at shutdown), and waits until each has stopped.
    pub(crate) async fn stop_federation_sender(&self) {
        let sender = &self.federation_sender;
        sender.stopped.store(true, Ordering::SeqCst);
        let discovery = crate::lock::lock(&sender.discovery).take();
        if let Some(task) = discovery {
            task.abort();
            let _ = task.await;
        }
        let workers: Vec<ServerWorker> = sender.lock().drain().map(|(_, w)| w).collect();
        for w in workers {
            w.task.abort();
            let _ = w.task.await;
        }
    }

    /// A request from `origin` was authenticated: the server is up, so a transaction waiting
    /// for it after a failure is sent again at once instead of after its backoff.
    pub(crate) fn federation_seen(&self, origin: &str) {
        let workers = self.federation_sender.lock();
        if let Some(w) = workers.get(origin) {
            let status = crate::lock::lock(&w.status);
            if !status.up && status.last_error.is_some() {
                w.poke.notify_one();
            }
        }
    }

    /// Every destination server as the admin sees it, by name.
    pub(crate) async fn federation_destinations(&self) -> Result<Vec<DestinationOverview>> {
        let mut statuses: Vec<(String, Status)> = {
            let workers = self.federation_sender.lock();
            workers
                .iter()
                .map(|(name, w)| (name.clone(), crate::lock::lock(&w.status).clone()))
                .collect()
        };
        statuses.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = Vec::with_capacity(statuses.len());
        for (name, status) in statuses {
            let backlog = self
                .storage
                .queue_backlog(QueueKind::Federation, &name)
                .await?;
            out.push(DestinationOverview {
                name,
                status,
                backlog,
            });
        }
        Ok(out)
    }

    fn start_server_queue(self: &Arc<Self>, destination: String) {
        let sender = &self.federation_sender;
        let mut workers = sender.lock();
        if sender.stopped.load(Ordering::SeqCst) || workers.contains_key(&destination) {
            return;
        }
        let settings = &self.config.appservice_delivery;
        let retry = RetryPolicy {
            base: Duration::from_millis(settings.retry_base_ms.max(1)),
            cap: Duration::from_millis(settings.retry_max_ms.max(1)),
            probe_every: (settings.probe_interval_ms > 0)
                .then(|| Duration::from_millis(settings.probe_interval_ms)),
        };
        let transport = Arc::new(transport::ServerTransport {
            services: self.clone(),
            destination: destination.clone(),
        });
        let queue = txns::ServerTxns::new(self.clone(), destination.clone());
        let poke = Arc::new(Notify::new());
        let status = Arc::new(Mutex::new(Status::default()));
        let task = delivery::spawn_destination(
            self,
            queue,
            transport,
            retry,
            poke.clone(),
            status.clone(),
        );
        workers.insert(destination, ServerWorker { task, poke, status });
    }

    /// Follows the memberships as they are stored and makes the queue of each server that
    /// becomes a destination. From the start of the stream at first: a queue a crash left
    /// unmade is made then.
    async fn find_destinations(self: Arc<Self>) {
        let mut stream = self.notifier.subscribe();
        let mut after = 0;
        loop {
            // Most commits change no membership: those cost no query.
            let changes = &self.changes;
            if changes.changed_since(Kind::Memberships, WHOLE_SERVER, after) {
                match self.new_destinations(after).await {
                    Ok(read_to) => after = read_to,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read new federation destinations");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                }
            }
            if stream.changed().await.is_err() {
                return;
            }
        }
    }

    /// Makes and starts the queues of the servers that became destinations after `after`;
    /// answers how far the memberships were read.
    async fn new_destinations(self: &Arc<Self>, mut after: i64) -> Result<i64> {
        let ours = self.server_name();
        let policy = self.federation.policy();
        loop {
            let rows = self
                .storage
                .memberships_after(after, MEMBERSHIPS_PER_READ)
                .await?;
            let whole = (rows.len() as i64) < MEMBERSHIPS_PER_READ;
            for (user, membership, stream) in rows {
                after = stream;
                let Some(server) = select::server_of(&user) else {
                    continue;
                };
                if server == ours
                    || !select::makes_destination(&membership)
                    || !policy.server_allowed(server)
                    || self.federation_sender.lock().contains_key(server)
                {
                    continue;
                }
                let made = self
                    .storage
                    .make_queue(QueueKind::Federation, server, stream - 1, now_ms())
                    .await?;
                if made {
                    tracing::info!(destination = %server, from = stream, "a new federation destination");
                }
                self.start_server_queue(server.to_string());
            }
            if whole {
                return Ok(after);
            }
        }
    }
}
