//! `/relations/{eventId}[/{relType}[/{eventType}]]` and `/threads`: reading the events that
//! relate to an event, and a room's threads, with the tokens of `/messages` and only what
//! the reader may see.

use serde_json::{json, Value};

use super::token::{pagination_token, parse_pagination};
use crate::service::identifiers::{EventId, RoomId};
use crate::service::rooms::pdu::Pdu;
use crate::service::users::Session;
use crate::service::{Error, Result, Services};
use crate::storage::events::Direction;
use crate::storage::relations::ChildrenQuery;

/// How deep `recurse` follows relations of relations, as Synapse does.
pub(crate) const MAX_RECURSION_DEPTH: i64 = 3;

/// What `/relations` asks for.
#[derive(Debug, Clone)]
pub(crate) struct RelationsRequest {
    pub(crate) rel_type: Option<String>,
    pub(crate) event_type: Option<String>,
    pub(crate) dir: Direction,
    pub(crate) from: Option<String>,
    pub(crate) to: Option<String>,
    pub(crate) limit: usize,
    pub(crate) recurse: bool,
}

/// Which threads `/threads` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ThreadsInclude {
    All,
    Participated,
}

impl Services {
    /// GET /relations: the events relating to `event_id`, which the user must see.
    pub(crate) async fn relations(
        &self,
        session: &Session,
        room_id: &RoomId,
        event_id: &EventId,
        req: RelationsRequest,
    ) -> Result<Value> {
        self.visible_pdu(&session.user_id, room_id, event_id)
            .await?;
        let limit = req.limit.clamp(1, 1000) as i64;
        let from = req.from.as_deref().map(parse_pagination).transpose()?;
        let to = req.to.as_deref().map(parse_pagination).transpose()?;
        let depth = if req.recurse { MAX_RECURSION_DEPTH } else { 1 };
        let viewer = self.rooms.viewer(room_id, &session.user_id).await?;
        let mut picked: Vec<Pdu> = Vec::new();
        let mut cursor = from;
        let mut more = true;
        // Pages of rows until the page of visible events is full, as /messages walks.
        while picked.len() < limit as usize && more {
            let rows = self
                .storage
                .relation_children(&ChildrenQuery {
                    room_id,
                    parent: event_id,
                    rel_type: req.rel_type.as_deref(),
                    event_type: req.event_type.as_deref(),
                    dir: req.dir,
                    from: cursor,
                    to,
                    limit: limit * 2,
                    depth,
                })
                .await?;
            more = rows.len() as i64 == limit * 2;
            for row in rows {
                cursor = Some(match req.dir {
                    Direction::Backward => row.stream - 1,
                    Direction::Forward => row.stream,
                });
                let pdu = Pdu::try_from(row)?;
                if viewer.sees(&pdu) {
                    picked.push(pdu);
                    if picked.len() == limit as usize {
                        more = true;
                        break;
                    }
                }
            }
        }
        let chunk = self
            .rooms
            .client_events(&picked, Some((&session.user_id, &session.device_id)), true)
            .await?;
        let mut body = json!({ "chunk": chunk });
        if let (true, Some(cursor)) = (more && !picked.is_empty(), cursor) {
            body["next_batch"] = json!(pagination_token(cursor));
        }
        if let Some(from) = &req.from {
            body["prev_batch"] = json!(from);
        }
        if req.recurse {
            body["recursion_depth"] = json!(depth);
        }
        Ok(body)
    }

    /// GET /threads: the room's thread roots the user may see, the most recently active first.
    pub(crate) async fn threads(
        &self,
        session: &Session,
        room_id: &RoomId,
        include: ThreadsInclude,
        from: Option<&str>,
        limit: usize,
    ) -> Result<Value> {
        let viewer = self.rooms.viewer(room_id, &session.user_id).await?;
        if !viewer.reads_anything() {
            return Err(Error::Forbidden(format!(
                "{} may not read {room_id}",
                session.user_id
            )));
        }
        let limit = limit.clamp(1, 100) as i64;
        let before = from.map(parse_pagination).transpose()?;
        let participant = match include {
            ThreadsInclude::All => None,
            ThreadsInclude::Participated => Some(session.user_id.as_str()),
        };
        let roots = self
            .storage
            .thread_roots(room_id, before, participant, limit)
            .await?;
        let next = (roots.len() as i64 == limit)
            .then(|| roots.last().map(|(_, latest)| pagination_token(*latest)))
            .flatten();
        let mut picked = Vec::new();
        for (root, _) in roots {
            if let Some(pdu) = self.rooms.event(&root).await? {
                if pdu.room_id == room_id.as_str() && viewer.sees(&pdu) {
                    picked.push(pdu);
                }
            }
        }
        let chunk = self
            .rooms
            .client_events(&picked, Some((&session.user_id, &session.device_id)), true)
            .await?;
        let mut body = json!({ "chunk": chunk });
        if let Some(next) = next {
            body["next_batch"] = json!(next);
        }
        Ok(body)
    }
}
