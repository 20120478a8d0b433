//! [`PluginRuntime`]: the engine, the linker with every interface the host provides, the
//! component cache and the loaded plugins. A [`Plugin`] is one loaded plugin: its manifest,
//! its lane (the one instance, called serially), its timers and its counters. Its calls run on
//! blocking threads; different plugins run in parallel.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use tokio::task::JoinHandle;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};

use super::bindings::{self, Error, HttpRequest, HttpResponse, Plugin as PluginWorld, PluginPre};
use super::cache::ComponentCache;
use super::host::kv::Written;
use super::lane::{CallError, Lane, TrapKind};
use super::manifest::{Capabilities, Manifest};
use super::schedule::TimerBook;
use super::state::{Guest, PluginState};
use crate::config::{Config, PluginsConfig};
use crate::service::appservice::registration::CompiledNamespaces;
use crate::service::appservice::registration::RegistrationError;
use crate::service::samples::DurationSamples;
use crate::service::{now_ms, Services};
use crate::storage::plugins::TimerRow;
use crate::storage::queue::QueueWrite;

/// Why a component cannot be a plugin here; the message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    #[error("the file is not WebAssembly")]
    NotWasm,
    #[error(
        "the file is a core WebAssembly module, not a component: build it for \
         wasm32-wasip2 (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule,
    #[error("the component does not compile: {0}")]
    Invalid(String),
    /// An import the host does not provide, or an export of the wrong type.
    #[error("the component does not fit the plugin world: {0}")]
    Mismatch(String),
}

/// A component checked against the plugin world, ready to instantiate.
pub struct Prepared {
    pub pre: PluginPre<PluginState>,
    /// The SHA-256 of its bytes.
    pub content_hash: String,
}

/// Plugin calls that fail this many times in a row mark the plugin failing.
pub const FAILING_AFTER: u32 = 5;

pub struct PluginRuntime {
    engine: Engine,
    linker: Linker<PluginState>,
    cache: ComponentCache,
    pub(super) config: PluginsConfig,
    pub(super) dir: PathBuf,
    pub(super) server_config: Arc<Config>,
    services: OnceLock<Weak<Services>>,
    pub(super) plugins: Mutex<BTreeMap<String, Arc<Plugin>>>,
    /// Plugins found at start-up that could not be loaded, with why.
    pub(super) broken: Mutex<BTreeMap<String, String>>,
    /// Held by a lifecycle change (install, upgrade, …) so that changes are serial.
    pub(super) changes: tokio::sync::Mutex<()>,
}

impl PluginRuntime {
    pub fn new(config: Arc<Config>) -> wasmtime::Result<PluginRuntime> {
        let engine = super::engine::build(&config.plugins)?;
        let mut linker = Linker::new(&engine);
        // WASI first: the clocks, random and stdio a stock toolchain imports (with nothing
        // granted), then outbound HTTP, then our own interfaces.
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker)?;
        use bindings::plugboard::appservice as ours;
        ours::types::add_to_linker::<_, wasmtime::component::HasSelf<PluginState>>(
            &mut linker,
            |s| s,
        )?;
        ours::homeserver::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| {
            &mut s.homeserver
        })?;
        ours::kv::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| &mut s.kv)?;
        ours::log::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| {
            &mut s.log
        })?;
        ours::timers::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| {
            &mut s.timers
        })?;
        let cache = ComponentCache::new(config.plugin_cache_dir(), &engine);
        Ok(PluginRuntime {
            engine,
            linker,
            cache,
            config: config.plugins.clone(),
            dir: config.plugins_dir(),
            server_config: config,
            services: OnceLock::new(),
            plugins: Mutex::new(BTreeMap::new()),
            broken: Mutex::new(BTreeMap::new()),
            changes: tokio::sync::Mutex::new(()),
        })
    }

    /// Called once the services exist: host calls reach them through this.
    pub fn attach(&self, services: &Arc<Services>) {
        let _ = self.services.set(Arc::downgrade(services));
    }

    pub(super) fn services_weak(&self) -> Weak<Services> {
        self.services.get().cloned().unwrap_or_default()
    }

    pub(super) fn lock_plugins(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<Plugin>>> {
        self.plugins.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, id: &str) -> Option<Arc<Plugin>> {
        self.lock_plugins().get(id).cloned()
    }

    /// Compiles (or loads from the cache) `bytes` and checks it against the plugin world:
    /// every import provided, every export there with its type.
    pub fn prepare(&self, bytes: &[u8]) -> Result<Prepared, ComponentError> {
        if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
            return Err(ComponentError::NotWasm);
        }
        // A core module has version 1 and layer 0; a component a different version, layer 1.
        if bytes[4..8] == [1, 0, 0, 0] {
            return Err(ComponentError::CoreModule);
        }
        let content_hash = ComponentCache::content_hash(bytes);
        let component: Component = self
            .cache
            .load(&self.engine, bytes, &content_hash)
            .map_err(|e| ComponentError::Invalid(format!("{e:#}")))?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| ComponentError::Mismatch(format!("{e:#}")))?;
        let pre = PluginPre::new(pre).map_err(|e| ComponentError::Mismatch(format!("{e:#}")))?;
        Ok(Prepared { pre, content_hash })
    }

    /// The capabilities and `init` configuration of a plugin: its manifest, then the admin's
    /// file (`install --config`), then the server config's settings.
    pub(super) fn settle(
        &self,
        manifest: &Manifest,
        admin_config: &toml::Table,
    ) -> (Capabilities, String) {
        let settings = self.config.settings.get(&manifest.id);
        let capabilities = manifest.capabilities_with(settings, self.config.max_memory_mb);
        let mut layers = vec![admin_config];
        if let Some(s) = settings {
            layers.push(&s.config);
        }
        (capabilities, manifest.config_with(&layers).to_string())
    }

    /// A guest for `manifest` with `capabilities`: who its host calls act for.
    pub(super) fn guest(
        &self,
        manifest: &Manifest,
        capabilities: Capabilities,
    ) -> Result<Arc<Guest>, RegistrationError> {
        let namespaces =
            CompiledNamespaces::compile(&manifest.registration(), &self.server_config.server_name)?;
        Ok(Arc::new(Guest::new(
            manifest.id.clone(),
            self.services_weak(),
            tokio::runtime::Handle::current(),
            capabilities,
            namespaces,
        )))
    }
}

/// What the admin decided about a loaded plugin, and what it is now.
#[derive(Debug, Clone)]
pub struct PluginInfo {
    pub manifest: Manifest,
    pub capabilities: Capabilities,
    /// The SHA-256 of its component.
    pub content_hash: String,
    pub enabled: bool,
    pub endpoints: bool,
    pub replay: Option<(i64, i64)>,
    pub installed_ts: i64,
    pub updated_ts: i64,
}

/// A plugin's counters, for `plugin list` / `show` and `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct PluginStats {
    pub transactions: u64,
    pub events: u64,
    pub timers_fired: u64,
    pub queries: u64,
    pub http_requests: u64,
    /// Calls that failed for any reason, traps included.
    pub errors: u64,
    pub traps: BTreeMap<TrapKind, u64>,
    /// How long calls took.
    pub call_times: DurationSamples,
    /// The instance's linear memory after the latest call.
    pub memory_bytes: usize,
    pub kv_bytes: i64,
    /// Delivery calls (transactions, timers) failed since the last success.
    pub consecutive_failures: u32,
    pub last_error: Option<(i64, String)>,
    /// Recent failures, newest last, for `show`.
    pub recent_errors: VecDeque<(i64, String)>,
}

/// Failures `show` lists.
const RECENT_ERRORS: usize = 10;

/// What a call was, for the counters.
#[derive(Debug, Clone, Copy)]
pub enum CallKind {
    Transaction { events: usize },
    Timer,
    Query,
    Http,
}

impl CallKind {
    /// Failures of these calls make a plugin failing; a bad web request does not.
    fn is_delivery(self) -> bool {
        matches!(self, CallKind::Transaction { .. } | CallKind::Timer)
    }
}

impl PluginStats {
    fn record<R>(&mut self, kind: CallKind, result: &Result<R, CallError>, took: Duration) {
        if matches!(result, Err(CallError::Disabled) | Err(CallError::Stale)) {
            return;
        }
        self.call_times.record(took);
        match kind {
            CallKind::Transaction { events } if result.is_ok() => {
                self.transactions += 1;
                self.events += events as u64;
            }
            CallKind::Timer if result.is_ok() => self.timers_fired += 1,
            CallKind::Query => self.queries += 1,
            CallKind::Http => self.http_requests += 1,
            _ => {}
        }
        match result {
            Ok(_) => {
                if kind.is_delivery() {
                    self.consecutive_failures = 0;
                }
            }
            Err(e) => {
                self.errors += 1;
                if let CallError::Trap { kind, .. } = e {
                    *self.traps.entry(*kind).or_default() += 1;
                }
                if kind.is_delivery() {
                    self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                }
                let entry = (now_ms(), e.to_string());
                if self.recent_errors.len() == RECENT_ERRORS {
                    self.recent_errors.pop_front();
                }
                self.recent_errors.push_back(entry.clone());
                self.last_error = Some(entry);
            }
        }
    }

    pub fn failing(&self) -> bool {
        self.consecutive_failures >= FAILING_AFTER
    }
}

/// One loaded plugin.
pub struct Plugin {
    id: String,
    pub(super) info: Mutex<PluginInfo>,
    pub(super) lane: Arc<tokio::sync::Mutex<Lane>>,
    /// The lane's guest, readable without waiting for the lane (a push converts its
    /// transaction before it queues for the call).
    guest: Mutex<Arc<Guest>>,
    pub(super) stats: Mutex<PluginStats>,
    pub timers: Arc<TimerBook>,
    pub(super) scheduler: Mutex<Option<JoinHandle<()>>>,
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

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn info(&self) -> PluginInfo {
        self.info.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(super) fn set_info(&self, f: impl FnOnce(&mut PluginInfo)) {
        f(&mut self.info.lock().unwrap_or_else(|e| e.into_inner()));
    }

    pub fn stats(&self) -> PluginStats {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The plugin's own users and sender, as its namespaces say.
    pub fn namespaces(&self) -> CompiledNamespaces {
        self.guest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .namespaces
            .clone()
    }

    /// A new component or configuration, between two calls.
    pub(super) async fn replace(
        &self,
        guest: Arc<Guest>,
        pre: PluginPre<PluginState>,
        config: String,
    ) {
        let mut lane = self.lane.lock().await;
        *self.guest.lock().unwrap_or_else(|e| e.into_inner()) = guest.clone();
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
    pub async fn call<R, F>(
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
    pub async fn call_acknowledging<R, F>(
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
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fires one due timer; one cancelled or set again meanwhile does not fire.
    pub async fn fire_timer(self: &Arc<Self>, timer: TimerRow) -> Result<(), CallError> {
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
    pub async fn handle_http(
        self: &Arc<Self>,
        request: HttpRequest,
    ) -> Result<HttpResponse, CallError> {
        self.call(CallKind::Http, None, move |p, store| {
            p.call_handle_http(store, &request).map(Ok)
        })
        .await
    }

    /// Stops the timer scheduler, if it runs.
    pub(super) fn stop_scheduler(&self) {
        if let Some(task) = self
            .scheduler
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            task.abort();
        }
    }
}
