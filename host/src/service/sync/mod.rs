//! Reading the stream: the notifier that wakes long-polls, /sync, /messages and filters.

pub(crate) mod changes;
pub(crate) mod context;
pub mod filter;
pub(crate) mod messages;
pub(crate) mod notifier;
pub(crate) mod relations;
pub(crate) mod response;
pub(crate) mod room_initial_sync;
#[allow(clippy::module_inception)]
pub(crate) mod sync;
pub mod token;

pub(crate) use notifier::Notifier;
