//! The push outcome of an event the write path is about to store: the room's local members and
//! power levels read from its state in memory, evaluated (see `evaluate`), in the form storage
//! keeps (`event_push`). Runs under the room's lock, so it reads no database.

use serde_json::Value;

use super::evaluate::{self, highlights, notifies, Member, Room};
use super::kept::{ByUser, KeptRules};
use crate::service::rooms::state::RoomState;
use crate::storage::push_actions::{PushException, PushRow};

/// What the rules make of `event` for the local members of the room whose state before it is
/// `state`; `None` when it notifies nobody.
pub(crate) fn push_row(
    state: &RoomState,
    event: &Value,
    server_name: &str,
    kept: &KeptRules,
) -> Option<PushRow> {
    let room_id = event["room_id"].as_str()?;
    let local = |user: &str| crate::service::identifiers::server_of(user) == server_name;
    let kept = kept.snapshot();
    let mut member_count = 0;
    let mut members = Vec::new();
    for (user, entry) in state.of_kind("m.room.member") {
        if !entry.is_joined() {
            continue;
        }
        member_count += 1;
        if local(user) {
            members.push(member(state, user, &kept));
        }
    }
    // An invite is for someone not yet in the room: the rules of the invited hear it.
    if event["type"] == "m.room.member" && event["content"]["membership"] == "invite" {
        if let Some(invited) = event["state_key"].as_str().filter(|u| local(u)) {
            members.push(member(state, invited, &kept));
        }
    }
    if members.is_empty() {
        return None;
    }
    let sender = event["sender"].as_str()?;
    let levels = state.power_levels();
    let room = Room {
        room_id,
        member_count,
        sender_level: levels.user_level(sender),
        room_notification_level: levels.notifications_room,
    };
    let outcome = evaluate::evaluate(event, &room, &members)?;
    if !outcome.notifies_anyone() {
        return None;
    }
    Some(PushRow {
        thread_id: outcome.thread_id.unwrap_or_default(),
        notify: notifies(&outcome.default),
        highlight: highlights(&outcome.default),
        actions: evaluate::actions_json(&outcome.default).to_string(),
        exceptions: outcome
            .exceptions
            .into_iter()
            .map(|(user_id, actions)| PushException {
                user_id,
                notify: notifies(&actions),
                highlight: highlights(&actions),
                actions: evaluate::actions_json(&actions).to_string(),
            })
            .collect(),
    })
}

/// A member as the rules see them: their display name matters only to their own rules.
fn member<'a>(state: &RoomState, user: &'a str, kept: &ByUser) -> Member<'a> {
    let rules = kept.get(user).cloned();
    let display_name = rules.as_ref().and_then(|_| {
        state
            .get("m.room.member", user)
            .and_then(|e| e.content()["displayname"].as_str().map(str::to_string))
    });
    Member {
        user_id: user,
        display_name,
        rules,
    }
}
