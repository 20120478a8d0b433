//! `kv` called on its context directly, over an in-memory store: the limits, the errors a
//! plugin sees, what one call reads back of its own writes, and listing.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use plugboard_limits::kv::{MAX_KEY, MAX_VALUE};

use super::*;

/// A committed store in memory; `failing` makes every read fail.
#[derive(Default)]
struct Memory {
    values: Mutex<BTreeMap<String, Vec<u8>>>,
    failing: AtomicBool,
}

impl Memory {
    fn with(pairs: &[(&str, &[u8])]) -> Arc<Memory> {
        let m = Memory::default();
        for (k, v) in pairs {
            m.values.lock().unwrap().insert(k.to_string(), v.to_vec());
        }
        Arc::new(m)
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err("the database is gone".into());
        }
        Ok(())
    }

    fn usage(&self) -> i64 {
        let values = self.values.lock().unwrap();
        values.iter().map(|(k, v)| entry_size(k, v.len())).sum()
    }
}

impl KvStore for Memory {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.check()?;
        Ok(self.values.lock().unwrap().get(key).cloned())
    }

    fn len(&self, key: &str) -> Result<Option<usize>, StoreError> {
        self.check()?;
        Ok(self.values.lock().unwrap().get(key).map(Vec::len))
    }

    fn keys(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        self.check()?;
        let after = after.unwrap_or("");
        Ok(self
            .values
            .lock()
            .unwrap()
            .keys()
            .filter(|k| k.starts_with(prefix) && k.as_str() > after)
            .take(limit)
            .cloned()
            .collect())
    }
}

fn ctx_with_quota(store: &Arc<Memory>, quota: u64) -> KvCtx {
    let shared = Arc::new(KvShared::new(store.usage()));
    let alive = Alive(Arc::new(AtomicBool::new(true)));
    KvCtx::new(store.clone(), quota, shared, alive)
}

fn ctx(store: &Arc<Memory>) -> KvCtx {
    ctx_with_quota(store, 16 << 20)
}

fn errcode<T: std::fmt::Debug>(answer: wasmtime::Result<Result<T, Error>>) -> String {
    answer.expect("no trap").expect_err("an error").errcode
}

#[test]
fn empty_keys_and_keys_past_512_bytes_are_refused() {
    let mut kv = ctx(&Memory::with(&[]));
    assert_eq!(errcode(kv.get(String::new())), "M_INVALID_PARAM");
    assert_eq!(
        errcode(kv.set(String::new(), b"v".to_vec())),
        "M_INVALID_PARAM"
    );
    let long = "k".repeat(MAX_KEY + 1);
    assert_eq!(errcode(kv.get(long.clone())), "M_TOO_LARGE");
    assert_eq!(errcode(kv.delete(long.clone())), "M_TOO_LARGE");
    assert_eq!(
        errcode(kv.compare_and_swap(long, None, Some(b"v".to_vec()))),
        "M_TOO_LARGE"
    );
    let longest = "k".repeat(MAX_KEY);
    assert!(kv.set(longest, b"v".to_vec()).unwrap().is_ok());
}

#[test]
fn values_past_one_mebibyte_are_refused() {
    let mut kv = ctx(&Memory::with(&[]));
    let big = vec![0; MAX_VALUE + 1];
    let refused = kv.set("k".into(), big.clone()).unwrap().unwrap_err();
    assert_eq!(refused.errcode, "M_TOO_LARGE");
    assert_eq!(
        refused.message,
        format!(
            "a value is at most {MAX_VALUE} bytes; this one is {}",
            MAX_VALUE + 1
        )
    );
    assert_eq!(
        errcode(kv.compare_and_swap("k".into(), None, Some(big))),
        "M_TOO_LARGE"
    );
    assert!(kv.set("k".into(), vec![0; MAX_VALUE]).unwrap().is_ok());
}

#[test]
fn a_write_past_the_quota_is_refused_and_one_that_frees_space_is_not() {
    let store = Memory::with(&[("old", &[0; 90])]);
    let mut kv = ctx_with_quota(&store, 100);
    let refused = kv.set("new".into(), vec![0; 10]).unwrap().unwrap_err();
    assert_eq!(refused.errcode, "M_RESOURCE_LIMIT_EXCEEDED");
    assert_eq!(
        refused.message,
        "the plugin's store would hold 106 bytes; its quota is 100"
    );
    // Shrinking the old value makes room, within the same call.
    assert!(kv.set("old".into(), vec![0; 10]).unwrap().is_ok());
    assert!(kv.set("new".into(), vec![0; 10]).unwrap().is_ok());
    let (_, delta) = kv.take_writes();
    assert_eq!(delta, (3 + 10) + (3 + 10) - (3 + 90));
}

#[test]
fn one_call_writes_at_most_ten_thousand_keys() {
    let mut kv = ctx(&Memory::with(&[]));
    for i in 0..MAX_WRITES_PER_CALL {
        assert!(kv.set(format!("k{i}"), Vec::new()).unwrap().is_ok());
    }
    assert_eq!(
        errcode(kv.set("one-more".into(), Vec::new())),
        "M_RESOURCE_LIMIT_EXCEEDED"
    );
    // A key already written may be written again.
    assert!(kv.set("k0".into(), b"again".to_vec()).unwrap().is_ok());
}

#[test]
fn a_call_reads_its_own_writes_over_the_committed_store() {
    let store = Memory::with(&[("a", b"1"), ("b", b"2")]);
    let mut kv = ctx(&store);
    assert_eq!(kv.get("a".into()).unwrap().unwrap(), Some(b"1".to_vec()));
    kv.set("a".into(), b"one".to_vec()).unwrap().unwrap();
    assert!(kv.delete("b".into()).unwrap().unwrap());
    assert!(!kv.delete("b".into()).unwrap().unwrap(), "already deleted");
    assert!(!kv.delete("never".into()).unwrap().unwrap());
    assert_eq!(kv.get("a".into()).unwrap().unwrap(), Some(b"one".to_vec()));
    assert_eq!(kv.get("b".into()).unwrap().unwrap(), None);
    // The committed store is untouched until the runtime commits the call's writes.
    assert_eq!(store.get("b").unwrap(), Some(b"2".to_vec()));
    let (writes, _) = kv.take_writes();
    assert_eq!(
        writes,
        vec![("a".into(), Some(b"one".to_vec())), ("b".into(), None)]
    );
    assert_eq!(kv.get("a".into()).unwrap().unwrap(), Some(b"1".to_vec()));
}

#[test]
fn compare_and_swap_writes_only_when_the_value_is_the_expected_one() {
    let mut kv = ctx(&Memory::with(&[("n", b"1")]));
    let cas = |kv: &mut KvCtx, expected: Option<&[u8]>, new: Option<&[u8]>| {
        kv.compare_and_swap(
            "n".into(),
            expected.map(<[u8]>::to_vec),
            new.map(<[u8]>::to_vec),
        )
        .unwrap()
        .unwrap()
    };
    assert!(!cas(&mut kv, Some(b"0"), Some(b"2")));
    assert!(cas(&mut kv, Some(b"1"), Some(b"2")));
    assert!(!cas(&mut kv, None, Some(b"3")));
    assert!(cas(&mut kv, Some(b"2"), None));
    assert!(cas(&mut kv, None, Some(b"4")));
    assert_eq!(kv.get("n".into()).unwrap().unwrap(), Some(b"4".to_vec()));
}

#[test]
fn listing_merges_the_calls_writes_hides_its_deletes_and_keeps_to_the_limit() {
    let store = Memory::with(&[("a/1", b""), ("a/2", b""), ("a/3", b""), ("b/1", b"")]);
    let mut kv = ctx(&store);
    kv.delete("a/1".into()).unwrap().unwrap();
    kv.set("a/0".into(), Vec::new()).unwrap().unwrap();
    let list = |kv: &mut KvCtx, after: Option<&str>, limit: u32| {
        kv.list_keys("a/".into(), after.map(str::to_string), limit)
            .unwrap()
            .unwrap()
    };
    assert_eq!(list(&mut kv, None, 10), ["a/0", "a/2", "a/3"]);
    // The deleted key does not take a place of the two asked for.
    assert_eq!(list(&mut kv, None, 2), ["a/0", "a/2"]);
    assert_eq!(list(&mut kv, Some("a/0"), 10), ["a/2", "a/3"]);
    assert!(list(&mut kv, None, 0).is_empty());
    // Keys deleted in the call are asked of the store on top of the limit, not in its place.
    kv.delete("a/2".into()).unwrap().unwrap();
    assert_eq!(list(&mut kv, Some("a/0"), 1), ["a/3"]);
}

#[test]
fn one_listing_answers_at_most_a_thousand_keys() {
    let pairs: Vec<(String, Vec<u8>)> = (0..MAX_LIST + 5)
        .map(|i| (format!("k{i:05}"), Vec::new()))
        .collect();
    let refs: Vec<(&str, &[u8])> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    let mut kv = ctx(&Memory::with(&refs));
    let keys = kv
        .list_keys(String::new(), None, u32::MAX)
        .unwrap()
        .unwrap();
    assert_eq!(keys.len(), MAX_LIST as usize);
}

#[test]
fn a_store_that_cannot_be_read_answers_m_unknown_without_trapping() {
    let store = Memory::with(&[("a", b"1")]);
    store.failing.store(true, Ordering::SeqCst);
    let mut kv = ctx(&store);
    for answer in [
        kv.get("a".into()).map(|r| r.map(drop)),
        kv.set("a".into(), b"2".to_vec()),
        kv.delete("a".into()).map(|r| r.map(drop)),
        kv.list_keys(String::new(), None, 10).map(|r| r.map(drop)),
    ] {
        let e = answer.expect("no trap").unwrap_err();
        assert_eq!(
            (e.errcode.as_str(), e.message.as_str()),
            ("M_UNKNOWN", "internal server error")
        );
    }
}

#[test]
fn an_abandoned_instance_traps_on_every_kv_call() {
    let mut kv = ctx(&Memory::with(&[]));
    kv.alive.0.store(false, Ordering::SeqCst);
    assert!(kv.get("a".into()).is_err());
    assert!(kv.set("a".into(), Vec::new()).is_err());
    assert!(kv.list_keys(String::new(), None, 1).is_err());
}
