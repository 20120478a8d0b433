//! History visibility: which stretch of a room's stream a user may read. Uses the room's
//! current `m.room.history_visibility` for the whole history (a simplification of the spec's
//! per-event rule, which the tests state).

use super::RoomService;
use crate::service::Result;

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
        Ok(match m.membership.as_str() {
            "join" => Some(Window {
                lower,
                upper: i64::MAX,
            }),
            "leave" | "ban" => Some(Window {
                lower,
                upper: m.stream,
            }),
            _ => None,
        })
    }

    /// The stream position just before the user's latest unbroken run of joins began.
    async fn membership_run_start(&self, room_id: &str, user: &str) -> Result<i64> {
        let rows = self.storage.member_history(room_id, user).await?;
        let mut start = 0;
        let mut seen_join = false;
        for (stream, membership) in rows {
            if membership == "join" {
                seen_join = true;
                start = stream - 1;
            } else if seen_join {
                break;
            }
        }
        Ok(start)
    }
}
