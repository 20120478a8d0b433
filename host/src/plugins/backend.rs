//! What the host interfaces need of the server, backed by the real services: each
//! `host/<interface>.rs` names the narrow trait it calls, and this is where the runtime
//! answers it with the database.

use std::sync::{Arc, Weak};

use super::guest::{Guest, ServerGone};
use super::host::kv::{KvStore, StoreError};
use crate::service::Services;

/// A plugin's committed key-value store in the server's database.
pub struct StoredKv {
    guest: Arc<Guest>,
    services: Weak<Services>,
}

impl StoredKv {
    pub fn new(guest: Arc<Guest>, services: Weak<Services>) -> StoredKv {
        StoredKv { guest, services }
    }

    fn services(&self) -> Result<Arc<Services>, StoreError> {
        self.services.upgrade().ok_or_else(|| ServerGone.into())
    }
}

impl KvStore for StoredKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let s = self.services()?;
        Ok(self.guest.block_on(s.storage.kv_get(&self.guest.id, key))?)
    }

    fn len(&self, key: &str) -> Result<Option<usize>, StoreError> {
        let s = self.services()?;
        Ok(self.guest.block_on(s.storage.kv_len(&self.guest.id, key))?)
    }

    fn keys(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let s = self.services()?;
        let keys = s
            .storage
            .kv_keys(&self.guest.id, prefix, after, limit as i64);
        Ok(self.guest.block_on(keys)?)
    }
}
