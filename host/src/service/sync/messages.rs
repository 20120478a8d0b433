//! `/messages`: pagination through a room's history in either direction, with tokens that
//! are positions in the same stream /sync uses, clipped to what the user may see.

use serde_json::{json, Value};

use super::filter::EventFilter;
use super::token::{pagination_token, parse_pagination};
use crate::service::identifiers::{EventId, RoomId};
use crate::service::rooms::pdu::Pdu;
use crate::service::rooms::visibility::Viewer;
use crate::service::users::Session;
use crate::service::{Error, Result, Services};
pub(crate) use crate::storage::events::Direction;

/// How many events near a time `/timestamp_to_event` looks through for a visible one.
const NEAR_TIME_CANDIDATES: i64 = 200;

#[derive(Debug, Clone)]
pub(crate) struct MessagesRequest {
    pub(crate) from: Option<String>,
    pub(crate) to: Option<String>,
    pub(crate) dir: Direction,
    pub(crate) limit: usize,
    pub(crate) filter: EventFilter,
}

impl Services {
    pub(crate) async fn messages(
        &self,
        session: &Session,
        room_id: &RoomId,
        req: MessagesRequest,
    ) -> Result<Value> {
        let Some(window) = self.rooms.visible_window(room_id, &session.user_id).await? else {
            return Err(Error::Forbidden(format!(
                "{} may not read {room_id}",
                session.user_id
            )));
        };
        let visibility = self
            .rooms
            .event_visibility(room_id, &session.user_id)
            .await?;
        let now = self.notifier.position().stream;
        let from = match &req.from {
            Some(t) => parse_pagination(t)?,
            None => match req.dir {
                Direction::Backward => now,
                Direction::Forward => 0,
            },
        };
        let to = req.to.as_deref().map(parse_pagination).transpose()?;
        let limit = req.limit.clamp(1, 1000);
        // Walk in chunks so that a type filter still fills the page.
        let mut picked: Vec<Pdu> = Vec::new();
        let mut cursor = from;
        let mut more = true;
        let mut backfilled = false;
        loop {
            while picked.len() < limit && more {
                let (start, bound) = match req.dir {
                    // Backfilled history sits below position 0.
                    Direction::Backward => (cursor.min(window.upper), to.unwrap_or(i64::MIN)),
                    Direction::Forward => (cursor, to.unwrap_or(now).min(window.upper).min(now)),
                };
                let chunk = (limit * 2) as i64;
                let rows = self
                    .storage
                    .room_events_page(room_id, start, bound, req.dir, chunk)
                    .await?;
                more = rows.len() as i64 == chunk;
                for row in rows {
                    cursor = match req.dir {
                        Direction::Backward => row.stream - 1,
                        Direction::Forward => row.stream,
                    };
                    if !req.filter.matches(&row.kind, &row.sender) {
                        continue;
                    }
                    let pdu = Pdu::try_from(row)?;
                    if visibility.can_see(&pdu) {
                        picked.push(pdu);
                        if picked.len() == limit {
                            more = true;
                            break;
                        }
                    }
                }
            }
            // Walked back to the oldest event stored: a room shared with other servers may
            // have more history behind it, asked for once per request.
            let exhausted = picked.len() < limit && !more;
            if !exhausted || backfilled || req.dir != Direction::Backward || to.is_some() {
                break;
            }
            backfilled = true;
            let stored = self
                .backfill_room(room_id.as_str())
                .await
                .unwrap_or_else(|e| {
                    tracing::info!(room_id = %room_id, error = %e, "backfill failed");
                    0
                });
            if stored == 0 {
                break;
            }
            // Whatever this page holds, the client may ask for more: there may be more
            // history behind what was fetched.
            more = true;
        }
        let start_token = req.from.clone().unwrap_or_else(|| pagination_token(from));
        let chunk = self
            .rooms
            .client_events(&picked, Some((&session.user_id, &session.device_id)), true)
            .await?;
        let mut body = json!({ "start": start_token, "chunk": chunk });
        if (more || backfilled) && !picked.is_empty() {
            body["end"] = json!(pagination_token(cursor));
        }
        Ok(body)
    }

    /// GET /timestamp_to_event: the event of the room nearest `ts` in direction `dir` that
    /// the user may see; `NotFound` when there is none.
    pub(crate) async fn event_at_time(
        &self,
        session: &Session,
        room_id: &RoomId,
        ts: i64,
        dir: Direction,
    ) -> Result<Value> {
        let viewer = self.rooms.viewer(room_id, &session.user_id).await?;
        self.event_near_time(room_id, ts, dir, Some(&viewer)).await
    }

    /// The `/timestamp_to_event` answer: the room's event nearest `ts` in direction `dir`
    /// that `viewer` sees (any, for another server that `None` stands for); `NotFound` when
    /// there is none.
    pub(crate) async fn event_near_time(
        &self,
        room_id: &str,
        ts: i64,
        dir: Direction,
        viewer: Option<&Viewer>,
    ) -> Result<Value> {
        // Hidden events are skipped a page at a time; a room that hides more than a few
        // pages around the time has nothing there for this user.
        let candidates = if viewer.is_some() {
            NEAR_TIME_CANDIDATES
        } else {
            1
        };
        for row in self
            .storage
            .events_near_time(room_id, ts, dir, candidates)
            .await?
        {
            let pdu = Pdu::try_from(row)?;
            if viewer.is_none_or(|v| v.sees(&pdu)) {
                return Ok(json!({
                    "event_id": pdu.event_id,
                    "origin_server_ts": pdu.origin_server_ts(),
                }));
            }
        }
        Err(Error::NotFound(format!(
            "no event of {room_id} {} {ts} that you may see",
            match dir {
                Direction::Forward => "at or after",
                Direction::Backward => "at or before",
            }
        )))
    }

    /// One event, if the user may see it.
    pub(crate) async fn visible_event(
        &self,
        session: &Session,
        room_id: &RoomId,
        event_id: &EventId,
    ) -> Result<Value> {
        let pdu = self
            .visible_pdu(&session.user_id, room_id, event_id)
            .await?;
        self.rooms
            .client_event(&pdu, Some((&session.user_id, &session.device_id)), true)
            .await
    }

    /// The event `event_id` of room `room_id`, if `user` may see it; `NotFound` when it does
    /// not exist, is in another room or is hidden from the user.
    pub(crate) async fn visible_pdu(
        &self,
        user: &str,
        room_id: &str,
        event_id: &str,
    ) -> Result<Pdu> {
        let not_found = || Error::NotFound(format!("unknown event {event_id}"));
        let pdu = self.rooms.event(event_id).await?.ok_or_else(not_found)?;
        if pdu.room_id != room_id {
            return Err(not_found());
        }
        if !self.rooms.viewer(room_id, user).await?.sees(&pdu) {
            return Err(not_found());
        }
        Ok(pdu)
    }
}
