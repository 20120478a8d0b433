//! The authorization rules of room version 10 for the events this server creates: create,
//! membership (join, invite, knock, leave, kick, ban, unban under the join rules), power levels and
//! their changes, redaction, and the general send and state checks. Pure functions of the
//! event and the room state before it.

use serde_json::Value;

use super::power_levels::{invalid_content, PowerLevels};
use super::state::{RoomState, StateEntry};
use super::values::{JoinRule, Membership};
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

fn server_of(id: &str) -> &str {
    id.split_once(':').map(|(_, s)| s).unwrap_or("")
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
    if ev.kind == "m.room.member" {
        return check_member(ev, state, create);
    }
    // Read off the entry's kept flag: every event sent passes here, and parsing the sender's
    // member content each time was a measurable part of the send path.
    if !get(state, "m.room.member", ev.sender).is_some_and(StateEntry::is_joined) {
        return Err(format!("{} is not in the room", ev.sender));
    }
    let pl = state.power_levels();
    let sender_level = pl.user_level(ev.sender);
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
    if server_of(ev.room_id) != server_of(ev.sender) {
        return Err("the room id and the creator must be on the same server".into());
    }
    let version = RoomVersion::of_create(ev.content)?;
    if version.create_names_creator && ev.content.get("creator").and_then(Value::as_str).is_none() {
        return Err("m.room.create needs a creator".into());
    }
    Ok(())
}

fn check_member(ev: &Candidate, state: &RoomState, create: &StateEntry) -> Result<(), String> {
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
            let create = create.content();
            let creator = create["creator"].as_str().unwrap_or("");
            // The creator's own join comes straight after the create event.
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
            let version = RoomVersion::of_create(&create.content())?;
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
    let Some(old_content) = content_of(state, "m.room.power_levels", "") else {
        return Ok(());
    };
    let creator = ev.sender;
    let new = PowerLevels::from_content(Some(ev.content), creator);
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
mod tests {
    use super::*;
    use serde_json::json;

    type Event = (String, String, StateEntry);

    fn pdu(kind: &str, key: &str, sender: &str, content: Value) -> Event {
        let id = format!("${kind}{key}");
        (
            kind.into(),
            key.into(),
            StateEntry::new(&id, sender, &content),
        )
    }

    fn put(state: &mut RoomState, (kind, key, entry): Event) {
        state.set(&kind, &key, entry);
    }

    /// A room made by @c:x with @m:x (50) and @u:x (0) joined, public unless told.
    fn room(join_rule: &str) -> RoomState {
        let mut s = RoomState::default();
        put(
            &mut s,
            pdu(
                "m.room.create",
                "",
                "@c:x",
                json!({"creator": "@c:x", "room_version": "10"}),
            ),
        );
        for u in ["@c:x", "@m:x", "@u:x"] {
            put(
                &mut s,
                pdu("m.room.member", u, u, json!({"membership": "join"})),
            );
        }
        put(
            &mut s,
            pdu(
                "m.room.power_levels",
                "",
                "@c:x",
                json!({"users": {"@c:x": 100, "@m:x": 50}, "events": {"m.room.name": 50}}),
            ),
        );
        put(
            &mut s,
            pdu(
                "m.room.join_rules",
                "",
                "@c:x",
                json!({"join_rule": join_rule}),
            ),
        );
        s
    }

    fn member(sender: &str, target: &str, membership: &str, s: &RoomState) -> Result<(), String> {
        let content = json!({ "membership": membership });
        check(
            &Candidate {
                room_id: "!r:x",
                kind: "m.room.member",
                state_key: Some(target),
                sender,
                content: &content,
            },
            s,
        )
    }

    fn send(sender: &str, kind: &str, key: Option<&str>, content: Value, s: &RoomState) -> bool {
        check(
            &Candidate {
                room_id: "!r:x",
                kind,
                state_key: key,
                sender,
                content: &content,
            },
            s,
        )
        .is_ok()
    }

    #[test]
    fn create_is_first_and_on_the_senders_server() {
        let content = json!({"creator": "@c:x", "room_version": "10"});
        let ok = Candidate {
            room_id: "!r:x",
            kind: "m.room.create",
            state_key: Some(""),
            sender: "@c:x",
            content: &content,
        };
        assert!(check(&ok, &RoomState::default()).is_ok());
        assert!(check(&ok, &room("public")).is_err());
        let other = Candidate {
            sender: "@c:y",
            ..ok
        };
        assert!(check(&other, &RoomState::default()).is_err());
        let v1 = json!({"creator": "@c:x", "room_version": "1"});
        let old = Candidate { content: &v1, ..ok };
        assert!(check(&old, &RoomState::default()).is_err());
    }

    #[test]
    fn anyone_joins_public_only_invited_join_invite_rooms() {
        assert!(member("@n:x", "@n:x", "join", &room("public")).is_ok());
        let mut s = room("invite");
        assert!(member("@n:x", "@n:x", "join", &s).is_err());
        put(
            &mut s,
            pdu(
                "m.room.member",
                "@n:x",
                "@c:x",
                json!({"membership": "invite"}),
            ),
        );
        assert!(member("@n:x", "@n:x", "join", &s).is_ok());
    }

    #[test]
    fn nobody_joins_for_someone_else() {
        assert!(member("@c:x", "@n:x", "join", &room("public")).is_err());
    }

    #[test]
    fn banned_users_cannot_join() {
        let mut s = room("public");
        put(
            &mut s,
            pdu(
                "m.room.member",
                "@n:x",
                "@c:x",
                json!({"membership": "ban"}),
            ),
        );
        assert!(member("@n:x", "@n:x", "join", &s).is_err());
    }

    #[test]
    fn invite_needs_membership_and_level() {
        let mut s = room("invite");
        assert!(member("@u:x", "@n:x", "invite", &s).is_ok());
        assert!(member("@n:x", "@o:x", "invite", &s).is_err());
        assert!(
            member("@u:x", "@m:x", "invite", &s).is_err(),
            "already joined"
        );
        put(
            &mut s,
            pdu(
                "m.room.power_levels",
                "",
                "@c:x",
                json!({"users": {"@c:x": 100}, "invite": 50}),
            ),
        );
        assert!(member("@u:x", "@n:x", "invite", &s).is_err());
        assert!(member("@c:x", "@n:x", "invite", &s).is_ok());
    }

    #[test]
    fn kick_needs_kick_level_and_higher_power() {
        let s = room("public");
        assert!(member("@m:x", "@u:x", "leave", &s).is_ok());
        assert!(member("@u:x", "@m:x", "leave", &s).is_err());
        assert!(member("@m:x", "@c:x", "leave", &s).is_err());
        assert!(
            member("@u:x", "@u:x", "leave", &s).is_ok(),
            "leaving is free"
        );
    }

    #[test]
    fn ban_and_unban_need_ban_level() {
        let mut s = room("public");
        assert!(member("@u:x", "@m:x", "ban", &s).is_err());
        assert!(member("@m:x", "@u:x", "ban", &s).is_ok());
        put(
            &mut s,
            pdu(
                "m.room.member",
                "@u:x",
                "@m:x",
                json!({"membership": "ban"}),
            ),
        );
        assert!(member("@m:x", "@u:x", "leave", &s).is_ok(), "unban");
        assert!(
            member("@u:x", "@u:x", "leave", &s).is_err(),
            "a ban is not left"
        );
    }

    #[test]
    fn sending_needs_membership_and_level() {
        let s = room("public");
        assert!(send("@u:x", "m.room.message", None, json!({}), &s));
        assert!(!send("@n:x", "m.room.message", None, json!({}), &s));
        assert!(!send("@u:x", "m.room.name", Some(""), json!({}), &s));
        assert!(send("@m:x", "m.room.name", Some(""), json!({}), &s));
        assert!(
            !send("@u:x", "m.room.topic", Some(""), json!({}), &s),
            "state_default 50"
        );
    }

    #[test]
    fn user_state_keys_belong_to_their_user() {
        let s = room("public");
        assert!(send("@m:x", "org.x", Some("@m:x"), json!({}), &s));
        assert!(!send("@m:x", "org.x", Some("@u:x"), json!({}), &s));
    }

    #[test]
    fn power_level_changes_are_bounded_by_own_level() {
        let s = room("public");
        let raise_self =
            json!({"users": {"@c:x": 100, "@m:x": 100}, "events": {"m.room.name": 50}});
        assert!(!send(
            "@m:x",
            "m.room.power_levels",
            Some(""),
            raise_self.clone(),
            &s
        ));
        assert!(send(
            "@c:x",
            "m.room.power_levels",
            Some(""),
            raise_self,
            &s
        ));
        let demote_creator = json!({"users": {"@c:x": 0, "@m:x": 50}});
        assert!(!send(
            "@m:x",
            "m.room.power_levels",
            Some(""),
            demote_creator,
            &s
        ));
        let strings = json!({"users": {"@c:x": "100"}});
        assert!(!send("@c:x", "m.room.power_levels", Some(""), strings, &s));
        // @m:x holds 50, power_levels needs state_default 50: may grant @u:x up to 50.
        let grant =
            json!({"users": {"@c:x": 100, "@m:x": 50, "@u:x": 50}, "events": {"m.room.name": 50}});
        assert!(send("@m:x", "m.room.power_levels", Some(""), grant, &s));
    }

    #[test]
    fn one_knocks_only_on_a_knock_room_for_oneself() {
        for rule in ["knock", "knock_restricted"] {
            assert!(
                member("@n:x", "@n:x", "knock", &room(rule)).is_ok(),
                "{rule}"
            );
        }
        for rule in ["public", "invite", "restricted", "private"] {
            assert!(
                member("@n:x", "@n:x", "knock", &room(rule)).is_err(),
                "{rule}"
            );
        }
        assert!(member("@c:x", "@n:x", "knock", &room("knock")).is_err());
        let mut v9 = room("knock");
        put(
            &mut v9,
            pdu(
                "m.room.create",
                "",
                "@c:x",
                json!({"creator": "@c:x", "room_version": "9"}),
            ),
        );
        assert!(
            member("@n:x", "@n:x", "knock", &v9).is_err(),
            "unsupported version"
        );
    }

    #[test]
    fn members_invitees_and_the_banned_do_not_knock() {
        let mut s = room("knock");
        assert!(member("@u:x", "@u:x", "knock", &s).is_err(), "joined");
        for m in ["invite", "ban"] {
            put(
                &mut s,
                pdu("m.room.member", "@n:x", "@c:x", json!({"membership": m})),
            );
            assert!(member("@n:x", "@n:x", "knock", &s).is_err(), "{m}");
        }
    }

    #[test]
    fn a_knock_is_rescinded_by_its_knocker_and_answered_by_those_with_power() {
        let mut s = room("knock");
        put(
            &mut s,
            pdu(
                "m.room.member",
                "@n:x",
                "@n:x",
                json!({"membership": "knock"}),
            ),
        );
        assert!(
            member("@n:x", "@n:x", "join", &s).is_err(),
            "a knock is not an invite"
        );
        assert!(member("@n:x", "@n:x", "leave", &s).is_ok(), "rescinded");
        assert!(member("@u:x", "@n:x", "invite", &s).is_ok(), "accepted");
        assert!(member("@m:x", "@n:x", "leave", &s).is_ok(), "refused");
        assert!(
            member("@u:x", "@n:x", "leave", &s).is_err(),
            "refused without power"
        );
        assert!(member("@m:x", "@n:x", "ban", &s).is_ok());
    }

    #[test]
    fn redaction_is_own_or_redact_level() {
        let s = room("public");
        assert!(may_redact(&s, "@u:x", "@u:x"));
        assert!(!may_redact(&s, "@u:x", "@m:x"));
        assert!(may_redact(&s, "@m:x", "@u:x"));
    }
}
