//! A plugin's lane: its one long-lived instance and the calls into it, one at a time. The
//! instance is made from the plugin's `InstancePre` when the first call needs it (and `init`
//! is called with the plugin's configuration); a trap, a deadline or a memory overrun drops
//! it, and the next call gets a fresh one. Calls run on a blocking thread, never on the async
//! workers, with an epoch deadline; what a call wrote to its store and timers is committed
//! only if it succeeded.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use wasmtime::Store;

use super::bindings::{Error, Plugin as PluginWorld, PluginPre};
use super::effects::PluginEffects;
use super::engine::deadline_ticks;
use super::guest::{Abandoned, Guest, ServerGone};
use super::host::kv::{KvShared, Written};
use super::schedule::TimerBook;
use super::state::{MemoryExceeded, PluginState};
use crate::service::Services;

/// What stopped a call from running to completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TrapKind {
    /// It ran past its deadline.
    Deadline,
    /// It grew its memory past the cap.
    Memory,
    /// It panicked or hit `unreachable`.
    Panic,
    /// Any other trap (a bad handle, a stack overflow, …).
    Other,
}

impl TrapKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            TrapKind::Deadline => "deadline",
            TrapKind::Memory => "memory",
            TrapKind::Panic => "panic",
            TrapKind::Other => "other",
        }
    }

    pub(crate) const ALL: [TrapKind; 4] = [
        TrapKind::Deadline,
        TrapKind::Memory,
        TrapKind::Panic,
        TrapKind::Other,
    ];
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The plugin answered with an error of its own.
    #[error("the plugin answered {}: {}", .0.errcode, .0.message)]
    Plugin(Error),
    /// `init` refused the configuration.
    #[error("init failed: {}: {}", .0.errcode, .0.message)]
    Init(Error),
    #[error("trap ({}): {message}", kind.name())]
    Trap { kind: TrapKind, message: String },
    /// The call's writes could not be committed (they are dropped; the call counts as failed).
    #[error("committing the call's writes failed: {0}")]
    Commit(String),
    #[error("the server is shutting down")]
    ServerGone,
    /// The plugin is disabled or removed: it takes no calls.
    #[error("the plugin is disabled")]
    Disabled,
    /// The timer to fire was cancelled or set again meanwhile.
    #[error("the timer changed before it fired")]
    Stale,
}

/// The deadline given to `init` and to the instantiation before it: at least this, since a
/// language runtime (Python, JS) warms up on its first instance.
const MIN_INIT_DEADLINE: Duration = Duration::from_secs(5);

struct Live {
    store: Store<PluginState>,
    plugin: PluginWorld,
    /// Cleared when the lane gives up on a call stuck in a host function: every host call
    /// of this instance then traps (see [`Lane::abandon`]).
    alive: Arc<AtomicBool>,
}

thread_local! {
    /// The plugin whose call runs on this thread, while it runs.
    static CALLING: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Whether this thread is inside a call of plugin `id`: a host function of that call that
/// ends up asking the same plugin (a query for one of its own users) must not wait for the
/// lane it holds.
pub(crate) fn inside_call_of(id: &str) -> bool {
    CALLING.with(|c| c.borrow().as_deref() == Some(id))
}

pub struct Lane {
    guest: Arc<Guest>,
    pre: PluginPre<PluginState>,
    /// The configuration `init` receives, as JSON text.
    config: String,
    live: Option<Live>,
    /// The liveness flag the next instance made will have (known before it exists, so that
    /// a call that makes an instance and then gets stuck can still be abandoned).
    next_alive: Arc<AtomicBool>,
    /// What its host calls reach; gone when the server shuts down.
    services: Weak<Services>,
    kv: Arc<KvShared>,
    timer_seq: Arc<AtomicI64>,
    timers: Arc<TimerBook>,
}

/// A call that ran: what it answered, what it wrote, how long it took and the instance's
/// memory afterwards.
pub struct Ran<R> {
    pub result: Result<R, CallError>,
    pub(crate) effects: PluginEffects,
    pub(crate) kv_delta: i64,
    pub(crate) took: Duration,
    pub(crate) memory_bytes: usize,
}

impl Lane {
    pub fn new(
        guest: Arc<Guest>,
        pre: PluginPre<PluginState>,
        config: String,
        services: Weak<Services>,
        kv: Arc<KvShared>,
        timer_seq: Arc<AtomicI64>,
        timers: Arc<TimerBook>,
    ) -> Lane {
        Lane {
            guest,
            pre,
            config,
            live: None,
            next_alive: Arc::new(AtomicBool::new(true)),
            services,
            kv,
            timer_seq,
            timers,
        }
    }

    pub(crate) fn guest(&self) -> &Arc<Guest> {
        &self.guest
    }

    /// A new component (upgrade, reload) or configuration: the current instance goes, and
    /// the next call instantiates the new one.
    pub(crate) fn replace(
        &mut self,
        guest: Arc<Guest>,
        pre: PluginPre<PluginState>,
        config: String,
    ) {
        self.guest = guest;
        self.pre = pre;
        self.config = config;
        self.live = None;
    }

    /// Drops the instance; the next call makes a fresh one.
    pub(crate) fn recycle(&mut self) {
        self.live = None;
    }

    /// The same lane with no instance: what takes this one's place while it runs a call on
    /// a blocking thread, and for good if that call is abandoned.
    pub(crate) fn standby(&self) -> Lane {
        Lane {
            guest: self.guest.clone(),
            pre: self.pre.clone(),
            config: self.config.clone(),
            live: None,
            next_alive: Arc::new(AtomicBool::new(true)),
            services: self.services.clone(),
            kv: self.kv.clone(),
            timer_seq: self.timer_seq.clone(),
            timers: self.timers.clone(),
        }
    }

    /// The handle that abandons the instance the next call runs in: the current one, or
    /// the one that call will make.
    pub(crate) fn abandon_handle(&self) -> Arc<AtomicBool> {
        match &self.live {
            Some(live) => live.alive.clone(),
            None => self.next_alive.clone(),
        }
    }

    /// Gives up on the instance behind `handle`: its host calls trap from now on, and its
    /// next wasm instruction is past the deadline anyway.
    pub(crate) fn abandon(handle: &AtomicBool) {
        handle.store(false, Ordering::SeqCst);
    }

    /// Makes the instance if there is none: instantiate, then `init`.
    fn live(&mut self) -> Result<&mut Live, CallError> {
        if self.live.is_none() {
            let alive = std::mem::replace(&mut self.next_alive, Arc::new(AtomicBool::new(true)));
            let state = PluginState::new(
                &self.guest,
                &self.services,
                self.kv.clone(),
                self.timers.clone(),
                self.timer_seq.clone(),
                alive.clone(),
            );
            let mut store = Store::new(self.pre.engine(), state);
            store.limiter(|s| &mut s.limits);
            let deadline = Duration::from_millis(self.guest.capabilities.deadline_ms);
            store.set_epoch_deadline(deadline_ticks(deadline.max(MIN_INIT_DEADLINE)));
            store.epoch_deadline_trap();
            let plugin = self.pre.instantiate(&mut store).map_err(classify)?;
            match plugin.call_init(&mut store, &self.config) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(CallError::Init(e)),
                Err(trap) => return Err(classify(trap)),
            }
            self.live = Some(Live {
                store,
                plugin,
                alive,
            });
        }
        Ok(self.live.as_mut().expect("just made"))
    }

    /// Runs `f` against the instance (made first if needed) under the plugin's deadline.
    /// The call's writes are taken when it succeeds and dropped when it does not; a trap
    /// drops the instance too.
    pub fn run<R>(
        &mut self,
        firing: Option<(String, i64)>,
        f: impl FnOnce(&PluginWorld, &mut Store<PluginState>) -> wasmtime::Result<Result<R, Error>>,
    ) -> Ran<R> {
        let started = Instant::now();
        let ticks = deadline_ticks(Duration::from_millis(self.guest.capabilities.deadline_ms));
        CALLING.with(|c| *c.borrow_mut() = Some(self.guest.id.clone()));
        let outcome = self.live().and_then(|live| {
            if let Some((key, seq)) = firing {
                live.store.data_mut().timers.fire(key, seq);
            }
            live.store.set_epoch_deadline(ticks);
            match f(&live.plugin, &mut live.store) {
                Ok(Ok(r)) => Ok(r),
                Ok(Err(e)) => Err(CallError::Plugin(e)),
                Err(trap) => Err(classify(trap)),
            }
        });
        CALLING.with(|c| *c.borrow_mut() = None);
        let took = started.elapsed();
        let id = self.guest.id.clone();
        match outcome {
            Ok(r) => {
                let live = self
                    .live
                    .as_mut()
                    .expect("a call that succeeded ran in an instance");
                let state = live.store.data_mut();
                let (kv, kv_delta) = state.kv.take_writes();
                let timers = state.timers.take_changes();
                Ran {
                    result: Ok(r),
                    effects: PluginEffects {
                        plugin_id: id,
                        kv,
                        timers,
                    },
                    kv_delta,
                    took,
                    memory_bytes: state.limits.used,
                }
            }
            Err(e) => {
                let mut memory_bytes = 0;
                if let Some(live) = self.live.as_mut() {
                    let state = live.store.data_mut();
                    state.kv.discard();
                    state.timers.discard();
                    memory_bytes = state.limits.used;
                }
                if matches!(e, CallError::Trap { .. } | CallError::ServerGone) {
                    // An instance that trapped cannot be entered again.
                    self.live = None;
                }
                Ran {
                    result: Err(e),
                    effects: PluginEffects {
                        plugin_id: id,
                        ..PluginEffects::default()
                    },
                    kv_delta: 0,
                    took,
                    memory_bytes,
                }
            }
        }
    }

    /// After a commit: the store's usage grows by what the call wrote, and its cache has
    /// the values written.
    pub(crate) fn committed(&self, written: Written, kv_delta: i64) {
        self.kv.committed(written, kv_delta);
    }

    pub(crate) fn kv_usage(&self) -> i64 {
        self.kv.usage()
    }
}

/// What kind of trap `e` is, with its message.
pub(crate) fn classify(e: wasmtime::Error) -> CallError {
    if e.downcast_ref::<ServerGone>().is_some() {
        return CallError::ServerGone;
    }
    let kind = if e.downcast_ref::<MemoryExceeded>().is_some() {
        TrapKind::Memory
    } else if e.downcast_ref::<Abandoned>().is_some() {
        TrapKind::Deadline
    } else {
        match e.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => TrapKind::Deadline,
            Some(wasmtime::Trap::UnreachableCodeReached) => TrapKind::Panic,
            _ => TrapKind::Other,
        }
    };
    CallError::Trap {
        kind,
        message: format!("{e:#}"),
    }
}
