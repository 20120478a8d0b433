//! Durable timers (WIT interface `timers`): set one and [`Plugin::on_timer`](crate::Plugin::on_timer)
//! is called with its key and payload when it falls due, after restarts too. A plugin has
//! at most [`MAX_TIMERS`] at once; setting one more is refused with
//! `M_RESOURCE_LIMIT_EXCEEDED`.

use crate::host;
use crate::types::Error;

/// The most timers one plugin may have at once. Until a call ends, the host counts a timer
/// the call cancelled as still there, and one it set again twice.
pub use plugboard_limits::timers::MAX_TIMERS;

/// Fires `on_timer(key, payload)` in `after_ms`; replaces a timer with the same key.
pub fn set_timer(key: &str, after_ms: u64, payload: &str) -> Result<(), Error> {
    host::with(|h| h.set_timer(key, after_ms, payload))
}

/// Answers whether there was such a timer.
pub fn cancel_timer(key: &str) -> bool {
    host::with(|h| h.cancel_timer(key))
}
