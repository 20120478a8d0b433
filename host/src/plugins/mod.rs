//! The WASM plugin runtime: application services that run inside the server as WebAssembly
//! components. A plugin's transactions come through the same durable queue as an HTTP
//! service's (its [`transport::WasmTransport`] sits behind the same trait); it acts back
//! through the host imports of the WIT package in `wit/`, which call the same services as the
//! client API, checked against its namespaces and capabilities.
//!
//! - [`guest`]: who a plugin is (id, capabilities, namespaces); it depends on nothing else
//!   here, so every other module may use it.
//! - [`engine`]: the one engine (pooling allocator, epoch ticker); [`cache`]: compiled
//!   components on disk; [`component`]: a component checked against the plugin world.
//! - [`manifest`]: `plugin.toml`; [`bundled`]: the plugins built into the binary.
//! - [`registry`]: [`PluginRuntime`], the loaded plugins (install, remove, load at start-up,
//!   lookups); [`admin`]: upgrade, reload, enable, disable, …; [`lifecycle`]: their words.
//! - [`plugin`]: one loaded plugin and the call path into it; [`lane`]: its instance and
//!   serial calls; [`stats`]: its counters; [`schedule`]: its durable timers.
//! - [`state`] and [`host`]: what a store holds and each imported interface, each host module
//!   behind a narrow trait that [`backend`] implements with the real services.
//! - [`convert`]: events as WIT records; [`transport`]: the delivery queue's transport;
//!   [`effects`]: what a call wrote, handed to storage's group commit.

pub(crate) mod admin;
pub(crate) mod backend;
pub(crate) mod bindings;
pub(crate) mod bundled;
pub(crate) mod cache;
pub(crate) mod component;
pub mod convert;
pub(crate) mod effects;
pub(crate) mod engine;
pub mod guest;
pub mod host;
pub mod lane;
pub(crate) mod lifecycle;
pub mod manifest;
pub(crate) mod plugin;
pub(crate) mod registry;
pub mod schedule;
pub mod state;
pub(crate) mod stats;
pub(crate) mod transport;

pub use registry::PluginRuntime;
