//! History visibility. A coarse window says whether a user may read a room at all and up to
//! where (their leave); [`EventVisibility`] then applies the spec's rule to each event, with
//! the visibility in force when that event was sent and the user's membership at it. A
//! [`Viewer`] is the two together: what `/messages`, `/event` and the plugins' host calls
//! ([`RoomService::room_access`], [`RoomService::visible_events`]) ask of each event.

use std::collections::HashMap;
use std::sync::Arc;

use super::pdu::Pdu;
use super::values::{HistoryVisibility, Membership};
use super::{RoomService, StateMap};
use crate::service::room_version;
use crate::service::{Error, Result};

/// What a user may read of a room now (the plugins' `room-access`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct RoomAccess {
    /// Joined to the room.
    pub(crate) joined: bool,
    /// May read it now: joined, or the room is world readable. Not after leaving.
    pub(crate) readable: bool,
    /// Readable, and every event the room holds passes the per-event rule.
    pub(crate) whole_history: bool,
}

/// One user's view of one room: the window and the per-event rule, as `/messages` applies them.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    window: Option<Window>,
    visibility: EventVisibility,
}

impl Viewer {
    /// Whether the user may see `pdu`, an event of this room.
    pub(crate) fn sees(&self, pdu: &Pdu) -> bool {
        self.window.is_some_and(|w| pdu.stream <= w.upper) && self.visibility.can_see(pdu)
    }

    /// The user may read some of the room: they are or were in it, or it is world readable.
    pub(crate) fn reads_anything(&self) -> bool {
        self.window.is_some()
    }

    /// The user may read what the room has now (their window has no end).
    fn reads_now(&self) -> bool {
        self.window.is_some_and(|w| w.upper == i64::MAX)
    }
}

/// How far into the stream a user may read: up to `upper` (their leave), or without end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) upper: i64,
}

impl RoomService {
    /// `None` when the user may read nothing of the room.
    pub(crate) async fn visible_window(&self, room_id: &str, user: &str) -> Result<Option<Window>> {
        let memberships = self.membership_history(room_id, user).await?;
        self.window_of(room_id, &memberships).await
    }

    /// The window of a user whose membership events in the room are `memberships` (oldest
    /// first).
    async fn window_of(
        &self,
        room_id: &str,
        memberships: &[(i64, Membership)],
    ) -> Result<Option<Window>> {
        let content = self
            .state_content(room_id, "m.room.history_visibility", "")
            .await?;
        let visibility = HistoryVisibility::of(
            content
                .as_ref()
                .and_then(|c| c["history_visibility"].as_str()),
        );
        if visibility == HistoryVisibility::WorldReadable {
            return Ok(Some(Window { upper: i64::MAX }));
        }
        let Some((stream, membership)) = memberships.last() else {
            return Ok(None);
        };
        // Only a user who was joined at some point reads back after leaving: a rejected or
        // withdrawn invite, or a ban before joining, shows no history.
        let ever_joined = memberships.iter().any(|(_, m)| *m == Membership::Join);
        Ok(match membership {
            Membership::Join => Some(Window { upper: i64::MAX }),
            Membership::Leave | Membership::Ban if ever_joined => Some(Window { upper: *stream }),
            _ => None,
        })
    }

    /// The state `user` may read: the current state while they are joined (or the room is
    /// world readable), the state when they left once they have left; `Forbidden` otherwise.
    pub(crate) async fn readable_state(&self, room_id: &str, user: &str) -> Result<StateMap> {
        match self.state_point(room_id, user).await? {
            None => self.current_state(room_id).await,
            Some(at) => self.state_at(room_id, at).await,
        }
    }

    /// One event of the state `user` may read.
    pub(crate) async fn readable_state_event(
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
    pub(crate) async fn event_visibility(
        &self,
        room_id: &str,
        user: &str,
    ) -> Result<EventVisibility> {
        Ok(EventVisibility {
            user: user.to_string(),
            memberships: self.membership_history(room_id, user).await?,
        })
    }

    /// `user`'s membership events in a room, `(stream, membership)`, oldest first: their
    /// current one walked back along `replaces_state`. Every membership event of a room
    /// replaces the one before it (the room's head serializes them), so this is the whole
    /// history, read by id a few events at a time instead of by a scan of the room's events.
    async fn membership_history(
        &self,
        room_id: &str,
        user: &str,
    ) -> Result<Vec<(i64, Membership)>> {
        let Some(m) = self.storage.membership(room_id, user).await? else {
            return Ok(Vec::new());
        };
        Ok(self
            .replaced(&m.event_id)
            .await?
            .into_iter()
            .map(|p| (p.stream, Membership::of(p.membership())))
            .collect())
    }

    /// The room's `m.room.history_visibility` events, oldest first.
    async fn visibility_changes(&self, room_id: &str) -> Result<Vec<Pdu>> {
        match self
            .state_event(room_id, "m.room.history_visibility", "")
            .await?
        {
            Some(current) => self.replaced(&current.event_id).await,
            None => Ok(Vec::new()),
        }
    }

    /// The state event `last` and those it replaced, one after the other along
    /// `unsigned.replaces_state` (as [`RoomService::state_at`] walks them), oldest first.
    async fn replaced(&self, last: &str) -> Result<Vec<Pdu>> {
        let mut chain: Vec<Pdu> = Vec::new();
        let mut next = Some(last.to_string());
        while let Some(id) = next.take() {
            let Some(pdu) = self.event(&id).await? else {
                break;
            };
            // The walk goes strictly back in the stream: a damaged chain cannot loop.
            if chain.last().is_some_and(|p| pdu.stream >= p.stream) {
                break;
            }
            next = pdu.json["unsigned"]["replaces_state"]
                .as_str()
                .map(str::to_string);
            chain.push(pdu);
        }
        chain.reverse();
        Ok(chain)
    }

    /// `user`'s view of a room; `NotFound` for a room the server does not know.
    pub(crate) async fn viewer(&self, room_id: &str, user: &str) -> Result<Viewer> {
        let memberships = self.membership_history(room_id, user).await?;
        Ok(Viewer {
            window: self.window_of(room_id, &memberships).await?,
            visibility: EventVisibility {
                user: user.to_string(),
                memberships,
            },
        })
    }

    /// What `user` may read of a room now; nothing of a room the server does not know.
    pub(crate) async fn room_access(&self, room_id: &str, user: &str) -> Result<RoomAccess> {
        let viewer = match self.viewer(room_id, user).await {
            Ok(v) => v,
            Err(Error::NotFound(_)) => return Ok(RoomAccess::default()),
            Err(e) => return Err(e),
        };
        let joined =
            viewer.visibility.memberships.last().map(|(_, m)| *m) == Some(Membership::Join);
        if !viewer.reads_now() {
            return Ok(RoomAccess {
                joined,
                ..RoomAccess::default()
            });
        }
        Ok(RoomAccess {
            joined,
            readable: true,
            whole_history: self.sees_whole_history(room_id, &viewer).await?,
        })
    }

    /// Whether the viewer sees every event of the room, without reading them all. Between two
    /// of the user's membership events and the room's history visibility changes, every event
    /// was sent under the same visibility and the same membership of the user, so the
    /// per-event rule answers them all alike. A stretch where the rule would show an event of
    /// any visibility needs no look at all; elsewhere the first and the last event of the
    /// stretch stand for it (two kinds only may share one: events stored before the server
    /// kept each event's visibility, read as `shared`, and after them those that have it).
    /// The boundaries themselves are the user's own membership events, which they always see,
    /// and the visibility changes, asked one by one.
    async fn sees_whole_history(&self, room_id: &str, viewer: &Viewer) -> Result<bool> {
        let changes = self.visibility_changes(room_id).await?;
        if changes.iter().any(|p| !viewer.sees(p)) {
            return Ok(false);
        }
        let bounds = viewer
            .visibility
            .memberships
            .iter()
            .map(|(s, _)| *s)
            .chain(changes.iter().map(|p| p.stream));
        for (after, before) in stretches(bounds) {
            if sees_any_event_at(viewer, room_id, after + 1) {
                continue;
            }
            for row in self
                .storage
                .room_stretch_ends(room_id, after, before)
                .await?
            {
                if !viewer.sees(&Pdu::try_from(row)?) {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Of `event_ids`, those `user` may see, in the order given, each with its room. Ids the
    /// server does not know are left out.
    pub(crate) async fn visible_events(
        &self,
        user: &str,
        event_ids: &[String],
    ) -> Result<Vec<(String, String)>> {
        let headers = self.storage.event_headers(event_ids).await?;
        let mut viewers: HashMap<String, Viewer> = HashMap::new();
        let mut visible = Vec::new();
        for id in event_ids {
            let Some(header) = headers.get(id) else {
                continue;
            };
            let pdu = Pdu {
                stream: header.stream,
                event_id: header.event_id.clone(),
                room_id: header.room_id.clone(),
                sender: String::new(),
                kind: header.kind.clone(),
                state_key: header.state_key.clone(),
                json: serde_json::Value::Null,
                redacted_by: None,
                txn: None,
                history_visibility: header.history_visibility.clone(),
                // Asked of the visibility rule only, which redacts nothing.
                version: room_version::DEFAULT,
            };
            let viewer = match viewers.get(&pdu.room_id) {
                Some(v) => v,
                None => {
                    let v = self.viewer(&pdu.room_id, user).await?;
                    viewers.entry(pdu.room_id.clone()).or_insert(v)
                }
            };
            if viewer.sees(&pdu) {
                visible.push((pdu.event_id, pdu.room_id));
            }
        }
        Ok(visible)
    }
}

/// Whether `viewer` would see an event at `stream` of `room_id` (not their own membership)
/// whatever the history visibility in force when it was sent: asked of the rule itself,
/// with one made-up event for each visibility the spec knows, none, and one it does not.
fn sees_any_event_at(viewer: &Viewer, room_id: &str, stream: i64) -> bool {
    [
        None,
        Some("world_readable"),
        Some("shared"),
        Some("invited"),
        Some("joined"),
        Some("unknown"),
    ]
    .into_iter()
    .all(|visibility| {
        viewer.sees(&Pdu {
            stream,
            event_id: String::new(),
            room_id: room_id.to_string(),
            sender: String::new(),
            kind: "m.room.message".into(),
            state_key: None,
            json: serde_json::Value::Null,
            redacted_by: None,
            txn: None,
            history_visibility: visibility.map(str::to_string),
            version: room_version::DEFAULT,
        })
    })
}

/// The stretches of the stream between `bounds` (stream positions of events, in any order):
/// `(after, before)` for each run of positions `after < stream < before` that holds any, from
/// the start of the stream to its end.
fn stretches(bounds: impl Iterator<Item = i64>) -> Vec<(i64, i64)> {
    let mut bounds: Vec<i64> = bounds.chain([0, i64::MAX]).collect();
    bounds.sort_unstable();
    bounds.dedup();
    bounds
        .windows(2)
        .map(|pair| (pair[0], pair[1]))
        .filter(|(after, before)| before - after >= 2)
        .collect()
}

/// The spec's history visibility rule for one user in one room.
#[derive(Debug, Clone)]
pub(crate) struct EventVisibility {
    user: String,
    /// `(stream, membership)`, oldest first.
    memberships: Vec<(i64, Membership)>,
}

impl EventVisibility {
    /// The user's membership once the event at `stream` is applied.
    fn membership_at(&self, stream: i64) -> Membership {
        let i = self.memberships.partition_point(|(s, _)| *s <= stream);
        if i == 0 {
            Membership::Leave
        } else {
            self.memberships[i - 1].1
        }
    }

    /// World readable; or joined at the event; or shared and joined at any point since; or
    /// invited and invited at the event. A user always sees their own membership changes.
    pub(crate) fn can_see(&self, pdu: &Pdu) -> bool {
        if pdu.kind == "m.room.member" && pdu.state_key.as_deref() == Some(self.user.as_str()) {
            return true;
        }
        // No visibility at the event is the default, shared; one the spec does not have
        // (`None` here) shows the event only to those joined at it.
        let visibility = match pdu.history_visibility.as_deref() {
            None => Some(HistoryVisibility::Shared),
            Some(v) => HistoryVisibility::parse(v),
        };
        if visibility == Some(HistoryVisibility::WorldReadable) {
            return true;
        }
        let at = self.membership_at(pdu.stream);
        if at == Membership::Join {
            return true;
        }
        match visibility {
            Some(HistoryVisibility::Shared) => self
                .memberships
                .iter()
                .any(|(s, m)| *s >= pdu.stream && *m == Membership::Join),
            Some(HistoryVisibility::Invited) => at == Membership::Invite,
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
            version: room_version::DEFAULT,
        }
    }

    fn user(memberships: &[(i64, &str)]) -> EventVisibility {
        EventVisibility {
            user: "@u:x".into(),
            memberships: memberships
                .iter()
                .map(|(s, m)| (*s, Membership::parse(m).expect("a membership")))
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
    fn the_stream_falls_into_stretches_between_the_bounds_leaving_out_empty_ones() {
        assert_eq!(stretches([].into_iter()), [(0, i64::MAX)]);
        assert_eq!(
            stretches([12, 5, 6, 12].into_iter()),
            [(0, 5), (6, 12), (12, i64::MAX)],
            "nothing lies between 5 and 6"
        );
    }

    #[test]
    fn a_stretch_needs_no_look_only_where_the_rule_shows_every_visibility() {
        let joined_at_10 = Viewer {
            window: Some(Window { upper: i64::MAX }),
            visibility: user(&[(10, "join")]),
        };
        assert!(sees_any_event_at(&joined_at_10, "!r:x", 15), "joined then");
        assert!(
            !sees_any_event_at(&joined_at_10, "!r:x", 5),
            "before the join, a joined-only event would be hidden"
        );
        let left_at_20 = Viewer {
            window: Some(Window { upper: 20 }),
            visibility: user(&[(10, "join"), (20, "leave")]),
        };
        assert!(!sees_any_event_at(&left_at_20, "!r:x", 25), "after leaving");
    }

    #[test]
    fn the_visibility_at_the_event_decides_not_the_current_one() {
        let u = user(&[(50, "join")]);
        assert!(!u.can_see(&event(10, "joined")), "sent while joined-only");
        assert!(u.can_see(&event(20, "shared")));
        assert!(u.can_see(&event(30, "world_readable")));
    }
}
