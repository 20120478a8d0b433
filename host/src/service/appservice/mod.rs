//! Application services: their registrations (parsed from Synapse-format YAML and checked as
//! a set), the namespace matching that decides which events and identifiers each one owns, and
//! the durable queue that delivers their transactions through a transport.

pub mod delivery;
pub mod identity;
pub mod ping;
pub mod query;
pub mod queue;
pub mod registered;
pub mod registration;
pub mod retry;
pub mod room_cache;
pub mod takeover;
pub mod transport;
