//! Reminders: `IN` parsed as a duration (`90s`, `10m`, `1h30m`, `2d`), kept as a durable
//! timer whose payload says where to remind whom of what, so a restart loses none.

use serde::{Deserialize, Serialize};

/// The longest a reminder may wait: a year.
pub const MAX_MS: u64 = 365 * 24 * 3600 * 1000;
/// The longest reminder text, in characters.
pub const MAX_TEXT: usize = 1000;
/// Reminders pending in one room at most, so one room cannot fill the timer table.
pub const MAX_PENDING_PER_ROOM: u64 = 100;
/// Reminders pending in all at most: well under the host's 10,000 timers a plugin may keep.
pub const MAX_PENDING: u64 = 5_000;
/// The kv key counting every pending reminder.
pub const PENDING_ALL: &str = "reminders-pending";

/// What a reminder's timer carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reminder {
    pub room: String,
    pub user: String,
    pub text: String,
    /// The `!remind` message, which the reminder replies to.
    pub event_id: String,
}

/// The timer key of the reminder asked for by `event_id`: one per request, so a retried
/// transaction sets the same timer again instead of a second one.
pub fn timer_key(event_id: &str) -> String {
    format!("remind/{event_id}")
}

/// The kv key counting a room's pending reminders.
pub fn pending_key(room: &str) -> String {
    format!("reminders-pending/{room}")
}

/// `10m`, `1h30m`, `45s`, `2d`, `1w` as milliseconds; the error says what is wrong.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let usage = || format!("`{text}` is not a duration: write e.g. 90s, 10m, 1h30m or 2d");
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.trim().to_ascii_lowercase().chars() {
        if c.is_ascii_digit() {
            if digits.len() >= 7 {
                return Err(usage());
            }
            digits.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1000,
            'm' => 60 * 1000,
            'h' => 3600 * 1000,
            'd' => 24 * 3600 * 1000,
            'w' => 7 * 24 * 3600 * 1000,
            _ => return Err(usage()),
        };
        let n: u64 = digits.parse().map_err(|_| usage())?;
        digits.clear();
        total = total.saturating_add(n.saturating_mul(unit));
    }
    if !digits.is_empty() || total == 0 {
        return Err(usage());
    }
    if total > MAX_MS {
        return Err("a reminder waits at most a year".into());
    }
    Ok(total)
}

/// `1h 30m` for a duration in ms (rounded down to seconds).
pub fn describe(ms: u64) -> String {
    let mut secs = ms / 1000;
    let mut parts = Vec::new();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            parts.push(format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    if parts.is_empty() {
        "0s".into()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_add_up_their_parts() {
        assert_eq!(parse_duration("90s"), Ok(90_000));
        assert_eq!(parse_duration("10m"), Ok(600_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("2D"), Ok(172_800_000));
        assert_eq!(describe(5_400_000), "1h 30m");
        assert_eq!(describe(90_000), "1m 30s");
    }

    #[test]
    fn refuses_nonsense_zero_and_too_long() {
        for bad in ["", "10", "m", "10x", "0m", "1y", "-5m", "99999999m", "53w"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
