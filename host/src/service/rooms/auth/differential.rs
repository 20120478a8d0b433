//! Our auth rules against ruma's, event by event: joins, invites, knocks, leaves, kicks, bans
//! and unbans under each join rule, power level changes, state and messages, version 12's
//! creators, for room versions 10, 11 and 12. Where the two disagree, ours is the bug unless the
//! spec says otherwise.

use serde_json::{json, Value};

use super::{check, Candidate};
use crate::service::room_version::{RoomVersion, V10, V11, V12};
use crate::service::rooms::state_res::fixture::{Fixture, Fork};
use crate::service::rooms::state_res::{auth_check, PduEvent};

const ALICE: &str = "@alice:x";
const BOB: &str = "@bob:x";
const CHARLIE: &str = "@charlie:x";
const DAVE: &str = "@dave:x";
const EVE: &str = "@eve:x";
const FRANK: &str = "@frank:x";
const GINA: &str = "@gina:y";

/// Power levels: alice 100 where creators are named in them (before 12), bob 50, `extra`.
fn levels(version: &RoomVersion, extra: &[(&str, Value)]) -> Value {
    let mut users = serde_json::Map::new();
    if !version.privileged_creators {
        users.insert(ALICE.into(), json!(100));
    }
    users.insert(BOB.into(), json!(50));
    for (user, level) in extra {
        users.insert((*user).into(), level.clone());
    }
    json!({"users": users, "state_default": 50, "ban": 50, "kick": 50, "invite": 0,
        "events": {"m.room.power_levels": 50}})
}

/// A room made by alice (with dave as an additional creator in version 12, an ordinary user
/// before) under `join_rule`:
/// bob (50), charlie and dave joined, eve invited, frank banned.
fn room(version: &'static RoomVersion, join_rule: &str) -> (Fixture, Fork) {
    let (mut room, mut fork) = Fixture::new(version, ALICE, json!({"additional_creators": [DAVE]}));
    room.join(&mut fork, ALICE);
    let pl = levels(version, &[]);
    room.send(&mut fork, "$pl", ALICE, "m.room.power_levels", Some(""), pl);
    let rule = json!({"join_rule": "public"});
    room.send(
        &mut fork,
        "$rule",
        ALICE,
        "m.room.join_rules",
        Some(""),
        rule,
    );
    for user in [BOB, CHARLIE, DAVE] {
        room.join(&mut fork, user);
    }
    let rule = json!({ "join_rule": join_rule });
    room.send(
        &mut fork,
        "$rule2",
        ALICE,
        "m.room.join_rules",
        Some(""),
        rule,
    );
    let member = |m: &str| json!({ "membership": m });
    room.send(
        &mut fork,
        "$inv",
        ALICE,
        "m.room.member",
        Some(EVE),
        member("invite"),
    );
    room.send(
        &mut fork,
        "$ban",
        ALICE,
        "m.room.member",
        Some(FRANK),
        member("ban"),
    );
    (room, fork)
}

/// `(sender, type, state_key, content)` of the events tried in every room.
fn cases(version: &RoomVersion) -> Vec<(&'static str, &'static str, Option<&'static str>, Value)> {
    let m = |membership: &str| json!({ "membership": membership });
    let member = "m.room.member";
    let pl = "m.room.power_levels";
    vec![
        (GINA, member, Some(GINA), m("join")),
        (EVE, member, Some(EVE), m("join")),
        (FRANK, member, Some(FRANK), m("join")),
        (CHARLIE, member, Some(CHARLIE), m("join")),
        (BOB, member, Some(CHARLIE), m("join")),
        (CHARLIE, member, Some(GINA), m("invite")),
        (GINA, member, Some(CHARLIE), m("invite")),
        (CHARLIE, member, Some(BOB), m("invite")),
        (CHARLIE, member, Some(FRANK), m("invite")),
        (BOB, member, Some(CHARLIE), m("leave")),
        (CHARLIE, member, Some(BOB), m("leave")),
        (BOB, member, Some(ALICE), m("leave")),
        (BOB, member, Some(DAVE), m("leave")),
        (ALICE, member, Some(DAVE), m("leave")),
        (DAVE, member, Some(ALICE), m("leave")),
        (DAVE, member, Some(BOB), m("leave")),
        (BOB, member, Some(FRANK), m("leave")),
        (CHARLIE, member, Some(FRANK), m("leave")),
        (BOB, member, Some(CHARLIE), m("ban")),
        (CHARLIE, member, Some(BOB), m("ban")),
        (ALICE, member, Some(BOB), m("ban")),
        (BOB, member, Some(DAVE), m("ban")),
        (DAVE, member, Some(BOB), m("ban")),
        (BOB, member, Some(GINA), m("ban")),
        (GINA, member, Some(GINA), m("knock")),
        (CHARLIE, member, Some(CHARLIE), m("knock")),
        (EVE, member, Some(EVE), m("knock")),
        (CHARLIE, member, Some(CHARLIE), m("leave")),
        (GINA, member, Some(GINA), m("leave")),
        (EVE, member, Some(EVE), m("leave")),
        (FRANK, member, Some(FRANK), m("leave")),
        (CHARLIE, member, Some(CHARLIE), m("nonsense")),
        (CHARLIE, member, Some("not-a-user"), m("join")),
        (
            ALICE,
            pl,
            Some(""),
            levels(version, &[(CHARLIE, json!(50))]),
        ),
        (BOB, pl, Some(""), levels(version, &[(CHARLIE, json!(50))])),
        (BOB, pl, Some(""), levels(version, &[(CHARLIE, json!(60))])),
        (BOB, pl, Some(""), levels(version, &[(ALICE, json!(0))])),
        (BOB, pl, Some(""), levels(version, &[(DAVE, json!(10))])),
        (ALICE, pl, Some(""), levels(version, &[(ALICE, json!(100))])),
        (ALICE, pl, Some(""), levels(version, &[(DAVE, json!(100))])),
        (DAVE, pl, Some(""), levels(version, &[(BOB, json!(100))])),
        (CHARLIE, pl, Some(""), levels(version, &[])),
        (
            BOB,
            pl,
            Some(""),
            levels(version, &[(CHARLIE, json!("10"))]),
        ),
        (
            BOB,
            pl,
            Some(""),
            json!({"users": {BOB: 50}, "ban": 40, "state_default": 50}),
        ),
        (
            BOB,
            pl,
            Some(""),
            json!({"users": {BOB: 50}, "ban": 60, "state_default": 50}),
        ),
        (
            BOB,
            pl,
            Some(""),
            json!({"users": {BOB: 50}, "events": {"m.room.name": 100}}),
        ),
        (CHARLIE, "m.room.message", None, json!({"body": "hi"})),
        (GINA, "m.room.message", None, json!({"body": "hi"})),
        (FRANK, "m.room.message", None, json!({"body": "hi"})),
        (EVE, "m.room.message", None, json!({"body": "hi"})),
        (CHARLIE, "m.room.name", Some(""), json!({"name": "n"})),
        (BOB, "m.room.name", Some(""), json!({"name": "n"})),
        (DAVE, "m.room.name", Some(""), json!({"name": "n"})),
        (BOB, "org.example", Some(BOB), json!({})),
        (BOB, "org.example", Some(CHARLIE), json!({})),
        (CHARLIE, "m.room.third_party_invite", Some("t"), json!({})),
        (
            ALICE,
            "m.room.create",
            Some(""),
            json!({"room_version": version.id}),
        ),
    ]
}

/// Our verdict and ruma's differ on no event, in any room of any version.
#[test]
fn our_auth_rules_agree_with_rumas_for_versions_10_11_and_12() {
    let mut disagreements = Vec::new();
    let (mut allowed, mut refused) = (0, 0);
    for version in [&V10, &V11, &V12] {
        for join_rule in ["public", "invite", "knock"] {
            let (mut room, fork) = room(version, join_rule);
            let state = room.room_state(&fork);
            for (sender, kind, key, content) in cases(version) {
                let ours = check(
                    &Candidate {
                        room_id: &room.room_id,
                        kind,
                        state_key: key,
                        sender,
                        content: &content,
                    },
                    &state,
                );
                let pdu = room.pdu(&fork, sender, kind, key, content.clone());
                let theirs = PduEvent::from_pdu("$candidate", &pdu, version, false)
                    .map_err(|e| e.to_string())
                    .and_then(|event| auth_check(version, &event, &room.events));
                match (&ours, &theirs) {
                    (Ok(()), Ok(())) => allowed += 1,
                    (Err(_), Err(_)) => refused += 1,
                    _ => {}
                }
                if ours.is_ok() != theirs.is_ok() {
                    disagreements.push(format!(
                        "v{} {join_rule}: {sender} {kind} {key:?} {content}: ours {ours:?}, ruma {theirs:?}",
                        version.id
                    ));
                }
            }
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
    // Both verdicts are tried, often: neither side passes by allowing or refusing everything.
    assert!(
        allowed > 100 && refused > 100,
        "{allowed} allowed, {refused} refused"
    );
}
