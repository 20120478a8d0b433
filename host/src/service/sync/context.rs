//! `/context/{eventId}`: an event with the events just before and after it and the room's
//! state, as a client opening a permalink shows it; each side read as `/messages` reads it,
//! with its tokens, and nothing the user may not see.

use serde_json::{json, Value};

use super::filter::EventFilter;
use super::messages::{Direction, MessagesRequest};
use super::token::pagination_token;
use crate::service::identifiers::{EventId, RoomId};
use crate::service::users::Session;
use crate::service::{Result, Services};

impl Services {
    /// GET /rooms/{roomId}/context/{eventId}: `limit` events in all around the event, split
    /// before and after it as Synapse splits them.
    pub(crate) async fn context(
        &self,
        session: &Session,
        room_id: &RoomId,
        event_id: &EventId,
        limit: usize,
        filter: EventFilter,
    ) -> Result<Value> {
        let pdu = self
            .visible_pdu(&session.user_id, room_id, event_id)
            .await?;
        let limit = limit.min(1000);
        let (before_n, after_n) = (limit / 2, limit - limit / 2);
        let side = |dir, from: i64, limit| MessagesRequest {
            from: Some(pagination_token(from)),
            to: None,
            dir,
            limit,
            filter: filter.clone(),
        };
        let empty = || json!({ "chunk": [] });
        let before = match before_n {
            0 => empty(),
            n => {
                let req = side(Direction::Backward, pdu.stream - 1, n);
                self.messages(session, room_id, req).await?
            }
        };
        let after = match after_n {
            0 => empty(),
            n => {
                let req = side(Direction::Forward, pdu.stream, n);
                self.messages(session, room_id, req).await?
            }
        };
        let viewer = Some((session.user_id.as_str(), session.device_id.as_str()));
        let event = self.rooms.client_event(&pdu, viewer, true).await?;
        let state_map = self.rooms.readable_state(room_id, &session.user_id).await?;
        let mut state = Vec::with_capacity(state_map.len());
        for p in state_map.values() {
            state.push(self.rooms.client_event(p, viewer, true).await?);
        }
        // With nothing more on a side, its token still names where that side ends: the
        // room's beginning before, the stream's present after.
        let start = before["end"]
            .as_str()
            .map_or_else(|| pagination_token(0), str::to_string);
        let end = after["end"].as_str().map_or_else(
            || pagination_token(self.notifier.position().stream),
            str::to_string,
        );
        Ok(json!({
            "event": event,
            "events_before": before["chunk"],
            "events_after": after["chunk"],
            "start": start,
            "end": end,
            "state": state,
        }))
    }
}
