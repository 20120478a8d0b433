//! What one plugin instance's store holds: a context per host interface (one module of
//! `host/` each), the WASI context (clocks, random, stdio into the log; no files, environment
//! or sockets), outbound HTTP with the allow-list, and the memory limiter.

use std::future::Future;
use std::sync::{Arc, Weak};

use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::host::homeserver::HomeserverCtx;
use super::host::http::OutboundHttp;
use super::host::kv::{KvCtx, KvShared};
use super::host::log::LogCtx;
use super::host::stdio::LogPipe;
use super::host::timers::TimersCtx;
use super::manifest::Capabilities;
use super::schedule::TimerBook;
use crate::service::appservice::registration::CompiledNamespaces;
use crate::service::Services;

/// Who a plugin is and where it acts: shared by its host interfaces and kept across
/// instances.
pub struct Guest {
    pub id: String,
    services: Weak<Services>,
    runtime: tokio::runtime::Handle,
    pub capabilities: Capabilities,
    /// Its namespaces, compiled (which senders are its own users).
    pub namespaces: CompiledNamespaces,
}

/// The server went away while a plugin ran (it is shutting down): the call traps.
#[derive(Debug, thiserror::Error)]
#[error("the server is shutting down")]
pub struct ServerGone;

/// A host call of an instance the lane gave up on: it trapped as past its deadline.
#[derive(Debug, thiserror::Error)]
#[error("the call stayed in a host function past its deadline and was abandoned")]
pub struct Abandoned;

/// Whether the lane still waits for this instance's call; shared by its host interfaces.
#[derive(Clone)]
pub struct Alive(pub Arc<std::sync::atomic::AtomicBool>);

impl Alive {
    /// Traps a host call of an abandoned instance.
    pub fn check(&self) -> wasmtime::Result<()> {
        if self.0.load(std::sync::atomic::Ordering::SeqCst) {
            Ok(())
        } else {
            Err(Abandoned.into())
        }
    }
}

impl Guest {
    pub fn new(
        id: String,
        services: Weak<Services>,
        runtime: tokio::runtime::Handle,
        capabilities: Capabilities,
        namespaces: CompiledNamespaces,
    ) -> Guest {
        Guest {
            id,
            services,
            runtime,
            capabilities,
            namespaces,
        }
    }

    pub fn services(&self) -> wasmtime::Result<Arc<Services>> {
        self.services.upgrade().ok_or_else(|| ServerGone.into())
    }

    /// Runs a service call to completion. Host functions run on the blocking thread that
    /// entered the plugin, never on an async worker, so waiting here holds up nothing else.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// Runs `f` on the server's runtime, beside the call.
    pub fn spawn<F>(&self, f: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime.spawn(f)
    }
}

/// The data of one instance's store.
pub struct PluginState {
    pub homeserver: HomeserverCtx,
    pub kv: KvCtx,
    pub log: LogCtx,
    pub timers: TimersCtx,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    http_hooks: OutboundHttp,
    table: ResourceTable,
    pub limits: MemoryLimit,
}

impl PluginState {
    /// The state of a new instance of `guest`: its store's usage and its timers are shared
    /// with the plugin's other instances; `alive` is this instance's own (see [`Alive`]).
    pub fn new(
        guest: &Arc<Guest>,
        kv: Arc<KvShared>,
        timers: Arc<TimerBook>,
        timer_seq: Arc<std::sync::atomic::AtomicI64>,
        alive: Arc<std::sync::atomic::AtomicBool>,
    ) -> PluginState {
        let alive = Alive(alive);
        let kv = KvCtx::new(guest.clone(), kv, alive.clone());
        let timers = TimersCtx::new(timers, timer_seq, alive.clone());
        let stdout = LogPipe::new(guest.id.clone(), "stdout");
        let stderr = LogPipe::new(guest.id.clone(), "stderr");
        // Nothing is inherited: no arguments, environment, directories or network. Clocks
        // and random are WASI's own.
        let mut wasi = WasiCtx::builder();
        wasi.stdout(stdout)
            .stderr(stderr)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        PluginState {
            homeserver: HomeserverCtx::new(guest.clone(), alive.clone()),
            kv,
            log: LogCtx::new(guest.id.clone(), alive.clone()),
            timers,
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            http_hooks: OutboundHttp::new(guest.clone(), alive),
            table: ResourceTable::new(),
            limits: MemoryLimit::new((guest.capabilities.memory_mb as usize) << 20),
        }
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for PluginState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

/// The memory cap of one instance (all its memories together), and how much it uses.
pub struct MemoryLimit {
    cap: usize,
    /// Bytes of linear memory the instance has grown to, over all its memories.
    pub used: usize,
}

/// Why a memory grow trapped; the runtime counts these as memory overruns.
#[derive(Debug, thiserror::Error)]
#[error("memory limit of {cap_mb} MiB exceeded (asked for {wanted} bytes more)")]
pub struct MemoryExceeded {
    pub cap_mb: usize,
    pub wanted: usize,
}

/// Tables (function references) an instance may hold: far above what compilers emit, low
/// enough that a table bomb stops long before memory trouble.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl MemoryLimit {
    fn new(cap: usize) -> MemoryLimit {
        MemoryLimit { cap, used: 0 }
    }
}

impl ResourceLimiter for MemoryLimit {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let more = desired.saturating_sub(current);
        if self.used.saturating_add(more) > self.cap {
            return Err(MemoryExceeded {
                cap_mb: self.cap >> 20,
                wanted: more,
            }
            .into());
        }
        self.used += more;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            return Err(wasmtime::format_err!(
                "table limit of {MAX_TABLE_ELEMENTS} elements exceeded"
            ));
        }
        Ok(true)
    }
}

/// `types` has no functions; the linker still wants its (empty) host.
impl super::bindings::plugboard::appservice::types::Host for PluginState {}
