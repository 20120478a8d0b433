//! Who a plugin is, as its host interfaces see it: its id, what it may do
//! ([`Capabilities`]), its namespaces, and whether the lane still waits for the instance that
//! calls ([`Alive`]). It depends on nothing else in `plugins/`, so that every host interface
//! and the runtime can share it without importing each other.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::service::appservice::registration::CompiledNamespaces;

/// What a plugin may use, after the admin's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// Hosts it may reach over outbound HTTP: `host`, `host:port` or `*.domain`.
    pub http_allow: Vec<String>,
    /// Bytes of keys and values its store may hold.
    pub(crate) kv_quota_bytes: u64,
    /// Its linear memory cap.
    pub memory_mb: u64,
    /// How long one call into it may run.
    pub deadline_ms: u64,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            http_allow: Vec::new(),
            kv_quota_bytes: plugboard_limits::kv::DEFAULT_QUOTA_BYTES,
            memory_mb: 64,
            deadline_ms: 1000,
        }
    }
}

/// Who a plugin is and where it acts: shared by its host interfaces and kept across
/// instances.
pub struct Guest {
    pub(crate) id: String,
    runtime: tokio::runtime::Handle,
    pub(crate) capabilities: Capabilities,
    /// Its namespaces, compiled (which senders are its own users).
    pub(crate) namespaces: CompiledNamespaces,
}

impl Guest {
    pub fn new(
        id: String,
        runtime: tokio::runtime::Handle,
        capabilities: Capabilities,
        namespaces: CompiledNamespaces,
    ) -> Guest {
        Guest {
            id,
            runtime,
            capabilities,
            namespaces,
        }
    }

    /// Runs a service call to completion. Host functions run on the blocking thread that
    /// entered the plugin, never on an async worker, so waiting here holds up nothing else.
    pub(crate) fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// Runs `f` on the server's runtime, beside the call.
    pub(crate) fn spawn<F>(&self, f: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime.spawn(f)
    }
}

/// Whether `authority` (`host` or `host:port`, from a request URL) is on `allow`.
pub fn host_allowed(allow: &[String], host: &str, port: Option<u16>) -> bool {
    let host = host.to_ascii_lowercase();
    allow.iter().any(|pattern| {
        let (name, want_port) = match pattern.rsplit_once(':') {
            Some((n, p)) => (n, p.parse::<u16>().ok()),
            None => (pattern.as_str(), None),
        };
        let name_ok = match name.strip_prefix("*.") {
            Some(domain) => host.ends_with(&format!(".{domain}")),
            None => host == name,
        };
        name_ok && want_port.is_none_or(|p| Some(p) == port)
    })
}

/// The server went away while a plugin ran (it is shutting down): the call traps.
#[derive(Debug, thiserror::Error)]
#[error("the server is shutting down")]
pub(crate) struct ServerGone;

/// A host call of an instance the lane gave up on: it trapped as past its deadline.
#[derive(Debug, thiserror::Error)]
#[error("the call stayed in a host function past its deadline and was abandoned")]
pub(crate) struct Abandoned;

/// Whether the lane still waits for this instance's call; shared by its host interfaces.
#[derive(Clone)]
pub(crate) struct Alive(pub(crate) Arc<AtomicBool>);

impl Alive {
    /// Traps a host call of an abandoned instance.
    pub(crate) fn check(&self) -> wasmtime::Result<()> {
        if self.0.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(Abandoned.into())
        }
    }
}
