//! Other servers' signing keys: a key response is checked ([`check_response`]: the server's
//! name, a signature by each of its keys), its keys cached in storage and used while valid;
//! an unknown key id makes the keys be fetched again — from the configured notaries, then the
//! server itself — at most once per [`REFETCH_INTERVAL`] per server ([`RefetchGate`]), so that
//! a forger naming made-up key ids cannot make this server hammer another.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde_json::{json, Value};

use super::{Federation, FederationError};
use crate::lock::lock;
use crate::service::keys::to_canonical;
use crate::service::now_ms;
use crate::storage::server_keys::ServerKeyRow;

/// The shortest time between two fetches of one server's keys for an unknown key id.
pub(crate) const REFETCH_INTERVAL: Duration = Duration::from_secs(5);

/// A key response is trusted for at most this long, whatever its `valid_until_ts` says (the
/// spec's rule for room versions 5 and later).
const MAX_VALIDITY_MS: i64 = 7 * 24 * 3600 * 1000;

/// The keys of a response of `/_matrix/key/v2/server` from (or about) `server`, when it is
/// one: it names `server`, each of its `verify_keys` is an ed25519 key that signed it, and it
/// says until when they are valid (at most a week from `now_ms`). Keys of `old_verify_keys`
/// come with their `expired_ts` and are valid until then.
pub(crate) fn check_response(
    response: &Value,
    server: &str,
    now_ms: i64,
) -> Result<Vec<ServerKeyRow>, String> {
    if response["server_name"].as_str() != Some(server) {
        return Err(format!("the response is not about {server}"));
    }
    let valid_until_ts = response["valid_until_ts"]
        .as_i64()
        .ok_or("the response has no valid_until_ts")?
        .min(now_ms.saturating_add(MAX_VALIDITY_MS));
    let verify_keys = response["verify_keys"]
        .as_object()
        .filter(|k| !k.is_empty())
        .ok_or("the response has no verify_keys")?;
    let text = response.to_string();
    let mut rows = Vec::new();
    for (key_id, entry) in verify_keys {
        let key = entry["key"].as_str().unwrap_or_default();
        let vk = verifying_key(key).ok_or_else(|| format!("{key_id} is not an ed25519 key"))?;
        if !signature_valid(response, server, key_id, &vk) {
            return Err(format!("the response is not signed by {key_id}"));
        }
        rows.push(row(
            server,
            key_id,
            key,
            valid_until_ts,
            None,
            &text,
            now_ms,
        ));
    }
    if let Some(old) = response["old_verify_keys"].as_object() {
        for (key_id, entry) in old {
            let (Some(key), Some(expired_ts)) =
                (entry["key"].as_str(), entry["expired_ts"].as_i64())
            else {
                continue;
            };
            if verifying_key(key).is_some() && !verify_keys.contains_key(key_id) {
                rows.push(row(
                    server,
                    key_id,
                    key,
                    expired_ts,
                    Some(expired_ts),
                    &text,
                    now_ms,
                ));
            }
        }
    }
    Ok(rows)
}

fn row(
    server: &str,
    key_id: &str,
    key: &str,
    valid_until_ts: i64,
    expired_ts: Option<i64>,
    response: &str,
    fetched_ts: i64,
) -> ServerKeyRow {
    ServerKeyRow {
        server_name: server.to_string(),
        key_id: key_id.to_string(),
        key: key.to_string(),
        valid_until_ts,
        expired_ts,
        response: response.to_string(),
        fetched_ts,
    }
}

/// Whether a cached key may verify something made at `at_ms`: a current key until its
/// `valid_until_ts`, an old one until it expired.
pub(crate) fn usable_at(row: &ServerKeyRow, at_ms: i64) -> bool {
    row.expired_ts.unwrap_or(row.valid_until_ts) >= at_ms
}

/// An ed25519 public key from unpadded (or padded) base64.
pub(crate) fn verifying_key(base64: &str) -> Option<VerifyingKey> {
    let bytes = STANDARD_NO_PAD.decode(base64.trim_end_matches('=')).ok()?;
    VerifyingKey::from_bytes(&bytes.try_into().ok()?).ok()
}

/// Whether `value["signatures"][server][key_id]` is `vk`'s signature of `value`'s canonical
/// JSON without `signatures` and `unsigned`.
pub(crate) fn signature_valid(
    value: &Value,
    server: &str,
    key_id: &str,
    vk: &VerifyingKey,
) -> bool {
    let Some(sig) = value["signatures"][server][key_id].as_str() else {
        return false;
    };
    let Some(sig) = STANDARD_NO_PAD
        .decode(sig.trim_end_matches('='))
        .ok()
        .and_then(|b| Signature::from_slice(&b).ok())
    else {
        return false;
    };
    let mut unsigned = value.clone();
    if let Some(obj) = unsigned.as_object_mut() {
        obj.remove("signatures");
        obj.remove("unsigned");
    }
    vk.verify(to_canonical(&unsigned).as_bytes(), &sig).is_ok()
}

/// How long a key lookup waits for another request's fetch of the same server's keys.
const IN_FLIGHT_WAIT: Duration = Duration::from_secs(3);

/// When each server's keys were last fetched for an unknown key id.
#[derive(Debug, Default)]
pub(crate) struct RefetchGate {
    last: HashMap<String, Instant>,
}

impl RefetchGate {
    /// Whether `server`'s keys may be fetched at `now`; if so, the fetch is counted.
    pub(crate) fn try_start(&mut self, server: &str, now: Instant) -> bool {
        if let Some(last) = self.last.get(server) {
            if now.duration_since(*last) < REFETCH_INTERVAL {
                return false;
            }
        }
        // Entries older than the interval decide nothing: drop them so the map stays small.
        self.last
            .retain(|_, last| now.duration_since(*last) < REFETCH_INTERVAL);
        self.last.insert(server.to_string(), now);
        true
    }
}

impl Federation {
    /// `server`'s key `key_id`, usable now: cached, else fetched (see the module).
    pub(crate) async fn verify_key(
        &self,
        server: &str,
        key_id: &str,
    ) -> Result<VerifyingKey, FederationError> {
        if server == self.server_name {
            if key_id == self.key.key_id() {
                return verifying_key(&self.key.public_key_base64()).ok_or_else(|| {
                    FederationError::Unauthorized("our own key is unusable".into())
                });
            }
            return Err(unknown_key(server, key_id));
        }
        if let Some(vk) = self.cached_key(server, key_id).await? {
            return Ok(vk);
        }
        if !lock(&self.refetch).try_start(server, Instant::now()) {
            // Fetched a moment ago, or being fetched by another request right now (a join's
            // answer checks hundreds of events of one server): wait for that fetch rather
            // than fail.
            let deadline = Instant::now() + IN_FLIGHT_WAIT;
            while Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if let Some(vk) = self.cached_key(server, key_id).await? {
                    return Ok(vk);
                }
            }
            return Err(unknown_key(server, key_id));
        }
        if let Err(e) = self.fetch_keys(server, key_id).await {
            tracing::info!(server, key_id, error = %e, "cannot fetch a server's keys");
        }
        self.cached_key(server, key_id)
            .await?
            .ok_or_else(|| unknown_key(server, key_id))
    }

    async fn cached_key(
        &self,
        server: &str,
        key_id: &str,
    ) -> Result<Option<VerifyingKey>, FederationError> {
        let row = self.storage.server_key(server, key_id).await?;
        Ok(row
            .filter(|r| usable_at(r, now_ms()))
            .and_then(|r| verifying_key(&r.key)))
    }

    /// Asks the notaries in turn for `server`'s keys, then `server` itself.
    async fn fetch_keys(&self, server: &str, key_id: &str) -> Result<(), FederationError> {
        for notary in self.notaries.iter().filter(|n| *n != server) {
            match self.fetch_via_notary(notary, server, key_id).await {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => tracing::info!(notary, server, error = %e, "a notary did not help"),
            }
        }
        self.fetch_direct(server).await.map(drop)
    }

    /// `server`'s own `/_matrix/key/v2/server`, checked and cached; answers the response.
    pub(crate) async fn fetch_direct(&self, server: &str) -> Result<Value, FederationError> {
        let response = self
            .client()?
            .get_unsigned(server, "/_matrix/key/v2/server")
            .await?;
        let rows = check_response(&response, server, now_ms()).map_err(|why| {
            FederationError::BadResponse {
                server: server.to_string(),
                why,
            }
        })?;
        self.storage.store_server_keys(&rows).await?;
        Ok(response)
    }

    /// Asks `notary` for `server`'s key `key_id`; keeps the responses signed by both;
    /// answers whether the key came.
    async fn fetch_via_notary(
        &self,
        notary: &str,
        server: &str,
        key_id: &str,
    ) -> Result<bool, FederationError> {
        let body = json!({"server_keys": {server: {key_id: {}}}});
        let answer = self
            .client()?
            .post(notary, "/_matrix/key/v2/query", &body)
            .await?;
        let mut found = false;
        let responses = answer["server_keys"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for response in responses {
            if !self.notary_signed(notary, &response).await? {
                continue;
            }
            let Ok(rows) = check_response(&response, server, now_ms()) else {
                continue;
            };
            found |= rows.iter().any(|r| r.key_id == key_id);
            self.storage.store_server_keys(&rows).await?;
        }
        Ok(found)
    }

    /// Whether `response` carries a valid signature of `notary`, whose keys are asked of
    /// the notary itself.
    async fn notary_signed(&self, notary: &str, response: &Value) -> Result<bool, FederationError> {
        let Some(sigs) = response["signatures"][notary].as_object() else {
            return Ok(false);
        };
        for key_id in sigs.keys() {
            let mut vk = self.cached_key(notary, key_id).await?;
            if vk.is_none() && lock(&self.refetch).try_start(notary, Instant::now()) {
                self.fetch_direct(notary).await?;
                vk = self.cached_key(notary, key_id).await?;
            }
            if vk.is_some_and(|vk| signature_valid(response, notary, key_id, &vk)) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

fn unknown_key(server: &str, key_id: &str) -> FederationError {
    FederationError::Unauthorized(format!("no usable key {key_id} of {server}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::keys::ServerKey;

    const NOW: i64 = 1_000_000_000_000;

    fn key(server: &str) -> (tempfile::TempDir, ServerKey) {
        let dir = tempfile::tempdir().unwrap();
        let key = ServerKey::load_or_create(&dir.path().join("k"), server).unwrap();
        (dir, key)
    }

    fn response(key: &ServerKey, server: &str, valid_until_ts: i64) -> Value {
        let mut v = json!({
            "server_name": server,
            "valid_until_ts": valid_until_ts,
            "verify_keys": {key.key_id(): {"key": key.public_key_base64()}},
            "old_verify_keys": {"ed25519:old": {"key": key.public_key_base64(), "expired_ts": NOW - 5}},
        });
        key.sign_json(&mut v);
        v
    }

    #[test]
    fn a_self_signed_response_gives_its_keys_and_old_keys() {
        let (_d, k) = key("s.example");
        let rows =
            check_response(&response(&k, "s.example", NOW + 1000), "s.example", NOW).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].key_id, k.key_id());
        assert_eq!(
            (rows[0].valid_until_ts, rows[0].expired_ts),
            (NOW + 1000, None)
        );
        assert_eq!(
            (rows[1].key_id.as_str(), rows[1].expired_ts),
            ("ed25519:old", Some(NOW - 5))
        );
    }

    #[test]
    fn a_response_about_another_server_unsigned_or_tampered_is_refused() {
        let (_d, k) = key("s.example");
        let good = response(&k, "s.example", NOW + 1000);
        assert!(check_response(&good, "other.example", NOW).is_err());
        let mut tampered = good.clone();
        tampered["valid_until_ts"] = json!(NOW + 999_999);
        assert!(check_response(&tampered, "s.example", NOW).is_err());
        let mut unsigned = good.clone();
        unsigned.as_object_mut().unwrap().remove("signatures");
        assert!(check_response(&unsigned, "s.example", NOW).is_err());
        // Signed by a key that is not the one it lists.
        let (_d2, other) = key("s.example");
        let mut forged = good.clone();
        forged.as_object_mut().unwrap().remove("signatures");
        other.sign_json(&mut forged);
        assert!(check_response(&forged, "s.example", NOW).is_err());
        let mut no_keys =
            json!({"server_name": "s.example", "valid_until_ts": NOW, "verify_keys": {}});
        k.sign_json(&mut no_keys);
        assert!(check_response(&no_keys, "s.example", NOW).is_err());
    }

    #[test]
    fn a_key_is_trusted_for_a_week_at_most_and_used_while_valid() {
        let (_d, k) = key("s.example");
        let far = NOW + 365 * 24 * 3600 * 1000;
        let rows = check_response(&response(&k, "s.example", far), "s.example", NOW).unwrap();
        assert_eq!(rows[0].valid_until_ts, NOW + MAX_VALIDITY_MS);
        assert!(usable_at(&rows[0], NOW + MAX_VALIDITY_MS));
        assert!(!usable_at(&rows[0], NOW + MAX_VALIDITY_MS + 1));
        // An old key verifies what was made before it expired, not after.
        assert!(usable_at(&rows[1], NOW - 5));
        assert!(!usable_at(&rows[1], NOW));
    }

    #[test]
    fn keys_are_refetched_at_most_once_per_interval_per_server() {
        let mut gate = RefetchGate::default();
        let t0 = Instant::now();
        assert!(gate.try_start("a", t0));
        assert!(!gate.try_start("a", t0 + Duration::from_secs(1)));
        assert!(gate.try_start("b", t0 + Duration::from_secs(1)));
        assert!(!gate.try_start("a", t0 + REFETCH_INTERVAL - Duration::from_millis(1)));
        assert!(gate.try_start("a", t0 + REFETCH_INTERVAL));
    }
}
