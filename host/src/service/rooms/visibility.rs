//! History visibility. A coarse window says whether a user may read a room at all and up to
//! where (their leave); [`EventVisibility`] then applies the spec's rule to each event, with
//! the visibility in force when that event was sent and the user's membership at it.

use std::sync::Arc;

use super::pdu::Pdu;
use super::{RoomService, StateMap};
use crate::service::{Error, Result};

/// How far into the stream a user may read: up to `upper` (their leave), or without end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub upper: i64,
}

impl RoomService {
    /// `None` when the user may read nothing of the room.
    pub async fn visible_window(&self, room_id: &str, user: &str) -> Result<Option<Window>> {
        let visibility = self
            .state_content(room_id, "m.room.history_visibility", "")
            .await?
            .and_then(|c| c["history_visibility"].as_str().map(String::from))
            .unwrap_or_else(|| "shared".into());
        if visibility == "world_readable" {
            return Ok(Some(Window { upper: i64::MAX }));
        }
        let Some(m) = self.storage.membership(room_id, user).await? else {
            return Ok(None);
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
            "join" => Some(Window { upper: i64::MAX }),
            "leave" | "ban" if ever_joined => Some(Window { upper: m.stream }),
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

    /// What the per-event rule needs to know of `user` in a room: their membership history.
    pub async fn event_visibility(&self, room_id: &str, user: &str) -> Result<EventVisibility> {
        let mut memberships: Vec<(i64, String)> = self
            .storage
            .member_history(room_id, user)
            .await?
            .into_iter()
            .map(|e| (e.stream, e.membership))
            .collect();
        memberships.reverse();
        Ok(EventVisibility {
            user: user.to_string(),
            memberships,
        })
    }
}

/// The spec's history visibility rule for one user in one room.
#[derive(Debug, Clone)]
pub struct EventVisibility {
    user: String,
    /// `(stream, membership)`, oldest first.
    memberships: Vec<(i64, String)>,
}

impl EventVisibility {
    /// The user's membership once the event at `stream` is applied.
    fn membership_at(&self, stream: i64) -> &str {
        let i = self.memberships.partition_point(|(s, _)| *s <= stream);
        if i == 0 {
            "leave"
        } else {
            &self.memberships[i - 1].1
        }
    }

    /// World readable; or joined at the event; or shared and joined at any point since; or
    /// invited and invited at the event. A user always sees their own membership changes.
    pub fn can_see(&self, pdu: &Pdu) -> bool {
        if pdu.kind == "m.room.member" && pdu.state_key.as_deref() == Some(self.user.as_str()) {
            return true;
        }
        let visibility = pdu.history_visibility.as_deref().unwrap_or("shared");
        if visibility == "world_readable" {
            return true;
        }
        let at = self.membership_at(pdu.stream);
        if at == "join" {
            return true;
        }
        match visibility {
            "shared" => self
                .memberships
                .iter()
                .any(|(s, m)| *s >= pdu.stream && m == "join"),
            "invited" => at == "invite",
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(stream: i64, visibility: &str) -> Pdu {
        Pdu {
            stream,
            event_id: format!("${stream}"),
            room_id: "!r:x".into(),
            sender: "@o:x".into(),
            kind: "m.room.message".into(),
            state_key: None,
            json: json!({"content": {}}),
            redacted_by: None,
            txn: None,
            history_visibility: Some(visibility.into()),
        }
    }

    fn user(memberships: &[(i64, &str)]) -> EventVisibility {
        EventVisibility {
            user: "@u:x".into(),
            memberships: memberships
                .iter()
                .map(|(s, m)| (*s, m.to_string()))
                .collect(),
        }
    }

    #[test]
    fn joined_visibility_hides_what_came_before_the_join_and_while_away() {
        let u = user(&[(10, "join"), (20, "leave"), (30, "join")]);
        assert!(!u.can_see(&event(5, "joined")));
        assert!(u.can_see(&event(15, "joined")));
        assert!(!u.can_see(&event(25, "joined")));
        assert!(u.can_see(&event(35, "joined")));
    }

    #[test]
    fn shared_visibility_shows_history_to_those_who_joined_later() {
        let u = user(&[(10, "join"), (20, "leave")]);
        assert!(u.can_see(&event(5, "shared")));
        assert!(!u.can_see(&event(25, "shared")), "nothing after leaving");
        let never = user(&[(10, "invite"), (12, "leave")]);
        assert!(
            !never.can_see(&event(5, "shared")),
            "an invite alone shows nothing"
        );
    }

    #[test]
    fn invited_visibility_starts_at_the_invite() {
        let u = user(&[(10, "invite"), (20, "join")]);
        assert!(!u.can_see(&event(5, "invited")));
        assert!(u.can_see(&event(15, "invited")));
        assert!(!u.can_see(&event(15, "joined")));
    }

    #[test]
    fn the_visibility_at_the_event_decides_not_the_current_one() {
        let u = user(&[(50, "join")]);
        assert!(!u.can_see(&event(10, "joined")), "sent while joined-only");
        assert!(u.can_see(&event(20, "shared")));
        assert!(u.can_see(&event(30, "world_readable")));
    }
}
