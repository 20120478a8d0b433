//! The key server: this server's own key response, and the notary's answers about other
//! servers' keys (spec: "Querying Keys Through Another Server"), each the origin's signed
//! response with this server's signature added.

use std::collections::BTreeSet;
use std::time::Instant;

use serde_json::{json, Value};

use super::server_keys::usable_at;
use super::{Federation, FederationError};
use crate::lock::lock;
use crate::service::keys::ServerKey;
use crate::service::now_ms;

/// How long other servers may use this server's key response.
const OWN_VALIDITY_MS: i64 = 7 * 24 * 3600 * 1000;

/// `GET /_matrix/key/v2/server`'s body: this server's verify key, self-signed.
pub(crate) fn own_key_response(key: &ServerKey, server_name: &str) -> Value {
    let mut body = json!({
        "server_name": server_name,
        "valid_until_ts": now_ms() + OWN_VALIDITY_MS,
        "verify_keys": { key.key_id(): { "key": key.public_key_base64() } },
        "old_verify_keys": {},
    });
    key.sign_json(&mut body);
    body
}

impl Federation {
    /// The key responses of `server` that hold `key_ids` (all its keys when empty) valid at
    /// least until `minimum_valid_until_ts`, from the cache or, when it has none, fetched
    /// from the server; each signed by this server too. A server that cannot be reached gets
    /// what the cache has, maybe nothing.
    pub(crate) async fn notary_query(
        &self,
        server: &str,
        key_ids: &[String],
        minimum_valid_until_ts: i64,
    ) -> Result<Vec<Value>, FederationError> {
        if server == self.server_name {
            return Ok(vec![own_key_response(&self.key, &self.server_name)]);
        }
        let wanted = |key_id: &str| key_ids.is_empty() || key_ids.iter().any(|k| k == key_id);
        let mut rows = self.storage.server_keys_of(server).await?;
        let fresh = |rows: &[crate::storage::server_keys::ServerKeyRow]| {
            let have: BTreeSet<&str> = rows
                .iter()
                .filter(|r| r.expired_ts.is_none() && usable_at(r, minimum_valid_until_ts))
                .map(|r| r.key_id.as_str())
                .collect();
            !have.is_empty() && key_ids.iter().all(|k| have.contains(k.as_str()))
        };
        if !fresh(&rows) && lock(&self.refetch).try_start(server, Instant::now()) {
            match self.fetch_direct(server).await {
                Ok(_) => rows = self.storage.server_keys_of(server).await?,
                Err(e) => tracing::info!(server, error = %e, "notary: cannot fetch keys"),
            }
        }
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for row in rows.iter().filter(|r| wanted(&r.key_id)) {
            if !seen.insert(row.response.as_str()) {
                continue;
            }
            let Ok(mut response) = serde_json::from_str::<Value>(&row.response) else {
                continue;
            };
            self.key.sign_json(&mut response);
            out.push(response);
        }
        Ok(out)
    }
}
