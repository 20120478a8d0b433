//! Pushers: where each user's devices want notifications pushed.

use super::{Result, Storage};

/// A stored pusher.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct PusherRow {
    pub(crate) user_id: String,
    pub(crate) app_id: String,
    pub(crate) pushkey: String,
    pub(crate) kind: String,
    pub(crate) app_display_name: String,
    pub(crate) device_display_name: String,
    pub(crate) profile_tag: Option<String>,
    pub(crate) lang: String,
    pub(crate) data: String,
}

impl Storage {
    /// Adds or replaces the user's pusher of this app and pushkey; unless `append`, the same
    /// app and pushkey of other users go, in the same transaction.
    pub(crate) async fn set_pusher(&self, p: &PusherRow, append: bool, now: i64) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT OR REPLACE INTO pushers (user_id, app_id, pushkey, kind, app_display_name,
                 device_display_name, profile_tag, lang, data, created_ts)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&p.user_id)
        .bind(&p.app_id)
        .bind(&p.pushkey)
        .bind(&p.kind)
        .bind(&p.app_display_name)
        .bind(&p.device_display_name)
        .bind(&p.profile_tag)
        .bind(&p.lang)
        .bind(&p.data)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if !append {
            sqlx::query("DELETE FROM pushers WHERE app_id = ? AND pushkey = ? AND user_id != ?")
                .bind(&p.app_id)
                .bind(&p.pushkey)
                .bind(&p.user_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Removes the user's pusher of this app and pushkey; answers whether there was one.
    pub(crate) async fn delete_pusher(
        &self,
        user_id: &str,
        app_id: &str,
        pushkey: &str,
    ) -> Result<bool> {
        let done =
            sqlx::query("DELETE FROM pushers WHERE user_id = ? AND app_id = ? AND pushkey = ?")
                .bind(user_id)
                .bind(app_id)
                .bind(pushkey)
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The user's pushers, oldest first.
    pub(crate) async fn pushers(&self, user_id: &str) -> Result<Vec<PusherRow>> {
        Ok(sqlx::query_as(
            "SELECT user_id, app_id, pushkey, kind, app_display_name, device_display_name,
                    profile_tag, lang, data
             FROM pushers WHERE user_id = ? ORDER BY created_ts, app_id, pushkey",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::temporary;

    fn pusher(user: &str, key: &str) -> PusherRow {
        PusherRow {
            user_id: user.into(),
            app_id: "org.example.app".into(),
            pushkey: key.into(),
            kind: "http".into(),
            app_display_name: "App".into(),
            device_display_name: "Phone".into(),
            profile_tag: None,
            lang: "en".into(),
            data: "{}".into(),
        }
    }

    #[tokio::test]
    async fn a_pushkey_moves_to_its_new_user_unless_appended() {
        let (_dir, s) = temporary().await;
        s.set_pusher(&pusher("@a:x", "k1"), false, 1).await.unwrap();
        s.set_pusher(&pusher("@b:x", "k1"), true, 2).await.unwrap();
        assert_eq!(s.pushers("@a:x").await.unwrap().len(), 1);
        s.set_pusher(&pusher("@c:x", "k1"), false, 3).await.unwrap();
        assert!(s.pushers("@a:x").await.unwrap().is_empty());
        assert!(s.pushers("@b:x").await.unwrap().is_empty());
        assert_eq!(s.pushers("@c:x").await.unwrap().len(), 1);
        assert!(s
            .delete_pusher("@c:x", "org.example.app", "k1")
            .await
            .unwrap());
        assert!(!s
            .delete_pusher("@c:x", "org.example.app", "k1")
            .await
            .unwrap());
    }
}
