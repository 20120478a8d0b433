//! `GET /rooms/{roomId}/initialSync`: one room as an old-style initial sync saw it: the
//! latest events (oldest first, with a token to page back from), the state the user may read,
//! their membership, the room's account data and its directory visibility.

use serde_json::{json, Value};

use super::filter::EventFilter;
use super::messages::{Direction, MessagesRequest};
use super::token::pagination_token;
use crate::service::identifiers::RoomId;
use crate::service::users::Session;
use crate::service::{Result, Services};

/// Events in `messages` when the room has that many.
const LATEST_EVENTS: usize = 20;

impl Services {
    pub(crate) async fn room_initial_sync(
        &self,
        session: &Session,
        room_id: &RoomId,
    ) -> Result<Value> {
        let user = &session.user_id;
        let now = self.notifier.position().stream;
        // /messages refuses a user who may not read the room, and so does this.
        let latest = self
            .messages(
                session,
                room_id,
                MessagesRequest {
                    from: None,
                    to: None,
                    dir: Direction::Backward,
                    limit: LATEST_EVENTS,
                    filter: EventFilter::default(),
                },
            )
            .await?;
        let mut chunk = latest["chunk"].as_array().cloned().unwrap_or_default();
        chunk.reverse();
        let start = latest["end"]
            .as_str()
            .map_or_else(|| pagination_token(0), str::to_string);
        let viewer = Some((user.as_str(), session.device_id.as_str()));
        let mut state = Vec::new();
        for pdu in self.rooms.readable_state(room_id, user).await?.values() {
            state.push(self.rooms.client_event(pdu, viewer, true).await?);
        }
        let membership = self
            .rooms
            .membership(room_id, user)
            .await?
            .map_or("leave", |m| m.as_str());
        let account_data: Vec<Value> = self
            .storage
            .account_data_since(user, 0, now)
            .await?
            .into_iter()
            .filter(|row| row.room_id == room_id.as_str())
            .map(|row| {
                let content: Value = serde_json::from_str(&row.content).unwrap_or(json!({}));
                json!({ "type": row.kind, "content": content })
            })
            .collect();
        let visibility = if self.rooms.is_public(room_id).await? {
            "public"
        } else {
            "private"
        };
        Ok(json!({
            "room_id": room_id,
            "membership": membership,
            "messages": { "chunk": chunk, "start": start, "end": pagination_token(now) },
            "state": state,
            "presence": [],
            "account_data": account_data,
            "visibility": visibility,
        }))
    }
}
