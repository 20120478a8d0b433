//! `kv`: the plugin's key-value store. Keys and values are capped so that the host can check
//! a guest-supplied length before it allocates for it; the keys one call writes are held in
//! memory until the call ends, so they are capped too; the store as a whole has a quota
//! (`kv_quota_bytes`, counted as the bytes of its keys and values).

use crate::errcode::{INVALID_PARAM, RESOURCE_LIMIT_EXCEEDED, TOO_LARGE};
use crate::Refusal;

/// Longest key, in bytes.
pub const MAX_KEY: usize = 512;
/// Largest value, in bytes.
pub const MAX_VALUE: usize = 1 << 20;
/// Most keys one `list-keys` answers.
pub const MAX_LIST: u32 = 1000;
/// Keys one call may write (set or delete).
pub const MAX_WRITES_PER_CALL: usize = 10_000;
/// The store's quota unless the manifest or the admin sets another.
pub const DEFAULT_QUOTA_BYTES: u64 = 16 << 20;

/// What a key and its value count against the quota.
pub fn entry_size(key: &str, value_len: usize) -> u64 {
    (key.len() + value_len) as u64
}

/// Refuses an empty key or one past [`MAX_KEY`].
pub fn check_key(key: &str) -> Result<(), Refusal> {
    if key.is_empty() {
        return Err(Refusal::new(INVALID_PARAM, "a key must not be empty"));
    }
    if key.len() > MAX_KEY {
        return Err(Refusal::new(
            TOO_LARGE,
            format!(
                "a key is at most {MAX_KEY} bytes; this one is {}",
                key.len()
            ),
        ));
    }
    Ok(())
}

/// Refuses a value `set` past [`MAX_VALUE`].
pub fn check_value(len: usize) -> Result<(), Refusal> {
    if len > MAX_VALUE {
        return Err(Refusal::new(
            TOO_LARGE,
            format!("a value is at most {MAX_VALUE} bytes; this one is {len}"),
        ));
    }
    Ok(())
}

/// Refuses a new value of `compare-and-swap` past [`MAX_VALUE`] (its words name no length).
pub fn check_swapped_value(len: usize) -> Result<(), Refusal> {
    if len > MAX_VALUE {
        return Err(Refusal::new(
            TOO_LARGE,
            format!("a value is at most {MAX_VALUE} bytes"),
        ));
    }
    Ok(())
}

/// One key more than a call may write.
pub fn too_many_writes() -> Refusal {
    Refusal::new(
        RESOURCE_LIMIT_EXCEEDED,
        format!("one call writes at most {MAX_WRITES_PER_CALL} keys"),
    )
}

/// A write that would take the store to `after` bytes, past its `quota`.
pub fn over_quota(after: impl std::fmt::Display, quota: impl std::fmt::Display) -> Refusal {
    Refusal::new(
        RESOURCE_LIMIT_EXCEEDED,
        format!("the plugin's store would hold {after} bytes; its quota is {quota}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_to_512_bytes_and_values_at_most_a_mebibyte() {
        assert_eq!(check_key("").unwrap_err().errcode, INVALID_PARAM);
        assert!(check_key(&"k".repeat(MAX_KEY)).is_ok());
        assert_eq!(
            check_key(&"k".repeat(MAX_KEY + 1)).unwrap_err().message,
            "a key is at most 512 bytes; this one is 513"
        );
        assert!(check_value(MAX_VALUE).is_ok());
        assert_eq!(check_value(MAX_VALUE + 1).unwrap_err().errcode, TOO_LARGE);
        assert!(check_swapped_value(MAX_VALUE).is_ok());
        assert_eq!(
            check_swapped_value(MAX_VALUE + 1).unwrap_err().message,
            "a value is at most 1048576 bytes"
        );
    }
}
