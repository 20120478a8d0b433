//! Other servers' signing keys as fetched (see `service::federation::server_keys`): one row
//! per server and key id, with the signed response it came in.

use super::{Result, Storage};

/// One key of another server.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct ServerKeyRow {
    pub(crate) server_name: String,
    pub(crate) key_id: String,
    /// Unpadded base64 of the ed25519 public key.
    pub(crate) key: String,
    pub(crate) valid_until_ts: i64,
    /// Set for a key of `old_verify_keys`: when it stopped being used.
    pub(crate) expired_ts: Option<i64>,
    /// The signed key response, as received.
    pub(crate) response: String,
    pub(crate) fetched_ts: i64,
}

impl Storage {
    /// Stores the keys of one response in one transaction; a key already known is replaced
    /// by the newer fetch, unless that would shorten a current key's validity (a stale copy of
    /// an older response from a notary).
    pub(crate) async fn store_server_keys(&self, rows: &[ServerKeyRow]) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        for r in rows {
            sqlx::query(
                "INSERT INTO server_keys
                    (server_name, key_id, key, valid_until_ts, expired_ts, response, fetched_ts)
                 VALUES (?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (server_name, key_id) DO UPDATE SET
                    key = excluded.key, valid_until_ts = excluded.valid_until_ts,
                    expired_ts = excluded.expired_ts, response = excluded.response,
                    fetched_ts = excluded.fetched_ts
                 WHERE excluded.valid_until_ts >= server_keys.valid_until_ts
                    OR excluded.key != server_keys.key",
            )
            .bind(&r.server_name)
            .bind(&r.key_id)
            .bind(&r.key)
            .bind(r.valid_until_ts)
            .bind(r.expired_ts)
            .bind(&r.response)
            .bind(r.fetched_ts)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn server_key(
        &self,
        server_name: &str,
        key_id: &str,
    ) -> Result<Option<ServerKeyRow>> {
        Ok(sqlx::query_as(
            "SELECT server_name, key_id, key, valid_until_ts, expired_ts, response, fetched_ts
             FROM server_keys WHERE server_name = ? AND key_id = ?",
        )
        .bind(server_name)
        .bind(key_id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// The keys known of `server_name`, the longest valid first.
    pub(crate) async fn server_keys_of(&self, server_name: &str) -> Result<Vec<ServerKeyRow>> {
        Ok(sqlx::query_as(
            "SELECT server_name, key_id, key, valid_until_ts, expired_ts, response, fetched_ts
             FROM server_keys WHERE server_name = ? ORDER BY valid_until_ts DESC",
        )
        .bind(server_name)
        .fetch_all(self.pool())
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::temporary;

    fn row(key: &str, valid_until_ts: i64) -> ServerKeyRow {
        ServerKeyRow {
            server_name: "s.example".into(),
            key_id: "ed25519:a".into(),
            key: key.into(),
            valid_until_ts,
            expired_ts: None,
            response: format!("{{\"v\":{valid_until_ts}}}"),
            fetched_ts: 1,
        }
    }

    #[tokio::test]
    async fn a_newer_fetch_replaces_a_key_but_a_stale_copy_does_not_shorten_it() {
        let (_dir, s) = temporary().await;
        s.store_server_keys(&[row("K", 100)]).await.unwrap();
        s.store_server_keys(&[row("K", 200)]).await.unwrap();
        s.store_server_keys(&[row("K", 150)]).await.unwrap();
        let got = s
            .server_key("s.example", "ed25519:a")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.valid_until_ts, 200);
        assert_eq!(got.response, "{\"v\":200}");
        // A different key under the same id is what the server says now.
        s.store_server_keys(&[row("L", 120)]).await.unwrap();
        let got = s
            .server_key("s.example", "ed25519:a")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((got.key.as_str(), got.valid_until_ts), ("L", 120));
        assert_eq!(s.server_keys_of("s.example").await.unwrap().len(), 1);
        assert!(s.server_key("other", "ed25519:a").await.unwrap().is_none());
    }
}
