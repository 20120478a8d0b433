//! `kv`: the plugin's key-value store. A call's writes are kept here and read back by the
//! same call; when the call succeeds the runtime commits them as one write (with the call's
//! timer changes), and when it fails or traps they are dropped, so a retried transaction
//! finds the store as the failed attempt found it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use crate::plugins::bindings::kv::{self, Host};
use crate::plugins::bindings::Error;
use crate::plugins::guest::Alive;
use plugboard_limits::kv as kv_limits;

mod shared;
pub(crate) use plugboard_limits::kv::{MAX_LIST, MAX_WRITES_PER_CALL};
pub use shared::KvShared;
pub(crate) use shared::Written;

/// A call's writes, in key order: the new value, or `None` for deleted.
pub(crate) type Writes = Vec<(String, Option<Vec<u8>>)>;

/// Why the store could not be read; the plugin sees only that something went wrong.
pub(crate) type StoreError = Box<dyn std::error::Error + Send + Sync>;

/// What `kv` needs of the server: the plugin's own committed store, read. Writes never go
/// through it: a call's writes are kept in [`KvCtx`] and committed by the runtime with the
/// call ([`KvCtx::take_writes`]).
pub(crate) trait KvStore: Send + Sync {
    /// The committed value of `key`.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// The length of the committed value of `key`, without reading it.
    fn len(&self, key: &str) -> Result<Option<usize>, StoreError>;
    /// Up to `limit` committed keys starting with `prefix` and after `after`, in order.
    fn keys(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError>;
}

/// Links `kv` into `linker`, its host found in the store's data by `get`.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut KvCtx,
) -> wasmtime::Result<()> {
    kv::add_to_linker::<T, HasSelf<KvCtx>>(linker, get)
}

pub(crate) struct KvCtx {
    /// The committed store.
    store: Arc<dyn KvStore>,
    /// Bytes of keys and values the store may hold.
    quota: i64,
    /// The bytes committed and the cache of committed values, shared by the plugin's
    /// instances.
    shared: Arc<KvShared>,
    /// This call's writes: the new value, or `None` for deleted.
    writes: BTreeMap<String, Option<Vec<u8>>>,
    /// The committed size (key + value) of keys this call touched, `None` when absent.
    committed_sizes: HashMap<String, Option<i64>>,
    /// What this call's writes add to `usage`.
    delta: i64,
    /// Whether the lane still waits for this instance.
    alive: Alive,
}

/// What a key and its value count against the quota.
fn entry_size(key: &str, value_len: usize) -> i64 {
    kv_limits::entry_size(key, value_len) as i64
}

fn internal(e: impl std::fmt::Display) -> Error {
    tracing::error!(error = %e, "plugin kv");
    Error::new("M_UNKNOWN", "internal server error")
}

impl KvCtx {
    pub(crate) fn new(
        store: Arc<dyn KvStore>,
        quota: u64,
        shared: Arc<KvShared>,
        alive: Alive,
    ) -> KvCtx {
        KvCtx {
            store,
            quota: quota as i64,
            shared,
            writes: BTreeMap::new(),
            committed_sizes: HashMap::new(),
            delta: 0,
            alive,
        }
    }

    /// This call's writes and what they add to the usage, leaving none behind.
    pub(crate) fn take_writes(&mut self) -> (Writes, i64) {
        self.committed_sizes.clear();
        let delta = std::mem::take(&mut self.delta);
        (
            std::mem::take(&mut self.writes).into_iter().collect(),
            delta,
        )
    }

    /// Forgets this call's writes.
    pub(crate) fn discard(&mut self) {
        self.take_writes();
    }

    fn check_key(key: &str) -> Result<(), Error> {
        Ok(kv_limits::check_key(key)?)
    }

    fn committed(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        if let Some(v) = self.shared.cached(key) {
            return Ok(v);
        }
        let v = self.store.get(key).map_err(internal)?;
        self.shared.read(key, &v, &self.alive.0);
        Ok(v)
    }

    /// The value as this call sees it.
    fn current(&mut self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        if let Some(v) = self.writes.get(key) {
            return Ok(v.clone());
        }
        let v = self.committed(key)?;
        self.committed_sizes.insert(
            key.to_string(),
            v.as_ref().map(|v| entry_size(key, v.len())),
        );
        Ok(v)
    }

    /// The size (key + value) of `key` as this call sees it, `None` when it has no value.
    /// A value that is neither written nor cached is not read for it: a plugin replacing or
    /// deleting a large value (an index segment) would otherwise read it whole first.
    fn current_size(&mut self, key: &str) -> Result<Option<i64>, Error> {
        if let Some(v) = self.writes.get(key) {
            return Ok(v.as_ref().map(|v| entry_size(key, v.len())));
        }
        if let Some(size) = self.committed_sizes.get(key) {
            return Ok(*size);
        }
        let len = match self.shared.cached_len(key) {
            Some(len) => len,
            None => self.store.len(key).map_err(internal)?,
        };
        let size = len.map(|len| entry_size(key, len));
        self.committed_sizes.insert(key.to_string(), size);
        Ok(size)
    }

    /// Records `value` (or a delete) for `key` if the quota allows it.
    fn put(&mut self, key: String, value: Option<Vec<u8>>) -> Result<(), Error> {
        let before = self.current_size(&key)?;
        if value.is_none() && before.is_none() {
            // Deleting what is not there changes nothing and need not be remembered.
            return Ok(());
        }
        if !self.writes.contains_key(&key) && self.writes.len() >= MAX_WRITES_PER_CALL {
            return Err(kv_limits::too_many_writes().into());
        }
        let change = value.as_ref().map_or(0, |v| entry_size(&key, v.len())) - before.unwrap_or(0);
        let quota = self.quota;
        let after = self.shared.usage() + self.delta + change;
        if change > 0 && after > quota {
            return Err(kv_limits::over_quota(after, quota).into());
        }
        self.delta += change;
        self.writes.insert(key, value);
        Ok(())
    }
}

impl Host for KvCtx {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        self.alive.check()?;
        Ok(Self::check_key(&key).and_then(|()| self.current(&key)))
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), Error>> {
        self.alive.check()?;
        if let Err(e) = Self::check_key(&key) {
            return Ok(Err(e));
        }
        if let Err(refused) = kv_limits::check_value(value.len()) {
            return Ok(Err(refused.into()));
        }
        Ok(self.put(key, Some(value)))
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<Result<bool, Error>> {
        self.alive.check()?;
        if let Err(e) = Self::check_key(&key) {
            return Ok(Err(e));
        }
        let result = self.current_size(&key).and_then(|before| {
            let existed = before.is_some();
            if existed {
                self.put(key, None)?;
            }
            Ok(existed)
        });
        Ok(result)
    }

    fn list_keys(
        &mut self,
        prefix: String,
        after: Option<String>,
        limit: u32,
    ) -> wasmtime::Result<Result<Vec<String>, Error>> {
        self.alive.check()?;
        let limit = limit.min(MAX_LIST) as usize;
        if limit == 0 {
            return Ok(Ok(Vec::new()));
        }
        let after_key = after.clone().unwrap_or_default();
        let in_range = |k: &str| k.starts_with(prefix.as_str()) && k > after_key.as_str();
        // Deleted keys this call hides from what is stored: ask for that many more.
        let hidden = self
            .writes
            .iter()
            .filter(|(k, v)| v.is_none() && in_range(k))
            .count();
        let stored = self.store.keys(&prefix, after.as_deref(), limit + hidden);
        let stored = match stored {
            Ok(keys) => keys,
            Err(e) => return Ok(Err(internal(e))),
        };
        let mut keys: std::collections::BTreeSet<String> = stored
            .into_iter()
            .filter(|k| !matches!(self.writes.get(k), Some(None)))
            .collect();
        keys.extend(
            self.writes
                .iter()
                .filter(|(k, v)| v.is_some() && in_range(k))
                .map(|(k, _)| k.clone()),
        );
        Ok(Ok(keys.into_iter().take(limit).collect()))
    }

    fn compare_and_swap(
        &mut self,
        key: String,
        expected: Option<Vec<u8>>,
        new: Option<Vec<u8>>,
    ) -> wasmtime::Result<Result<bool, Error>> {
        self.alive.check()?;
        if let Err(e) = Self::check_key(&key) {
            return Ok(Err(e));
        }
        if let Some(new) = &new {
            if let Err(refused) = kv_limits::check_swapped_value(new.len()) {
                return Ok(Err(refused.into()));
            }
        }
        let result = self.current(&key).and_then(|now| {
            if now != expected {
                return Ok(false);
            }
            self.put(key, new)?;
            Ok(true)
        });
        Ok(result)
    }
}

#[cfg(test)]
mod tests;
