//! WASM plugins: what the server decided about each installed plugin (enabled, web endpoints,
//! history replay), each plugin's key-value store and its durable timers. The writes a plugin
//! makes to its store and timers go through the group-commit writer together ([`PluginWrite`]).

use sqlx::SqliteConnection;

use super::queue::{self, QueueKind, QueueWrite};
use super::{Result, Storage};

#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct PluginRow {
    pub(crate) enabled: bool,
    pub(crate) endpoints: bool,
    pub(crate) replay_from: Option<i64>,
    pub(crate) replay_until: Option<i64>,
    pub(crate) installed_ts: i64,
    pub(crate) updated_ts: i64,
}

/// A stored timer.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TimerRow {
    pub(crate) key: String,
    pub(crate) due_ms: i64,
    pub(crate) seq: i64,
    pub(crate) payload: String,
}

/// A value written to a plugin's store: `(key, value)`, `None` deleting the key.
pub(crate) type KvWrite = (String, Option<Vec<u8>>);

/// Writes to one plugin's store and timers, each list in the order made, and the queue steps
/// that must commit with them: what one call into the plugin changed, as the plugin runtime
/// hands it over. Takes no stream position.
#[derive(Debug, Clone, Default)]
pub(crate) struct PluginWrite {
    pub(crate) plugin_id: String,
    pub(crate) kv: Vec<KvWrite>,
    pub(crate) timers: Vec<TimerChange>,
    pub(crate) acknowledges: Vec<QueueWrite>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TimerChange {
    Set(TimerRow),
    Cancel(String),
    /// The timer fired and its call succeeded: it goes unless the call set it again.
    Fired {
        key: String,
        seq: i64,
    },
}

impl Storage {
    pub(crate) async fn plugin_row(&self, id: &str) -> Result<Option<PluginRow>> {
        Ok(sqlx::query_as(
            "SELECT enabled, endpoints, replay_from, replay_until, installed_ts, updated_ts
                FROM plugins WHERE plugin_id = ?",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Records a newly installed plugin whose queue starts at `position`: whatever an earlier
    /// plugin or service of the same id left (queue, store, timers) goes in the same
    /// transaction. `replay_until` is set for a plugin that replays history up to it.
    pub(crate) async fn insert_plugin(
        &self,
        id: &str,
        position: i64,
        replay_until: Option<i64>,
        now: i64,
    ) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        forget_plugin(&mut tx, id, true).await?;
        // Txn ids start at the install time: a plugin installed again under the same id never
        // reuses a txn id of the one before it (the SDK derives its sends' txn ids from them).
        queue::create(&mut tx, QueueKind::Plugin, id, position, now).await?;
        sqlx::query(
            "INSERT INTO plugins (plugin_id, enabled, endpoints, replay_from, replay_until,
                installed_ts, updated_ts) VALUES (?, 1, 1, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(replay_until.map(|_| position))
        .bind(replay_until)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn set_plugin_enabled(
        &self,
        id: &str,
        enabled: bool,
        now: i64,
    ) -> Result<bool> {
        let done =
            sqlx::query("UPDATE plugins SET enabled = ?, updated_ts = ? WHERE plugin_id = ?")
                .bind(enabled)
                .bind(now)
                .bind(id)
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected() > 0)
    }

    pub(crate) async fn set_plugin_endpoints(&self, id: &str, on: bool, now: i64) -> Result<bool> {
        let done =
            sqlx::query("UPDATE plugins SET endpoints = ?, updated_ts = ? WHERE plugin_id = ?")
                .bind(on)
                .bind(now)
                .bind(id)
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected() > 0)
    }

    pub(crate) async fn touch_plugin(&self, id: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE plugins SET updated_ts = ? WHERE plugin_id = ?")
            .bind(now)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Deletes everything of plugin `id`: its row, store and timers, and its queue when
    /// `with_queue` (not when the id is an HTTP appservice's, whose queue that is).
    pub(crate) async fn delete_plugin(&self, id: &str, with_queue: bool) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        forget_plugin(&mut tx, id, with_queue).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn kv_get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let row: Option<(Vec<u8>,)> =
            sqlx::query_as("SELECT value FROM plugin_kv WHERE plugin_id = ? AND key = ?")
                .bind(plugin)
                .bind(key)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(|(v,)| v))
    }

    /// The length of a key's value, `None` when it has none. SQLite answers `length()` of a
    /// blob from the record's header, without reading the value.
    pub(crate) async fn kv_len(&self, plugin: &str, key: &str) -> Result<Option<usize>> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT length(value) FROM plugin_kv WHERE plugin_id = ? AND key = ?")
                .bind(plugin)
                .bind(key)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(|(n,)| n as usize))
    }

    /// Keys starting with `prefix` and after `after`, in byte order, at most `limit`.
    pub(crate) async fn kv_keys(
        &self,
        plugin: &str,
        prefix: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<String>> {
        // `substr(key, 1, n) = prefix` rather than LIKE: a prefix may hold `%` and `_`.
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT key FROM plugin_kv
             WHERE plugin_id = ? AND substr(key, 1, length(?)) = ? AND key > ?
             ORDER BY key LIMIT ?",
        )
        .bind(plugin)
        .bind(prefix)
        .bind(prefix)
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|(k,)| k).collect())
    }

    /// The bytes of all keys and values of a plugin's store.
    pub(crate) async fn kv_usage(&self, plugin: &str) -> Result<i64> {
        let (bytes,): (i64,) = sqlx::query_as(
            "SELECT COALESCE(SUM(length(CAST(key AS BLOB)) + length(value)), 0)
             FROM plugin_kv WHERE plugin_id = ?",
        )
        .bind(plugin)
        .fetch_one(self.pool())
        .await?;
        Ok(bytes)
    }

    /// A plugin's timers, the soonest first.
    pub(crate) async fn plugin_timers(&self, plugin: &str) -> Result<Vec<TimerRow>> {
        Ok(sqlx::query_as(
            "SELECT key, due_ms, seq, payload FROM plugin_timers WHERE plugin_id = ?
             ORDER BY due_ms, seq",
        )
        .bind(plugin)
        .fetch_all(self.pool())
        .await?)
    }

    /// The highest timer sequence number a plugin has used.
    pub(crate) async fn max_timer_seq(&self, plugin: &str) -> Result<i64> {
        let (seq,): (i64,) =
            sqlx::query_as("SELECT COALESCE(MAX(seq), 0) FROM plugin_timers WHERE plugin_id = ?")
                .bind(plugin)
                .fetch_one(self.pool())
                .await?;
        Ok(seq)
    }
}

/// Deletes everything stored of plugin `id`: its row, store and timers, and its queue when
/// `with_queue`.
async fn forget_plugin(conn: &mut SqliteConnection, id: &str, with_queue: bool) -> Result<()> {
    for table in ["plugins", "plugin_kv", "plugin_timers"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE plugin_id = ?"))
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    if with_queue {
        queue::delete(conn, QueueKind::Plugin, id).await?;
    }
    Ok(())
}

impl PluginWrite {
    /// Applies the writes inside the writer's transaction.
    pub(super) async fn apply(&self, conn: &mut SqliteConnection) -> Result<()> {
        for (key, value) in &self.kv {
            match value {
                Some(value) => {
                    sqlx::query(
                        "INSERT INTO plugin_kv (plugin_id, key, value) VALUES (?, ?, ?)
                         ON CONFLICT (plugin_id, key) DO UPDATE SET value = excluded.value",
                    )
                    .bind(&self.plugin_id)
                    .bind(key)
                    .bind(value)
                    .execute(&mut *conn)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM plugin_kv WHERE plugin_id = ? AND key = ?")
                        .bind(&self.plugin_id)
                        .bind(key)
                        .execute(&mut *conn)
                        .await?;
                }
            }
        }
        for change in &self.timers {
            match change {
                TimerChange::Set(t) => {
                    sqlx::query(
                        "INSERT INTO plugin_timers (plugin_id, key, due_ms, seq, payload)
                         VALUES (?, ?, ?, ?, ?)
                         ON CONFLICT (plugin_id, key) DO UPDATE SET
                            due_ms = excluded.due_ms, seq = excluded.seq, payload = excluded.payload",
                    )
                    .bind(&self.plugin_id)
                    .bind(&t.key)
                    .bind(t.due_ms)
                    .bind(t.seq)
                    .bind(&t.payload)
                    .execute(&mut *conn)
                    .await?;
                }
                TimerChange::Cancel(key) => {
                    sqlx::query("DELETE FROM plugin_timers WHERE plugin_id = ? AND key = ?")
                        .bind(&self.plugin_id)
                        .bind(key)
                        .execute(&mut *conn)
                        .await?;
                }
                TimerChange::Fired { key, seq } => {
                    sqlx::query(
                        "DELETE FROM plugin_timers WHERE plugin_id = ? AND key = ? AND seq = ?",
                    )
                    .bind(&self.plugin_id)
                    .bind(key)
                    .bind(seq)
                    .execute(&mut *conn)
                    .await?;
                }
            }
        }
        for q in &self.acknowledges {
            q.apply(conn).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Storage;
    use super::*;

    fn timer(key: &str, seq: i64) -> TimerRow {
        TimerRow {
            key: key.into(),
            due_ms: 100 * seq,
            seq,
            payload: String::new(),
        }
    }

    fn step(ack: Option<i64>, pending: Option<(i64, i64, String)>) -> QueueWrite {
        QueueWrite {
            kind: QueueKind::Plugin,
            id: "p".into(),
            ack,
            position: None,
            pending,
        }
    }

    async fn apply(s: &Storage, w: PluginWrite) {
        let mut conn = s.pool().acquire().await.unwrap();
        w.apply(&mut conn).await.unwrap();
    }

    #[tokio::test]
    async fn a_plugin_write_applies_its_keys_and_timers_in_the_order_made_and_its_queue_steps() {
        let (_dir, s) = crate::storage::temporary().await;
        s.insert_plugin("p", 0, None, 1).await.unwrap();
        apply(
            &s,
            PluginWrite {
                plugin_id: "p".into(),
                kv: vec![
                    ("a".into(), Some(b"1".to_vec())),
                    ("b".into(), Some(b"2".to_vec())),
                    ("a".into(), None),
                ],
                timers: vec![
                    TimerChange::Set(timer("x", 1)),
                    TimerChange::Set(timer("y", 2)),
                    TimerChange::Set(timer("z", 3)),
                ],
                acknowledges: vec![step(None, Some((1, 5, "{}".into())))],
            },
        )
        .await;
        assert_eq!(s.kv_get("p", "a").await.unwrap(), None);
        assert_eq!(s.kv_get("p", "b").await.unwrap(), Some(b"2".to_vec()));
        assert_eq!(s.plugin_timers("p").await.unwrap().len(), 3);

        apply(
            &s,
            PluginWrite {
                plugin_id: "p".into(),
                kv: Vec::new(),
                timers: vec![
                    // A firing of an earlier setting of `x`: `x` was set again since, and stays.
                    TimerChange::Fired {
                        key: "x".into(),
                        seq: 0,
                    },
                    TimerChange::Fired {
                        key: "y".into(),
                        seq: 2,
                    },
                    TimerChange::Cancel("z".into()),
                ],
                acknowledges: vec![step(Some(1), None)],
            },
        )
        .await;
        assert_eq!(s.plugin_timers("p").await.unwrap(), [timer("x", 1)]);
        let queue = s.queue(QueueKind::Plugin, "p", 0).await.unwrap();
        assert_eq!((queue.position, queue.pending_txn_id), (5, None));
    }

    #[tokio::test]
    async fn deleting_a_plugin_takes_its_queue_only_when_asked() {
        let (_dir, s) = crate::storage::temporary().await;
        for with_queue in [false, true] {
            s.insert_plugin("p", 3, None, 1).await.unwrap();
            s.delete_plugin("p", with_queue).await.unwrap();
            assert!(s.plugin_row("p").await.unwrap().is_none());
            let backlog = s.queue_backlog(QueueKind::Plugin, "p").await.unwrap();
            assert_eq!(backlog.is_some(), !with_queue);
        }
    }

    /// A store written under the first plugin schema (`plugin_kv` WITHOUT ROWID) is the same
    /// store once the later migrations have run.
    #[tokio::test]
    async fn the_kv_store_keeps_its_values_across_the_rowid_migration() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
        let pool = crate::storage::pool_at_version(&dir.path().join("db.sqlite"), 5).await;
        for (key, len) in [("small", 3usize), ("large", 200_000)] {
            sqlx::query("INSERT INTO plugin_kv (plugin_id, key, value) VALUES ('p', ?, ?)")
                .bind(key)
                .bind(vec![7u8; len])
                .execute(&pool)
                .await
                .unwrap();
        }
        pool.close().await;

        let storage = Storage::open(&url).await.unwrap();
        assert_eq!(
            storage.kv_get("p", "small").await.unwrap(),
            Some(vec![7; 3])
        );
        assert_eq!(storage.kv_len("p", "large").await.unwrap(), Some(200_000));
        assert_eq!(storage.kv_len("p", "none").await.unwrap(), None);
        assert_eq!(storage.kv_usage("p").await.unwrap(), 5 + 3 + 5 + 200_000);
        let (table,): (String,) =
            sqlx::query_as("SELECT sql FROM sqlite_master WHERE name = 'plugin_kv'")
                .fetch_one(storage.pool())
                .await
                .unwrap();
        assert!(!table.contains("WITHOUT ROWID"), "{table}");
    }
}
