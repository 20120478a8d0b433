//! Application services: their registrations ([`registration`]: read from Synapse-format YAML
//! or a plugin's manifest, checked as a set, compiled into the registry that decides which
//! events and identifiers each one owns), the set that runs ([`registered`]; [`overview`]: as
//! the admin sees it), and the durable queue that delivers their transactions ([`delivery`], a
//! state machine any kind of destination shares) through a [`transport`] (HTTP here, WASM in
//! `plugins/`).

pub mod delivery;
pub mod identity;
pub mod overview;
pub mod ping;
pub mod query;
pub mod queue;
pub mod registered;
pub mod registration;
pub mod retry;
pub mod room_cache;
pub mod takeover;
pub mod transport;
