//! What one plugin instance's store holds: a context per host interface (one module of
//! `host/` each), the WASI context (clocks, random, stdio into the log; no files, environment
//! or sockets), outbound HTTP with the allow-list, and the memory limiter.

use std::sync::atomic::{AtomicBool, AtomicI64};
use std::sync::{Arc, Weak};

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::ResourceLimiter;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::backend::StoredKv;
use super::bindings::plugboard::appservice::types;
use super::guest::{Alive, Guest};
use super::host::e2ee::{self, E2eeCtx};
use super::host::homeserver::{self, HomeserverCtx};
use super::host::http::OutboundHttp;
use super::host::kv::{self, KvCtx, KvShared};
use super::host::log::{self, LogCtx};
use super::host::stdio::LogPipe;
use super::host::timers::{self, TimerSet, TimersCtx};
use crate::service::Services;

/// The data of one instance's store.
pub struct PluginState {
    pub(crate) homeserver: HomeserverCtx,
    pub(crate) e2ee: E2eeCtx,
    pub(crate) kv: KvCtx,
    pub(crate) log: LogCtx,
    pub(crate) timers: TimersCtx,
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
        services: &Weak<Services>,
        kv: Arc<KvShared>,
        timers: Arc<dyn TimerSet>,
        timer_seq: Arc<AtomicI64>,
        alive: Arc<AtomicBool>,
    ) -> PluginState {
        let alive = Alive(alive);
        let store = Arc::new(StoredKv::new(guest.clone(), services.clone()));
        let kv = KvCtx::new(store, guest.capabilities.kv_quota_bytes, kv, alive.clone());
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
            homeserver: HomeserverCtx::new(guest.clone(), services.clone(), alive.clone()),
            e2ee: E2eeCtx::new(guest.clone(), services.clone(), alive.clone()),
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

    /// Links every interface a plugin may import: WASI first (the clocks, random and stdio
    /// a stock toolchain imports, with nothing granted), then outbound HTTP, then our own,
    /// each by its host module.
    pub(crate) fn link(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
        wasmtime_wasi::p2::add_to_linker_sync(linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_sync(linker)?;
        types::add_to_linker::<_, HasSelf<PluginState>>(linker, |s| s)?;
        homeserver::add_to_linker(linker, |s| &mut s.homeserver)?;
        e2ee::add_to_linker(linker, |s| &mut s.e2ee)?;
        kv::add_to_linker(linker, |s| &mut s.kv)?;
        log::add_to_linker(linker, |s| &mut s.log)?;
        timers::add_to_linker(linker, |s| &mut s.timers)
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
    pub(crate) used: usize,
}

/// Why a memory grow trapped; the runtime counts these as memory overruns.
#[derive(Debug, thiserror::Error)]
#[error("memory limit of {cap_mb} MiB exceeded (asked for {wanted} bytes more)")]
pub(crate) struct MemoryExceeded {
    pub(crate) cap_mb: usize,
    pub(crate) wanted: usize,
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
impl types::Host for PluginState {}
