//! The auth rules' cases, by room version.

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
    let raise_self = json!({"users": {"@c:x": 100, "@m:x": 100}, "events": {"m.room.name": 50}});
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

#[test]
fn a_version_12_rooms_first_power_levels_may_not_name_its_creator_either() {
    // Found against Synapse: a createRoom whose power_level_content_override names the
    // creator was let through, then refused by the other servers' auth rules.
    let mut s = RoomState::default();
    put(
        &mut s,
        pdu("m.room.create", "", "@c:x", json!({"room_version": "12"})),
    );
    put(
        &mut s,
        pdu(
            "m.room.member",
            "@c:x",
            "@c:x",
            json!({"membership": "join"}),
        ),
    );
    let naming = json!({"users": {"@c:x": 100}});
    assert!(!send("@c:x", "m.room.power_levels", Some(""), naming, &s));
    let fine = json!({"users": {"@m:x": 50}});
    assert!(send("@c:x", "m.room.power_levels", Some(""), fine, &s));
}
