//! History visibility: which stretch of a room's stream a user may read. Uses the room's
//! current `m.room.history_visibility` for the whole history (a simplification of the spec's
//! per-event rule, which the tests state).

use std::sync::Arc;

use super::auth::StateMap;
use super::pdu::Pdu;
use super::RoomService;
use crate::service::{Error, Result};

/// The readable part of the stream: `lower < stream <= upper`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub lower: i64,
    pub upper: i64,
}

impl RoomService {
    /// `None` when the user may read nothing of the room.
    pub async fn visible_window(&self, room_id: &str, user: &str) -> Result<Option<Window>> {
        let visibility = self
            .state_event(room_id, "m.room.history_visibility", "")
            .await?
            .and_then(|p| p.content()["history_visibility"].as_str().map(String::from))
            .unwrap_or_else(|| "shared".into());
        if visibility == "world_readable" {
            return Ok(Some(Window {
                lower: 0,
                upper: i64::MAX,
            }));
        }
        let Some(m) = self.storage.membership(room_id, user).await? else {
            return Ok(None);
        };
        let from_join = visibility == "joined" || visibility == "invited";
        let lower = if from_join {
            self.membership_run_start(room_id, user).await?
        } else {
            0
        };
        // Only a user who was joined at some point reads back after leaving: a rejected or
        // withdrawn invite, or a ban before joining, shows no history.
        let ever_joined = m.membership == "join"
            || self
                .storage
                .member_history(room_id, user)
                .await?
                .iter()
                .any(|e| e.membership == "join");
        Ok(match m.membership.as_str() {
            "join" => Some(Window {
                lower,
                upper: i64::MAX,
            }),
            "leave" | "ban" if ever_joined => Some(Window {
                lower,
                upper: m.stream,
            }),
            _ => None,
        })
    }

    /// The state `user` may read: the current state while they are joined (or the room is
    /// world readable), the state when they left once they have left; `Forbidden` otherwise.
    pub async fn readable_state(&self, room_id: &str, user: &str) -> Result<StateMap> {
        match self.state_point(room_id, user).await? {
            None => self.current_state(room_id).await,
            Some(at) => self.state_at(room_id, at).await,
        }
    }

    /// One event of the state `user` may read.
    pub async fn readable_state_event(
        &self,
        room_id: &str,
        user: &str,
        kind: &str,
        state_key: &str,
    ) -> Result<Option<Arc<Pdu>>> {
        match self.state_point(room_id, user).await? {
            None => self.state_event(room_id, kind, state_key).await,
            Some(at) => Ok(self
                .state_at(room_id, at)
                .await?
                .remove(&(kind.to_string(), state_key.to_string()))),
        }
    }

    /// `None` for the current state, `Some(stream)` for the state at a past membership's end.
    async fn state_point(&self, room_id: &str, user: &str) -> Result<Option<i64>> {
        match self.visible_window(room_id, user).await? {
            Some(w) if w.upper == i64::MAX => Ok(None),
            Some(w) => Ok(Some(w.upper)),
            None => Err(Error::Forbidden(format!("{user} is not in {room_id}"))),
        }
    }

    /// The room's state at stream position `at`: each current state event newer than `at`
    /// walked back along `replaces_state` to the one that was current then (if any).
    async fn state_at(&self, room_id: &str, at: i64) -> Result<StateMap> {
        let mut state = StateMap::new();
        for row in self.storage.current_state(room_id).await? {
            let mut pdu = Pdu::try_from(row)?;
            loop {
                if pdu.stream <= at {
                    let key = (pdu.kind.clone(), pdu.state_key.clone().unwrap_or_default());
                    state.insert(key, Arc::new(pdu));
                    break;
                }
                let Some(prev) = pdu.json["unsigned"]["replaces_state"].as_str() else {
                    break;
                };
                match self.event(prev).await? {
                    Some(p) => pdu = p,
                    None => break,
                }
            }
        }
        Ok(state)
    }

    /// The stream position just before the user's latest unbroken run of joins began.
    async fn membership_run_start(&self, room_id: &str, user: &str) -> Result<i64> {
        let rows = self.storage.member_history(room_id, user).await?;
        let mut start = 0;
        let mut seen_join = false;
        for e in rows {
            if e.membership == "join" {
                seen_join = true;
                start = e.stream - 1;
            } else if seen_join {
                break;
            }
        }
        Ok(start)
    }
}
