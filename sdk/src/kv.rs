//! The plugin's durable key-value store (WIT interface `kv`): bytes by key, and typed values
//! through serde. A call's writes take effect together when the call succeeds and vanish when
//! it fails, so a retried transaction finds the store as the failed attempt did.
//!
//! A key holds at most [`MAX_KEY`] bytes and a value at most [`MAX_VALUE`]; the host refuses
//! more with `M_TOO_LARGE`. A key built of ids from outside (Matrix ids run to 255 bytes,
//! escaping can triple them) keeps within that with [`key_part`]. A write past the plugin's
//! quota (`kv_quota_bytes`), or past [`MAX_WRITES_PER_CALL`] keys in one call, is refused
//! with `M_RESOURCE_LIMIT_EXCEEDED`, which is not [permanent](Error::is_permanent): a
//! handler that returns it has its transaction retried, and finds the same store again.

use std::borrow::Cow;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::host;
use crate::types::Error;

/// The host's limits on keys, values and the keys one call (a transaction, a timer, a web
/// request) may write, deletes included: it holds them in memory until the call ends and
/// commits them together. One copy for the host and the SDK, in `plugboard-limits`.
pub use plugboard_limits::kv::{MAX_KEY, MAX_VALUE, MAX_WRITES_PER_CALL};

/// The length of what [`key_part`] makes of a part too long: `%#` and 32 hex digits.
pub const DIGEST_PART_LEN: usize = 34;

/// `part` when it has at most `max` bytes, else `%#` and a digest of it (128 bits of
/// SHA-256 in hex, [`DIGEST_PART_LEN`] bytes): how a key made of ids keeps within
/// [`MAX_KEY`] whatever the ids. A key too long is refused for good, and with it whatever
/// needed it (an event is then passed over, uncounted). A part kept as it is never reads as
/// a digest when it is escaped (`%` only before two hex digits) or an id (which starts with
/// its sigil), so two ids share a key part only by a SHA-256 collision.
pub fn key_part(part: &str, max: usize) -> Cow<'_, str> {
    if part.len() <= max {
        return Cow::Borrowed(part);
    }
    let digest = Sha256::digest(part.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    Cow::Owned(format!("%#{hex}"))
}

/// The value of `key`, if it has one.
pub fn get(key: &str) -> Result<Option<Vec<u8>>, Error> {
    host::with(|h| h.kv_get(key))
}

/// Sets `key` to `value` (refused past the plugin's quota).
pub fn set(key: &str, value: &[u8]) -> Result<(), Error> {
    host::with(|h| h.kv_set(key, value))
}

/// Answers whether the key had a value.
pub fn delete(key: &str) -> Result<bool, Error> {
    host::with(|h| h.kv_delete(key))
}

/// Keys starting with `prefix`, in byte order, after `after`, at most `limit` (≤ 1000).
pub fn list_keys(prefix: &str, after: Option<&str>, limit: u32) -> Result<Vec<String>, Error> {
    host::with(|h| h.kv_list_keys(prefix, after, limit))
}

/// Every key starting with `prefix`, page by page.
pub fn all_keys(prefix: &str) -> Result<Vec<String>, Error> {
    let mut out: Vec<String> = Vec::new();
    loop {
        let page = list_keys(prefix, out.last().map(String::as_str), 1000)?;
        let done = page.len() < 1000;
        out.extend(page);
        if done {
            return Ok(out);
        }
    }
}

/// Sets `key` to `new` (removes it with `None`) if its value is `expected` now.
pub fn compare_and_swap(
    key: &str,
    expected: Option<&[u8]>,
    new: Option<&[u8]>,
) -> Result<bool, Error> {
    host::with(|h| h.kv_compare_and_swap(key, expected, new))
}

/// A value stored with [`set_json`].
pub fn get_json<T: DeserializeOwned>(key: &str) -> Result<Option<T>, Error> {
    match get(key)? {
        Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
        None => Ok(None),
    }
}

/// Stores `value` as JSON.
pub fn set_json<T: Serialize>(key: &str, value: &T) -> Result<(), Error> {
    let bytes = serde_json::to_vec(value)?;
    set(key, &bytes)
}

/// Adds `by` to the counter at `key` (a missing key counts from 0) and answers the new
/// count: what a plugin uses to count what it refused, for its status command.
pub fn increment(key: &str, by: u64) -> Result<u64, Error> {
    let now = get_json::<u64>(key)?.unwrap_or(0).saturating_add(by);
    set_json(key, &now)?;
    Ok(now)
}

/// The count kept at `key`, or, in a store from before it was kept, `count()` (the count
/// from what the store holds), then kept. A store too full to keep it answers the count all
/// the same and counts again next time.
pub fn kept_count(key: &str, count: impl FnOnce() -> Result<u64, Error>) -> Result<u64, Error> {
    if let Some(n) = get_json::<u64>(key)? {
        return Ok(n);
    }
    let n = count()?;
    match set_json(key, &n) {
        Err(e) if e.is("M_RESOURCE_LIMIT_EXCEEDED") => Ok(n),
        other => other.map(|()| n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Bare, Harness};
    use serde_json::json;

    #[test]
    fn a_part_that_fits_is_kept_and_a_longer_one_becomes_its_digest() {
        assert_eq!(key_part("@alice:test", 11), "@alice:test");
        let long = format!("@{}:test", "a".repeat(250));
        let part = key_part(&long, 100);
        assert_eq!(part.len(), DIGEST_PART_LEN);
        assert!(part.starts_with("%#"), "{part}");
        assert_eq!(part, key_part(&long, 100), "the same id, the same part");
        let other = format!("@{}:test", "b".repeat(250));
        assert_ne!(part, key_part(&other, 100));
    }

    #[test]
    fn the_harness_refuses_keys_and_values_past_the_hosts_limits() {
        let _h = Harness::<Bare>::new(json!({})).unwrap();
        let longest = "k".repeat(MAX_KEY);
        set(&longest, b"v").unwrap();
        assert_eq!(get(&longest).unwrap(), Some(b"v".to_vec()));
        let too_long = "k".repeat(MAX_KEY + 1);
        for refused in [
            set(&too_long, b"v"),
            get(&too_long).map(drop),
            delete(&too_long).map(drop),
            compare_and_swap(&too_long, None, Some(b"v")).map(drop),
            set("k", &vec![0; MAX_VALUE + 1]),
        ] {
            assert!(
                refused.as_ref().unwrap_err().is("M_TOO_LARGE"),
                "{refused:?}"
            );
        }
        assert!(set("", b"v").unwrap_err().is("M_INVALID_PARAM"));
    }
}
