//! The host side of each imported interface, one module per WIT interface with its own
//! context struct in the store's data ([`PluginState`](super::state::PluginState)), plus the
//! WASI pieces Plugboard configures itself: outbound HTTP behind the allow-list and stdio
//! into the log.

pub mod homeserver;
pub mod http;
pub mod kv;
pub mod log;
pub mod stdio;
pub mod timers;
