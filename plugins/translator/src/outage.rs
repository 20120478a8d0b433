//! The backend's health as the translator last saw it, in kv: up, or down since a failure
//! with the number of failures in a row, which sets the pause before the next try (doubling
//! from `retry_base_ms` up to `retry_max_ms`). Each room with work waiting is told once per
//! outage that the backend is unavailable, and once that it is back; never once per message.

use plugboard_sdk::prelude::*;
use serde::{Deserialize, Serialize};

use crate::cache::digest;
use crate::queue;
use crate::reply;
use crate::settings::Settings;

const KEY: &str = "backend";

/// Most rooms told in one call; the others are told by the next tries.
const TELL_PER_CALL: u32 = 50;

/// The backend's health.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// Whether the last request failed.
    pub down: bool,
    /// Failures in a row.
    pub failures: u32,
    /// Why the last one failed.
    pub reason: String,
    /// Outages so far: what the notices' txn ids are made of.
    pub outages: u64,
}

/// The health as stored.
pub fn load() -> Result<Health, Error> {
    Ok(kv::get_json(KEY)?.unwrap_or_default())
}

fn save(h: &Health) -> Result<(), Error> {
    kv::set_json(KEY, h)
}

/// The pause after `failures` failures in a row.
pub fn backoff_ms(failures: u32, s: &Settings) -> u64 {
    let doublings = failures.saturating_sub(1).min(40);
    s.retry_base_ms
        .saturating_mul(1u64 << doublings)
        .min(s.retry_max_ms)
}

fn told_key(room: &str) -> String {
    format!("told/{room}")
}

/// Tells `room` that the backend is unavailable, unless it was told in this outage.
pub fn tell(room: &str, h: &Health) -> Result<(), Error> {
    if !h.down || kv::get(&told_key(room))?.is_some() {
        return Ok(());
    }
    let waiting = queue::pending_in(room)?;
    let body = format!(
        "The translation backend is unavailable ({}). {waiting} waiting here; they will be \
         translated when it is back.",
        h.reason
    );
    reply::notice(
        room,
        &body,
        &format!("down-{}-{}", h.outages, digest(&[room])),
    )?;
    kv::set(&told_key(room), b"1")
}

/// Tells the rooms with work waiting that are not told yet, a bounded number per call.
fn tell_waiting(h: &Health) -> Result<(), Error> {
    for room in queue::waiting_rooms(TELL_PER_CALL)? {
        tell(&room, h)?;
    }
    Ok(())
}

/// A request failed for `reason`: the backend is down (again). Answers the pause before the
/// next try.
pub fn failed(reason: &str, s: &Settings) -> Result<u64, Error> {
    let mut h = load()?;
    if !h.down {
        h.down = true;
        h.outages += 1;
        h.failures = 0;
        log::warn(&format!("the translation backend is unavailable: {reason}"));
    }
    h.failures = h.failures.saturating_add(1);
    h.reason = reason.to_string();
    save(&h)?;
    tell_waiting(&h)?;
    kv::increment("counts/backend_failures", 1)?;
    Ok(backoff_ms(h.failures, s))
}

/// The backend answered (or nothing is left to ask it): it is up, and the rooms told of the
/// outage are told it is over.
pub fn recovered() -> Result<(), Error> {
    let mut h = load()?;
    if !h.down {
        return Ok(());
    }
    log::info("the translation backend is back");
    for key in kv::list_keys("told/", None, 1000)? {
        if let Some(room) = key.strip_prefix("told/") {
            reply::notice(
                room,
                "The translation backend is back; translating what was waiting.",
                &format!("back-{}-{}", h.outages, digest(&[room])),
            )?;
        }
        kv::delete(&key)?;
    }
    h.down = false;
    h.failures = 0;
    h.reason.clear();
    save(&h)
}

/// The queue ran empty while the backend was down, without asking it: the outage is over for
/// every room, with nothing to tell (nothing is waiting), and the next request finds out
/// afresh whether the backend serves.
pub fn nothing_waits() -> Result<(), Error> {
    let mut h = load()?;
    if !h.down {
        return Ok(());
    }
    for key in kv::list_keys("told/", None, 1000)? {
        kv::delete(&key)?;
    }
    h.down = false;
    h.failures = 0;
    h.reason.clear();
    save(&h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugboard_sdk::Config;
    use serde_json::json;

    #[test]
    fn the_pause_doubles_up_to_the_maximum() {
        let s = Settings::from_config(&Config(json!({"retry_base_ms": 100, "retry_max_ms": 1000})))
            .unwrap();
        let pauses: Vec<u64> = (1..=6).map(|f| backoff_ms(f, &s)).collect();
        assert_eq!(pauses, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff_ms(u32::MAX, &s), 1000);
    }
}
