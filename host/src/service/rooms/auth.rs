//! The authorization rules of room versions 10, 11 and 12 for the events this server creates:
//! create, membership (join, invite, knock, leave, kick, ban, unban under the join rules), power
//! levels and their changes, redaction, and the general send and state checks. Pure functions
//! of the event and the room state before it, reading what differs between versions off the
//! room's [`RoomVersion`].

use serde_json::Value;

use super::power_levels::{invalid_content, PowerLevels};
use super::state::{RoomState, StateEntry};
use super::values::{JoinRule, Membership};
use crate::service::identifiers::server_of;
use crate::service::room_version::RoomVersion;

/// The parts of a new event the rules look at.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub room_id: &'a str,
    pub kind: &'a str,
    pub state_key: Option<&'a str>,
    pub sender: &'a str,
    pub content: &'a Value,
}

fn get<'a>(state: &'a RoomState, kind: &str, key: &str) -> Option<&'a StateEntry> {
    state.get(kind, key)
}

fn content_of(state: &RoomState, kind: &str, key: &str) -> Option<Value> {
    get(state, kind, key).map(StateEntry::content)
}

fn membership_of(state: &RoomState, user: &str) -> Membership {
    Membership::of(get(state, "m.room.member", user).and_then(|p| p.membership()))
}

/// The room's power levels as the state has them.
pub fn power_levels(state: &RoomState) -> PowerLevels {
    state.power_levels().as_ref().clone()
}

/// `Ok` if the event is allowed, otherwise the reason.
pub fn check(ev: &Candidate, state: &RoomState) -> Result<(), String> {
    if ev.kind == "m.room.create" {
        return check_create(ev, state);
    }
    let Some(create) = get(state, "m.room.create", "") else {
        return Err("the room has no create event".into());
    };
    let version = state
        .version()
        .ok_or_else(|| "the room's version is not supported".to_string())?;
    // A room whose create event says `m.federate: false` takes events from its creator's
    // server only.
    if create.content()["m.federate"] == Value::Bool(false)
        && server_of(ev.sender) != server_of(&create.sender)
    {
        return Err("the room does not federate".into());
    }
    if ev.kind == "m.room.member" {
        return check_member(ev, state, version);
    }
    // Read off the entry's kept flag: every event sent passes here, and parsing the sender's
    // member content each time was a measurable part of the send path.
    if !get(state, "m.room.member", ev.sender).is_some_and(StateEntry::is_joined) {
        return Err(format!("{} is not in the room", ev.sender));
    }
    let pl = state.power_levels();
    let sender_level = pl.user_level(ev.sender);
    // The spec's rule for third party invites is the invite level alone, not the event's.
    if ev.kind == "m.room.third_party_invite" {
        return if sender_level >= pl.invite {
            Ok(())
        } else {
            Err(format!(
                "{} needs power level {} to invite",
                ev.sender, pl.invite
            ))
        };
    }
    let needed = pl.event_level(ev.kind, ev.state_key.is_some());
    if sender_level < needed {
        return Err(format!(
            "{} needs power level {needed} to send {} (has {sender_level})",
            ev.sender, ev.kind
        ));
    }
    if let Some(sk) = ev.state_key {
        if sk.starts_with('@') && sk != ev.sender {
            return Err("a state key that is a user id must be the sender's".into());
        }
    }
    if ev.kind == "m.room.power_levels" && ev.state_key == Some("") {
        return check_power_levels(ev, state, &pl);
    }
    Ok(())
}

fn check_create(ev: &Candidate, state: &RoomState) -> Result<(), String> {
    if !state.is_empty() {
        return Err("a room has one create event".into());
    }
    if ev.state_key != Some("") {
        return Err("m.room.create needs an empty state key".into());
    }
    let version = RoomVersion::of_create(ev.content)?;
    // From version 12 the room id is the create event's hash: it names no server.
    if !version.room_id_is_create_hash && server_of(ev.room_id) != server_of(ev.sender) {
        return Err("the room id and the creator must be on the same server".into());
    }
    if version.create_names_creator && ev.content.get("creator").and_then(Value::as_str).is_none() {
        return Err("m.room.create needs a creator".into());
    }
    if version.privileged_creators {
        if let Some(additional) = ev.content.get("additional_creators") {
            let valid = additional.as_array().is_some_and(|users| {
                users.iter().all(|u| {
                    u.as_str()
                        .is_some_and(|u| crate::service::identifiers::parse_user_id(u).is_ok())
                })
            });
            if !valid {
                return Err("additional_creators must be a list of user ids".into());
            }
        }
    }
    Ok(())
}

fn check_member(ev: &Candidate, state: &RoomState, version: &RoomVersion) -> Result<(), String> {
    let Some(target) = ev.state_key else {
        return Err("a member event needs a state key".into());
    };
    if crate::service::identifiers::parse_user_id(target).is_err() {
        return Err("a member event's state key must be a user id".into());
    }
    let Some(membership) = ev.content["membership"].as_str() else {
        return Err("a member event needs a membership".into());
    };
    let Some(membership) = Membership::parse(membership) else {
        return Err(format!("unknown membership '{membership}'"));
    };
    let sender_membership = membership_of(state, ev.sender);
    let target_membership = membership_of(state, target);
    let pl = state.power_levels();
    let sender_level = pl.user_level(ev.sender);
    let target_level = pl.user_level(target);
    let join_rule = JoinRule::of(content_of(state, "m.room.join_rules", "").as_ref());
    match membership {
        Membership::Join => {
            // The creator's own join comes straight after the create event (the first
            // creator: the sender of the create event from version 11).
            let creators = state.creators();
            let creator = creators.users.first().map_or("", String::as_str);
            if state.len() == 1 && target == creator && ev.sender == creator {
                return Ok(());
            }
            if ev.sender != target {
                return Err("only the user may join themselves".into());
            }
            match target_membership {
                Membership::Ban => Err(format!("{target} is banned from the room")),
                Membership::Join => Ok(()),
                _ => match join_rule {
                    JoinRule::Public => Ok(()),
                    JoinRule::Invite
                    | JoinRule::Knock
                    | JoinRule::Restricted
                    | JoinRule::KnockRestricted
                        if target_membership == Membership::Invite =>
                    {
                        Ok(())
                    }
                    _ => Err(format!("{target} is not invited to the room")),
                },
            }
        }
        Membership::Invite => {
            if sender_membership != Membership::Join {
                return Err(format!("{} is not in the room", ev.sender));
            }
            match target_membership {
                Membership::Ban => return Err(format!("{target} is banned from the room")),
                Membership::Join => return Err(format!("{target} is already in the room")),
                _ => {}
            }
            if sender_level < pl.invite {
                return Err(format!(
                    "{} needs power level {} to invite",
                    ev.sender, pl.invite
                ));
            }
            Ok(())
        }
        Membership::Leave => {
            if ev.sender == target {
                return match target_membership {
                    Membership::Join | Membership::Invite | Membership::Knock => Ok(()),
                    _ => Err(format!("{target} is not in the room")),
                };
            }
            if sender_membership != Membership::Join {
                return Err(format!("{} is not in the room", ev.sender));
            }
            if target_membership == Membership::Ban && sender_level < pl.ban {
                return Err(format!(
                    "{} needs power level {} to unban",
                    ev.sender, pl.ban
                ));
            }
            // Unbanning needs the kick level as well as the ban level.
            if sender_level < pl.kick {
                return Err(format!(
                    "{} needs power level {} to kick or unban",
                    ev.sender, pl.kick
                ));
            }
            if target_level >= sender_level {
                return Err(format!(
                    "{} may not kick or unban {target}, whose power level is not lower",
                    ev.sender
                ));
            }
            Ok(())
        }
        Membership::Ban => {
            if sender_membership != Membership::Join {
                return Err(format!("{} is not in the room", ev.sender));
            }
            if sender_level < pl.ban {
                return Err(format!("{} needs power level {} to ban", ev.sender, pl.ban));
            }
            if target_level >= sender_level {
                return Err(format!(
                    "{} may not ban {target}, whose power level is not lower",
                    ev.sender
                ));
            }
            Ok(())
        }
        Membership::Knock => {
            if !version.knocking {
                return Err(format!("room version {} has no knocking", version.id));
            }
            if !matches!(join_rule, JoinRule::Knock | JoinRule::KnockRestricted) {
                return Err("the room's join rule does not allow knocking".into());
            }
            if ev.sender != target {
                return Err("only the user may knock for themselves".into());
            }
            match target_membership {
                Membership::Ban => Err(format!("{target} is banned from the room")),
                Membership::Join => Err(format!("{target} is already in the room")),
                Membership::Invite => Err(format!("{target} is already invited to the room")),
                Membership::Leave | Membership::Knock => Ok(()),
            }
        }
    }
}

fn check_power_levels(ev: &Candidate, state: &RoomState, old: &PowerLevels) -> Result<(), String> {
    if let Some(why) = invalid_content(ev.content) {
        return Err(format!("invalid power levels: {why}"));
    }
    // Checked of the first power levels too: the room's creators are known from its create
    // event (ruma's rule; the room's first power levels were let through before).
    let creators = state.creators();
    if creators.privileged {
        if let Some(named) = creators
            .users
            .iter()
            .find(|c| ev.content["users"].get(c.as_str()).is_some())
        {
            return Err(format!(
                "{named} created the room: a creator's power is not set in power levels"
            ));
        }
    }
    let Some(old_content) = content_of(state, "m.room.power_levels", "") else {
        return Ok(());
    };
    let new = PowerLevels::from_content(Some(ev.content), &creators);
    let mine = old.user_level(ev.sender);
    let changed = |what: &str, before: Option<i64>, after: Option<i64>| -> Result<(), String> {
        if before == after {
            return Ok(());
        }
        if before.is_some_and(|b| b > mine) || after.is_some_and(|a| a > mine) {
            return Err(format!(
                "{} may not change {what} beyond their own power level {mine}",
                ev.sender
            ));
        }
        Ok(())
    };
    for (name, b, a) in [
        ("users_default", old.users_default, new.users_default),
        ("events_default", old.events_default, new.events_default),
        ("state_default", old.state_default, new.state_default),
        ("ban", old.ban, new.ban),
        ("kick", old.kick, new.kick),
        ("redact", old.redact, new.redact),
        ("invite", old.invite, new.invite),
    ] {
        changed(name, Some(b), Some(a))?;
    }
    let kinds: std::collections::BTreeSet<&String> =
        old.events.keys().chain(new.events.keys()).collect();
    for kind in kinds {
        changed(
            &format!("the level of {kind}"),
            old.events.get(kind).copied(),
            new.events.get(kind).copied(),
        )?;
    }
    let old_notifications = notification_levels(Some(&old_content));
    let new_notifications = notification_levels(Some(ev.content));
    let keys: std::collections::BTreeSet<&String> = old_notifications
        .keys()
        .chain(new_notifications.keys())
        .collect();
    for key in keys {
        changed(
            &format!("the notification level of {key}"),
            old_notifications.get(key).copied(),
            new_notifications.get(key).copied(),
        )?;
    }
    let users: std::collections::BTreeSet<&String> =
        old.users.keys().chain(new.users.keys()).collect();
    for user in users {
        let before = old.users.get(user).copied();
        let after = new.users.get(user).copied();
        if before != after && user.as_str() != ev.sender && before.is_some_and(|b| b >= mine) {
            return Err(format!(
                "{} may not change the level of {user}, which is not below their own",
                ev.sender
            ));
        }
        changed(&format!("the level of {user}"), before, after)?;
    }
    Ok(())
}

/// The `notifications` levels of a power levels content.
fn notification_levels(content: Option<&Value>) -> std::collections::BTreeMap<String, i64> {
    content
        .and_then(|c| c.get("notifications"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_i64().map(|l| (k.clone(), l)))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `sender` may redact an event sent by `original_sender`: their own, or with the
/// room's redact level.
pub fn may_redact(state: &RoomState, sender: &str, original_sender: &str) -> bool {
    if sender == original_sender {
        return true;
    }
    let pl = state.power_levels();
    pl.user_level(sender) >= pl.redact
}

#[cfg(test)]
mod differential;
#[cfg(test)]
mod tests;
