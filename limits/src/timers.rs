//! `timers`: durable timers. A plugin has a bounded number of them, each with a bounded key
//! and payload, set at most about ten years ahead.

use crate::errcode::{INVALID_PARAM, RESOURCE_LIMIT_EXCEEDED, TOO_LARGE};
use crate::Refusal;

/// Timers one plugin may have at once. Until a call ends, the host counts a timer the call
/// cancelled as still there, and one it set again twice.
pub const MAX_TIMERS: usize = 10_000;
/// Largest payload, in bytes.
pub const MAX_PAYLOAD: usize = 64 * 1024;
/// Longest key, in bytes.
pub const MAX_KEY: usize = 512;
/// The furthest a timer may be set: about ten years.
pub const MAX_AFTER_MS: u64 = 10 * 366 * 24 * 3600 * 1000;

/// Refuses a timer whose key, payload or delay is past its limit, in that order.
pub fn check(key: &str, after_ms: u64, payload: &str) -> Result<(), Refusal> {
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(Refusal::new(
            INVALID_PARAM,
            format!("a timer key is 1 to {MAX_KEY} bytes"),
        ));
    }
    if payload.len() > MAX_PAYLOAD {
        return Err(Refusal::new(
            TOO_LARGE,
            format!("a timer payload is at most {MAX_PAYLOAD} bytes"),
        ));
    }
    if after_ms > MAX_AFTER_MS {
        return Err(Refusal::new(
            INVALID_PARAM,
            "a timer is set at most ten years ahead",
        ));
    }
    Ok(())
}

/// One timer more than a plugin may have.
pub fn too_many() -> Refusal {
    Refusal::new(
        RESOURCE_LIMIT_EXCEEDED,
        format!("a plugin has at most {MAX_TIMERS} timers"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timer_is_refused_for_its_key_then_its_payload_then_its_delay() {
        let long = "p".repeat(MAX_PAYLOAD + 1);
        assert_eq!(
            check("", u64::MAX, &long).unwrap_err().errcode,
            INVALID_PARAM
        );
        assert_eq!(check("k", u64::MAX, &long).unwrap_err().errcode, TOO_LARGE);
        assert_eq!(
            check("k", MAX_AFTER_MS + 1, "").unwrap_err().message,
            "a timer is set at most ten years ahead"
        );
        assert!(check(&"k".repeat(MAX_KEY), MAX_AFTER_MS, &long[1..]).is_ok());
    }
}
