//! A room's past fetched from another server (`/backfill`): each event checked against its own
//! auth events (stored), and the accepted ones written below every stored position, newest
//! first, so that `/messages` walks back into them in order. They change nothing of the room's
//! current state or extremities, and no sync hears of them as news.

use super::joined::history_event;
use super::remote::Incoming;
use super::state_res;
use super::RoomService;
use crate::service::Result;
use crate::storage::graph::{GraphRows, Standing};
use crate::storage::writer::WriteOp;

impl RoomService {
    /// Stores `events` (not stored yet) of `room_id` as backfilled history; answers how many
    /// were accepted. Callers serialize backfills: each takes positions below the lowest.
    pub(crate) async fn store_backfilled(
        &self,
        room_id: &str,
        mut events: Vec<Incoming>,
    ) -> Result<usize> {
        events.sort_by_key(|e| std::cmp::Reverse(e.json["depth"].as_i64().unwrap_or(0)));
        let mut next = self.storage.lowest_event_stream().await? - 1;
        let mut stored = 0;
        for event in events {
            if self.storage.stored_pdu(&event.event_id).await?.is_some() {
                continue;
            }
            let parsed =
                state_res::PduEvent::from_pdu(&event.event_id, &event.json, event.version, false)
                    .map_err(|e| crate::service::Error::BadJson(e.to_string()))?;
            let auth = self
                .graph_events(event.auth_ids(), event.version, false)
                .await?;
            if let Err(why) = state_res::auth_check(event.version, &parsed, &auth) {
                tracing::info!(event_id = %event.event_id, why, "rejected a backfilled event");
                self.store_rejected(room_id, &event, why).await?;
                continue;
            }
            let new_event = history_event(
                room_id,
                &event,
                None,
                GraphRows {
                    resolved: Some(Vec::new()),
                    ..GraphRows::default()
                },
            );
            self.writer
                .write(WriteOp::Backfilled {
                    stream: next,
                    event: Box::new(new_event),
                })
                .await?;
            next -= 1;
            stored += 1;
        }
        Ok(stored)
    }

    async fn store_rejected(&self, room_id: &str, event: &Incoming, why: String) -> Result<()> {
        if self
            .storage
            .stored_pdu(&event.event_id)
            .await?
            .map(|s| s.standing)
            == Some(Standing::Rejected)
        {
            return Ok(());
        }
        self.reject(room_id, event, why).await.map(drop)
    }
}
