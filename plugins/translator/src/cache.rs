//! Backend answers cached in kv, so that the same text is never sent twice: translations by a
//! digest of (source, target, text as sent), detections by a digest of the text. The cache
//! holds at most `cache_entries` answers: a ring of slots names the key each holds, and
//! filling a slot forgets what it held before, so every insert costs a bounded few writes.

use plugboard_sdk::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Answers larger than this are not kept: the cache stays small whatever is translated.
const MAX_VALUE: usize = 8 * 1024;

/// A hex digest of `parts`, each length-prefixed so that no two lists of parts collide.
pub fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The cache key of a translation of `text` (as sent, with its placeholders).
pub fn translation_key(source: &str, target: &str, text: &str) -> String {
    format!("cache/t/{}", digest(&[source, target, text]))
}

/// The cache key of the detected language of `text`.
pub fn detection_key(text: &str) -> String {
    format!("cache/d/{}", digest(&[text]))
}

/// A cached answer.
pub fn get<T: DeserializeOwned>(key: &str) -> Result<Option<T>, Error> {
    Ok(kv::get(key)?.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
}

/// Keeps `value` under `key` in the next slot of a ring of `entries` slots. A full store is
/// not an error: the answer is simply not kept.
pub fn put<T: Serialize>(key: &str, value: &T, entries: u64) -> Result<(), Error> {
    let bytes = serde_json::to_vec(value)?;
    if entries == 0 || bytes.len() > MAX_VALUE {
        return Ok(());
    }
    let next: u64 = kv::get_json("cache_next")?.unwrap_or(0);
    let slot = format!("cache_ring/{}", next % entries);
    if let Some(old) = kv::get(&slot)? {
        let old = String::from_utf8_lossy(&old).into_owned();
        if old != key {
            kv::delete(&old)?;
        }
    }
    match kv::set(key, &bytes) {
        Err(e) if e.is("M_RESOURCE_LIMIT_EXCEEDED") => {
            log::warn("the cache is not kept: the plugin's store is full");
            kv::delete(&slot)?;
        }
        other => {
            other?;
            kv::set(&slot, key.as_bytes())?;
        }
    }
    kv::set_json("cache_next", &next.wrapping_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugboard_sdk::testing::{Bare, Harness};
    use serde_json::json;

    #[test]
    fn keys_differ_for_every_part_and_do_not_collide_by_concatenation() {
        assert_ne!(
            translation_key("en", "fr", "hi"),
            translation_key("en", "de", "hi")
        );
        assert_ne!(
            translation_key("en", "fr", "hi"),
            translation_key("fr", "en", "hi")
        );
        assert_ne!(digest(&["ab", "c"]), digest(&["a", "bc"]));
        assert_eq!(
            translation_key("en", "fr", "hi"),
            translation_key("en", "fr", "hi")
        );
        assert_ne!(translation_key("en", "fr", "hi"), detection_key("hi"));
    }

    #[test]
    fn the_ring_forgets_the_oldest_answer_once_full() {
        let h = Harness::<Bare>::new(json!({})).unwrap();
        for i in 0..5 {
            put(&format!("cache/t/{i}"), &format!("v{i}"), 3).unwrap();
        }
        let cached: Vec<String> = h
            .kv_keys()
            .into_iter()
            .filter(|k| k.starts_with("cache/t/"))
            .collect();
        assert_eq!(cached, ["cache/t/2", "cache/t/3", "cache/t/4"]);
        assert_eq!(get::<String>("cache/t/4").unwrap().as_deref(), Some("v4"));
        assert_eq!(get::<String>("cache/t/0").unwrap(), None);
        put("cache/t/big", &"x".repeat(MAX_VALUE + 1), 3).unwrap();
        assert_eq!(get::<String>("cache/t/big").unwrap(), None);
        put("cache/t/none", &"x", 0).unwrap();
        assert_eq!(get::<String>("cache/t/none").unwrap(), None);
    }
}
