//! A room's events by when they were sent (`origin_server_ts`), for `/timestamp_to_event`.

use super::events::{Direction, EventRow, COLUMNS};
use super::{Result, Storage};

impl Storage {
    /// Up to `limit` events of the room sent at `ts` or later (forward, earliest first) or at
    /// `ts` or earlier (backward, latest first).
    pub(crate) async fn events_near_time(
        &self,
        room_id: &str,
        ts: i64,
        dir: Direction,
        limit: i64,
    ) -> Result<Vec<EventRow>> {
        let sql = match dir {
            Direction::Forward => format!(
                "SELECT {COLUMNS} FROM events WHERE room_id = ? AND origin_server_ts >= ?
                 ORDER BY origin_server_ts ASC, stream ASC LIMIT ?"
            ),
            Direction::Backward => format!(
                "SELECT {COLUMNS} FROM events WHERE room_id = ? AND origin_server_ts <= ?
                 ORDER BY origin_server_ts DESC, stream DESC LIMIT ?"
            ),
        };
        Ok(sqlx::query_as(&sql)
            .bind(room_id)
            .bind(ts)
            .bind(limit)
            .fetch_all(self.pool())
            .await?)
    }
}
