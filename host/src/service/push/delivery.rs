//! Push delivery: each http pusher's notifications go to its push gateway through a durable
//! queue on the delivery machine (`appservice::delivery`), one worker per pusher, with its
//! retries and backoff (`appservice_delivery`'s settings). [`PusherTxns`] is a pusher's
//! destination: its next transaction is the next event after the queue's position whose
//! actions notify the pusher's user, as the body `gateway` builds, stored with the queue so a
//! retry, even after a restart, sends the same content. [`GatewayTransport`] posts it; the
//! pushers a gateway rejects are removed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::task::JoinHandle;

use super::gateway::{self, Device, Notice};
use crate::service::appservice::delivery::{
    self, Body, Built, Cursor, Destination, StepError, Stored, Txn, Write,
};
use crate::service::appservice::retry::RetryPolicy;
use crate::service::appservice::transport::{DeliveryError, PushFuture, Pushed, Transport};
use crate::service::{Result, Services};
use crate::storage::push_actions::NextNotification;
use crate::storage::pushers::{PusherKey, PusherRow};
use crate::storage::queue::{QueueKind, QueueWrite};

/// The delivery workers of the pushers, by pusher.
#[derive(Default)]
pub(crate) struct PushDelivery {
    client: reqwest::Client,
    workers: Mutex<HashMap<PusherKey, JoinHandle<()>>>,
    /// Set at shutdown: no worker starts after it.
    stopped: AtomicBool,
}

impl PushDelivery {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PusherKey, JoinHandle<()>>> {
        crate::lock::lock(&self.workers)
    }
}

impl Services {
    /// Starts the delivery of every http pusher (at server start).
    pub(crate) async fn start_push_delivery(self: &Arc<Self>) -> Result<()> {
        for pusher in self.storage.http_pushers().await? {
            self.start_pusher(pusher);
        }
        Ok(())
    }

    /// Starts (or restarts, with its new data) the delivery of `key`, as stored.
    pub(crate) async fn restart_pusher(self: &Arc<Self>, key: &PusherKey) -> Result<()> {
        self.stop_pushers(std::slice::from_ref(key)).await;
        if let Some(pusher) = self.storage.pusher(key).await? {
            self.start_pusher(pusher);
        }
        Ok(())
    }

    fn start_pusher(self: &Arc<Self>, pusher: PusherRow) {
        let me = &self.push_delivery;
        let mut workers = me.lock();
        if me.stopped.load(Ordering::SeqCst) || pusher.kind != "http" {
            return;
        }
        let data: Value = serde_json::from_str(&pusher.data).unwrap_or_default();
        let Some(url) = data["url"].as_str().map(str::to_string) else {
            return;
        };
        let settings = &self.config.appservice_delivery;
        let key = pusher.key();
        let transport = Arc::new(GatewayTransport {
            client: me.client.clone(),
            url,
            timeout: Duration::from_millis(settings.timeout_ms.max(1)),
            services: self.clone(),
            key: key.clone(),
        });
        let retry = RetryPolicy {
            base: Duration::from_millis(settings.retry_base_ms.max(1)),
            cap: Duration::from_millis(settings.retry_max_ms.max(1)),
            // A gateway has nothing that costs it nothing to ask: retries follow the backoff.
            probe_every: None,
        };
        let destination = PusherTxns {
            services: self.clone(),
            name: format!("pusher {} of {}", pusher.app_id, pusher.user_id),
            queue_id: key.queue_id(),
            data,
            pusher,
        };
        let worker = delivery::spawn_destination(
            self,
            destination,
            transport,
            retry,
            Default::default(),
            Default::default(),
        );
        if let Some(old) = workers.insert(key, worker) {
            old.abort();
        }
    }

    /// Stops the delivery of these pushers and waits until each has stopped, so that no step
    /// of it runs after its queue is gone or beside a new worker.
    pub(crate) async fn stop_pushers(&self, keys: &[PusherKey]) {
        let handles: Vec<JoinHandle<()>> = {
            let mut workers = self.push_delivery.lock();
            keys.iter().filter_map(|k| workers.remove(k)).collect()
        };
        for handle in handles {
            handle.abort();
            let _ = handle.await;
        }
    }

    /// Stops every pusher's delivery (at shutdown).
    pub(crate) async fn stop_push_delivery(&self) {
        self.push_delivery.stopped.store(true, Ordering::SeqCst);
        let keys: Vec<PusherKey> = self.push_delivery.lock().keys().cloned().collect();
        self.stop_pushers(&keys).await;
    }

    /// Removes the pushers of the user's devices `device_ids` (all when `None`) and stops
    /// their delivery: a device deleted or logged out gets no more notifications.
    pub(crate) async fn remove_device_pushers(
        &self,
        user_id: &str,
        device_ids: Option<&[String]>,
    ) -> Result<()> {
        let gone = self
            .storage
            .delete_device_pushers(user_id, device_ids)
            .await?;
        self.stop_pushers(&gone).await;
        Ok(())
    }

    /// Removes a pusher its gateway rejected, with its queue.
    async fn remove_rejected(&self, key: PusherKey) {
        tracing::info!(user = %key.user_id, app_id = %key.app_id, "the push gateway rejected a pushkey: pusher removed");
        self.stop_pushers(std::slice::from_ref(&key)).await;
        if let Err(e) = self
            .storage
            .delete_pusher(&key.user_id, &key.app_id, &key.pushkey)
            .await
        {
            tracing::warn!(error = %e, "cannot remove a rejected pusher");
        }
    }
}

/// One pusher's queue: its transactions are its user's notifications, one each.
struct PusherTxns {
    services: Arc<Services>,
    name: String,
    queue_id: String,
    pusher: PusherRow,
    /// The pusher's `data`, parsed.
    data: Value,
}

impl PusherTxns {
    /// The notification of `next` as the body for the gateway; `None` when the event is gone.
    async fn body(&self, next: &NextNotification) -> Result<Option<Value>> {
        let services = &self.services;
        let room_id = next.room_id.as_str();
        let Some(pdu) = services.rooms.event(&next.event_id).await? else {
            return Ok(None);
        };
        let event = services.rooms.client_event(&pdu, None, true).await?;
        let member = services
            .rooms
            .state_content(room_id, "m.room.member", &pdu.sender)
            .await?;
        let name = services
            .rooms
            .state_content(room_id, "m.room.name", "")
            .await?;
        let unread = services
            .unread_everywhere(&self.pusher.user_id, next.stream)
            .await?;
        let actions: Value = serde_json::from_str(&next.actions).unwrap_or_default();
        let notice = Notice {
            event: &event,
            sender_display_name: member.as_ref().and_then(|m| m["displayname"].as_str()),
            room_name: name.as_ref().and_then(|n| n["name"].as_str()),
            unread,
            actions: &actions,
            user_id: &self.pusher.user_id,
        };
        let device = Device {
            app_id: &self.pusher.app_id,
            pushkey: &self.pusher.pushkey,
            pushkey_ts: self.pusher.created_ts / 1000,
            data: &self.data,
        };
        Ok(Some(gateway::notify_body(&notice, &device)))
    }
}

impl Destination for PusherTxns {
    fn name(&self) -> &str {
        &self.name
    }

    async fn load(&self, start: i64) -> std::result::Result<Stored<Body>, StepError> {
        let storage = &self.services.storage;
        delivery::load_queue(storage, QueueKind::Push, &self.queue_id, start, txn).await
    }

    /// The next notification after `from.position`, or how far the position may move past
    /// events that notify nobody through this pusher.
    async fn build(&self, from: Cursor) -> std::result::Result<Built<Body>, StepError> {
        let upto = self.services.notifier.position().stream;
        if from.position >= upto {
            return Ok(Built::default());
        }
        let storage = &self.services.storage;
        let user = &self.pusher.user_id;
        let mut after = from.position;
        while let Some(next) = storage.next_notification(user, after, upto).await? {
            match self.body(&next).await? {
                Some(body) => {
                    return Ok(Built {
                        txn: Some(txn(from.next_txn_id, next.stream, body)),
                        advance_to: None,
                    })
                }
                None => after = next.stream,
            }
        }
        Ok(Built {
            txn: None,
            advance_to: Some(upto),
        })
    }

    fn queue_write(&self, write: &Write<Body>) -> QueueWrite {
        write.to_queue(QueueKind::Push, &self.queue_id)
    }
}

/// A transaction of one notification.
fn txn(txn_id: i64, last_stream: i64, body: Value) -> Txn<Body> {
    Txn {
        txn_id,
        last_stream,
        body: Arc::new(body),
        events: 1,
        ephemeral: 0,
        full: false,
    }
}

/// `POST {url}` of a pusher's gateway; a 2xx answer counts as delivered, and the pushkeys it
/// rejects are removed.
struct GatewayTransport {
    client: reqwest::Client,
    url: String,
    timeout: Duration,
    services: Arc<Services>,
    key: PusherKey,
}

impl Transport for GatewayTransport {
    fn push<'a>(
        &'a self,
        _txn_id: &'a str,
        body: &'a Value,
        _ack: &'a [QueueWrite],
    ) -> PushFuture<'a> {
        Box::pin(async move {
            let answer = self
                .client
                .post(&self.url)
                .json(body)
                .timeout(self.timeout)
                .send()
                .await
                .map_err(|e| DeliveryError::of_request(e, self.timeout))?;
            let status = answer.status();
            if !status.is_success() {
                return Err(DeliveryError::Status(status.as_u16()));
            }
            let answer: Value = answer.json().await.unwrap_or_default();
            if gateway::rejected(&answer).contains(&self.key.pushkey.as_str()) {
                // Removing it stops this worker, which is the one running: elsewhere.
                let services = self.services.clone();
                let key = self.key.clone();
                tokio::spawn(async move { services.remove_rejected(key).await });
            }
            Ok(Pushed::Delivered)
        })
    }
}
