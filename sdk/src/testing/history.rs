//! A fake room's history as the harness keeps it: each event with what the spec's history
//! visibility rule needs of it (whose membership it sets, and to what; the visibility in
//! force when it was sent), and the rule itself, answering `access_to_rooms` and
//! `visible_events` as the server does: a member who left sees nothing sent since, `joined`
//! and `invited` hide what came before, `world_readable` shows all.

use crate::bindings::plugboard::appservice::homeserver::RoomAccess;
use serde_json::Value;

/// The events of one room, in order.
#[derive(Default)]
pub(super) struct History {
    steps: Vec<Step>,
}

/// One event of the history.
struct Step {
    event_id: String,
    /// `Some(target)` for an `m.room.member` event.
    member: Option<String>,
    /// The membership it sets, for an `m.room.member` event.
    membership: String,
    /// The room's history visibility before it (what was in force when it was sent).
    visibility: String,
}

impl History {
    /// Adds an event sent under `visibility`; false when it is there already.
    pub(super) fn add(
        &mut self,
        event_id: &str,
        event_type: &str,
        state_key: Option<&str>,
        content: &Value,
        visibility: String,
    ) -> bool {
        if self.steps.iter().any(|s| s.event_id == event_id) {
            return false;
        }
        let member = (event_type == "m.room.member")
            .then(|| state_key.map(str::to_string))
            .flatten();
        self.steps.push(Step {
            event_id: event_id.to_string(),
            membership: content["membership"]
                .as_str()
                .unwrap_or("leave")
                .to_string(),
            member,
            visibility,
        });
        true
    }

    /// `user`'s membership once the event at `at` is applied.
    fn membership_at(&self, user: &str, at: usize) -> &str {
        self.steps[..=at]
            .iter()
            .rev()
            .find(|s| s.member.as_deref() == Some(user))
            .map_or("leave", |s| s.membership.as_str())
    }

    /// How far `user` may read, the room's visibility being `now`: `Some(usize::MAX)`
    /// without end, `Some(i)` up to their leave at `i`, `None` not at all.
    fn window(&self, user: &str, now: &str) -> Option<usize> {
        if now == "world_readable" {
            return Some(usize::MAX);
        }
        let mine: Vec<usize> = (0..self.steps.len())
            .filter(|&i| self.steps[i].member.as_deref() == Some(user))
            .collect();
        let last = *mine.last()?;
        let ever_joined = mine.iter().any(|&i| self.steps[i].membership == "join");
        match self.steps[last].membership.as_str() {
            "join" => Some(usize::MAX),
            "leave" | "ban" if ever_joined => Some(last),
            _ => None,
        }
    }

    /// The rule for the event at `at`.
    fn sees(&self, user: &str, at: usize, now: &str) -> bool {
        if self.window(user, now).is_none_or(|upper| at > upper) {
            return false;
        }
        let step = &self.steps[at];
        if step.member.as_deref() == Some(user) {
            return true;
        }
        let membership = self.membership_at(user, at);
        match step.visibility.as_str() {
            "world_readable" => true,
            _ if membership == "join" => true,
            "shared" => self.steps[at..]
                .iter()
                .any(|s| s.member.as_deref() == Some(user) && s.membership == "join"),
            "invited" => membership == "invite",
            _ => false,
        }
    }

    /// Whether `user` may see the event `event_id` (false for one not here).
    pub(super) fn sees_event(&self, user: &str, event_id: &str, now: &str) -> bool {
        self.steps
            .iter()
            .position(|s| s.event_id == event_id)
            .is_some_and(|at| self.sees(user, at, now))
    }

    /// What `user` (`joined` or not) may read of the room now.
    pub(super) fn access(&self, user: &str, joined: bool, now: &str) -> RoomAccess {
        let readable = self.window(user, now) == Some(usize::MAX);
        RoomAccess {
            joined,
            readable,
            whole_history: readable && (0..self.steps.len()).all(|i| self.sees(user, i, now)),
        }
    }
}
