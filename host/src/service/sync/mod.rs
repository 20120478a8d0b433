//! Reading the stream: the notifier that wakes long-polls, /sync, /messages and filters.

pub mod changes;
pub mod filter;
pub mod messages;
pub mod notifier;
pub mod response;
#[allow(clippy::module_inception)]
pub mod sync;
pub mod token;

pub use notifier::Notifier;
