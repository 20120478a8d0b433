//! The database, the bottom layer: sqlx over SQLite in WAL mode, migrations at start-up, and
//! one module per table family holding that family's SQL, reads and writes. Writes that take
//! a stream position, queue steps and plugin writes go through the group-commit [`writer`],
//! which only batches, orders and commits: it imports the families' write types (a
//! [`writer::WriteOp`] is one of them) and no family imports it. [`queue`] holds every
//! durable delivery queue, whatever the kind of destination. Nothing here imports the
//! service layer or the plugin runtime.

pub(crate) mod account_data;
pub(crate) mod aliases;
pub(crate) mod appservice_registrations;
pub(crate) mod e2ee_keys;
pub(crate) mod event_time;
pub mod events;
pub(crate) mod filters;
pub(crate) mod graph;
pub(crate) mod key_backup;
pub(crate) mod media;
pub(crate) mod openid;
pub(crate) mod plugins;
pub(crate) mod presence;
pub(crate) mod push_actions;
pub(crate) mod pushers;
pub(crate) mod queue;
pub(crate) mod receipts;
pub(crate) mod relations;
pub(crate) mod remote;
pub(crate) mod reports;
pub(crate) mod rooms;
pub(crate) mod search;
pub(crate) mod server_keys;
mod statements;
pub(crate) mod to_device;
pub(crate) mod user_directory;
pub(crate) mod users;
pub(crate) mod writer;

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

/// Every failure of the storage layer; the service layer decides what a client sees.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("stored JSON is corrupt: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("the writer has stopped")]
    WriterGone,
    #[error("commit failed: {0}")]
    Failed(String),
}

pub(crate) type Result<T> = std::result::Result<T, StorageError>;

#[derive(Clone)]
pub struct Storage {
    pool: SqlitePool,
}

impl Storage {
    /// Opens (creating if needed) the database at `url` and brings its schema up to date.
    pub async fn open(url: &str) -> Result<Storage> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk before the client hears 200. The writer's group
            // commit pays one fsync for many events.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            // No memory map, and a page cache of 4 MiB per connection: a read of the whole
            // database (an initial /sync over thousands of rooms) would otherwise leave it
            // resident once per pooled connection (256 MiB maps and 64 MiB caches, eight
            // connections); the kernel's page cache serves the reads as well.
            .pragma("mmap_size", "0")
            .pragma("cache_size", "-4096")
            // A read of a few hundred rows (a page of events for delivery or /messages) is
            // handed over without the connection's thread stopping for the reader on the way.
            .row_buffer_size(512)
            .foreign_keys(false);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Storage { pool })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The highest stream position anything has taken.
    pub async fn max_stream(&self) -> Result<i64> {
        let row: (i64,) = sqlx::query_as(
            "SELECT MAX(
                (SELECT COALESCE(MAX(stream), 0) FROM events),
                (SELECT COALESCE(MAX(stream), 0) FROM account_data),
                (SELECT COALESCE(MAX(stream), 0) FROM receipts),
                (SELECT COALESCE(MAX(stream), 0) FROM key_changes),
                (SELECT COALESCE(MAX(stream), 0) FROM to_device_txns))",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(row.0)
    }
}

/// A new database in a temporary directory, which goes when the returned guard drops.
#[cfg(test)]
pub(crate) async fn temporary() -> (tempfile::TempDir, Storage) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
    let storage = Storage::open(&url).await.unwrap();
    (dir, storage)
}

/// A database at `path` with the migrations up to `version` applied and no later one, as a
/// server of that schema left it: tests fill it the old way, then `Storage::open` upgrades it.
#[cfg(test)]
pub(crate) async fn pool_at_version(path: &std::path::Path, version: i64) -> SqlitePool {
    let mut before: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
    before.migrations = before
        .migrations
        .iter()
        .filter(|m| m.version <= version)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true);
    let pool = SqlitePoolOptions::new()
        .connect_with(options)
        .await
        .unwrap();
    before.run(&pool).await.unwrap();
    pool
}
