//! Application services: their registrations ([`registration`]: read from Synapse-format YAML
//! or a plugin's manifest, checked as a set, compiled into the registry that decides which
//! events and identifiers each one owns), the set that runs ([`registered`]; [`overview`]: as
//! the admin sees it), and the durable queue that delivers their transactions ([`delivery`], a
//! state machine any kind of destination shares) through a [`transport`] (HTTP here, WASM in
//! `plugins/`).

pub(crate) mod delivery;
pub(crate) mod identity;
pub(crate) mod overview;
pub(crate) mod ping;
pub(crate) mod query;
pub(crate) mod queue;
pub(crate) mod registered;
pub mod registration;
pub(crate) mod retry;
pub(crate) mod room_cache;
pub mod takeover;
pub(crate) mod thirdparty;
pub(crate) mod transport;
