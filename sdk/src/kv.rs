//! The plugin's durable key-value store (WIT interface `kv`): bytes by key, and typed values
//! through serde. A call's writes take effect together when the call succeeds and vanish when
//! it fails, so a retried transaction finds the store as the failed attempt did.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::host;
use crate::types::Error;

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
