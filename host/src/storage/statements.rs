//! Several writes sent to SQLite's thread as one query string: a batch's event rows, txn ids,
//! extremities and push rows in one round trip instead of one per statement. Each round trip
//! hands the connection's work to its thread and back, and the writer does one after
//! another, so on a busy room their number bounds how fast events are stored.

use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::Result;

/// Rows per multi-row statement: 13 bound values a row (the most, an event's) stays far below
/// SQLite's limit of bound values per statement.
pub(super) const ROWS_PER_STATEMENT: usize = 256;

/// Statements to run in order, each with its own bound values (sqlx binds them statement by
/// statement), in one `execute`.
pub(super) struct Statements<'args> {
    query: QueryBuilder<'args, Sqlite>,
    count: usize,
}

impl<'args> Statements<'args> {
    pub(super) fn new() -> Self {
        Statements {
            query: QueryBuilder::new(""),
            count: 0,
        }
    }

    /// Starts the next statement with `sql`; the caller pushes the rest (values, binds).
    pub(super) fn next(&mut self, sql: &str) -> &mut QueryBuilder<'args, Sqlite> {
        if self.count > 0 {
            self.query.push(";\n");
        }
        self.count += 1;
        self.query.push(sql);
        &mut self.query
    }

    /// Runs every statement, in the caller's transaction; none is a no-op.
    pub(super) async fn execute(mut self, conn: &mut SqliteConnection) -> Result<()> {
        if self.count > 0 {
            self.query.build().execute(conn).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Connection;

    use super::*;

    #[tokio::test]
    async fn each_statement_gets_its_own_values_in_one_execute() {
        let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        sqlx::query("CREATE TABLE t (a INTEGER, b TEXT)")
            .execute(&mut conn)
            .await
            .unwrap();
        let mut s = Statements::new();
        s.next("INSERT INTO t (a, b) ")
            .push_values([(1, "one"), (2, "two")], |mut r, (a, b)| {
                r.push_bind(a).push_bind(b);
            });
        s.next("DELETE FROM t WHERE a = ")
            .push_bind(1)
            .push(" AND b = ")
            .push_bind("one");
        s.next("INSERT INTO t (a, b) ")
            .push_values([(3, "three")], |mut r, (a, b)| {
                r.push_bind(a).push_bind(b);
            });
        s.execute(&mut conn).await.unwrap();
        let rows: Vec<(i64, String)> = sqlx::query_as("SELECT a, b FROM t ORDER BY a")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        assert_eq!(rows, vec![(2, "two".into()), (3, "three".into())]);
        // Nothing to run is no error.
        Statements::new().execute(&mut conn).await.unwrap();
    }

    #[tokio::test]
    async fn a_failing_statement_fails_the_whole_execute() {
        let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        sqlx::query("CREATE TABLE t (a INTEGER PRIMARY KEY)")
            .execute(&mut conn)
            .await
            .unwrap();
        let mut s = Statements::new();
        s.next("INSERT INTO t (a) VALUES (").push_bind(1).push(")");
        s.next("INSERT INTO t (a) VALUES (").push_bind(1).push(")");
        assert!(s.execute(&mut conn).await.is_err());
    }
}
