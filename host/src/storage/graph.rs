//! The room as a graph: its forward extremities, the state after each event (state groups,
//! stored as deltas over a parent), and the events of other servers kept outside the timeline
//! (outliers, soft-failed and rejected events). Federation reads and writes these; the local
//! write path keeps them up to date with each event it makes.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::events::{set_current_state, set_membership};
use super::statements::Statements;
use super::{Result, Storage};

/// A room's state by `(type, state_key)`: event ids.
pub(crate) type StateIds = HashMap<(String, String), String>;

/// A state group to store: `entries` are the changes over `parent`'s state, or the whole state
/// when there is no parent.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct NewStateGroup {
    pub(crate) id: i64,
    pub(crate) room_id: String,
    pub(crate) parent: Option<i64>,
    pub(crate) chain: i64,
    pub(crate) entries: Vec<(String, String, String)>,
}

/// What an event changes of its room's graph, written with it.
#[derive(Debug, Clone, Default)]
pub(crate) struct GraphRows {
    /// The group of the state after the event.
    pub(crate) state_group: Option<i64>,
    /// A group made for it (a state event's, or a merge of forks).
    pub(crate) new_groups: Vec<NewStateGroup>,
    /// The extremities it builds on, which stop being extremities.
    pub(crate) prev_events: Vec<String>,
    /// Whether it becomes an extremity itself (every timeline event does).
    pub(crate) extremity: bool,
    /// The group of the room's current state after it, when that changes.
    pub(crate) current_group: Option<i64>,
    /// For an event of another server: the entries of the room's current state that change
    /// with it (its own entry only if the room's state takes it; others when forks merge).
    /// `None` for a local event, whose own entry becomes current.
    pub(crate) resolved: Option<Vec<ResolvedEntry>>,
}

/// One entry of the current state that state resolution changed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ResolvedEntry {
    pub(crate) kind: String,
    pub(crate) state_key: String,
    pub(crate) event_id: String,
    /// For a member event, its membership.
    pub(crate) membership: Option<String>,
}

/// Where a stored PDU stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Standing {
    /// In the timeline (the `events` table).
    Timeline,
    /// Accepted, outside the timeline: an auth or state event fetched to check others.
    Outlier,
    /// Accepted by the graph, not by the room's current state: never shown to clients.
    SoftFailed,
    /// Failed the checks.
    Rejected,
}

impl Standing {
    fn as_str(self) -> &'static str {
        match self {
            Standing::Timeline => "timeline",
            Standing::Outlier => "outlier",
            Standing::SoftFailed => "soft_failed",
            Standing::Rejected => "rejected",
        }
    }

    /// Whether an event standing so has its place in the room's graph: an outlier was only
    /// checked against its auth events, and takes its place when it comes with its
    /// `prev_events` (an invite kept before this server joined, an auth event that is also
    /// history).
    pub(crate) fn placed(self) -> bool {
        self != Standing::Outlier
    }

    fn parse(s: &str) -> Standing {
        match s {
            "outlier" => Standing::Outlier,
            "soft_failed" => Standing::SoftFailed,
            "rejected" => Standing::Rejected,
            _ => Standing::Timeline,
        }
    }
}

/// A PDU as stored, wherever it is.
#[derive(Debug, Clone)]
pub(crate) struct StoredPdu {
    pub(crate) json: String,
    pub(crate) standing: Standing,
    pub(crate) state_group: Option<i64>,
    pub(crate) room_id: String,
}

impl StoredPdu {
    /// The PDU, parsed.
    pub(crate) fn value(&self) -> Result<serde_json::Value> {
        serde_json::from_str(&self.json).map_err(super::StorageError::Corrupt)
    }
}

/// An event kept outside the timeline, with the group of the state after it when it has one.
#[derive(Debug, Clone)]
pub(crate) struct SideEvent {
    pub(crate) event_id: String,
    pub(crate) room_id: String,
    pub(crate) standing: Standing,
    pub(crate) reason: Option<String>,
    pub(crate) json: String,
    pub(crate) state_group: Option<i64>,
    pub(crate) new_groups: Vec<NewStateGroup>,
    pub(crate) received_ts: i64,
    /// For a member event of one of our users in a room this server is not in (an invite, or
    /// its rejection): `(user, membership)`, which becomes the user's membership of the room.
    pub(crate) member: Option<(String, String)>,
}

impl NewStateGroup {
    pub(super) async fn apply(&self, conn: &mut SqliteConnection) -> Result<()> {
        sqlx::query(
            "INSERT OR IGNORE INTO state_groups (id, room_id, parent, chain) VALUES (?, ?, ?, ?)",
        )
        .bind(self.id)
        .bind(&self.room_id)
        .bind(self.parent)
        .bind(self.chain)
        .execute(&mut *conn)
        .await?;
        for chunk in self.entries.chunks(200) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT OR REPLACE INTO state_group_entries (group_id, type, state_key, event_id) ",
            );
            q.push_values(chunk, |mut b, (kind, key, id)| {
                b.push_bind(self.id)
                    .push_bind(kind.as_str())
                    .push_bind(key.as_str())
                    .push_bind(id.as_str());
            });
            q.build().execute(&mut *conn).await?;
        }
        Ok(())
    }
}

impl GraphRows {
    /// Writes the graph rows of a timeline event of `room_id`, inside the writer's transaction
    /// (its `state_group` column is written with its row, its extremities with its batch's by
    /// [`push_extremities`]).
    pub(super) async fn apply(
        &self,
        conn: &mut SqliteConnection,
        room_id: &str,
        stream: i64,
    ) -> Result<()> {
        for group in &self.new_groups {
            group.apply(conn).await?;
        }
        if let Some(group) = self.current_group {
            sqlx::query("UPDATE rooms SET state_group = ? WHERE room_id = ?")
                .bind(group)
                .bind(room_id)
                .execute(&mut *conn)
                .await?;
        }
        for entry in self.resolved.iter().flatten() {
            set_current_state(
                conn,
                room_id,
                &entry.kind,
                &entry.state_key,
                &entry.event_id,
                stream,
            )
            .await?;
            if let Some(membership) = &entry.membership {
                set_membership(
                    conn,
                    room_id,
                    &entry.state_key,
                    membership,
                    &entry.event_id,
                    stream,
                )
                .await?;
            }
        }
        Ok(())
    }
}

/// The forward extremities a batch of events leaves: each event stops its prev events being
/// extremities and becomes one itself, so of a line of events in one batch only the last is
/// written and only what the first built on is deleted (two statements for a batch, whatever
/// its size, sent with the batch's other rows). `events` are `(room_id, event_id, graph)` in
/// commit order.
pub(super) fn push_extremities<'a>(
    statements: &mut Statements<'a>,
    events: &[(&'a str, &'a str, &'a GraphRows)],
) {
    let (added, removed) = extremity_changes(events);
    for chunk in removed.chunks(400) {
        let q =
            statements.next("DELETE FROM room_extremities WHERE (room_id, event_id) IN (VALUES ");
        let mut list = q.separated(", ");
        for (room, id) in chunk {
            list.push("(")
                .push_bind_unseparated(*room)
                .push_unseparated(", ")
                .push_bind_unseparated(*id)
                .push_unseparated(")");
        }
        q.push(")");
    }
    for chunk in added.chunks(400) {
        statements
            .next("INSERT OR IGNORE INTO room_extremities (room_id, event_id) ")
            .push_values(chunk, |mut b, (room, id)| {
                b.push_bind(*room).push_bind(*id);
            });
    }
}

/// What [`push_extremities`] writes for a batch: `(added, removed)`, the pairs a later event
/// of the batch builds on cancelled out.
type Pairs<'a> = Vec<(&'a str, &'a str)>;

fn extremity_changes<'a>(events: &[(&'a str, &'a str, &'a GraphRows)]) -> (Pairs<'a>, Pairs<'a>) {
    let mut added: Pairs<'a> = Vec::new();
    let mut removed: Pairs<'a> = Vec::new();
    for (room, id, graph) in events {
        for prev in &graph.prev_events {
            match added
                .iter()
                .position(|(r, i)| r == room && *i == prev.as_str())
            {
                Some(at) => {
                    added.remove(at);
                }
                None => removed.push((room, prev.as_str())),
            }
        }
        if graph.extremity {
            added.push((room, id));
        }
    }
    (added, removed)
}

/// A member event of one of our users in a room this server is not in, as stored, with the
/// stream position it took.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct OutOfRoomMember {
    pub(crate) stream: i64,
    pub(crate) event_id: String,
    pub(crate) room_id: String,
    /// The PDU; an invite's `unsigned` holds the room's stripped state.
    pub(crate) json: String,
}

impl SideEvent {
    /// Stores the event outside the timeline; an event stored already keeps its first record,
    /// except an outlier's, which a soft-fail places (with the state before it). An outlier
    /// passed its auth events and others' checks may read it: failing the state before it
    /// (which a sender can shape by holding back prev events) does not make it rejected.
    pub(super) async fn apply(&self, conn: &mut SqliteConnection, stream: i64) -> Result<()> {
        for group in &self.new_groups {
            group.apply(conn).await?;
        }
        if let Some((user, membership)) = &self.member {
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
        sqlx::query(
            "INSERT INTO side_events (event_id, room_id, status, reason, json, state_group,
                received_ts, stream)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (event_id) DO UPDATE SET
                state_group = COALESCE(side_events.state_group, excluded.state_group),
                status = CASE WHEN side_events.status = 'outlier'
                    AND excluded.status = 'soft_failed' THEN excluded.status
                    ELSE side_events.status END,
                reason = CASE WHEN side_events.status = 'outlier'
                    AND excluded.status = 'soft_failed' THEN excluded.reason
                    ELSE side_events.reason END",
        )
        .bind(&self.event_id)
        .bind(&self.room_id)
        .bind(self.standing.as_str())
        .bind(&self.reason)
        .bind(&self.json)
        .bind(self.state_group)
        .bind(self.received_ts)
        // Only a member event of one of ours takes a position (see `WriteOp::takes_position`).
        .bind(self.member.as_ref().map(|_| stream))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

impl Storage {
    /// The highest state group id given out.
    pub(crate) async fn max_state_group(&self) -> Result<i64> {
        let row: (i64,) = sqlx::query_as("SELECT COALESCE(MAX(id), 0) FROM state_groups")
            .fetch_one(self.pool())
            .await?;
        Ok(row.0)
    }

    /// The whole state of a group: its entries over its parents', nearest first.
    pub(crate) async fn state_group(&self, group: i64) -> Result<(StateIds, i64)> {
        let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
            "WITH RECURSIVE chain(id, parent, n) AS (
                SELECT id, parent, 0 FROM state_groups WHERE id = ?
                UNION ALL
                SELECT g.id, g.parent, c.n + 1 FROM state_groups g JOIN chain c ON g.id = c.parent
             )
             SELECT c.n, e.type, e.state_key, e.event_id
             FROM chain c JOIN state_group_entries e ON e.group_id = c.id
             ORDER BY c.n DESC",
        )
        .bind(group)
        .fetch_all(self.pool())
        .await?;
        let chain = self.state_group_chain(group).await?;
        let mut state = StateIds::new();
        for (_, kind, key, id) in rows {
            state.insert((kind, key), id);
        }
        Ok((state, chain))
    }

    /// How many parents group `id` sits under.
    pub(crate) async fn state_group_chain(&self, id: i64) -> Result<i64> {
        let row: Option<(i64,)> = sqlx::query_as("SELECT chain FROM state_groups WHERE id = ?")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map_or(0, |r| r.0))
    }

    /// The room's forward extremities with their depths.
    pub(crate) async fn room_extremities(&self, room_id: &str) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT x.event_id, COALESCE(e.depth, 0) FROM room_extremities x
             LEFT JOIN events e ON e.event_id = x.event_id
             WHERE x.room_id = ? ORDER BY e.depth DESC, x.event_id",
        )
        .bind(room_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// The group of the room's current state, once the room has one.
    pub(crate) async fn room_state_group(&self, room_id: &str) -> Result<Option<i64>> {
        let row: Option<(Option<i64>,)> =
            sqlx::query_as("SELECT state_group FROM rooms WHERE room_id = ?")
                .bind(room_id)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.and_then(|r| r.0))
    }

    /// A PDU by id, from the timeline or beside it.
    pub(crate) async fn stored_pdu(&self, event_id: &str) -> Result<Option<StoredPdu>> {
        let row: Option<(String, String, Option<i64>, String, i64)> = sqlx::query_as(
            "SELECT json, 'timeline', state_group, room_id, 0 AS rank FROM events
                WHERE event_id = ?1
             UNION ALL
             SELECT json, status, state_group, room_id, 1 FROM side_events WHERE event_id = ?1
             ORDER BY rank LIMIT 1",
        )
        .bind(event_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(
            row.map(|(json, standing, state_group, room_id, _)| StoredPdu {
                json,
                standing: Standing::parse(&standing),
                state_group,
                room_id,
            }),
        )
    }

    /// The member events of our users in rooms this server is not in (invites from other
    /// servers, their refusals) stored at `after < stream <= upto`, in stream order, at most
    /// `limit`.
    pub(crate) async fn out_of_room_members_range(
        &self,
        after: i64,
        upto: i64,
        limit: i64,
    ) -> Result<Vec<OutOfRoomMember>> {
        Ok(sqlx::query_as(
            "SELECT stream, event_id, room_id, json FROM side_events
             WHERE stream > ? AND stream <= ? ORDER BY stream ASC LIMIT ?",
        )
        .bind(after)
        .bind(upto)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// The PDUs of `ids` that are stored, wherever they are, by id.
    pub(crate) async fn stored_pdus(&self, ids: &[String]) -> Result<HashMap<String, StoredPdu>> {
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(400) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "SELECT event_id, json, 'timeline', state_group, room_id FROM events
                 WHERE event_id IN (",
            );
            let mut list = q.separated(", ");
            for id in chunk {
                list.push_bind(id.as_str());
            }
            q.push(") UNION ALL SELECT event_id, json, status, state_group, room_id FROM side_events WHERE event_id IN (");
            let mut list = q.separated(", ");
            for id in chunk {
                list.push_bind(id.as_str());
            }
            q.push(")");
            let rows: Vec<(String, String, String, Option<i64>, String)> =
                q.build_query_as().fetch_all(self.pool()).await?;
            for (id, json, standing, state_group, room_id) in rows {
                let stored = StoredPdu {
                    json,
                    standing: Standing::parse(&standing),
                    state_group,
                    room_id,
                };
                // The timeline's row wins over an older record beside it.
                match out.entry(id) {
                    Entry::Occupied(mut kept) if stored.standing == Standing::Timeline => {
                        kept.insert(stored);
                    }
                    Entry::Occupied(_) => {}
                    Entry::Vacant(slot) => {
                        slot.insert(stored);
                    }
                }
            }
        }
        Ok(out)
    }

    /// The lowest stream position of any event (0 when none is below 1): backfilled history
    /// goes below it.
    pub(crate) async fn lowest_event_stream(&self) -> Result<i64> {
        let row: (i64,) = sqlx::query_as("SELECT MIN(COALESCE(MIN(stream), 0), 0) FROM events")
            .fetch_one(self.pool())
            .await?;
        Ok(row.0)
    }

    /// Events of the room, oldest first, that name a prev event not stored: where its known
    /// history has a gap behind it (at most `limit`).
    pub(crate) async fn backward_extremities(
        &self,
        room_id: &str,
        limit: i64,
    ) -> Result<Vec<String>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT e.event_id, p.value FROM events e, json_each(e.json, '$.prev_events') p
             WHERE e.room_id = ?
               AND NOT EXISTS (SELECT 1 FROM events x WHERE x.event_id = p.value)
               AND NOT EXISTS (SELECT 1 FROM side_events s WHERE s.event_id = p.value
                               AND s.status != 'rejected')
             ORDER BY e.stream ASC LIMIT ?",
        )
        .bind(room_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut out: Vec<String> = Vec::new();
        for (id, _) in rows {
            if !out.contains(&id) {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// The state after an event stored before state groups were: its room was a line, so it
    /// is the newest state event of each key up to the event.
    pub(crate) async fn linear_state_after(&self, event_id: &str) -> Result<Option<StateIds>> {
        let Some((room_id, stream)): Option<(String, i64)> =
            sqlx::query_as("SELECT room_id, stream FROM events WHERE event_id = ?")
                .bind(event_id)
                .fetch_optional(self.pool())
                .await?
        else {
            return Ok(None);
        };
        let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT type, state_key, event_id, MAX(stream) FROM events
             WHERE room_id = ? AND state_key IS NOT NULL AND stream <= ?
             GROUP BY type, state_key",
        )
        .bind(room_id)
        .bind(stream)
        .fetch_all(self.pool())
        .await?;
        Ok(Some(
            rows.into_iter()
                .map(|(kind, key, id, _)| ((kind, key), id))
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(prevs: &[&str], extremity: bool) -> GraphRows {
        GraphRows {
            prev_events: prevs.iter().map(|p| p.to_string()).collect(),
            extremity,
            ..GraphRows::default()
        }
    }

    #[test]
    fn a_line_of_events_in_one_batch_leaves_its_last_and_removes_what_its_first_built_on() {
        let (a, b, c) = (
            graph(&["$x"], true),
            graph(&["$a"], true),
            graph(&["$b"], true),
        );
        let (added, removed) =
            extremity_changes(&[("!r", "$a", &a), ("!r", "$b", &b), ("!r", "$c", &c)]);
        assert_eq!(added, vec![("!r", "$c")]);
        assert_eq!(removed, vec![("!r", "$x")]);
    }

    #[test]
    fn forks_and_rooms_keep_their_own_extremities() {
        // $m merges $x and $y; $n in another room builds on an id that is $a's in this one.
        let (m, n, h) = (
            graph(&["$x", "$y"], true),
            graph(&["$a"], true),
            graph(&[], false),
        );
        let (added, removed) =
            extremity_changes(&[("!r", "$m", &m), ("!s", "$n", &n), ("!r", "$h", &h)]);
        assert_eq!(added, vec![("!r", "$m"), ("!s", "$n")]);
        assert_eq!(removed, vec![("!r", "$x"), ("!r", "$y"), ("!s", "$a")]);
    }

    #[tokio::test]
    async fn a_batchs_extremities_are_written_net_of_each_other() {
        let (_dir, s) = crate::storage::temporary().await;
        let (a, b) = (graph(&[], true), graph(&["$a"], true));
        let mut tx = s.pool().begin().await.unwrap();
        for batch in [
            &[("!r", "$a", &a)][..],
            &[("!r", "$b", &b), ("!s", "$z", &a)],
        ] {
            let mut statements = Statements::new();
            push_extremities(&mut statements, batch);
            statements.execute(&mut tx).await.unwrap();
        }
        tx.commit().await.unwrap();
        assert_eq!(
            s.room_extremities("!r").await.unwrap(),
            vec![("$b".to_string(), 0)]
        );
        assert_eq!(
            s.room_extremities("!s").await.unwrap(),
            vec![("$z".to_string(), 0)]
        );
    }

    fn side(id: &str, standing: Standing, state_group: Option<i64>) -> SideEvent {
        SideEvent {
            event_id: id.into(),
            room_id: "!r:x".into(),
            standing,
            reason: (standing != Standing::Outlier).then(|| "why".into()),
            json: format!(r#"{{"n":"{standing:?}"}}"#),
            state_group,
            new_groups: Vec::new(),
            received_ts: 0,
            member: None,
        }
    }

    async fn write_side(s: &Storage, event: SideEvent) {
        let mut tx = s.pool().begin().await.unwrap();
        event.apply(&mut tx, 0).await.unwrap();
        tx.commit().await.unwrap();
    }

    #[tokio::test]
    async fn an_outlier_is_placed_by_a_soft_fail_but_never_made_rejected() {
        let (_dir, s) = crate::storage::temporary().await;
        write_side(&s, side("$o", Standing::Outlier, None)).await;
        write_side(&s, side("$o", Standing::Rejected, None)).await;
        let stored = s.stored_pdu("$o").await.unwrap().unwrap();
        assert_eq!(
            (stored.standing, stored.state_group),
            (Standing::Outlier, None)
        );
        assert!(!stored.standing.placed());

        write_side(&s, side("$o", Standing::SoftFailed, Some(7))).await;
        let stored = s.stored_pdu("$o").await.unwrap().unwrap();
        assert_eq!(
            (stored.standing, stored.state_group),
            (Standing::SoftFailed, Some(7))
        );
        assert!(stored.standing.placed());
        // The first record's JSON stays; a rejected record is not made anything else.
        assert_eq!(stored.json, r#"{"n":"Outlier"}"#);
        write_side(&s, side("$r", Standing::Rejected, None)).await;
        write_side(&s, side("$r", Standing::SoftFailed, Some(8))).await;
        let stored = s.stored_pdu("$r").await.unwrap().unwrap();
        assert_eq!(stored.standing, Standing::Rejected);
    }

    async fn write(s: &Storage, groups: &[NewStateGroup]) {
        let mut tx = s.pool().begin().await.unwrap();
        for g in groups {
            g.apply(&mut tx).await.unwrap();
        }
        tx.commit().await.unwrap();
    }

    fn entry(kind: &str, key: &str, id: &str) -> (String, String, String) {
        (kind.into(), key.into(), id.into())
    }

    #[tokio::test]
    async fn a_group_is_its_changes_over_its_parents_with_the_nearest_winning() {
        let (_dir, s) = crate::storage::temporary().await;
        write(
            &s,
            &[
                NewStateGroup {
                    id: 101,
                    room_id: "!r:x".into(),
                    parent: None,
                    chain: 0,
                    entries: vec![
                        entry("m.room.create", "", "$c"),
                        entry("m.room.name", "", "$n1"),
                    ],
                },
                NewStateGroup {
                    id: 102,
                    room_id: "!r:x".into(),
                    parent: Some(101),
                    chain: 1,
                    entries: vec![entry("m.room.name", "", "$n2")],
                },
                NewStateGroup {
                    id: 103,
                    room_id: "!r:x".into(),
                    parent: Some(102),
                    chain: 2,
                    entries: vec![entry("m.room.member", "@a:x", "$j")],
                },
            ],
        )
        .await;
        let (state, chain) = s.state_group(103).await.unwrap();
        assert_eq!(chain, 2);
        assert_eq!(state.len(), 3);
        assert_eq!(state[&("m.room.name".into(), "".into())], "$n2");
        let (parent, _) = s.state_group(101).await.unwrap();
        assert_eq!(parent[&("m.room.name".into(), "".into())], "$n1");
        assert!(s.state_group(999).await.unwrap().0.is_empty());
        assert_eq!(s.max_state_group().await.unwrap(), 103);
    }
}
