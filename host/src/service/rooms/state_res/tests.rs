//! The spec's classic forks, resolved for room versions 10 and 12, and ruma's auth check of one
//! event against its auth events.

use serde_json::{json, Value};

use super::fixture::{Fixture, Fork};
use super::*;
use crate::service::room_version::{V10, V11, V12};

const ALICE: &str = "@alice:x";
const BOB: &str = "@bob:x";
const CHARLIE: &str = "@charlie:x";
const ELLA: &str = "@ella:y";

/// Power levels with alice (in versions before 12, where creators are named) at 100, bob a
/// moderator at 50, and `extra` users.
fn levels(version: &RoomVersion, extra: &[(&str, i64)]) -> Value {
    let mut users = serde_json::Map::new();
    if !version.privileged_creators {
        users.insert(ALICE.into(), json!(100));
    }
    users.insert(BOB.into(), json!(50));
    for (user, level) in extra {
        users.insert((*user).into(), json!(level));
    }
    json!({"users": users, "state_default": 50, "ban": 50, "kick": 50})
}

/// A public room made by alice, bob (50) and charlie joined, a topic set by alice.
fn public_room(version: &'static RoomVersion) -> (Fixture, Fork) {
    let (mut room, mut fork) = Fixture::new(version, ALICE, json!({}));
    room.join(&mut fork, ALICE);
    let pl = levels(version, &[]);
    room.send(&mut fork, "$pl", ALICE, "m.room.power_levels", Some(""), pl);
    room.send(
        &mut fork,
        "$public",
        ALICE,
        "m.room.join_rules",
        Some(""),
        json!({"join_rule": "public"}),
    );
    room.join(&mut fork, BOB);
    room.join(&mut fork, CHARLIE);
    room.send(
        &mut fork,
        "$topic",
        ALICE,
        "m.room.topic",
        Some(""),
        json!({"topic": "cheese"}),
    );
    (room, fork)
}

fn at<'a>(state: &'a StateIds, kind: &str, key: &str) -> Option<&'a str> {
    state
        .get(&(kind.to_string(), key.to_string()))
        .map(String::as_str)
}

#[test]
fn a_ban_beats_a_power_level_change_of_the_banned_on_another_fork() {
    for version in [&V10, &V12] {
        let (mut room, base) = public_room(version);
        let mut banned = base.clone();
        room.send(
            &mut banned,
            "$ban-bob",
            ALICE,
            "m.room.member",
            Some(BOB),
            json!({"membership": "ban"}),
        );
        let mut promoted = base.clone();
        let pl = levels(version, &[(CHARLIE, 50)]);
        room.send(
            &mut promoted,
            "$bob-promotes",
            BOB,
            "m.room.power_levels",
            Some(""),
            pl,
        );
        let resolved = resolve(version, &[banned.state, promoted.state], &room.events).unwrap();
        assert_eq!(
            at(&resolved, "m.room.member", BOB),
            Some("$ban-bob"),
            "{}",
            version.id
        );
        assert_eq!(
            at(&resolved, "m.room.power_levels", ""),
            Some("$pl"),
            "{}",
            version.id
        );
    }
}

#[test]
fn a_join_rule_change_beats_a_join_it_forbids_on_another_fork() {
    for version in [&V10, &V12] {
        let (mut room, base) = public_room(version);
        let mut closed = base.clone();
        room.send(
            &mut closed,
            "$invite-only",
            ALICE,
            "m.room.join_rules",
            Some(""),
            json!({"join_rule": "invite"}),
        );
        let mut joined = base.clone();
        room.join(&mut joined, ELLA);
        let resolved = resolve(version, &[closed.state, joined.state], &room.events).unwrap();
        assert_eq!(
            at(&resolved, "m.room.join_rules", ""),
            Some("$invite-only"),
            "{}",
            version.id
        );
        assert_eq!(at(&resolved, "m.room.member", ELLA), None, "{}", version.id);
    }
}

#[test]
fn a_topic_set_by_a_moderator_demoted_on_another_fork_is_reset() {
    for version in [&V10, &V12] {
        let (mut room, base) = public_room(version);
        let mut demoted = base.clone();
        let pl = levels(version, &[(BOB, 0)]);
        room.send(
            &mut demoted,
            "$demote-bob",
            ALICE,
            "m.room.power_levels",
            Some(""),
            pl,
        );
        let mut topic = base.clone();
        room.send(
            &mut topic,
            "$bob-topic",
            BOB,
            "m.room.topic",
            Some(""),
            json!({"topic": "wine"}),
        );
        let resolved = resolve(version, &[demoted.state, topic.state], &room.events).unwrap();
        assert_eq!(
            at(&resolved, "m.room.power_levels", ""),
            Some("$demote-bob"),
            "{}",
            version.id
        );
        assert_eq!(
            at(&resolved, "m.room.topic", ""),
            Some("$topic"),
            "{}",
            version.id
        );
    }
}

#[test]
fn unconflicted_state_is_kept_as_it_is() {
    let (mut room, base) = public_room(&V11);
    let mut named = base.clone();
    room.send(
        &mut named,
        "$name",
        ALICE,
        "m.room.name",
        Some(""),
        json!({"name": "n"}),
    );
    let resolved = resolve(
        &V11,
        &[named.state.clone(), named.state.clone()],
        &room.events,
    );
    assert_eq!(resolved, Ok(named.state));
}

#[test]
fn rumas_auth_check_reads_a_version_12_create_event_off_the_room_id() {
    let (mut room, fork) = public_room(&V12);
    for (sender, kind, allowed) in [
        (ALICE, "m.room.name", true),
        (BOB, "m.room.name", true),
        (CHARLIE, "m.room.name", false),
        (CHARLIE, "m.room.message", true),
        (ELLA, "m.room.message", false),
    ] {
        let key = (kind != "m.room.message").then_some("");
        let pdu = room.pdu(&fork, sender, kind, key, json!({"name": "n", "body": "b"}));
        assert!(
            pdu["auth_events"]
                .as_array()
                .unwrap()
                .iter()
                .all(|id| id != "$create"),
            "version 12 does not list the create event"
        );
        let event = PduEvent::from_pdu("$new", &pdu, &V12, false).unwrap();
        assert_eq!(
            auth_check(&V12, &event, &room.events).is_ok(),
            allowed,
            "{sender} {kind}"
        );
    }
}

#[test]
fn an_event_whose_auth_events_are_missing_or_rejected_is_refused() {
    let (mut room, fork) = public_room(&V10);
    let pdu = room.pdu(&fork, CHARLIE, "m.room.message", None, json!({"body": "b"}));
    let event = PduEvent::from_pdu("$new", &pdu, &V10, false).unwrap();
    assert!(auth_check(&V10, &event, &room.events).is_ok());
    let mut without = room.events.clone();
    without.remove("$join-c");
    assert!(auth_check(&V10, &event, &without).is_err());
    let mut rejected = room.events.clone();
    let join = PduEvent::from_pdu("$join-c", &room_pdu(&room, "$join-c"), &V10, true).unwrap();
    rejected.insert("$join-c".into(), Arc::new(join));
    assert!(auth_check(&V10, &event, &rejected).is_err());
}

/// The PDU of a stored event, rebuilt from what ruma reads (enough for these checks).
fn room_pdu(room: &Fixture, id: &str) -> Value {
    let e = &room.events[id];
    json!({
        "type": e.kind.to_string(),
        "sender": e.sender.as_str(),
        "room_id": e.room_id.as_ref().map(|r| r.as_str()),
        "state_key": e.state_key,
        "content": serde_json::from_str::<Value>(e.content.get()).unwrap(),
        "origin_server_ts": 1,
        "prev_events": e.prev_events,
        "auth_events": e.auth_events,
    })
}

#[test]
fn a_pdu_that_is_not_one_is_refused_as_malformed() {
    for pdu in [
        json!({}),
        json!({"type": "m.room.message", "sender": "bob", "content": {}, "origin_server_ts": 1,
            "prev_events": [], "auth_events": []}),
        json!({"type": "m.room.message", "sender": "@b:x", "content": {}, "origin_server_ts": -1,
            "prev_events": [], "auth_events": []}),
        json!({"type": "m.room.message", "sender": "@b:x", "content": {}, "origin_server_ts": 1,
            "prev_events": ["nope"], "auth_events": []}),
    ] {
        assert!(
            matches!(
                PduEvent::from_pdu("$e", &pdu, &V10, false),
                Err(StateResError::Malformed(..))
            ),
            "{pdu}"
        );
    }
}
