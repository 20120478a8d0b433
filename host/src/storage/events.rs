//! The event log and the rows derived from each event (room state, memberships, transaction
//! ids, redactions, a new room's row): the write of a new event, and the reads by id, by room
//! and stream range, and by transaction id.

use sqlx::SqliteConnection;

use super::graph::{self, GraphRows};
use super::push_actions::{self, PushRow, PushedEvent};
use super::statements::{Statements, ROWS_PER_STATEMENT};
use super::{Result, Storage};

/// `(user, device, scope, txn_id)`: the scope is the room and event type of the request.
pub(crate) type TxnRow = (String, String, String, String);

/// A new event and the derived rows that must commit with it.
#[derive(Debug, Clone)]
pub(crate) struct NewEvent {
    pub(crate) event_id: String,
    pub(crate) room_id: String,
    pub(crate) sender: String,
    pub(crate) kind: String,
    pub(crate) state_key: Option<String>,
    pub(crate) depth: i64,
    pub(crate) origin_server_ts: i64,
    pub(crate) json: String,
    /// The member whose membership this event sets, and to what.
    pub(crate) membership: Option<(String, String)>,
    /// For idempotent client sends.
    pub(crate) txn: Option<TxnRow>,
    pub(crate) redacts: Option<String>,
    /// Set on a room's create event: `(room_version, creator)`.
    pub(crate) new_room: Option<(String, String)>,
    /// The room's history visibility when the event was sent.
    pub(crate) history_visibility: Option<String>,
    /// The room's version (the recent-events cache serves the event with its rules).
    pub(crate) room_version: &'static str,
    /// What the push rules made of it, when it notifies someone.
    pub(crate) push: Option<PushRow>,
    /// Where it stands in its room's graph, and what it changes there.
    pub(crate) graph: GraphRows,
}

impl NewEvent {
    /// Whether storing it changes someone's membership of its room: its own member event, or
    /// (for an event of another server) an entry of the current state it resolves to.
    pub(crate) fn changes_members(&self) -> bool {
        self.membership.is_some()
            || self
                .graph
                .resolved
                .as_ref()
                .is_some_and(|entries| entries.iter().any(|e| e.membership.is_some()))
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub stream: i64,
    pub event_id: String,
    pub room_id: String,
    pub sender: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub state_key: Option<String>,
    pub json: String,
    pub redacted_by: Option<String>,
    pub txn_device: Option<String>,
    pub txn_id: Option<String>,
    pub history_visibility: Option<String>,
    /// The version of the event's room, read from `rooms` in the same statement: the rules
    /// the event is redacted by when it is served. `None` only for a room without its row.
    pub room_version: Option<String>,
}

/// The `events` columns of an [`EventRow`], without its room's version.
macro_rules! event_columns {
    () => {
        "stream, event_id, room_id, sender, type, state_key, json, redacted_by, txn_device, \
         txn_id, history_visibility"
    };
}

/// An [`EventRow`] read from `events`: its columns and its room's version, looked up by the
/// rooms table's key in the same statement (no query per event).
pub(super) const COLUMNS: &str = concat!(
    event_columns!(),
    ", (SELECT room_version FROM rooms WHERE rooms.room_id = events.room_id) AS room_version"
);

/// [`COLUMNS`] of the `events` table joined as `e`.
pub(super) fn prefixed_columns() -> String {
    let mut columns = event_columns!()
        .split(", ")
        .map(|c| format!("e.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    columns.push_str(
        ", (SELECT room_version FROM rooms WHERE rooms.room_id = e.room_id) AS room_version",
    );
    columns
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct MemberEvent {
    pub(crate) stream: i64,
    pub(crate) membership: String,
    pub(crate) event_id: String,
}

/// What an event's visibility depends on, without its JSON.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct EventHeader {
    pub(crate) stream: i64,
    pub(crate) event_id: String,
    pub(crate) room_id: String,
    #[sqlx(rename = "type")]
    pub(crate) kind: String,
    pub(crate) state_key: Option<String>,
    pub(crate) history_visibility: Option<String>,
}

/// Ids looked up by one statement of [`Storage::event_headers`]: well inside SQLite's limit
/// on bound parameters.
const IDS_PER_STATEMENT: usize = 500;

/// Which way a range read walks the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Forward,
    Backward,
}

impl Storage {
    pub(crate) async fn event(&self, event_id: &str) -> Result<Option<EventRow>> {
        Ok(
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM events WHERE event_id = ?"))
                .bind(event_id)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// The headers of the events of `event_ids` the server has, by id.
    pub(crate) async fn event_headers(
        &self,
        event_ids: &[String],
    ) -> Result<std::collections::HashMap<String, EventHeader>> {
        let mut found = std::collections::HashMap::with_capacity(event_ids.len());
        for chunk in event_ids.chunks(IDS_PER_STATEMENT) {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "SELECT stream, event_id, room_id, type, state_key, history_visibility
                 FROM events WHERE event_id IN (",
            );
            let mut ids = q.separated(", ");
            for id in chunk {
                ids.push_bind(id);
            }
            q.push(")");
            let rows: Vec<EventHeader> = q.build_query_as().fetch_all(self.pool()).await?;
            for row in rows {
                found.insert(row.event_id.clone(), row);
            }
        }
        Ok(found)
    }

    /// The first and the last event of a room with `after < stream < before` (one when
    /// there is one, none when there is none).
    pub(crate) async fn room_stretch_ends(
        &self,
        room_id: &str,
        after: i64,
        before: i64,
    ) -> Result<Vec<EventRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM events WHERE stream IN (
                 (SELECT MIN(stream) FROM events WHERE room_id = ?1 AND stream > ?2 AND stream < ?3),
                 (SELECT MAX(stream) FROM events WHERE room_id = ?1 AND stream > ?2 AND stream < ?3))"
        ))
        .bind(room_id)
        .bind(after)
        .bind(before)
        .fetch_all(self.pool())
        .await?)
    }

    /// Events of a room with `after < stream <= upto`, oldest first, at most `limit`; when
    /// there are more, the newest `limit` of them (a /sync timeline wants the latest).
    pub(crate) async fn room_events_latest(
        &self,
        room_id: &str,
        after: i64,
        upto: i64,
        limit: i64,
    ) -> Result<Vec<EventRow>> {
        let mut rows: Vec<EventRow> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM events WHERE room_id = ? AND stream > ? AND stream <= ?
             ORDER BY stream DESC LIMIT ?"
        ))
        .bind(room_id)
        .bind(after)
        .bind(upto)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.reverse();
        Ok(rows)
    }

    /// Pagination: forward, events with `from < stream <= bound`, oldest first; backward,
    /// events with `bound < stream <= from`, newest first.
    pub(crate) async fn room_events_page(
        &self,
        room_id: &str,
        from: i64,
        bound: i64,
        dir: Direction,
        limit: i64,
    ) -> Result<Vec<EventRow>> {
        let sql = match dir {
            Direction::Forward => format!(
                "SELECT {COLUMNS} FROM events WHERE room_id = ? AND stream > ? AND stream <= ?
                 ORDER BY stream ASC LIMIT ?"
            ),
            Direction::Backward => format!(
                "SELECT {COLUMNS} FROM events WHERE room_id = ? AND stream <= ? AND stream > ?
                 ORDER BY stream DESC LIMIT ?"
            ),
        };
        Ok(sqlx::query_as(&sql)
            .bind(room_id)
            .bind(from)
            .bind(bound)
            .bind(limit)
            .fetch_all(self.pool())
            .await?)
    }

    /// The current state of a room, with each event's row.
    pub(crate) async fn current_state(&self, room_id: &str) -> Result<Vec<EventRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {} FROM room_state s JOIN events e ON e.event_id = s.event_id
             WHERE s.room_id = ?",
            prefixed_columns()
        ))
        .bind(room_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// One event of the current state of a room.
    pub(crate) async fn state_event(
        &self,
        room_id: &str,
        kind: &str,
        state_key: &str,
    ) -> Result<Option<EventRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {} FROM room_state s JOIN events e ON e.event_id = s.event_id
             WHERE s.room_id = ? AND s.type = ? AND s.state_key = ?",
            prefixed_columns()
        ))
        .bind(room_id)
        .bind(kind)
        .bind(state_key)
        .fetch_optional(self.pool())
        .await?)
    }

    pub(crate) async fn txn_event(
        &self,
        user_id: &str,
        device_id: &str,
        scope: &str,
        txn_id: &str,
    ) -> Result<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT event_id FROM txn_ids
             WHERE user_id = ? AND device_id = ? AND scope = ? AND txn_id = ?",
        )
        .bind(user_id)
        .bind(device_id)
        .bind(scope)
        .bind(txn_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| r.0))
    }

    /// A user's membership events in a room, newest first.
    pub(crate) async fn member_history(
        &self,
        room_id: &str,
        user_id: &str,
    ) -> Result<Vec<MemberEvent>> {
        Ok(sqlx::query_as(
            "SELECT stream, COALESCE(json_extract(json, '$.content.membership'), '') AS membership,
                event_id FROM events
             WHERE room_id = ? AND type = 'm.room.member' AND state_key = ?
             ORDER BY stream DESC",
        )
        .bind(room_id)
        .bind(user_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Every `(scope, txn_id)` a device has sent.
    pub(crate) async fn device_txns(
        &self,
        user_id: &str,
        device_id: &str,
    ) -> Result<Vec<(String, String)>> {
        Ok(
            sqlx::query_as("SELECT scope, txn_id FROM txn_ids WHERE user_id = ? AND device_id = ?")
                .bind(user_id)
                .bind(device_id)
                .fetch_all(self.pool())
                .await?,
        )
    }

    /// Events of every room with `after < stream <= upto`, oldest first, at most `limit`.
    pub async fn events_range(&self, after: i64, upto: i64, limit: i64) -> Result<Vec<EventRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM events WHERE stream > ? AND stream <= ?
             ORDER BY stream ASC LIMIT ?"
        ))
        .bind(after)
        .bind(upto)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// How many events have `after < stream <= upto`.
    pub(crate) async fn count_events_between(&self, after: i64, upto: i64) -> Result<i64> {
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM events WHERE stream > ? AND stream <= ?")
                .bind(after)
                .bind(upto)
                .fetch_one(self.pool())
                .await?;
        Ok(n)
    }
}

/// Inserts the rows of `events` (each with its stream position), their txn ids, the
/// extremities they leave and what the push rules made of them, as multi-row statements sent
/// together ([`Statements`]): one round trip to SQLite's thread for the batch. The rows
/// derived from each event follow with [`NewEvent::apply`].
pub(super) async fn insert(conn: &mut SqliteConnection, events: &[(i64, &NewEvent)]) -> Result<()> {
    let mut statements = Statements::new();
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        push_events(&mut statements, chunk);
        push_txn_ids(&mut statements, chunk);
    }
    let graphs: Vec<(&str, &str, &GraphRows)> = events
        .iter()
        .map(|(_, e)| (e.room_id.as_str(), e.event_id.as_str(), &e.graph))
        .collect();
    graph::push_extremities(&mut statements, &graphs);
    let pushed: Vec<PushedEvent<'_>> = events
        .iter()
        .filter_map(|(stream, e)| {
            Some(PushedEvent {
                stream: *stream,
                room_id: &e.room_id,
                event_id: &e.event_id,
                sender: &e.sender,
                ts: e.origin_server_ts,
                row: e.push.as_ref()?,
            })
        })
        .collect();
    push_actions::push_inserts(&mut statements, &pushed);
    statements.execute(conn).await
}

fn push_events<'a>(statements: &mut Statements<'a>, rows: &'a [(i64, &'a NewEvent)]) {
    statements
        .next(
            "INSERT INTO events (stream, event_id, room_id, sender, type, state_key, depth,
                origin_server_ts, json, txn_device, txn_id, history_visibility, state_group) ",
        )
        .push_values(rows, |mut b, (stream, e)| {
            let (txn_device, txn_id) = match &e.txn {
                Some((_, device, _, txn)) => (Some(device.as_str()), Some(txn.as_str())),
                None => (None, None),
            };
            b.push_bind(*stream)
                .push_bind(e.event_id.as_str())
                .push_bind(e.room_id.as_str())
                .push_bind(e.sender.as_str())
                .push_bind(e.kind.as_str())
                .push_bind(e.state_key.as_deref())
                .push_bind(e.depth)
                .push_bind(e.origin_server_ts)
                .push_bind(e.json.as_str())
                .push_bind(txn_device)
                .push_bind(txn_id)
                .push_bind(e.history_visibility.as_deref())
                .push_bind(e.graph.state_group);
        });
}

fn push_txn_ids<'a>(statements: &mut Statements<'a>, rows: &'a [(i64, &'a NewEvent)]) {
    let with_txn: Vec<(&NewEvent, &TxnRow)> = rows
        .iter()
        .filter_map(|(_, e)| e.txn.as_ref().map(|t| (*e, t)))
        .collect();
    if with_txn.is_empty() {
        return;
    }
    statements
        .next("INSERT OR IGNORE INTO txn_ids (user_id, device_id, scope, txn_id, event_id) ")
        .push_values(with_txn, |mut b, (e, (user, device, scope, txn))| {
            b.push_bind(user.as_str())
                .push_bind(device.as_str())
                .push_bind(scope.as_str())
                .push_bind(txn.as_str())
                .push_bind(e.event_id.as_str());
        });
}

/// Makes `event_id` the room's current state event of `(kind, state_key)`.
pub(super) async fn set_current_state(
    conn: &mut SqliteConnection,
    room_id: &str,
    kind: &str,
    state_key: &str,
    event_id: &str,
    stream: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO room_state (room_id, type, state_key, event_id, stream)
         VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (room_id, type, state_key)
         DO UPDATE SET event_id = excluded.event_id, stream = excluded.stream",
    )
    .bind(room_id)
    .bind(kind)
    .bind(state_key)
    .bind(event_id)
    .bind(stream)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Makes `membership` (by the event `event_id`) `user`'s membership of the room; a changed
/// membership is not forgotten.
pub(super) async fn set_membership(
    conn: &mut SqliteConnection,
    room_id: &str,
    user: &str,
    membership: &str,
    event_id: &str,
    stream: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO memberships (room_id, user_id, membership, event_id, stream)
         VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (room_id, user_id) DO UPDATE SET
            membership = excluded.membership, event_id = excluded.event_id,
            stream = excluded.stream, forgotten = 0",
    )
    .bind(room_id)
    .bind(user)
    .bind(membership)
    .bind(event_id)
    .bind(stream)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl NewEvent {
    /// Writes the rows derived from the event, stored at `stream` by [`insert`]: a new room's
    /// row, the room's current state, the member's membership, the redacted event's mark.
    pub(super) async fn apply(&self, conn: &mut SqliteConnection, stream: i64) -> Result<()> {
        if let Some((version, creator)) = &self.new_room {
            sqlx::query(
                "INSERT INTO rooms (room_id, room_version, creator, created_ts)
                 VALUES (?, ?, ?, ?)",
            )
            .bind(&self.room_id)
            .bind(version)
            .bind(creator)
            .bind(self.origin_server_ts)
            .execute(&mut *conn)
            .await?;
        }
        // After the room's row, which a create event's current group updates.
        self.graph.apply(conn, &self.room_id, stream).await?;
        // An event of another server changes the current state as its graph rows say.
        let local = self.graph.resolved.is_none();
        if let Some(state_key) = self.state_key.as_ref().filter(|_| local) {
            set_current_state(
                conn,
                &self.room_id,
                &self.kind,
                state_key,
                &self.event_id,
                stream,
            )
            .await?;
        }
        if let Some((user, membership)) = self.membership.as_ref().filter(|_| local) {
            set_membership(
                conn,
                &self.room_id,
                user,
                membership,
                &self.event_id,
                stream,
            )
            .await?;
        }
        if let Some(target) = &self.redacts {
            sqlx::query(
                "UPDATE events SET redacted_by = ? WHERE event_id = ? AND room_id = ?
                    AND redacted_by IS NULL",
            )
            .bind(&self.event_id)
            .bind(target)
            .bind(&self.room_id)
            .execute(&mut *conn)
            .await?;
            // A redacted event notifies nobody any more: counts and /notifications drop it.
            for table in ["event_push", "event_push_exceptions"] {
                sqlx::query(&format!(
                    "DELETE FROM {table} WHERE room_id = ?1
                       AND stream = (SELECT stream FROM events WHERE event_id = ?2 AND room_id = ?1)"
                ))
                .bind(&self.room_id)
                .bind(target)
                .execute(&mut *conn)
                .await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOM: &str = "!r:x";

    fn event(id: &str, kind: &str, state_key: Option<&str>) -> NewEvent {
        NewEvent {
            event_id: id.into(),
            room_id: ROOM.into(),
            sender: "@a:x".into(),
            kind: kind.into(),
            state_key: state_key.map(Into::into),
            depth: 1,
            origin_server_ts: 7,
            json: format!(r#"{{"event_id":"{id}"}}"#),
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

    /// Commits `events` as the writer does: their rows together, then each one's derived rows.
    async fn commit(s: &Storage, events: &[(i64, &NewEvent)]) {
        let mut tx = s.pool().begin().await.unwrap();
        insert(&mut tx, events).await.unwrap();
        for (stream, e) in events {
            e.apply(&mut tx, *stream).await.unwrap();
        }
        tx.commit().await.unwrap();
    }

    #[tokio::test]
    async fn a_new_event_commits_with_its_room_its_state_its_membership_and_its_txn_id() {
        let (_dir, s) = crate::storage::temporary().await;
        let create = NewEvent {
            new_room: Some(("10".into(), "@a:x".into())),
            ..event("$create", "m.room.create", Some(""))
        };
        let join = NewEvent {
            membership: Some(("@a:x".into(), "join".into())),
            txn: Some(("@a:x".into(), "D".into(), "scope".into(), "t1".into())),
            ..event("$join", "m.room.member", Some("@a:x"))
        };
        commit(&s, &[(1, &create), (2, &join)]).await;

        let room: (String, String, i64) =
            sqlx::query_as("SELECT room_version, creator, created_ts FROM rooms WHERE room_id = ?")
                .bind(ROOM)
                .fetch_one(s.pool())
                .await
                .unwrap();
        assert_eq!(room, ("10".into(), "@a:x".into(), 7));
        let mut state: Vec<String> = s
            .current_state(ROOM)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event_id)
            .collect();
        state.sort();
        assert_eq!(state, ["$create", "$join"]);
        // Every read of an event brings its room's version with it.
        let row = s.event("$join").await.unwrap().unwrap();
        assert_eq!(row.room_version.as_deref(), Some("10"));
        let rows = s.room_events_latest(ROOM, 0, 2, 10).await.unwrap();
        assert!(rows.iter().all(|r| r.room_version.as_deref() == Some("10")));
        let member: (String, String, i64) = sqlx::query_as(
            "SELECT membership, event_id, stream FROM memberships WHERE room_id = ? AND user_id = ?",
        )
        .bind(ROOM)
        .bind("@a:x")
        .fetch_one(s.pool())
        .await
        .unwrap();
        assert_eq!(member, ("join".into(), "$join".into(), 2));
        let by_txn = s.txn_event("@a:x", "D", "scope", "t1").await.unwrap();
        assert_eq!(by_txn.as_deref(), Some("$join"));
        let row = s.event("$join").await.unwrap().unwrap();
        assert_eq!((row.stream, row.txn_id.as_deref()), (2, Some("t1")));
    }

    #[tokio::test]
    async fn a_later_state_event_replaces_the_earlier_and_a_redaction_marks_its_target_once() {
        let (_dir, s) = crate::storage::temporary().await;
        let first = event("$n1", "m.room.name", Some(""));
        let second = event("$n2", "m.room.name", Some(""));
        let message = event("$m", "m.room.message", None);
        let redaction = NewEvent {
            redacts: Some("$m".into()),
            ..event("$r1", "m.room.redaction", None)
        };
        let again = NewEvent {
            redacts: Some("$m".into()),
            ..event("$r2", "m.room.redaction", None)
        };
        commit(&s, &[(1, &first), (2, &message), (3, &redaction)]).await;
        commit(&s, &[(4, &second), (5, &again)]).await;

        let name = s.state_event(ROOM, "m.room.name", "").await.unwrap();
        assert_eq!(name.map(|e| e.event_id).as_deref(), Some("$n2"));
        let redacted = s.event("$m").await.unwrap().unwrap().redacted_by;
        assert_eq!(redacted.as_deref(), Some("$r1"));
    }

    #[tokio::test]
    async fn a_batch_larger_than_one_statement_stores_every_event_and_txn_id() {
        let (_dir, s) = crate::storage::temporary().await;
        let n = ROWS_PER_STATEMENT * 2 + 3;
        let events: Vec<NewEvent> = (0..n)
            .map(|i| NewEvent {
                txn: (i % 2 == 0)
                    .then(|| ("@a:x".into(), "D".into(), "scope".into(), format!("t{i}"))),
                ..event(&format!("$e{i}"), "m.room.message", None)
            })
            .collect();
        let rows: Vec<(i64, &NewEvent)> = (1..).zip(events.iter()).collect();
        commit(&s, &rows).await;
        assert_eq!(s.count_events_between(0, n as i64).await.unwrap(), n as i64);
        let txns = s.device_txns("@a:x", "D").await.unwrap();
        assert_eq!(txns.len(), n.div_ceil(2));
    }
}
