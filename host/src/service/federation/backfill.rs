//! Back-pagination into the past of a room shared with other servers: when a client's
//! `/messages` reaches the oldest event stored and that event names prev events this server
//! does not have, their history is asked of a server in the room (`/backfill`), checked, and
//! stored below everything else (see `rooms::backfilled`).

use super::client::path_segment;
use crate::service::{Result, Services};

/// Events one backfill asks for.
const BACKFILL_EVENTS: usize = 50;
/// Events with a gap behind them that one backfill starts from.
const BACKFILL_FROM: i64 = 5;

impl Services {
    /// Fetches and stores the history behind the gaps of `room_id`; answers how many events
    /// it stored (0: no gap, no server to ask, or none answered).
    pub(crate) async fn backfill_room(&self, room_id: &str) -> Result<usize> {
        let Ok(client) = self.federation.client() else {
            return Ok(0);
        };
        let servers: Vec<String> = self
            .servers_in_room(room_id)
            .await?
            .into_iter()
            .filter(|s| s != self.server_name())
            .collect();
        if servers.is_empty() {
            return Ok(0);
        }
        // One backfill at a time: each takes the positions below the lowest.
        let _one = self.federation.backfill_lock.lock().await;
        let from = self
            .storage
            .backward_extremities(room_id, BACKFILL_FROM)
            .await?;
        if from.is_empty() {
            return Ok(0);
        }
        let version = self.room_version_of(room_id).await?;
        let query: String = from
            .iter()
            .map(|id| format!("v={}&", path_segment(id)))
            .collect();
        let uri = format!(
            "/_matrix/federation/v1/backfill/{}?{query}limit={BACKFILL_EVENTS}",
            path_segment(room_id)
        );
        for server in servers {
            let answer = match client.get(&server, &uri).await {
                Ok(a) => a,
                Err(e) => {
                    tracing::info!(room_id, server, error = %e, "backfill failed");
                    continue;
                }
            };
            let mut checked = Vec::new();
            for pdu in answer["pdus"].as_array().into_iter().flatten() {
                if pdu["room_id"] != room_id {
                    continue;
                }
                match self.check_pdu(pdu.clone(), version).await {
                    Ok(incoming) => checked.push(incoming),
                    Err(why) => tracing::info!(server, why, "a backfilled event is not valid"),
                }
            }
            for incoming in &checked {
                self.fetch_missing_auth(&server, room_id, incoming).await?;
            }
            return self.rooms.store_backfilled(room_id, checked).await;
        }
        Ok(0)
    }
}
