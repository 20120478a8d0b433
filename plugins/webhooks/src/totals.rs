//! What all rooms together keep in the plugin's store, counted so that it can be bounded:
//! the hooks (`totals/hooks`), the bytes of the messages waiting to be forwarded
//! (`totals/queued_bytes`, keys and values, as the host's quota counts them) and the rooms
//! that forward (`totals/forwarding_rooms`, each with a record and a delivery timer). The
//! per-room bounds alone would let one user with many rooms fill the plugin's quota
//! (`kv_quota_bytes`, 16 MiB unless the admin says otherwise) or the host's timers, after
//! which no room could make a hook or queue a message; these bounds refuse first, with an
//! answer in the room.
//!
//! A store from before the counts were kept gets each from what it holds, once. Every write
//! that adds or removes a hook or a queued message changes its count in the same call, so
//! the two commit together or not at all (and calls into a plugin run one at a time).

use plugboard_sdk::{kv, Error};

const HOOKS: &str = "totals/hooks";
const QUEUED_BYTES: &str = "totals/queued_bytes";
const FORWARDING_ROOMS: &str = "totals/forwarding_rooms";

/// Hooks in all rooms.
pub fn hooks() -> Result<u64, Error> {
    kv::kept_count(HOOKS, || Ok(kv::all_keys("hook/")?.len() as u64))
}

/// One hook more (`1`) or fewer (`-1`).
pub fn add_hooks(change: i64) -> Result<(), Error> {
    let now = apply(hooks()?, change);
    kv::set_json(HOOKS, &now)
}

/// Bytes of the messages waiting in all rooms.
pub fn queued_bytes() -> Result<u64, Error> {
    kv::kept_count(QUEUED_BYTES, || {
        let mut n = 0u64;
        for key in kv::all_keys("queue/")? {
            n = n.saturating_add(kv::get(&key)?.map_or(0, |v| size(&key, &v)));
        }
        Ok(n)
    })
}

/// Waiting messages of `change` bytes more (or fewer, when negative).
pub fn add_queued_bytes(change: i64) -> Result<(), Error> {
    let now = apply(queued_bytes()?, change);
    kv::set_json(QUEUED_BYTES, &now)
}

/// Rooms with a forwarding record (one being turned off among them, until its waiting
/// messages are gone).
pub fn forwarding_rooms() -> Result<u64, Error> {
    kv::kept_count(FORWARDING_ROOMS, || Ok(kv::all_keys("out/")?.len() as u64))
}

/// One forwarding room more (`1`) or fewer (`-1`).
pub fn add_forwarding_rooms(change: i64) -> Result<(), Error> {
    let now = apply(forwarding_rooms()?, change);
    kv::set_json(FORWARDING_ROOMS, &now)
}

/// What a key and its value take of the quota.
pub fn size(key: &str, value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64
}

fn apply(n: u64, change: i64) -> u64 {
    if change < 0 {
        n.saturating_sub(change.unsigned_abs())
    } else {
        n.saturating_add(change as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugboard_sdk::testing::{Bare, Harness};
    use serde_json::json;

    #[test]
    fn a_store_from_before_the_counts_gets_them_from_what_it_holds() {
        let h = Harness::<Bare>::new(json!({})).unwrap();
        kv::set("hook/aaa", b"{}").unwrap();
        kv::set("hook/bbb", b"{}").unwrap();
        kv::set("queue/!r:test/00000000000000000000", b"12345").unwrap();
        kv::set("queued/not-a-message", b"xxxxxxxx").unwrap();
        kv::set("out/!r:test", b"{}").unwrap();
        assert_eq!(forwarding_rooms().unwrap(), 1);
        assert_eq!(hooks().unwrap(), 2);
        assert_eq!(queued_bytes().unwrap(), 34 + 5);
        add_hooks(1).unwrap();
        add_queued_bytes(-39).unwrap();
        assert_eq!(h.kv_json(HOOKS), Some(json!(3)));
        assert_eq!(h.kv_json(QUEUED_BYTES), Some(json!(0)));
        // Kept from now on, not counted again.
        kv::set("hook/ccc", b"{}").unwrap();
        assert_eq!(hooks().unwrap(), 3);
    }

    #[test]
    fn counts_never_go_below_zero() {
        let _h = Harness::<Bare>::new(json!({})).unwrap();
        add_hooks(-1).unwrap();
        assert_eq!(hooks().unwrap(), 0);
        assert_eq!(apply(u64::MAX, 1), u64::MAX);
    }
}
