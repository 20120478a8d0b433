//! OpenID tokens: who asked for each, until when it holds.

use super::{Result, Storage};

impl Storage {
    /// Keeps a new token (and lets go of the expired ones).
    pub(crate) async fn insert_openid_token(
        &self,
        token: &str,
        user_id: &str,
        expires_ts: i64,
        now: i64,
    ) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM openid_tokens WHERE expires_ts <= ?")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO openid_tokens (token, user_id, expires_ts) VALUES (?, ?, ?)")
            .bind(token)
            .bind(user_id)
            .bind(expires_ts)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The user a token was made for, if it has not expired at `now`.
    pub(crate) async fn openid_token_owner(&self, token: &str, now: i64) -> Result<Option<String>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT user_id FROM openid_tokens WHERE token = ? AND expires_ts > ?")
                .bind(token)
                .bind(now)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(|(user,)| user))
    }
}

#[cfg(test)]
mod tests {
    use crate::storage::temporary;

    #[tokio::test]
    async fn a_token_names_its_user_until_it_expires() {
        let (_dir, s) = temporary().await;
        s.insert_openid_token("t1", "@a:x", 2_000, 1_000)
            .await
            .unwrap();
        assert_eq!(
            s.openid_token_owner("t1", 1_999).await.unwrap().as_deref(),
            Some("@a:x")
        );
        assert_eq!(s.openid_token_owner("t1", 2_000).await.unwrap(), None);
        assert_eq!(s.openid_token_owner("t2", 0).await.unwrap(), None);
        // The next token made after it expired takes its row with it.
        s.insert_openid_token("t2", "@b:x", 9_000, 5_000)
            .await
            .unwrap();
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM openid_tokens")
            .fetch_one(s.pool())
            .await
            .unwrap();
        assert_eq!(n, 1);
    }
}
