//! Reports of events, rooms and users, as users made them, until an admin dismisses them.

use super::{Result, Storage};

/// A stored report. `kind` is `event`, `room` or `user`; which ids are set follows from it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ReportRow {
    pub id: i64,
    pub kind: String,
    pub reporter: String,
    pub room_id: Option<String>,
    pub event_id: Option<String>,
    pub user_id: Option<String>,
    pub reason: Option<String>,
    pub received_ts: i64,
}

/// A new report's row.
pub struct NewReport<'a> {
    pub kind: &'a str,
    pub reporter: &'a str,
    pub room_id: Option<&'a str>,
    pub event_id: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub now: i64,
}

impl Storage {
    /// Stores a report; answers its id.
    pub async fn insert_report(&self, r: &NewReport<'_>) -> Result<i64> {
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO reports (kind, reporter, room_id, event_id, user_id, reason, received_ts)
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(r.kind)
        .bind(r.reporter)
        .bind(r.room_id)
        .bind(r.event_id)
        .bind(r.user_id)
        .bind(r.reason)
        .bind(r.now)
        .fetch_one(self.pool())
        .await?;
        Ok(id)
    }

    /// Up to `limit` reports, newest first, those with an id below `before` when it is given.
    pub async fn reports_before(&self, before: Option<i64>, limit: u32) -> Result<Vec<ReportRow>> {
        Ok(sqlx::query_as(
            "SELECT id, kind, reporter, room_id, event_id, user_id, reason, received_ts
             FROM reports WHERE id < ? ORDER BY id DESC LIMIT ?",
        )
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// How many reports are stored.
    pub async fn report_count(&self) -> Result<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM reports")
            .fetch_one(self.pool())
            .await?;
        Ok(n)
    }

    /// Deletes a report; answers whether there was one.
    pub async fn delete_report(&self, id: i64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM reports WHERE id = ?")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Whether the server knows `user_id`: an account here, or a member (in any membership)
    /// of a room here.
    pub async fn user_known(&self, user_id: &str) -> Result<bool> {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT 1 FROM users WHERE user_id = ?
             UNION ALL
             SELECT 1 FROM memberships WHERE user_id = ?
             LIMIT 1",
        )
        .bind(user_id)
        .bind(user_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.is_some())
    }
}
