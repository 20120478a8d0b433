//! Plugboard: a Matrix homeserver whose application services run inside it as sandboxed
//! WebAssembly components. `api` (HTTP) calls `service` (what the server does), which calls
//! `storage` (sqlx); `server` wires them together and `cli` is the command line.

pub mod api;
pub mod cli;
pub mod config;
pub(crate) mod lock;
pub(crate) mod net;
pub mod plugins;
pub mod server;
pub mod service;
pub mod storage;

pub use server::{run, run_with_federation};
