//! Counts of what the plugin refused, by reason (`counts/rejected/{reason}` in the store),
//! for `!index` and `/status`.

use plugboard_sdk::{kv, log, Error};
use serde_json::{Map, Value};

const PREFIX: &str = "counts/rejected/";

/// Counts one refusal; a store that refuses the count is logged, not fatal.
pub fn count(reason: &str) {
    if let Err(e) = kv::increment(&format!("{PREFIX}{reason}"), 1) {
        log::warn(&format!("cannot count a refused {reason}: {}", e.message));
    }
}

/// Every count, by reason.
pub fn all() -> Result<Map<String, Value>, Error> {
    let mut out = Map::new();
    for key in kv::all_keys(PREFIX)? {
        let n = kv::get_json::<u64>(&key)?.unwrap_or(0);
        out.insert(key[PREFIX.len()..].to_string(), Value::from(n));
    }
    Ok(out)
}
