//! Full-text search of room events through SQLite's FTS5 (`event_search`): the index kept up
//! with `events` in batches ([`Storage::index_search`]), and the matching events of some rooms,
//! ranked by BM25 or newest first, and their count. A redaction takes an event's text out at
//! once (a trigger of migration 0019).

use sqlx::{QueryBuilder, Sqlite};

use super::events::{prefixed_columns, EventRow};
use super::{Result, Storage};

/// The order of results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SearchOrder {
    Rank,
    Recent,
}

/// What one search asks of the index.
#[derive(Debug, Clone)]
pub(crate) struct SearchQuery<'a> {
    /// An FTS5 MATCH expression (see `service::search::fts_query`).
    pub(crate) fts: &'a str,
    pub(crate) rooms: &'a [String],
    /// Which of `content.body`, `content.name`, `content.topic`.
    pub(crate) keys: &'a [String],
    pub(crate) order: SearchOrder,
    pub(crate) offset: i64,
    pub(crate) limit: i64,
}

/// A match: its event, and its rank (higher is better).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct SearchHit {
    #[sqlx(flatten)]
    pub(crate) event: EventRow,
    pub(crate) rank: f64,
}

/// `... MATCH ? AND room_id IN (...) AND key IN (...)` for `q`.
fn push_filter(sql: &mut QueryBuilder<'_, Sqlite>, q: &SearchQuery<'_>) {
    sql.push(" WHERE event_search MATCH ")
        .push_bind(q.fts.to_string())
        .push(" AND event_search.room_id IN (");
    let mut rooms = sql.separated(", ");
    for r in q.rooms {
        rooms.push_bind(r.clone());
    }
    sql.push(") AND event_search.key IN (");
    let mut keys = sql.separated(", ");
    for k in q.keys {
        keys.push_bind(k.clone());
    }
    sql.push(")");
}

/// The searchable text of each event: a message's body, a room's name and topic.
const INDEX_NEW_EVENTS: &str = "
    INSERT INTO event_search (rowid, text, room_id, key)
    SELECT stream, text, room_id, key FROM (
        SELECT stream, room_id,
               CASE type
                 WHEN 'm.room.message' THEN json_extract(json, '$.content.body')
                 WHEN 'm.room.name' THEN json_extract(json, '$.content.name')
                 ELSE json_extract(json, '$.content.topic')
               END AS text,
               CASE type
                 WHEN 'm.room.message' THEN 'content.body'
                 WHEN 'm.room.name' THEN 'content.name'
                 ELSE 'content.topic'
               END AS key
        FROM events
        WHERE stream > ?1 AND redacted_by IS NULL
          AND ((state_key IS NULL AND type = 'm.room.message')
               OR (state_key = '' AND type IN ('m.room.name', 'm.room.topic'))))
    WHERE typeof(text) = 'text'";

impl Storage {
    /// Indexes the events stored since the index was last brought up to date, in one
    /// transaction that holds the write lock from its start, so that no event commits between
    /// what it reads and the position it records. Answers how many events it looked past.
    /// FTS5 writes a segment of its index per transaction: indexing many events at once costs
    /// far less than a segment per group commit of the send path.
    pub(crate) async fn index_search(&self) -> Result<i64> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let (from,): (i64,) = sqlx::query_as("SELECT upto FROM search_indexed")
            .fetch_one(&mut *tx)
            .await?;
        let (upto,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(stream), 0) FROM events")
            .fetch_one(&mut *tx)
            .await?;
        if upto <= from {
            return Ok(0);
        }
        sqlx::query(INDEX_NEW_EVENTS)
            .bind(from)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE search_indexed SET upto = ?")
            .bind(upto)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(upto - from)
    }

    /// A page of matches.
    pub(crate) async fn search_events(&self, q: &SearchQuery<'_>) -> Result<Vec<SearchHit>> {
        if q.rooms.is_empty() || q.keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
            "SELECT {}, -bm25(event_search) AS rank FROM event_search \
             JOIN events e ON e.stream = event_search.rowid",
            prefixed_columns()
        ));
        push_filter(&mut sql, q);
        sql.push(match q.order {
            SearchOrder::Rank => " ORDER BY rank DESC, e.stream DESC",
            SearchOrder::Recent => " ORDER BY e.stream DESC",
        });
        sql.push(" LIMIT ")
            .push_bind(q.limit)
            .push(" OFFSET ")
            .push_bind(q.offset);
        Ok(sql.build_query_as().fetch_all(self.pool()).await?)
    }

    /// How many events match, whoever may see them: the spec's approximate `count`.
    pub(crate) async fn count_search_matches(&self, q: &SearchQuery<'_>) -> Result<i64> {
        if q.rooms.is_empty() || q.keys.is_empty() {
            return Ok(0);
        }
        let mut sql: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT COUNT(*) FROM event_search");
        push_filter(&mut sql, q);
        let (count,): (i64,) = sql.build_query_as().fetch_one(self.pool()).await?;
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::events::{insert, NewEvent};
    use serde_json::json;

    fn event(
        stream: i64,
        room: &str,
        kind: &str,
        state_key: Option<&str>,
        content: serde_json::Value,
    ) -> NewEvent {
        NewEvent {
            event_id: format!("$e{stream}"),
            room_id: room.into(),
            sender: "@a:x".into(),
            kind: kind.into(),
            state_key: state_key.map(str::to_string),
            depth: stream,
            origin_server_ts: stream,
            json: json!({ "type": kind, "content": content }).to_string(),
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

    fn ids(hits: &[SearchHit]) -> Vec<&str> {
        hits.iter().map(|h| h.event.event_id.as_str()).collect()
    }

    #[tokio::test]
    async fn messages_names_and_topics_are_found_by_room_key_and_order_and_redactions_go() {
        let (_dir, s) = crate::storage::temporary().await;
        let events = [
            event(
                1,
                "!a:x",
                "m.room.message",
                None,
                json!({ "body": "cheese cheese cheese" }),
            ),
            event(
                2,
                "!a:x",
                "m.room.message",
                None,
                json!({ "body": "some cheese, and bread" }),
            ),
            event(
                3,
                "!b:x",
                "m.room.message",
                None,
                json!({ "body": "cheese elsewhere" }),
            ),
            event(
                4,
                "!a:x",
                "m.room.name",
                Some(""),
                json!({ "name": "Cheese club" }),
            ),
            event(5, "!a:x", "m.room.message", None, json!({ "body": 5 })),
            event(6, "!a:x", "m.reaction", None, json!({ "body": "cheese" })),
        ];
        let mut conn = s.pool().acquire().await.unwrap();
        let rows: Vec<(i64, &NewEvent)> = events.iter().map(|e| (e.depth, e)).collect();
        insert(&mut conn, &rows).await.unwrap();
        drop(conn);
        assert_eq!(s.index_search().await.unwrap(), 6);
        let rooms = ["!a:x".to_string()];
        let all_keys = ["content.body".to_string(), "content.name".to_string()];
        let mut q = SearchQuery {
            fts: "\"cheese\"*",
            rooms: &rooms,
            keys: &all_keys,
            order: SearchOrder::Recent,
            offset: 0,
            limit: 10,
        };
        assert_eq!(
            ids(&s.search_events(&q).await.unwrap()),
            ["$e4", "$e2", "$e1"]
        );
        assert_eq!(s.count_search_matches(&q).await.unwrap(), 3);
        q.order = SearchOrder::Rank;
        let ranked = s.search_events(&q).await.unwrap();
        assert_eq!(ranked.len(), 3);
        assert!(ranked[0].rank >= ranked[1].rank && ranked[1].rank >= ranked[2].rank);
        let bodies = ["content.body".to_string()];
        q.keys = &bodies;
        q.order = SearchOrder::Recent;
        assert_eq!(ids(&s.search_events(&q).await.unwrap()), ["$e2", "$e1"]);
        q.offset = 1;
        assert_eq!(ids(&s.search_events(&q).await.unwrap()), ["$e1"]);
        q.offset = 0;
        sqlx::query("UPDATE events SET redacted_by = '$r' WHERE stream = 2")
            .execute(s.pool())
            .await
            .unwrap();
        assert_eq!(ids(&s.search_events(&q).await.unwrap()), ["$e1"]);
    }

    #[tokio::test]
    async fn the_index_takes_what_was_stored_since_it_last_ran_once_and_never_a_redacted_event() {
        let (_dir, s) = crate::storage::temporary().await;
        let rooms = ["!a:x".to_string()];
        let keys = ["content.body".to_string()];
        let q = SearchQuery {
            fts: "\"tea\"*",
            rooms: &rooms,
            keys: &keys,
            order: SearchOrder::Recent,
            offset: 0,
            limit: 10,
        };
        let store = |events: Vec<NewEvent>| {
            let s = s.clone();
            async move {
                let mut conn = s.pool().acquire().await.unwrap();
                let rows: Vec<(i64, &NewEvent)> = events.iter().map(|e| (e.depth, e)).collect();
                insert(&mut conn, &rows).await.unwrap();
            }
        };
        let tea = |n: i64| event(n, "!a:x", "m.room.message", None, json!({ "body": "tea" }));
        store(vec![tea(1), tea(2)]).await;
        // Not yet indexed: not found.
        assert!(s.search_events(&q).await.unwrap().is_empty());
        assert_eq!(s.index_search().await.unwrap(), 2);
        assert_eq!(s.index_search().await.unwrap(), 0);
        assert_eq!(ids(&s.search_events(&q).await.unwrap()), ["$e2", "$e1"]);
        // Redacted before the index reached it: never indexed.
        store(vec![tea(3), tea(4)]).await;
        sqlx::query("UPDATE events SET redacted_by = '$r' WHERE stream = 3")
            .execute(s.pool())
            .await
            .unwrap();
        assert_eq!(s.index_search().await.unwrap(), 2);
        assert_eq!(
            ids(&s.search_events(&q).await.unwrap()),
            ["$e4", "$e2", "$e1"]
        );
        assert_eq!(s.count_search_matches(&q).await.unwrap(), 3);
    }
}
