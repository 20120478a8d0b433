//! The wall clock, from WASI's clocks: what a plugin compares event timestamps with. Under
//! the `testing` harness it is the harness's clock, which tests move.

use crate::host;

/// Milliseconds since the Unix epoch, as `origin_server_ts` counts them.
pub fn now_ms() -> u64 {
    host::with(|h| h.now_ms())
}
