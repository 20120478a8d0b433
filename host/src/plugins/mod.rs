//! The WASM plugin runtime: application services that run inside the server as WebAssembly
//! components. A plugin's transactions come through the same durable queue as an HTTP
//! service's (its [`transport::WasmTransport`] sits behind the same trait); it acts back
//! through the host imports of the WIT package in `wit/`, which call the same services as the
//! client API, checked against its namespaces and capabilities.
//!
//! - [`engine`]: the one engine (pooling allocator, epoch ticker); [`cache`]: compiled
//!   components on disk.
//! - [`manifest`]: `plugin.toml`; [`lifecycle`]: install, upgrade, enable, … and start-up;
//!   [`bundled`]: the plugins built into the binary.
//! - [`runtime`]: the loaded plugins; [`lane`]: one plugin's instance and its serial calls;
//!   [`state`] and [`host`]: what a store holds and each imported interface.
//! - [`schedule`]: durable timers; [`convert`]: events as WIT records; [`effects`]: what a
//!   call wrote, handed to storage's group commit.

pub mod bindings;
pub mod bundled;
pub mod cache;
pub mod convert;
pub mod effects;
pub mod engine;
pub mod host;
pub mod lane;
pub mod lifecycle;
pub mod manifest;
pub mod runtime;
pub mod schedule;
pub mod state;
pub mod transport;

pub use runtime::PluginRuntime;
