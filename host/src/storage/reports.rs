//! Reports of events, rooms and users, as users made them, until an admin dismisses them.

use super::{Result, Storage};

/// A stored report. `kind` is `event`, `room` or `user`; which ids are set follows from it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct ReportRow {
    pub(crate) id: i64,
    pub(crate) kind: String,
    pub(crate) reporter: String,
    pub(crate) room_id: Option<String>,
    pub(crate) event_id: Option<String>,
    pub(crate) user_id: Option<String>,
    pub(crate) reason: Option<String>,
    pub(crate) received_ts: i64,
}

/// A new report's row.
pub(crate) struct NewReport<'a> {
    pub(crate) kind: &'a str,
    pub(crate) reporter: &'a str,
    pub(crate) room_id: Option<&'a str>,
    pub(crate) event_id: Option<&'a str>,
    pub(crate) user_id: Option<&'a str>,
    pub(crate) reason: Option<&'a str>,
    pub(crate) now: i64,
}

impl Storage {
    /// Stores a report unless its reporter already has `max_pending` stored; answers its id,
    /// or `None` when it was not stored. One statement, so that concurrent reports of one
    /// user cannot both pass the count.
    pub(crate) async fn insert_report(
        &self,
        r: &NewReport<'_>,
        max_pending: i64,
    ) -> Result<Option<i64>> {
        let row: Option<(i64,)> = sqlx::query_as(
            "INSERT INTO reports (kind, reporter, room_id, event_id, user_id, reason, received_ts)
             SELECT ?, ?, ?, ?, ?, ?, ?
             WHERE (SELECT COUNT(*) FROM reports WHERE reporter = ?) < ?
             RETURNING id",
        )
        .bind(r.kind)
        .bind(r.reporter)
        .bind(r.room_id)
        .bind(r.event_id)
        .bind(r.user_id)
        .bind(r.reason)
        .bind(r.now)
        .bind(r.reporter)
        .bind(max_pending)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|(id,)| id))
    }

    /// Up to `limit` reports, newest first, those with an id below `before` when it is given.
    pub(crate) async fn reports_before(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<ReportRow>> {
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
    pub(crate) async fn report_count(&self) -> Result<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM reports")
            .fetch_one(self.pool())
            .await?;
        Ok(n)
    }

    /// Deletes a report; answers whether there was one.
    pub(crate) async fn delete_report(&self, id: i64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM reports WHERE id = ?")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by(reporter: &str) -> NewReport<'_> {
        NewReport {
            kind: "user",
            reporter,
            room_id: None,
            event_id: None,
            user_id: Some("@target:x"),
            reason: Some("why"),
            now: 1,
        }
    }

    #[tokio::test]
    async fn a_reporter_stops_at_the_cap_of_waiting_reports_and_goes_on_after_a_dismissal() {
        let (_dir, s) = crate::storage::temporary().await;
        let first = s.insert_report(&by("@a:x"), 2).await.unwrap().unwrap();
        assert!(s.insert_report(&by("@a:x"), 2).await.unwrap().is_some());
        assert_eq!(s.insert_report(&by("@a:x"), 2).await.unwrap(), None);
        // Another reporter has a cap of their own.
        assert!(s.insert_report(&by("@b:x"), 2).await.unwrap().is_some());
        assert_eq!(s.report_count().await.unwrap(), 3);
        assert!(s.delete_report(first).await.unwrap());
        assert!(!s.delete_report(first).await.unwrap());
        assert!(s.insert_report(&by("@a:x"), 2).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn reports_are_read_newest_first_below_an_id() {
        let (_dir, s) = crate::storage::temporary().await;
        let mut ids = Vec::new();
        for _ in 0..4 {
            ids.push(s.insert_report(&by("@a:x"), 10).await.unwrap().unwrap());
        }
        let page = |rows: Vec<ReportRow>| rows.iter().map(|r| r.id).collect::<Vec<_>>();
        let all = page(s.reports_before(None, 10).await.unwrap());
        assert_eq!(all, [ids[3], ids[2], ids[1], ids[0]]);
        let older = page(s.reports_before(Some(ids[2]), 1).await.unwrap());
        assert_eq!(older, [ids[1]]);
    }
}
