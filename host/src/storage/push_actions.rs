//! What the push rules made of each event (tables `event_push`, `event_push_exceptions`):
//! written with the event in the writer's transaction, so counts are as fresh as the
//! timeline; read for the unread counts in /sync and for `GET /notifications`.

use sqlx::{QueryBuilder, Sqlite};

use super::statements::{Statements, ROWS_PER_STATEMENT};
use super::{Result, Storage};

/// The outcome kept for one event: the actions of every local member but the exceptions.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PushRow {
    /// `''` for the main timeline.
    pub(crate) thread_id: String,
    pub(crate) notify: bool,
    pub(crate) highlight: bool,
    /// The actions as JSON.
    pub(crate) actions: String,
    pub(crate) exceptions: Vec<PushException>,
}

/// A member whose actions differ from the event's default.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PushException {
    pub(crate) user_id: String,
    pub(crate) notify: bool,
    pub(crate) highlight: bool,
    pub(crate) actions: String,
}

/// One event's row of `event_push`, at its stream position.
pub(super) struct PushedEvent<'a> {
    pub(super) stream: i64,
    pub(super) room_id: &'a str,
    pub(super) event_id: &'a str,
    pub(super) sender: &'a str,
    pub(super) ts: i64,
    pub(super) row: &'a PushRow,
}

/// Adds the rows of a batch's events to the writer's statements for the batch, as multi-row
/// inserts: one statement for many events instead of a round trip to SQLite's thread per event.
pub(super) fn push_inserts<'a>(statements: &mut Statements<'a>, events: &[PushedEvent<'a>]) {
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        statements
            .next(
                "INSERT INTO event_push (room_id, stream, event_id, sender, thread_id, notify,
                     highlight, actions, ts) ",
            )
            .push_values(chunk, |mut b, e| {
                b.push_bind(e.room_id)
                    .push_bind(e.stream)
                    .push_bind(e.event_id)
                    .push_bind(e.sender)
                    .push_bind(e.row.thread_id.as_str())
                    .push_bind(e.row.notify)
                    .push_bind(e.row.highlight)
                    .push_bind(e.row.actions.as_str())
                    .push_bind(e.ts);
            });
    }
    let exceptions: Vec<(&PushedEvent<'a>, &'a PushException)> = events
        .iter()
        .flat_map(|e| e.row.exceptions.iter().map(move |x| (e, x)))
        .collect();
    for chunk in exceptions.chunks(ROWS_PER_STATEMENT) {
        statements
            .next(
                "INSERT INTO event_push_exceptions (room_id, stream, user_id, notify, highlight,
                     actions) ",
            )
            .push_values(chunk, |mut b, (e, x)| {
                b.push_bind(e.room_id)
                    .push_bind(e.stream)
                    .push_bind(x.user_id.as_str())
                    .push_bind(x.notify)
                    .push_bind(x.highlight)
                    .push_bind(x.actions.as_str());
            });
    }
}

/// The counts of one thread (`''` the main timeline) for one member.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct ThreadCounts {
    pub(crate) thread_id: String,
    pub(crate) notify: i64,
    pub(crate) highlight: i64,
}

/// The next event that notifies a user, for their pushers.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub(crate) struct NextNotification {
    pub(crate) room_id: String,
    pub(crate) stream: i64,
    pub(crate) event_id: String,
    /// Their actions for it, as JSON.
    pub(crate) actions: String,
}

/// A user's read receipt, placed at the stream position of the event it names.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub(crate) struct ReadPoint {
    /// `''` unthreaded, `main`, or a thread's root.
    pub(crate) thread_id: String,
    pub(crate) stream: i64,
}

/// One row of `GET /notifications`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub(crate) struct NotificationRow {
    pub(crate) room_id: String,
    pub(crate) stream: i64,
    pub(crate) event_id: String,
    pub(crate) thread_id: String,
    pub(crate) actions: String,
    pub(crate) ts: i64,
}

impl Storage {
    /// The events of `room_id` in `after < stream <= upto` that notify `user_id` (not theirs),
    /// counted per thread; a thread of `thread_points` (`''` for the main timeline) only after
    /// its point. Served by the primary keys: a range of `(room_id, stream)`, and one look-up
    /// of `(room_id, stream, user_id)` per row.
    pub(crate) async fn unread_by_thread(
        &self,
        room_id: &str,
        user_id: &str,
        after: i64,
        upto: i64,
        thread_points: &[(String, i64)],
    ) -> Result<Vec<ThreadCounts>> {
        let mut q = QueryBuilder::<Sqlite>::new("");
        if !thread_points.is_empty() {
            q.push("WITH points(thread_id, stream) AS (");
            q.push_values(thread_points, |mut row, (thread, stream)| {
                row.push_bind(thread).push_bind(stream);
            });
            q.push(") ");
        }
        q.push(
            "SELECT p.thread_id, COUNT(*) AS notify,
                    SUM(COALESCE(x.highlight, p.highlight)) AS highlight
             FROM event_push p
             LEFT JOIN event_push_exceptions x
               ON x.room_id = p.room_id AND x.stream = p.stream AND x.user_id = ",
        );
        q.push_bind(user_id);
        q.push(" WHERE p.room_id = ").push_bind(room_id);
        q.push(" AND p.stream > ").push_bind(after);
        q.push(" AND p.stream <= ").push_bind(upto);
        q.push(" AND p.sender != ").push_bind(user_id);
        q.push(" AND COALESCE(x.notify, p.notify) = 1");
        if !thread_points.is_empty() {
            q.push(
                " AND p.stream > COALESCE(
                    (SELECT MAX(t.stream) FROM points t WHERE t.thread_id = p.thread_id), 0)",
            );
        }
        q.push(" GROUP BY p.thread_id");
        Ok(q.build_query_as().fetch_all(self.pool()).await?)
    }

    /// The first event in `after < stream <= upto` that notifies `user_id` in a room they
    /// are joined to (sent after they joined) or invites them.
    pub(crate) async fn next_notification(
        &self,
        user_id: &str,
        after: i64,
        upto: i64,
    ) -> Result<Option<NextNotification>> {
        Ok(sqlx::query_as(
            "SELECT p.room_id, p.stream, p.event_id, COALESCE(x.actions, p.actions) AS actions
             FROM memberships m
             JOIN event_push p ON p.room_id = m.room_id
             LEFT JOIN event_push_exceptions x
               ON x.room_id = p.room_id AND x.stream = p.stream AND x.user_id = m.user_id
             WHERE m.user_id = ?1 AND p.stream > ?2 AND p.stream <= ?3 AND p.sender != ?1
               AND ((m.membership = 'join' AND p.stream > m.stream)
                    OR (m.membership = 'invite' AND p.stream = m.stream))
               AND COALESCE(x.notify, p.notify) = 1
             ORDER BY p.stream LIMIT 1",
        )
        .bind(user_id)
        .bind(after)
        .bind(upto)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Where `user_id`'s read receipts (`m.read`, `m.read.private`) in `room_id` stand, one
    /// per thread (the later of the two types).
    pub(crate) async fn read_points(&self, room_id: &str, user_id: &str) -> Result<Vec<ReadPoint>> {
        Ok(sqlx::query_as(
            "SELECT r.thread_id, MAX(e.stream) AS stream
             FROM receipts r JOIN events e ON e.event_id = r.event_id
             WHERE r.room_id = ? AND r.user_id = ?
               AND r.receipt_type IN ('m.read', 'm.read.private')
             GROUP BY r.thread_id",
        )
        .bind(room_id)
        .bind(user_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// The events before `before` that notify `user_id` in the rooms they are joined to, sent
    /// since they joined, newest first; only highlights when `only_highlight`.
    pub(crate) async fn notifications(
        &self,
        user_id: &str,
        before: i64,
        limit: i64,
        only_highlight: bool,
    ) -> Result<Vec<NotificationRow>> {
        Ok(sqlx::query_as(
            "SELECT p.room_id, p.stream, p.event_id, p.thread_id,
                    COALESCE(x.actions, p.actions) AS actions, p.ts
             FROM memberships m
             JOIN event_push p ON p.room_id = m.room_id AND p.stream > m.stream
             LEFT JOIN event_push_exceptions x
               ON x.room_id = p.room_id AND x.stream = p.stream AND x.user_id = m.user_id
             WHERE m.user_id = ?1 AND m.membership = 'join' AND p.stream < ?2
               AND p.sender != ?1 AND COALESCE(x.notify, p.notify) = 1
               AND (?4 = 0 OR COALESCE(x.highlight, p.highlight) = 1)
             ORDER BY p.stream DESC LIMIT ?3",
        )
        .bind(user_id)
        .bind(before)
        .bind(limit)
        .bind(only_highlight)
        .fetch_all(self.pool())
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(notify: bool, exceptions: Vec<PushException>) -> PushRow {
        PushRow {
            thread_id: String::new(),
            notify,
            highlight: false,
            actions: if notify { r#"["notify"]"# } else { "[]" }.into(),
            exceptions,
        }
    }

    fn loud(user: &str) -> PushException {
        PushException {
            user_id: user.into(),
            notify: true,
            highlight: true,
            actions: r#"["notify",{"set_tweak":"highlight"}]"#.into(),
        }
    }

    fn counts(thread: &str, notify: i64, highlight: i64) -> ThreadCounts {
        ThreadCounts {
            thread_id: thread.into(),
            notify,
            highlight,
        }
    }

    fn in_thread(thread: &str, mut row: PushRow) -> PushRow {
        row.thread_id = thread.into();
        row
    }

    /// Stores the rows of several events at once, as the writer does for a batch.
    async fn push_all(s: &Storage, events: &[(i64, &str, PushRow)]) {
        let mut conn = s.pool().acquire().await.unwrap();
        let ids: Vec<String> = events.iter().map(|(n, ..)| format!("$e{n}")).collect();
        let pushed: Vec<PushedEvent<'_>> = events
            .iter()
            .zip(&ids)
            .map(|((stream, sender, row), event_id)| PushedEvent {
                stream: *stream,
                room_id: "!r:x",
                event_id,
                sender,
                ts: stream * 10,
                row,
            })
            .collect();
        let mut statements = Statements::new();
        push_inserts(&mut statements, &pushed);
        statements.execute(&mut conn).await.unwrap();
    }

    async fn push(s: &Storage, stream: i64, sender: &str, row: PushRow) {
        push_all(s, &[(stream, sender, row)]).await;
    }

    #[tokio::test]
    async fn the_rows_of_a_batch_go_in_together_each_with_its_own_exceptions() {
        let (_dir, s) = crate::storage::temporary().await;
        push_all(
            &s,
            &[
                (1, "@a:x", row(true, vec![loud("@b:x")])),
                (2, "@a:x", row(false, vec![])),
                (3, "@c:x", row(false, vec![loud("@b:x"), loud("@d:x")])),
            ],
        )
        .await;

        let for_b = s
            .unread_by_thread("!r:x", "@b:x", 0, 10, &[])
            .await
            .unwrap();
        assert_eq!(for_b, [counts("", 2, 2)]);
        let for_d = s
            .unread_by_thread("!r:x", "@d:x", 0, 10, &[])
            .await
            .unwrap();
        assert_eq!(for_d, [counts("", 2, 1)]);
    }

    #[tokio::test]
    async fn a_members_exception_replaces_the_default_and_the_sender_never_counts() {
        let (_dir, s) = crate::storage::temporary().await;
        push(&s, 1, "@a:x", row(true, vec![])).await;
        push(&s, 2, "@a:x", row(false, vec![loud("@b:x")])).await;
        push(&s, 3, "@b:x", row(true, vec![])).await;

        let for_b = s
            .unread_by_thread("!r:x", "@b:x", 0, 10, &[])
            .await
            .unwrap();
        assert_eq!(for_b, [counts("", 2, 1)]);
        let for_c = s
            .unread_by_thread("!r:x", "@c:x", 1, 10, &[])
            .await
            .unwrap();
        assert_eq!(for_c, [counts("", 1, 0)]);
        let none_yet = s.unread_by_thread("!r:x", "@c:x", 0, 0, &[]).await.unwrap();
        assert!(none_yet.is_empty());
    }

    #[tokio::test]
    async fn notifications_come_from_rooms_joined_and_only_after_the_join() {
        let (_dir, s) = crate::storage::temporary().await;
        sqlx::query(
            "INSERT INTO memberships (room_id, user_id, membership, event_id, stream)
             VALUES ('!r:x', '@b:x', 'join', '$j', 2)",
        )
        .execute(s.pool())
        .await
        .unwrap();
        push(&s, 1, "@a:x", row(true, vec![])).await;
        push(&s, 3, "@a:x", row(true, vec![])).await;
        push(&s, 4, "@a:x", row(true, vec![loud("@b:x")])).await;

        let all = s.notifications("@b:x", i64::MAX, 10, false).await.unwrap();
        assert_eq!(all.iter().map(|r| r.stream).collect::<Vec<_>>(), [4, 3]);
        assert!(all[0].actions.contains("highlight"));
        let loud_only = s.notifications("@b:x", i64::MAX, 10, true).await.unwrap();
        assert_eq!(loud_only.len(), 1);
        let before = s.notifications("@b:x", 4, 10, false).await.unwrap();
        assert_eq!(
            before
                .iter()
                .map(|r| r.event_id.as_str())
                .collect::<Vec<_>>(),
            ["$e3"]
        );
        assert!(s
            .notifications("@c:x", i64::MAX, 10, false)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn counts_are_per_thread_and_a_threaded_receipt_reads_only_its_thread() {
        let (_dir, s) = crate::storage::temporary().await;
        push(&s, 1, "@a:x", row(true, vec![])).await;
        push(&s, 2, "@a:x", in_thread("$t", row(true, vec![]))).await;
        push(
            &s,
            3,
            "@a:x",
            in_thread("$t", row(true, vec![loud("@b:x")])),
        )
        .await;
        push(&s, 4, "@a:x", in_thread("$u", row(true, vec![]))).await;
        push(&s, 5, "@a:x", row(true, vec![])).await;
        push(&s, 6, "@a:x", row(false, vec![])).await;

        let mut all = s
            .unread_by_thread("!r:x", "@b:x", 0, 10, &[])
            .await
            .unwrap();
        all.sort_by(|a, b| a.thread_id.cmp(&b.thread_id));
        assert_eq!(
            all,
            [counts("", 2, 0), counts("$t", 2, 1), counts("$u", 1, 0)]
        );
        // `$t` read up to 2, the main timeline (`main`) up to 5.
        let points = [("$t".to_string(), 2), (String::new(), 5)];
        let mut read = s
            .unread_by_thread("!r:x", "@b:x", 0, 10, &points)
            .await
            .unwrap();
        read.sort_by(|a, b| a.thread_id.cmp(&b.thread_id));
        assert_eq!(read, [counts("$t", 1, 1), counts("$u", 1, 0)]);
    }

    #[tokio::test]
    async fn the_next_notification_of_a_user_is_after_their_join_and_not_their_own() {
        let (_dir, s) = crate::storage::temporary().await;
        sqlx::query(
            "INSERT INTO memberships (room_id, user_id, membership, event_id, stream)
             VALUES ('!r:x', '@b:x', 'join', '$j', 2)",
        )
        .execute(s.pool())
        .await
        .unwrap();
        push(&s, 1, "@a:x", row(true, vec![])).await;
        push(&s, 3, "@b:x", row(true, vec![])).await;
        push(&s, 4, "@a:x", row(false, vec![])).await;
        push(&s, 5, "@a:x", row(false, vec![loud("@b:x")])).await;
        push(&s, 6, "@a:x", row(true, vec![])).await;

        let next = s.next_notification("@b:x", 0, 10).await.unwrap().unwrap();
        assert_eq!((next.stream, next.event_id.as_str()), (5, "$e5"));
        assert!(next.actions.contains("highlight"));
        let after = s.next_notification("@b:x", 5, 10).await.unwrap().unwrap();
        assert_eq!(after.stream, 6);
        assert_eq!(s.next_notification("@b:x", 5, 5).await.unwrap(), None);
        assert_eq!(s.next_notification("@c:x", 0, 10).await.unwrap(), None);
    }
}
