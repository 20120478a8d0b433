//! Counters of what the IVR refused or passed over (malformed events, expired invites,
//! duplicates, events of other parties, …), kept in kv under `counts/` for `!ivr status`:
//! bad input is counted and answered, never a reason to fail.

use plugboard_sdk::prelude::*;

const PREFIX: &str = "counts/";

/// Counts one more `what` (`rejected/sdp`, `expired`, `duplicate`, …).
pub fn count(what: &str) -> Result<(), Error> {
    kv::increment(&format!("{PREFIX}{what}"), 1).map(drop)
}

/// Every counter with its count, in key order.
pub fn all() -> Result<Vec<(String, u64)>, Error> {
    let mut out = Vec::new();
    for key in kv::list_keys(PREFIX, None, 100)? {
        let n = kv::get_json::<u64>(&key).ok().flatten().unwrap_or(0);
        out.push((key.trim_start_matches(PREFIX).to_string(), n));
    }
    Ok(out)
}
