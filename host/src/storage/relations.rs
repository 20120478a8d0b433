//! Relations between events (`content.m.relates_to`), read through the `relates_to` and
//! `rel_type` columns the events table derives from each event's JSON: an event's children
//! (`/relations`), the figures of its aggregations (`unsigned.m.relations`) and a room's
//! threads (`/threads`). A redacted event relates to nothing: its relation was redacted too.

use sqlx::{QueryBuilder, Sqlite};

use super::events::{Direction, EventRow, COLUMNS};
use super::{Result, Storage};

/// What `/relations` asks for.
#[derive(Debug, Clone)]
pub(crate) struct ChildrenQuery<'a> {
    pub(crate) room_id: &'a str,
    pub(crate) parent: &'a str,
    pub(crate) rel_type: Option<&'a str>,
    pub(crate) event_type: Option<&'a str>,
    pub(crate) dir: Direction,
    /// Where to start, as `/messages` reads its tokens: forward, after `from`; backward, at
    /// `from` and before.
    pub(crate) from: Option<i64>,
    /// Where to stop: forward, at `to`; backward, after `to`.
    pub(crate) to: Option<i64>,
    pub(crate) limit: i64,
    /// How many relations deep to follow: 1 for the direct children.
    pub(crate) depth: i64,
}

/// One kind of relation to one event, summed up: what an aggregation is made of.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct RelationSummary {
    pub(crate) parent: String,
    pub(crate) rel_type: String,
    pub(crate) count: i64,
    /// The stream position of the newest relating event.
    pub(crate) latest: i64,
    /// Whether the asking user sent one of them.
    pub(crate) by_user: bool,
    /// The relating events' ids, comma-separated (references only).
    pub(crate) ids: Option<String>,
}

/// The relation kinds the server aggregates.
const AGGREGATED: &str = "('m.thread', 'm.replace', 'm.reference')";

impl Storage {
    /// The events relating to `q.parent` (to `q.depth` levels), newest first backward.
    pub(crate) async fn relation_children(&self, q: &ChildrenQuery<'_>) -> Result<Vec<EventRow>> {
        let mut sql: QueryBuilder<Sqlite> =
            QueryBuilder::new("WITH RECURSIVE tree(event_id, depth) AS (SELECT ");
        sql.push_bind(q.parent)
            .push(
                ", 0 UNION SELECT e.event_id, tree.depth + 1 FROM events e JOIN tree \
                 ON e.relates_to = tree.event_id WHERE e.redacted_by IS NULL AND tree.depth < ",
            )
            .push_bind(q.depth)
            .push(" AND e.room_id = ")
            .push_bind(q.room_id)
            .push(format!(
                ") SELECT {COLUMNS} FROM events WHERE event_id IN \
                 (SELECT event_id FROM tree WHERE depth > 0)"
            ));
        if let Some(rel_type) = q.rel_type {
            sql.push(" AND rel_type = ").push_bind(rel_type);
        }
        if let Some(kind) = q.event_type {
            sql.push(" AND type = ").push_bind(kind);
        }
        let (after, until, order) = match q.dir {
            Direction::Backward => (" AND stream <= ", " AND stream > ", " ORDER BY stream DESC"),
            Direction::Forward => (" AND stream > ", " AND stream <= ", " ORDER BY stream ASC"),
        };
        if let Some(from) = q.from {
            sql.push(after).push_bind(from);
        }
        if let Some(to) = q.to {
            sql.push(until).push_bind(to);
        }
        sql.push(order).push(" LIMIT ").push_bind(q.limit);
        Ok(sql.build_query_as().fetch_all(self.pool()).await?)
    }

    /// The thread, edit and reference summaries of `parents`, as `user` sees them: an edit
    /// counts only when its sender sent the event it edits.
    pub(crate) async fn relation_summaries(
        &self,
        parents: &[&str],
        user: &str,
    ) -> Result<Vec<RelationSummary>> {
        if parents.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for chunk in parents.chunks(500) {
            let mut sql: QueryBuilder<Sqlite> = QueryBuilder::new(
                "SELECT e.relates_to AS parent, e.rel_type AS rel_type, COUNT(*) AS count, \
                 MAX(e.stream) AS latest, MAX(e.sender = ",
            );
            sql.push_bind(user).push(format!(
                ") AS by_user, CASE e.rel_type WHEN 'm.reference' THEN GROUP_CONCAT(e.event_id) \
                 END AS ids FROM events e JOIN events p ON p.event_id = e.relates_to \
                 WHERE e.redacted_by IS NULL AND e.rel_type IN {AGGREGATED} \
                 AND (e.rel_type != 'm.replace' OR e.sender = p.sender) AND e.relates_to IN ("
            ));
            let mut ids = sql.separated(", ");
            for p in chunk {
                ids.push_bind(*p);
            }
            sql.push(") GROUP BY e.relates_to, e.rel_type");
            out.extend(
                sql.build_query_as::<RelationSummary>()
                    .fetch_all(self.pool())
                    .await?,
            );
        }
        Ok(out)
    }

    /// Events by stream position, in no particular order.
    pub(crate) async fn events_at(&self, streams: &[i64]) -> Result<Vec<EventRow>> {
        if streams.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql: QueryBuilder<Sqlite> =
            QueryBuilder::new(format!("SELECT {COLUMNS} FROM events WHERE stream IN ("));
        let mut list = sql.separated(", ");
        for s in streams.iter().take(500) {
            list.push_bind(*s);
        }
        sql.push(")");
        Ok(sql.build_query_as().fetch_all(self.pool()).await?)
    }

    /// A room's thread roots with the stream position of their latest reply, the most recently
    /// active first, below `before` (the previous page's last); with `participant`, only the
    /// threads that user started or replied in.
    pub(crate) async fn thread_roots(
        &self,
        room_id: &str,
        before: Option<i64>,
        participant: Option<&str>,
        limit: i64,
    ) -> Result<Vec<(String, i64)>> {
        let mut sql: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT e.relates_to, MAX(e.stream) AS latest FROM events e WHERE e.room_id = ",
        );
        sql.push_bind(room_id).push(
            " AND e.rel_type = 'm.thread' AND e.redacted_by IS NULL GROUP BY e.relates_to HAVING 1",
        );
        if let Some(before) = before {
            sql.push(" AND latest < ").push_bind(before);
        }
        if let Some(user) = participant {
            sql.push(" AND (MAX(e.sender = ")
                .push_bind(user)
                .push(") OR (SELECT r.sender FROM events r WHERE r.event_id = e.relates_to) = ")
                .push_bind(user)
                .push(")");
        }
        sql.push(" ORDER BY latest DESC LIMIT ").push_bind(limit);
        Ok(sql.build_query_as().fetch_all(self.pool()).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::events::NewEvent;
    use serde_json::{json, Value};

    fn event(stream: i64, id: &str, sender: &str, content: Value) -> NewEvent {
        NewEvent {
            event_id: id.into(),
            room_id: "!r:x".into(),
            sender: sender.into(),
            kind: "m.room.message".into(),
            state_key: None,
            depth: stream,
            origin_server_ts: stream,
            json: json!({ "type": "m.room.message", "content": content }).to_string(),
            membership: None,
            txn: None,
            redacts: None,
            new_room: None,
            history_visibility: None,
            room_version: "10",
            push: None,
            graph: Default::default(),
        }
    }

    fn rel(rel_type: &str, to: &str) -> Value {
        json!({ "body": "x", "m.relates_to": { "rel_type": rel_type, "event_id": to } })
    }

    async fn store(s: &Storage, events: &[NewEvent]) {
        let mut conn = s.pool().acquire().await.unwrap();
        let rows: Vec<(i64, &NewEvent)> = events.iter().map(|e| (e.depth, e)).collect();
        crate::storage::events::insert(&mut conn, &rows)
            .await
            .unwrap();
    }

    fn query<'a>(parent: &'a str, dir: Direction, depth: i64) -> ChildrenQuery<'a> {
        ChildrenQuery {
            room_id: "!r:x",
            parent,
            rel_type: None,
            event_type: None,
            dir,
            from: None,
            to: None,
            limit: 10,
            depth,
        }
    }

    fn ids(rows: &[EventRow]) -> Vec<&str> {
        rows.iter().map(|r| r.event_id.as_str()).collect()
    }

    #[tokio::test]
    async fn children_come_by_relation_type_direction_and_depth_and_never_redacted() {
        let (_dir, s) = crate::storage::temporary().await;
        store(
            &s,
            &[
                event(1, "$root", "@a:x", json!({ "body": "root" })),
                event(2, "$t1", "@b:x", rel("m.thread", "$root")),
                event(3, "$edit", "@b:x", rel("m.replace", "$t1")),
                event(4, "$t2", "@a:x", rel("m.thread", "$root")),
                event(5, "$ref", "@a:x", rel("m.reference", "$root")),
            ],
        )
        .await;
        let back = s
            .relation_children(&query("$root", Direction::Backward, 1))
            .await
            .unwrap();
        assert_eq!(ids(&back), ["$ref", "$t2", "$t1"]);
        let mut threads = query("$root", Direction::Forward, 1);
        threads.rel_type = Some("m.thread");
        threads.from = Some(2);
        assert_eq!(ids(&s.relation_children(&threads).await.unwrap()), ["$t2"]);
        let deep = s
            .relation_children(&query("$root", Direction::Forward, 3))
            .await
            .unwrap();
        assert_eq!(ids(&deep), ["$t1", "$edit", "$t2", "$ref"]);
        sqlx::query("UPDATE events SET redacted_by = '$x' WHERE event_id = '$t2'")
            .execute(s.pool())
            .await
            .unwrap();
        let back = s
            .relation_children(&query("$root", Direction::Backward, 1))
            .await
            .unwrap();
        assert_eq!(ids(&back), ["$ref", "$t1"]);
    }

    #[tokio::test]
    async fn summaries_count_threads_keep_edits_by_the_sender_and_list_references() {
        let (_dir, s) = crate::storage::temporary().await;
        store(
            &s,
            &[
                event(1, "$root", "@a:x", json!({ "body": "root" })),
                event(2, "$t1", "@b:x", rel("m.thread", "$root")),
                event(3, "$t2", "@c:x", rel("m.thread", "$root")),
                event(4, "$e1", "@a:x", rel("m.replace", "$root")),
                event(5, "$forged", "@b:x", rel("m.replace", "$root")),
                event(6, "$r1", "@b:x", rel("m.reference", "$root")),
                event(7, "$like", "@b:x", rel("m.annotation", "$root")),
            ],
        )
        .await;
        let mut got = s.relation_summaries(&["$root"], "@b:x").await.unwrap();
        got.sort_by(|a, b| a.rel_type.cmp(&b.rel_type));
        let seen: Vec<_> = got
            .iter()
            .map(|g| (g.rel_type.as_str(), g.count, g.latest, g.by_user))
            .collect();
        assert_eq!(
            seen,
            [
                ("m.reference", 1, 6, true),
                ("m.replace", 1, 4, false),
                ("m.thread", 2, 3, true)
            ]
        );
        assert_eq!(got[0].ids.as_deref(), Some("$r1"));
    }

    #[tokio::test]
    async fn threads_list_by_latest_reply_and_by_participant() {
        let (_dir, s) = crate::storage::temporary().await;
        store(
            &s,
            &[
                event(1, "$a", "@a:x", json!({ "body": "a" })),
                event(2, "$b", "@b:x", json!({ "body": "b" })),
                event(3, "$a1", "@c:x", rel("m.thread", "$a")),
                event(4, "$b1", "@c:x", rel("m.thread", "$b")),
                event(5, "$a2", "@c:x", rel("m.thread", "$a")),
            ],
        )
        .await;
        let all = s.thread_roots("!r:x", None, None, 10).await.unwrap();
        assert_eq!(all, [("$a".to_string(), 5), ("$b".to_string(), 4)]);
        let older = s.thread_roots("!r:x", Some(5), None, 10).await.unwrap();
        assert_eq!(older, [("$b".to_string(), 4)]);
        let mine = s
            .thread_roots("!r:x", None, Some("@b:x"), 10)
            .await
            .unwrap();
        assert_eq!(mine, [("$b".to_string(), 4)]);
        let replied = s.thread_roots("!r:x", None, Some("@c:x"), 1).await.unwrap();
        assert_eq!(replied, [("$a".to_string(), 5)]);
    }
}
