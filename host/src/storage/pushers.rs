//! Pushers: where each user's devices want notifications pushed, and with each http pusher
//! its delivery queue (`pusher_queues`, see [`QueueKind::Push`]), made and removed with it.

use sqlx::SqliteConnection;

use super::queue::{self, QueueKind};
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
    /// The device whose token set it; `None` when there was none.
    pub(crate) device_id: Option<String>,
    /// When it was set, in milliseconds.
    pub(crate) created_ts: i64,
}

impl PusherRow {
    pub(crate) fn key(&self) -> PusherKey {
        PusherKey {
            user_id: self.user_id.clone(),
            app_id: self.app_id.clone(),
            pushkey: self.pushkey.clone(),
        }
    }
}

/// What names a pusher: a user's pusher of one app and pushkey.
#[derive(Debug, Clone, PartialEq, Eq, Hash, sqlx::FromRow)]
pub(crate) struct PusherKey {
    pub(crate) user_id: String,
    pub(crate) app_id: String,
    pub(crate) pushkey: String,
}

impl PusherKey {
    /// The id of its delivery queue: `[user_id, app_id, pushkey]` as JSON, which no two keys
    /// share whatever their strings hold.
    pub(crate) fn queue_id(&self) -> String {
        serde_json::json!([self.user_id, self.app_id, self.pushkey]).to_string()
    }
}

const COLUMNS: &str = "user_id, app_id, pushkey, kind, app_display_name, device_display_name,
    profile_tag, lang, data, device_id, created_ts";

/// Deletes the pushers that `condition` (with `binds`) selects, with their queues; answers
/// their keys.
async fn delete_where(
    conn: &mut SqliteConnection,
    condition: &str,
    binds: &[&str],
) -> Result<Vec<PusherKey>> {
    let sql = format!("DELETE FROM pushers WHERE {condition} RETURNING user_id, app_id, pushkey");
    let mut q = sqlx::query_as::<_, PusherKey>(&sql);
    for b in binds {
        q = q.bind(*b);
    }
    let gone = q.fetch_all(&mut *conn).await?;
    for key in &gone {
        queue::delete(&mut *conn, QueueKind::Push, &key.queue_id()).await?;
    }
    Ok(gone)
}

impl Storage {
    /// Adds or replaces the user's pusher of this app and pushkey, its delivery queue made at
    /// stream position `start` if it has none; unless `append`, the same app and pushkey of
    /// other users go, in the same transaction. Answers the pushers that went.
    pub(crate) async fn set_pusher(
        &self,
        p: &PusherRow,
        append: bool,
        start: i64,
    ) -> Result<Vec<PusherKey>> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(&format!(
            "INSERT OR REPLACE INTO pushers ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(&p.user_id)
        .bind(&p.app_id)
        .bind(&p.pushkey)
        .bind(&p.kind)
        .bind(&p.app_display_name)
        .bind(&p.device_display_name)
        .bind(&p.profile_tag)
        .bind(&p.lang)
        .bind(&p.data)
        .bind(&p.device_id)
        .bind(p.created_ts)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT OR IGNORE INTO pusher_queues (pusher, position) VALUES (?, ?)")
            .bind(p.key().queue_id())
            .bind(start)
            .execute(&mut *tx)
            .await?;
        let gone = if append {
            Vec::new()
        } else {
            delete_where(
                &mut tx,
                "app_id = ? AND pushkey = ? AND user_id != ?",
                &[&p.app_id, &p.pushkey, &p.user_id],
            )
            .await?
        };
        tx.commit().await?;
        Ok(gone)
    }

    /// Removes the user's pusher of this app and pushkey; answers whether there was one.
    pub(crate) async fn delete_pusher(
        &self,
        user_id: &str,
        app_id: &str,
        pushkey: &str,
    ) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let gone = delete_where(
            &mut tx,
            "user_id = ? AND app_id = ? AND pushkey = ?",
            &[user_id, app_id, pushkey],
        )
        .await?;
        tx.commit().await?;
        Ok(!gone.is_empty())
    }

    /// Removes the pushers set by the user's devices `device_ids` (all of the user's when
    /// `None`); answers their keys.
    pub(crate) async fn delete_device_pushers(
        &self,
        user_id: &str,
        device_ids: Option<&[String]>,
    ) -> Result<Vec<PusherKey>> {
        let mut tx = self.pool().begin().await?;
        let gone = match device_ids {
            None => delete_where(&mut tx, "user_id = ?", &[user_id]).await?,
            Some(ids) => {
                let mut gone = Vec::new();
                for id in ids {
                    gone.extend(
                        delete_where(&mut tx, "user_id = ? AND device_id = ?", &[user_id, id])
                            .await?,
                    );
                }
                gone
            }
        };
        tx.commit().await?;
        Ok(gone)
    }

    /// One pusher.
    pub(crate) async fn pusher(&self, key: &PusherKey) -> Result<Option<PusherRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM pushers WHERE user_id = ? AND app_id = ? AND pushkey = ?"
        ))
        .bind(&key.user_id)
        .bind(&key.app_id)
        .bind(&key.pushkey)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Every http pusher: those whose deliveries start with the server.
    pub(crate) async fn http_pushers(&self) -> Result<Vec<PusherRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM pushers WHERE kind = 'http'"
        ))
        .fetch_all(self.pool())
        .await?)
    }

    /// The user's pushers, oldest first.
    pub(crate) async fn pushers(&self, user_id: &str) -> Result<Vec<PusherRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM pushers WHERE user_id = ? ORDER BY created_ts, app_id, pushkey"
        ))
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
            device_id: Some("PHONE".into()),
            created_ts: 0,
        }
    }

    async fn queue_exists(s: &Storage, key: &PusherKey) -> bool {
        s.queue_backlog(QueueKind::Push, &key.queue_id())
            .await
            .unwrap()
            .is_some()
    }

    #[tokio::test]
    async fn a_pushkey_moves_to_its_new_user_unless_appended() {
        let (_dir, s) = temporary().await;
        s.set_pusher(&pusher("@a:x", "k1"), false, 1).await.unwrap();
        s.set_pusher(&pusher("@b:x", "k1"), true, 2).await.unwrap();
        assert_eq!(s.pushers("@a:x").await.unwrap().len(), 1);
        let gone = s.set_pusher(&pusher("@c:x", "k1"), false, 3).await.unwrap();
        assert_eq!(gone.len(), 2);
        for key in &gone {
            assert!(!queue_exists(&s, key).await, "{key:?}");
        }
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

    #[tokio::test]
    async fn a_pushers_queue_starts_where_it_was_set_and_survives_a_change_of_its_data() {
        let (_dir, s) = temporary().await;
        let p = pusher("@a:x", "k");
        s.set_pusher(&p, false, 7).await.unwrap();
        let mut changed = p.clone();
        changed.data = r#"{"format":"event_id_only"}"#.into();
        s.set_pusher(&changed, false, 9).await.unwrap();
        let q = s
            .queue(QueueKind::Push, &p.key().queue_id(), 0)
            .await
            .unwrap();
        assert_eq!(q.position, 7);
        assert_eq!(
            s.pusher(&p.key()).await.unwrap().unwrap().data,
            changed.data
        );
    }

    #[tokio::test]
    async fn deleting_a_device_removes_its_pushers_and_their_queues_only() {
        let (_dir, s) = temporary().await;
        let phone = pusher("@a:x", "k1");
        let mut tablet = pusher("@a:x", "k2");
        tablet.device_id = Some("TABLET".into());
        s.set_pusher(&phone, true, 1).await.unwrap();
        s.set_pusher(&tablet, true, 1).await.unwrap();
        let gone = s
            .delete_device_pushers("@a:x", Some(&["PHONE".to_string()]))
            .await
            .unwrap();
        assert_eq!(gone, [phone.key()]);
        assert!(!queue_exists(&s, &phone.key()).await);
        assert!(queue_exists(&s, &tablet.key()).await);
        let all = s.delete_device_pushers("@a:x", None).await.unwrap();
        assert_eq!(all, [tablet.key()]);
        assert!(s.http_pushers().await.unwrap().is_empty());
    }
}
