//! The host side of each imported interface, one module per WIT interface with its own
//! context struct in the store's data ([`PluginState`](super::state::PluginState)) and its
//! own `add_to_linker`, plus the WASI pieces Plugboard configures itself: outbound HTTP
//! behind the allow-list and stdio into the log. A module knows who the guest is
//! ([`guest`](super::guest)) and what it needs of the server through a narrow trait of its
//! own (`homeserver::Homeserver`, `e2ee::E2ee`, `kv::KvStore`, `timers::TimerSet`), which the runtime
//! implements ([`backend`](super::backend), [`schedule`](super::schedule)) and a unit test
//! fakes.

pub(crate) mod e2ee;
pub(crate) mod homeserver;
pub(crate) mod http;
pub mod kv;
pub(crate) mod log;
pub(crate) mod stdio;
pub(crate) mod timers;
