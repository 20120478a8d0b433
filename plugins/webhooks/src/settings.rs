//! The plugin's configuration (`[config]` in `plugin.toml`, overridden by the admin): the
//! command prefix, the public base URL hook URLs start with, and the bounds of what it keeps.

use plugboard_sdk::{http, timers, Config, Error};
use serde_json::Value;

/// What `init` reads; every key has the default of `plugin.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// What commands start with.
    pub prefix: String,
    /// What hook URLs start with (`https://hooks.example.org`), without a trailing `/`, when
    /// it is not the server's own public base URL; empty means the server's.
    pub public_url: String,
    /// The longest `text` a hook accepts, in bytes.
    pub max_text_bytes: usize,
    /// How many incoming hooks one room may have.
    pub max_hooks_per_room: usize,
    /// How many forwards one room may have waiting; more are dropped and counted.
    pub max_pending: usize,
    /// How many incoming hooks all rooms together may have.
    pub max_hooks_total: u64,
    /// How many bytes (keys and values) of waiting forwards all rooms together may keep.
    pub max_pending_bytes_total: u64,
    /// How many rooms may forward at once (each keeps a record and a delivery timer).
    pub max_forwarding_rooms: u64,
    /// The first pause after a failed forward; it doubles up to `retry_max_ms`.
    pub retry_base_ms: u64,
    /// The longest pause between two tries of a failing forward.
    pub retry_max_ms: u64,
    /// After this many failed tries in a row the room is told (once per outage).
    pub notify_after_failures: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            prefix: "!".into(),
            public_url: String::new(),
            max_text_bytes: 16 * 1024,
            max_hooks_per_room: 20,
            max_pending: 1000,
            max_hooks_total: 1000,
            max_pending_bytes_total: DEFAULT_PENDING_BYTES_TOTAL,
            max_forwarding_rooms: 1000,
            retry_base_ms: 1000,
            retry_max_ms: 300_000,
            notify_after_failures: 5,
        }
    }
}

/// Half the host's default quota (16 MiB) for all rooms' waiting forwards: a byte bound,
/// like the quota, since one forward may take 200 bytes or 17 KiB. The rest leaves room for
/// the hooks (at most `max_hooks_total`, under 1 KiB each with their users' looks), the
/// forwarding records (at most `max_forwarding_rooms`, under 6 KiB each with two URLs) and
/// the counters: under 8 + 1 + 6 MiB by default.
pub const DEFAULT_PENDING_BYTES_TOTAL: u64 = 8 << 20;

/// Each forwarding room holds at most one timer, and the host allows a plugin
/// `MAX_TIMERS`; the margin is for the timers a transaction of many rooms sets again or
/// cancels, which the host counts until the transaction ends.
const MAX_FORWARDING_ROOMS: u64 = timers::MAX_TIMERS as u64 - 1000;

/// Past this a `text` would not fit in one Matrix event (64 KiB) with its HTML beside it.
const MAX_TEXT_CAP: usize = 24 * 1024;

impl Settings {
    /// Reads and checks the configuration; a wrong value names its key.
    pub fn from_config(config: &Config) -> Result<Settings, Error> {
        let d = Settings::default();
        let s = Settings {
            prefix: text(config, "prefix", &d.prefix)?,
            public_url: text(config, "public_url", &d.public_url)?
                .trim()
                .trim_end_matches('/')
                .to_string(),
            max_text_bytes: number(config, "max_text_bytes", d.max_text_bytes as u64)? as usize,
            max_hooks_per_room: number(config, "max_hooks_per_room", d.max_hooks_per_room as u64)?
                as usize,
            max_pending: number(config, "max_pending", d.max_pending as u64)? as usize,
            max_hooks_total: number(config, "max_hooks_total", d.max_hooks_total)?,
            max_pending_bytes_total: number(
                config,
                "max_pending_bytes_total",
                d.max_pending_bytes_total,
            )?,
            max_forwarding_rooms: number(config, "max_forwarding_rooms", d.max_forwarding_rooms)?,
            retry_base_ms: number(config, "retry_base_ms", d.retry_base_ms)?,
            retry_max_ms: number(config, "retry_max_ms", d.retry_max_ms)?,
            notify_after_failures: number(
                config,
                "notify_after_failures",
                u64::from(d.notify_after_failures),
            )?
            .min(u64::from(u32::MAX)) as u32,
        };
        if !s.public_url.is_empty() {
            http::split_url(&s.public_url)
                .map_err(|e| Error::invalid(format!("public_url: {}", e.message)))?;
        }
        if s.prefix.trim().is_empty() {
            return Err(Error::invalid("prefix: must not be empty"));
        }
        if s.max_text_bytes == 0 || s.max_text_bytes > MAX_TEXT_CAP {
            return Err(Error::invalid(format!(
                "max_text_bytes: must be 1 to {MAX_TEXT_CAP}"
            )));
        }
        if s.max_hooks_per_room == 0 || s.max_hooks_per_room > 1000 {
            return Err(Error::invalid("max_hooks_per_room: must be 1 to 1000"));
        }
        if s.max_pending == 0 || s.max_pending > 100_000 {
            return Err(Error::invalid("max_pending: must be 1 to 100000"));
        }
        if s.max_hooks_total == 0 || s.max_hooks_total > 1_000_000 {
            return Err(Error::invalid("max_hooks_total: must be 1 to 1000000"));
        }
        if s.max_pending_bytes_total == 0 {
            return Err(Error::invalid(
                "max_pending_bytes_total: must be at least 1",
            ));
        }
        if s.max_forwarding_rooms == 0 || s.max_forwarding_rooms > MAX_FORWARDING_ROOMS {
            return Err(Error::invalid(format!(
                "max_forwarding_rooms: must be 1 to {MAX_FORWARDING_ROOMS}"
            )));
        }
        if s.retry_base_ms == 0 || s.retry_max_ms < s.retry_base_ms {
            return Err(Error::invalid(
                "retry_base_ms: must be at least 1 and at most retry_max_ms",
            ));
        }
        Ok(s)
    }

    /// The pause before try `failures + 1` of a failing forward.
    pub fn backoff_ms(&self, failures: u32) -> u64 {
        let doubled = self
            .retry_base_ms
            .saturating_mul(1u64 << failures.saturating_sub(1).min(30));
        doubled.min(self.retry_max_ms)
    }
}

/// A string key, or its default when unset.
fn text(config: &Config, key: &str, default: &str) -> Result<String, Error> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(default.to_string()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(Error::invalid(format!("{key}: must be a string"))),
    }
}

/// A whole-number key, or its default when unset.
fn number(config: &Config, key: &str, default: u64) -> Result<u64, Error> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .ok_or_else(|| Error::invalid(format!("{key}: must be a whole number"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_hold_without_a_config() {
        let s = Settings::from_config(&Config(json!({}))).unwrap();
        assert_eq!(s, Settings::default());
    }

    #[test]
    fn a_public_url_loses_its_trailing_slash_and_must_be_http() {
        let s = Settings::from_config(&Config(json!({"public_url": "https://m.example.org/"})))
            .unwrap();
        assert_eq!(s.public_url, "https://m.example.org");
        let bad = Settings::from_config(&Config(json!({"public_url": "m.example.org"})));
        assert!(bad.unwrap_err().message.contains("public_url"));
    }

    #[test]
    fn wrong_types_and_ranges_name_their_key() {
        for (config, key) in [
            (json!({"max_pending": "many"}), "max_pending"),
            (json!({"max_text_bytes": 1_000_000}), "max_text_bytes"),
            (json!({"max_hooks_total": 0}), "max_hooks_total"),
            (
                json!({"max_forwarding_rooms": 9001}),
                "max_forwarding_rooms",
            ),
            (json!({"max_forwarding_rooms": 0}), "max_forwarding_rooms"),
            (
                json!({"max_pending_bytes_total": -1}),
                "max_pending_bytes_total",
            ),
            (
                json!({"retry_base_ms": 10, "retry_max_ms": 5}),
                "retry_base_ms",
            ),
        ] {
            let e = Settings::from_config(&Config(config)).unwrap_err();
            assert!(e.message.contains(key), "{}", e.message);
        }
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let s = Settings {
            retry_base_ms: 100,
            retry_max_ms: 1000,
            ..Settings::default()
        };
        let pauses: Vec<u64> = (1..=6).map(|n| s.backoff_ms(n)).collect();
        assert_eq!(pauses, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(s.backoff_ms(u32::MAX), 1000);
    }
}
