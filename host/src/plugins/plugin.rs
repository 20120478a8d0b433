//! [`Plugin`]: one loaded plugin — its manifest and the admin's settings, its lane (the one
//! instance, called serially), its timers and its counters — and the call path into it: a
//! call runs on a blocking thread under the plugin's deadline, and what it wrote commits
//! with it. Different plugins run in parallel.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::task::JoinHandle;
use wasmtime::Store;

use super::bindings::{Error, HttpRequest, HttpResponse, Plugin as PluginWorld, PluginPre};
use super::guest::Guest;
use super::host::kv::Written;
use super::lane::{CallError, Lane, TrapKind};
use super::manifest::{Capabilities, Manifest};
use super::schedule::{self, TimerBook};
use super::state::PluginState;
use super::stats::{CallKind, PluginStats};
use crate::lock::lock;
use crate::service::appservice::registration::CompiledNamespaces;
use crate::service::Services;
use crate::storage::plugins::TimerRow;
use crate::storage::queue::QueueWrite;

/// What the admin decided about a loaded plugin, and what it is now.
#[derive(Debug, Clone)]
pub(crate) struct PluginInfo {
    pub(crate) manifest: Manifest,
    pub(crate) capabilities: Capabilities,
    /// The SHA-256 of its component.
    pub(crate) content_hash: String,
    pub(crate) enabled: bool,
    pub(crate) endpoints: bool,
    pub(crate) replay: Option<(i64, i64)>,
    pub(crate) installed_ts: i64,
    pub(crate) updated_ts: i64,
}

/// One loaded plugin.
pub(crate) struct Plugin {
    id: String,
    info: Mutex<PluginInfo>,
    lane: Arc<tokio::sync::Mutex<Lane>>,
    /// The lane's guest, readable without waiting for the lane (a push converts its
    /// transaction before it queues for the call).
    guest: Mutex<Arc<Guest>>,
    stats: Mutex<PluginStats>,
    timers: Arc<TimerBook>,
    scheduler: Mutex<Option<JoinHandle<()>>>,
    services: Weak<Services>,
    /// Set when the plugin is being removed: no call starts after it.
    removed: AtomicBool,
}

/// How long past twice its deadline a call may stay in host functions before it is
/// abandoned.
const ABANDON_AFTER: Duration = Duration::from_secs(5);

impl Plugin {
    pub(super) fn new(
        info: PluginInfo,
        lane: Lane,
        timers: Arc<TimerBook>,
        services: Weak<Services>,
        kv_bytes: i64,
    ) -> Plugin {
        Plugin {
            id: info.manifest.id.clone(),
            info: Mutex::new(info),
            guest: Mutex::new(lane.guest().clone()),
            lane: Arc::new(tokio::sync::Mutex::new(lane)),
            stats: Mutex::new(PluginStats {
                kv_bytes,
                ..PluginStats::default()
            }),
            timers,
            scheduler: Mutex::new(None),
            services,
            removed: AtomicBool::new(false),
        }
    }

    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn info(&self) -> PluginInfo {
        lock(&self.info).clone()
    }

    pub(super) fn set_info(&self, f: impl FnOnce(&mut PluginInfo)) {
        f(&mut lock(&self.info));
    }

    pub(crate) fn stats(&self) -> PluginStats {
        lock(&self.stats).clone()
    }

    /// The plugin's own users and sender, as its namespaces say.
    pub(crate) fn namespaces(&self) -> CompiledNamespaces {
        lock(&self.guest).namespaces.clone()
    }

    /// A new component or configuration, between two calls.
    pub(super) async fn replace(
        &self,
        guest: Arc<Guest>,
        pre: PluginPre<PluginState>,
        config: String,
    ) {
        let mut lane = self.lane.lock().await;
        *lock(&self.guest) = guest.clone();
        lane.replace(guest, pre, config);
    }

    /// Runs one call in the plugin's lane on a blocking thread, then commits what it wrote
    /// (store and timers) if it succeeded. The lane is held until the commit is in, so the
    /// next call reads what this one wrote.
    ///
    /// The call runs to its end in a task of its own: a caller that goes away meanwhile (a
    /// delivery worker stopped mid-push) must not cut the commit off from the bookkeeping
    /// that follows it. A call stuck in a host function well past its deadline (a long
    /// WASI sleep, an HTTP response that trickles) is abandoned: its instance is revoked and
    /// the lane goes on with a fresh one.
    pub(crate) async fn call<R, F>(
        self: &Arc<Self>,
        kind: CallKind,
        firing: Option<(String, i64)>,
        f: F,
    ) -> Result<R, CallError>
    where
        R: Send + 'static,
        F: FnOnce(&PluginWorld, &mut Store<PluginState>) -> wasmtime::Result<Result<R, Error>>
            + Send
            + 'static,
    {
        self.call_acknowledging(kind, firing, Vec::new(), f)
            .await
            .map(|(r, _)| r)
    }

    /// [`Plugin::call`] for a call that handles a transaction: when the call wrote anything,
    /// `ack` (the queue steps acknowledging the transaction) commits with its writes, and
    /// the answer says so; otherwise the caller acknowledges.
    pub(crate) async fn call_acknowledging<R, F>(
        self: &Arc<Self>,
        kind: CallKind,
        firing: Option<(String, i64)>,
        ack: Vec<QueueWrite>,
        f: F,
    ) -> Result<(R, bool), CallError>
    where
        R: Send + 'static,
        F: FnOnce(&PluginWorld, &mut Store<PluginState>) -> wasmtime::Result<Result<R, Error>>
            + Send
            + 'static,
    {
        let me = self.clone();
        tokio::spawn(async move { me.call_to_the_end(kind, firing, ack, f).await })
            .await
            .unwrap_or_else(|e| {
                Err(CallError::Trap {
                    kind: TrapKind::Other,
                    message: format!("the host failed during the call: {e}"),
                })
            })
    }

    async fn call_to_the_end<R, F>(
        self: Arc<Self>,
        kind: CallKind,
        firing: Option<(String, i64)>,
        ack: Vec<QueueWrite>,
        f: F,
    ) -> Result<(R, bool), CallError>
    where
        R: Send + 'static,
        F: FnOnce(&PluginWorld, &mut Store<PluginState>) -> wasmtime::Result<Result<R, Error>>
            + Send
            + 'static,
    {
        let mut guard = self.lane.clone().lock_owned().await;
        // Checked under the lane: a call that waited behind a disable or a remove finds it.
        if self.removed.load(Ordering::SeqCst) || !self.info().enabled {
            return Err(CallError::Disabled);
        }
        if let Some((key, seq)) = &firing {
            if !self.timers.holds(key, *seq) {
                return Err(CallError::Stale);
            }
        }
        let standby = guard.standby();
        let mut lane = std::mem::replace(&mut *guard, standby);
        let deadline = Duration::from_millis(lane.guest().capabilities.deadline_ms);
        let patience = deadline * 2 + ABANDON_AFTER;
        let abandon = lane.abandon_handle();
        let blocking = tokio::task::spawn_blocking(move || {
            let ran = lane.run(firing, f);
            (lane, ran)
        });
        let joined = match tokio::time::timeout(patience, blocking).await {
            Ok(joined) => joined,
            Err(_) => {
                Lane::abandon(&abandon);
                let error = CallError::Trap {
                    kind: TrapKind::Deadline,
                    message: format!(
                        "the call stayed in a host function for more than {patience:?}; \
                         its instance was abandoned"
                    ),
                };
                tracing::warn!(plugin = %self.id, error = %error, "plugin call abandoned");
                return self.failed(kind, error, patience);
            }
        };
        let (lane, ran) = match joined {
            Ok(done) => done,
            Err(e) => {
                // A panic in a host function: the instance may be mid-call, so it goes (the
                // standby lane has none).
                let error = CallError::Trap {
                    kind: TrapKind::Other,
                    message: format!("the host failed during the call: {e}"),
                };
                return self.failed(kind, error, Duration::ZERO);
            }
        };
        *guard = lane;
        let result = match ran.result {
            Ok(r) if ran.effects.is_empty() => Ok((r, false)),
            Ok(r) => match self.services.upgrade() {
                None => Err(CallError::ServerGone),
                Some(s) => {
                    let timers = ran.effects.timers.clone();
                    let written = Written::of(&ran.effects.kv);
                    let acked = !ack.is_empty();
                    match s.writer.write(ran.effects.into_write(ack)).await {
                        Ok(_) => {
                            guard.committed(written, ran.kv_delta);
                            self.timers.apply(&timers);
                            Ok((r, acked))
                        }
                        Err(e) => Err(CallError::Commit(e.to_string())),
                    }
                }
            },
            Err(e) => Err(e),
        };
        {
            let mut stats = self.lock_stats();
            stats.record(kind, &result, ran.took);
            stats.memory_bytes = ran.memory_bytes;
            stats.kv_bytes = guard.kv_usage();
        }
        drop(guard);
        result
    }

    /// Drops the instance once the call running (if any) is over; the next call makes a
    /// fresh one.
    pub(super) async fn recycle(&self) {
        self.lane.lock().await.recycle();
    }

    /// Forgets the failures so far (the admin skipped the transaction they were about).
    pub(super) fn reset_failures(&self) {
        self.lock_stats().consecutive_failures = 0;
    }

    /// Takes no more calls (the plugin is being removed); waits for the one running.
    pub(super) async fn close(&self) {
        self.removed.store(true, Ordering::SeqCst);
        drop(self.lane.lock().await);
    }

    /// Counts a call whose instance never answered, and answers its error.
    fn failed<R>(&self, kind: CallKind, error: CallError, took: Duration) -> Result<R, CallError> {
        self.lock_stats()
            .record::<R>(kind, &Err(error.clone()), took);
        Err(error)
    }

    fn lock_stats(&self) -> std::sync::MutexGuard<'_, PluginStats> {
        lock(&self.stats)
    }

    /// Fires one due timer; one cancelled or set again meanwhile does not fire.
    pub(crate) async fn fire_timer(self: &Arc<Self>, timer: TimerRow) -> Result<(), CallError> {
        let TimerRow {
            key, seq, payload, ..
        } = timer;
        let firing = Some((key.clone(), seq));
        let fired = self
            .call(CallKind::Timer, firing, move |p, store| {
                p.call_on_timer(store, &key, &payload)
            })
            .await;
        match fired {
            Err(CallError::Stale) => Ok(()),
            other => other,
        }
    }

    /// A request to the plugin's web endpoints.
    pub(crate) async fn handle_http(
        self: &Arc<Self>,
        request: HttpRequest,
    ) -> Result<HttpResponse, CallError> {
        self.call(CallKind::Http, None, move |p, store| {
            p.call_handle_http(store, &request).map(Ok)
        })
        .await
    }

    /// Starts (or restarts) the task that fires the plugin's timers as they fall due; a
    /// failing timer is retried after a pause from `retry_base` growing to `retry_cap`.
    pub(super) fn start_scheduler(self: &Arc<Self>, retry_base: Duration, retry_cap: Duration) {
        let me = self.clone();
        let fire = move |timer| {
            let me = me.clone();
            async move { me.fire_timer(timer).await }
        };
        let run = schedule::run(
            self.id.clone(),
            self.timers.clone(),
            fire,
            retry_base,
            retry_cap,
        );
        let task = tokio::spawn(run);
        if let Some(old) = lock(&self.scheduler).replace(task) {
            old.abort();
        }
    }

    /// Stops the timer scheduler, if it runs.
    pub(super) fn stop_scheduler(&self) {
        if let Some(task) = lock(&self.scheduler).take() {
            task.abort();
        }
    }
}
