//! Rooms end to end: createRoom and its presets, membership and the room version 10
//! authorization rules as clients meet them, redaction, who may read a room, the alias and
//! public room directories, profiles reflected into member events, event ids and the server's
//! published signing key.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use plugboard_tests::{enc, test_config, timeline, Client, Reply, TestServer, WAIT};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Helpers: each one is a plain client request, answering the raw reply where a test checks the
// status and the body where only success makes sense.

fn txn() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("rooms-{}", N.fetch_add(1, Ordering::Relaxed))
}

async fn all_state(c: &Client, room: &str) -> Vec<Value> {
    c.get(&format!("/rooms/{}/state", enc(room)))
        .await
        .ok()
        .as_array()
        .expect("the state is an array")
        .clone()
}

fn find<'a>(state: &'a [Value], kind: &str, key: &str) -> Option<&'a Value> {
    state
        .iter()
        .find(|e| e["type"] == kind && e["state_key"] == key)
}

fn count(state: &[Value], kind: &str, key: &str) -> usize {
    state
        .iter()
        .filter(|e| e["type"] == kind && e["state_key"] == key)
        .count()
}

fn state_path(room: &str, kind: &str, key: &str) -> String {
    if key.is_empty() {
        format!("/rooms/{}/state/{}", enc(room), enc(kind))
    } else {
        format!("/rooms/{}/state/{}/{}", enc(room), enc(kind), enc(key))
    }
}

async fn get_state(c: &Client, room: &str, kind: &str, key: &str) -> Reply {
    c.get(&state_path(room, kind, key)).await
}

async fn put_state(c: &Client, room: &str, kind: &str, key: &str, content: Value) -> Reply {
    c.put(&state_path(room, kind, key), content).await
}

async fn send(c: &Client, room: &str, text: &str) -> Reply {
    c.put(
        &format!("/rooms/{}/send/m.room.message/{}", enc(room), txn()),
        json!({"msgtype": "m.text", "body": text}),
    )
    .await
}

async fn redact(c: &Client, room: &str, event_id: &str, reason: &str) -> Reply {
    c.put(
        &format!("/rooms/{}/redact/{}/{}", enc(room), enc(event_id), txn()),
        json!({ "reason": reason }),
    )
    .await
}

async fn get_event(c: &Client, room: &str, event_id: &str) -> Reply {
    c.get(&format!("/rooms/{}/event/{}", enc(room), enc(event_id)))
        .await
}

async fn member_action(c: &Client, room: &str, action: &str, user: &str) -> Reply {
    c.post(
        &format!("/rooms/{}/{action}", enc(room)),
        json!({ "user_id": user, "reason": format!("{action} by test") }),
    )
    .await
}

async fn leave(c: &Client, room: &str) -> Reply {
    c.post(&format!("/rooms/{}/leave", enc(room)), json!({}))
        .await
}

async fn membership(c: &Client, room: &str, user: &str) -> Value {
    get_state(c, room, "m.room.member", user).await.ok()["membership"].clone()
}

async fn joined_rooms(c: &Client) -> Vec<String> {
    c.get("/joined_rooms").await.ok()["joined_rooms"]
        .as_array()
        .expect("joined_rooms is an array")
        .iter()
        .map(|r| r.as_str().expect("room id").to_string())
        .collect()
}

/// The room's messages, newest first, as `user` may see them.
async fn messages(c: &Client, room: &str) -> Reply {
    c.get(&format!("/rooms/{}/messages?dir=b&limit=100", enc(room)))
        .await
}

fn bodies(messages: &Value) -> Vec<String> {
    messages["chunk"]
        .as_array()
        .expect("chunk is an array")
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .filter_map(|e| e["content"]["body"].as_str().map(str::to_string))
        .collect()
}

/// Syncs (bounded) until `done` holds for the response.
async fn sync_until(c: &Client, filter: Option<&Value>, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    let path = match filter {
        Some(f) => format!("/sync?timeout=0&filter={}", enc(&f.to_string())),
        None => "/sync?timeout=0".to_string(),
    };
    loop {
        let body = c.get(&path).await.ok();
        if done(&body) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "sync never showed what was expected; last: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn power_levels(c: &Client, room: &str) -> Value {
    get_state(c, room, "m.room.power_levels", "").await.ok()
}

/// A public room made by alice with `users` as its power levels (and `extra` merged into the
/// override), which every other named user has joined.
async fn public_room_with_levels(
    alice: &Client,
    members: &[&Client],
    users: Value,
    extra: Value,
) -> String {
    let mut pl = json!({ "users": users });
    if let Some(o) = extra.as_object() {
        for (k, v) in o {
            pl[k] = v.clone();
        }
    }
    let room = alice
        // Version 10: the levels name the creator (version 12's creators are outside them,
        // see room_versions.rs).
        .create_room(
            json!({"preset": "public_chat", "power_level_content_override": pl,
            "room_version": "10"}),
        )
        .await;
    for m in members {
        m.join(&room).await.ok();
    }
    room
}

// ---------------------------------------------------------------------------------------------
// createRoom

#[tokio::test]
async fn private_chat_makes_an_invite_only_room_with_shared_history_and_guest_access() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({"preset": "private_chat"})).await;
    // Version 12 (the default): the room id is the create event's hash, with no server.
    assert!(room.starts_with('!') && !room.contains(':'), "{room}");
    let state = all_state(&alice, &room).await;

    let create = find(&state, "m.room.create", "").expect("a create event");
    assert!(create["content"].get("creator").is_none(), "{create}");
    assert_eq!(create["content"]["room_version"], "12");
    assert_eq!(create["sender"], "@alice:localhost");
    assert_eq!(create["event_id"].as_str().unwrap()[1..], room[1..]);
    let me = find(&state, "m.room.member", "@alice:localhost").expect("the creator's member");
    assert_eq!(me["content"]["membership"], "join");
    let jr = find(&state, "m.room.join_rules", "").expect("join rules");
    assert_eq!(jr["content"]["join_rule"], "invite");
    let hv = find(&state, "m.room.history_visibility", "").expect("history visibility");
    assert_eq!(hv["content"]["history_visibility"], "shared");
    let ga = find(&state, "m.room.guest_access", "").expect("guest access");
    assert_eq!(ga["content"]["guest_access"], "can_join");
    let pl = find(&state, "m.room.power_levels", "").expect("power levels");
    // The creator's infinite power is not written in the levels.
    assert_eq!(pl["content"]["users"], json!({}));
    assert_eq!(pl["content"]["state_default"], 50);
    assert_eq!(pl["content"]["events_default"], 0);
    assert_eq!(pl["content"]["invite"], 0);
    for e in &state {
        assert_eq!(e["room_id"], room.as_str(), "{e}");
    }
    assert!(find(&state, "m.room.name", "").is_none());
    assert_eq!(
        alice
            .get(&format!("/directory/list/room/{}", enc(&room)))
            .await
            .ok()["visibility"],
        "private"
    );
}

#[tokio::test]
async fn public_chat_makes_a_room_anyone_may_join_without_guest_access() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({"preset": "public_chat"})).await;
    assert_eq!(
        get_state(&alice, &room, "m.room.join_rules", "").await.ok()["join_rule"],
        "public"
    );
    get_state(&alice, &room, "m.room.guest_access", "")
        .await
        .err(404, "M_NOT_FOUND");
    let bob = server.register("bob").await;
    bob.join(&room).await.ok();
    assert_eq!(membership(&alice, &room, &bob.user_id).await, "join");
}

#[tokio::test]
async fn visibility_public_without_preset_means_public_chat_and_a_listed_room() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = alice
        .create_room(json!({"visibility": "public", "name": "Listed"}))
        .await;
    assert_eq!(
        get_state(&alice, &room, "m.room.join_rules", "").await.ok()["join_rule"],
        "public"
    );
    let visibility = server
        .client()
        .get(&format!("/directory/list/room/{}", enc(&room)))
        .await
        .ok();
    assert_eq!(visibility["visibility"], "public");
}

#[tokio::test]
async fn trusted_private_chat_gives_invitees_the_creators_power_level() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let carol = server.register("carol").await;
    let room = alice
        .create_room(json!({"preset": "trusted_private_chat", "invite": [bob.user_id]}))
        .await;
    let pl = power_levels(&alice, &room).await;
    assert!(pl["users"].get(&alice.user_id).is_none(), "a creator: {pl}");
    assert_eq!(pl["users"][&bob.user_id], 100);
    assert!(pl["users"].get(&carol.user_id).is_none());
    assert_eq!(
        get_state(&alice, &room, "m.room.join_rules", "").await.ok()["join_rule"],
        "invite"
    );
    assert_eq!(membership(&alice, &room, &bob.user_id).await, "invite");
    carol.join(&room).await.err(403, "M_FORBIDDEN");
    bob.join(&room).await.ok();
    // With 100 bob may do what only the creator could: change the power levels.
    let mut new_pl = pl.clone();
    new_pl["users"][&carol.user_id] = json!(10);
    put_state(&bob, &room, "m.room.power_levels", "", new_pl)
        .await
        .ok();
    assert_eq!(
        power_levels(&alice, &room).await["users"][&carol.user_id],
        10
    );
}

#[tokio::test]
async fn create_room_sets_name_topic_and_an_alias_that_resolves_to_the_room() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = alice
        .create_room(json!({
            "name": "The Lobby",
            "topic": "Say hello",
            "room_alias_name": "lobby",
        }))
        .await;
    assert_eq!(
        get_state(&alice, &room, "m.room.name", "").await.ok(),
        json!({"name": "The Lobby"})
    );
    assert_eq!(
        get_state(&alice, &room, "m.room.topic", "").await.ok(),
        json!({"topic": "Say hello"})
    );
    assert_eq!(
        get_state(&alice, &room, "m.room.canonical_alias", "")
            .await
            .ok()["alias"],
        "#lobby:localhost"
    );
    let resolved = server
        .client()
        .get(&format!("/directory/room/{}", enc("#lobby:localhost")))
        .await
        .ok();
    assert_eq!(resolved["room_id"], room.as_str());
    assert_eq!(resolved["servers"], json!(["localhost"]));

    let again = alice
        .post("/createRoom", json!({"room_alias_name": "lobby"}))
        .await;
    again.err(400, "M_ROOM_IN_USE");
    let bad = alice
        .post("/createRoom", json!({"room_alias_name": "has space"}))
        .await;
    bad.err(400, "M_INVALID_PARAM");
    // The alias still points at the first room.
    let resolved = server
        .client()
        .get(&format!("/directory/room/{}", enc("#lobby:localhost")))
        .await
        .ok();
    assert_eq!(resolved["room_id"], room.as_str());
}

#[tokio::test]
async fn an_invitee_sees_the_invite_in_sync_with_its_invite_state() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice
        .create_room(json!({
            "name": "Secret plans",
            "invite": [bob.user_id],
            "is_direct": true,
        }))
        .await;
    let sync = sync_until(&bob, None, |s| !s["rooms"]["invite"][&room].is_null()).await;
    assert!(sync["rooms"]["join"].get(&room).is_none(), "{sync}");
    let events = sync["rooms"]["invite"][&room]["invite_state"]["events"]
        .as_array()
        .expect("invite_state events")
        .clone();
    let by = |kind: &str, key: &str| find(&events, kind, key).cloned();
    assert_eq!(
        by("m.room.name", "").expect("the name")["content"]["name"],
        "Secret plans"
    );
    assert_eq!(
        by("m.room.join_rules", "").expect("join rules")["content"]["join_rule"],
        "invite"
    );
    assert!(by("m.room.create", "").is_some(), "{events:?}");
    let invite = by("m.room.member", &bob.user_id).expect("bob's invite");
    assert_eq!(invite["content"]["membership"], "invite");
    assert_eq!(invite["content"]["is_direct"], true);
    assert_eq!(invite["sender"], alice.user_id.as_str());
    // The invite is in the room's state too.
    let member = get_state(&alice, &room, "m.room.member", &bob.user_id)
        .await
        .ok();
    assert_eq!(member["membership"], "invite");
    assert_eq!(member["is_direct"], true);
}

#[tokio::test]
async fn initial_state_overrides_the_preset_and_name_overrides_initial_state() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = alice
        .create_room(json!({
            "preset": "private_chat",
            "name": "Explicit name",
            "initial_state": [
                {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "public"}},
                {"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}},
                {"type": "m.room.name", "state_key": "", "content": {"name": "Initial name"}},
                {"type": "org.example.setting", "state_key": "colour", "content": {"value": "blue"}},
            ],
        }))
        .await;
    let state = all_state(&alice, &room).await;
    assert_eq!(count(&state, "m.room.join_rules", ""), 1);
    assert_eq!(
        find(&state, "m.room.join_rules", "").unwrap()["content"]["join_rule"],
        "public"
    );
    assert_eq!(
        find(&state, "m.room.history_visibility", "").unwrap()["content"]["history_visibility"],
        "joined"
    );
    assert_eq!(
        find(&state, "m.room.name", "").unwrap()["content"]["name"],
        "Explicit name"
    );
    assert_eq!(
        find(&state, "org.example.setting", "colour").expect("custom state")["content"],
        json!({"value": "blue"})
    );
    let refused = alice
        .post(
            "/createRoom",
            json!({"initial_state": [
                {"type": "m.room.member", "state_key": "@alice:localhost",
                 "content": {"membership": "leave"}}
            ]}),
        )
        .await;
    assert_eq!(refused.status.as_u16(), 400, "body: {}", refused.body);
}

#[tokio::test]
async fn power_level_content_override_is_merged_into_the_generated_power_levels() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = alice
        .create_room(json!({
            "power_level_content_override": {"ban": 75, "users_default": 10},
        }))
        .await;
    let pl = power_levels(&alice, &room).await;
    assert_eq!(pl["ban"], 75);
    assert_eq!(pl["users_default"], 10);
    assert_eq!(pl["kick"], 50, "untouched keys keep their defaults");
    // A version 12 creator's power is not written in the levels.
    assert!(pl["users"].get(&alice.user_id).is_none(), "{pl}");
    assert_eq!(pl["events"]["m.room.power_levels"], 100);
}

#[tokio::test]
async fn room_version_10_is_accepted_and_version_1_is_refused() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({"room_version": "10"})).await;
    assert_eq!(
        get_state(&alice, &room, "m.room.create", "").await.ok()["room_version"],
        "10"
    );
    alice
        .post("/createRoom", json!({"room_version": "1"}))
        .await
        .err(400, "M_UNSUPPORTED_ROOM_VERSION");
    assert_eq!(joined_rooms(&alice).await, vec![room]);
}

#[tokio::test]
async fn room_state_reflects_only_the_latest_event_of_each_type_and_state_key() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({"name": "first"})).await;
    let mut last_topic = String::new();
    for i in 0..3 {
        last_topic = put_state(
            &alice,
            &room,
            "m.room.topic",
            "",
            json!({ "topic": format!("topic {i}") }),
        )
        .await
        .ok()["event_id"]
            .as_str()
            .expect("event_id")
            .to_string();
    }
    put_state(&alice, &room, "m.room.name", "", json!({"name": "second"}))
        .await
        .ok();
    for (key, value) in [("a", 1), ("b", 1), ("a", 2), ("b", 2), ("a", 3)] {
        put_state(
            &alice,
            &room,
            "org.example.counter",
            key,
            json!({ "n": value }),
        )
        .await
        .ok();
    }
    alice.send_text(&room, "not state").await;

    let state = all_state(&alice, &room).await;
    let keys: HashSet<(String, String)> = state
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["state_key"]
                    .as_str()
                    .expect("state events have keys")
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(keys.len(), state.len(), "one event per (type, state_key)");
    assert!(state.iter().all(|e| e["type"] != "m.room.message"));
    let topic = find(&state, "m.room.topic", "").unwrap();
    assert_eq!(topic["content"]["topic"], "topic 2");
    assert_eq!(topic["event_id"], last_topic.as_str());
    assert_eq!(
        find(&state, "m.room.name", "").unwrap()["content"]["name"],
        "second"
    );
    assert_eq!(
        find(&state, "org.example.counter", "a").unwrap()["content"]["n"],
        3
    );
    assert_eq!(
        find(&state, "org.example.counter", "b").unwrap()["content"]["n"],
        2
    );
    assert_eq!(
        get_state(&alice, &room, "org.example.counter", "a")
            .await
            .ok(),
        json!({"n": 3})
    );
    assert_eq!(
        get_state(&alice, &room, "m.room.topic", "").await.ok(),
        json!({"topic": "topic 2"})
    );
    get_state(&alice, &room, "org.example.counter", "c")
        .await
        .err(404, "M_NOT_FOUND");
}

// ---------------------------------------------------------------------------------------------
// Membership

#[tokio::test]
async fn a_public_room_can_be_joined_by_id_and_by_alias() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let carol = server.register("carol").await;
    let room = alice
        .create_room(json!({"preset": "public_chat", "room_alias_name": "open"}))
        .await;
    let by_id = bob
        .post(&format!("/rooms/{}/join", enc(&room)), json!({}))
        .await
        .ok();
    assert_eq!(by_id["room_id"], room.as_str());
    let by_alias = carol.join("#open:localhost").await.ok();
    assert_eq!(by_alias["room_id"], room.as_str());
    assert_eq!(joined_rooms(&carol).await, vec![room.clone()]);
    let joined = alice
        .get(&format!("/rooms/{}/joined_members", enc(&room)))
        .await
        .ok();
    let names: HashSet<&str> = joined["joined"]
        .as_object()
        .expect("joined is an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        names,
        HashSet::from(["@alice:localhost", "@bob:localhost", "@carol:localhost"])
    );
    carol
        .join("#nowhere:localhost")
        .await
        .err(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn an_invite_only_room_refuses_a_join_without_invite_and_accepts_one_with_it() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice
        .create_room(json!({"preset": "private_chat", "room_alias_name": "closed"}))
        .await;
    bob.join(&room).await.err(403, "M_FORBIDDEN");
    bob.join("#closed:localhost").await.err(403, "M_FORBIDDEN");
    assert!(joined_rooms(&bob).await.is_empty());
    member_action(&alice, &room, "invite", &bob.user_id)
        .await
        .ok();
    assert_eq!(membership(&alice, &room, &bob.user_id).await, "invite");
    bob.join("#closed:localhost").await.ok();
    assert_eq!(membership(&alice, &room, &bob.user_id).await, "join");
    assert_eq!(joined_rooms(&bob).await, vec![room]);
}

#[tokio::test]
async fn inviting_needs_membership_and_the_invite_level() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let carol = server.register("carol").await;
    let dave = server.register("dave").await;
    let room = alice
        .create_room(json!({"power_level_content_override": {"invite": 50}}))
        .await;
    // Not in the room: dave may not invite.
    member_action(&dave, &room, "invite", &carol.user_id)
        .await
        .err(403, "M_FORBIDDEN");
    member_action(&alice, &room, "invite", &bob.user_id)
        .await
        .ok();
    // Invited but not joined is not enough either.
    member_action(&bob, &room, "invite", &carol.user_id)
        .await
        .err(403, "M_FORBIDDEN");
    bob.join(&room).await.ok();
    // Joined, but at 0 below the invite level of 50.
    member_action(&bob, &room, "invite", &carol.user_id)
        .await
        .err(403, "M_FORBIDDEN");
    assert_eq!(
        get_state(&alice, &room, "m.room.member", &carol.user_id)
            .await
            .status
            .as_u16(),
        404
    );
    member_action(&alice, &room, "invite", &carol.user_id)
        .await
        .ok();
    assert_eq!(membership(&alice, &room, &carol.user_id).await, "invite");
    // A joined member cannot be invited again.
    member_action(&alice, &room, "invite", &bob.user_id)
        .await
        .err(403, "M_FORBIDDEN");
    assert_eq!(membership(&alice, &room, &bob.user_id).await, "join");
}

#[tokio::test]
async fn kicking_needs_the_kick_level_and_more_power_than_the_target() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let mod1 = server.register("mod1").await;
    let mod2 = server.register("mod2").await;
    let room = public_room_with_levels(
        &alice,
        &[&bob, &mod1, &mod2],
        json!({"@alice:localhost": 100, "@mod1:localhost": 50, "@mod2:localhost": 50}),
        json!({}),
    )
    .await;
    member_action(&bob, &room, "kick", &mod1.user_id)
        .await
        .err(403, "M_FORBIDDEN");
    member_action(&mod1, &room, "kick", &mod2.user_id)
        .await
        .err(403, "M_FORBIDDEN");
    member_action(&mod1, &room, "kick", &alice.user_id)
        .await
        .err(403, "M_FORBIDDEN");
    assert_eq!(membership(&alice, &room, &mod2.user_id).await, "join");
    assert_eq!(membership(&alice, &room, &alice.user_id).await, "join");

    member_action(&mod1, &room, "kick", &bob.user_id).await.ok();
    let kicked = get_state(&alice, &room, "m.room.member", &bob.user_id)
        .await
        .ok();
    assert_eq!(kicked["membership"], "leave");
    assert_eq!(kicked["reason"], "kick by test");
    let state = all_state(&alice, &room).await;
    assert_eq!(
        find(&state, "m.room.member", &bob.user_id).unwrap()["sender"],
        mod1.user_id.as_str()
    );
    assert!(joined_rooms(&bob).await.is_empty());
    // A kicked user may come back to a public room; kicking someone not there is refused.
    member_action(&mod1, &room, "kick", &bob.user_id)
        .await
        .err(403, "M_FORBIDDEN");
    bob.join(&room).await.ok();
    // Kicking revokes an invite too.
    let carol = server.register("carol").await;
    member_action(&alice, &room, "invite", &carol.user_id)
        .await
        .ok();
    member_action(&alice, &room, "kick", &carol.user_id)
        .await
        .ok();
    assert_eq!(membership(&alice, &room, &carol.user_id).await, "leave");
}

#[tokio::test]
async fn a_banned_user_cannot_join_or_send_until_unbanned() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let carol = server.register("carol").await;
    let room = alice.create_room(json!({"preset": "public_chat"})).await;
    bob.join(&room).await.ok();
    carol.join(&room).await.ok();
    // At 0, carol cannot ban (ban level 50).
    member_action(&carol, &room, "ban", &bob.user_id)
        .await
        .err(403, "M_FORBIDDEN");
    assert_eq!(membership(&alice, &room, &bob.user_id).await, "join");
    member_action(&alice, &room, "ban", &bob.user_id).await.ok();
    let banned = get_state(&alice, &room, "m.room.member", &bob.user_id)
        .await
        .ok();
    assert_eq!(banned["membership"], "ban");
    assert_eq!(banned["reason"], "ban by test");
    send(&bob, &room, "still here?")
        .await
        .err(403, "M_FORBIDDEN");
    bob.join(&room).await.err(403, "M_FORBIDDEN");
    // A ban is not something its target can leave.
    leave(&bob, &room).await.err(403, "M_FORBIDDEN");
    // Only a banned user can be unbanned, by someone with the ban level.
    member_action(&alice, &room, "unban", &carol.user_id)
        .await
        .err(403, "M_FORBIDDEN");
    member_action(&carol, &room, "unban", &bob.user_id)
        .await
        .err(403, "M_FORBIDDEN");
    assert_eq!(membership(&alice, &room, &bob.user_id).await, "ban");
    member_action(&alice, &room, "unban", &bob.user_id)
        .await
        .ok();
    assert_eq!(membership(&alice, &room, &bob.user_id).await, "leave");
    bob.join(&room).await.ok();
    send(&bob, &room, "back").await.ok();
    // A banned user cannot be invited either.
    member_action(&alice, &room, "ban", &carol.user_id)
        .await
        .ok();
    member_action(&alice, &room, "invite", &carol.user_id)
        .await
        .err(403, "M_FORBIDDEN");
    assert_eq!(membership(&alice, &room, &carol.user_id).await, "ban");
    // Users who were never in the room can be banned ahead of time.
    let dave = server.register("dave").await;
    member_action(&alice, &room, "ban", &dave.user_id)
        .await
        .ok();
    dave.join(&room).await.err(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn unbanning_needs_the_kick_level_as_well_as_the_ban_level() {
    // Room version 10, rule 4.5: leave for a banned target needs the ban level, then the kick
    // level and more power than the target.
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let moderator = server.register("moderator").await;
    let room = public_room_with_levels(
        &alice,
        &[&bob, &moderator],
        json!({"@alice:localhost": 100, "@moderator:localhost": 50}),
        json!({"ban": 50, "kick": 75}),
    )
    .await;
    member_action(&moderator, &room, "ban", &alice.user_id)
        .await
        .err(403, "M_FORBIDDEN");
    member_action(&moderator, &room, "ban", &bob.user_id)
        .await
        .ok();
    member_action(&moderator, &room, "unban", &bob.user_id)
        .await
        .err(403, "M_FORBIDDEN");
    assert_eq!(membership(&alice, &room, &bob.user_id).await, "ban");
    member_action(&alice, &room, "unban", &bob.user_id)
        .await
        .ok();
    assert_eq!(membership(&alice, &room, &bob.user_id).await, "leave");
}

#[tokio::test]
async fn leaving_ends_membership_and_forgetting_is_only_possible_after_leaving() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice.create_room(json!({"preset": "public_chat"})).await;
    let other = alice.create_room(json!({"preset": "public_chat"})).await;
    bob.join(&room).await.ok();
    bob.join(&other).await.ok();
    let forget = |c: &Client, r: &str| {
        let c = c.clone();
        let path = format!("/rooms/{}/forget", enc(r));
        async move { c.post(&path, json!({})).await }
    };
    let early = forget(&bob, &room).await;
    assert_eq!(early.status.as_u16(), 400, "body: {}", early.body);

    leave(&bob, &room).await.ok();
    assert_eq!(membership(&alice, &room, &bob.user_id).await, "leave");
    assert_eq!(joined_rooms(&bob).await, vec![other.clone()]);
    send(&bob, &room, "gone").await.err(403, "M_FORBIDDEN");
    leave(&bob, &room).await.err(403, "M_FORBIDDEN");

    let with_leave = json!({"room": {"include_leave": true}});
    let sync = sync_until(&bob, Some(&with_leave), |s| {
        !s["rooms"]["leave"][&room].is_null()
    })
    .await;
    assert!(sync["rooms"]["join"].get(&room).is_none());
    forget(&bob, &room).await.ok();
    let sync = bob
        .get(&format!(
            "/sync?timeout=0&filter={}",
            enc(&with_leave.to_string())
        ))
        .await
        .ok();
    assert!(
        sync["rooms"]["leave"].get(&room).is_none(),
        "a forgotten room is not listed: {sync}"
    );
    assert!(sync["rooms"]["join"].get(&other).is_some());
    // A room never joined cannot be forgotten.
    let third = alice.create_room(json!({})).await;
    let never = forget(&bob, &third).await;
    assert!(!never.status.is_success(), "body: {}", never.body);
    // Rejoining after forgetting works.
    bob.join(&room).await.ok();
    assert_eq!(joined_rooms(&bob).await.len(), 2);
}

#[tokio::test]
async fn an_invite_can_be_rejected_by_leaving() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice.create_room(json!({"invite": [bob.user_id]})).await;
    leave(&bob, &room).await.ok();
    assert_eq!(membership(&alice, &room, &bob.user_id).await, "leave");
    bob.join(&room).await.err(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn joined_members_and_members_list_the_room_with_a_membership_filter() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let carol = server.register("carol").await;
    let dave = server.register("dave").await;
    let eve = server.register("eve").await;
    alice
        .put(
            &format!("/profile/{}/displayname", enc(&alice.user_id)),
            json!({"displayname": "Alice"}),
        )
        .await
        .ok();
    let room = alice.create_room(json!({"preset": "public_chat"})).await;
    bob.join(&room).await.ok();
    member_action(&alice, &room, "invite", &carol.user_id)
        .await
        .ok();
    member_action(&alice, &room, "ban", &dave.user_id)
        .await
        .ok();

    let joined = bob
        .get(&format!("/rooms/{}/joined_members", enc(&room)))
        .await
        .ok();
    let joined = joined["joined"].as_object().expect("joined").clone();
    assert_eq!(joined.len(), 2, "{joined:?}");
    assert_eq!(joined["@alice:localhost"]["display_name"], "Alice");
    assert!(joined.contains_key("@bob:localhost"));

    let members = |query: &'static str| {
        let bob = bob.clone();
        let path = format!("/rooms/{}/members{query}", enc(&room));
        async move {
            let body = bob.get(&path).await.ok();
            let mut out: Vec<(String, String)> = body["chunk"]
                .as_array()
                .expect("chunk")
                .iter()
                .map(|e| {
                    assert_eq!(e["type"], "m.room.member");
                    (
                        e["state_key"].as_str().unwrap().to_string(),
                        e["content"]["membership"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            out.sort();
            out
        }
    };
    let pair = |u: &str, m: &str| (format!("@{u}:localhost"), m.to_string());
    assert_eq!(
        members("").await,
        vec![
            pair("alice", "join"),
            pair("bob", "join"),
            pair("carol", "invite"),
            pair("dave", "ban")
        ]
    );
    assert_eq!(
        members("?membership=invite").await,
        vec![pair("carol", "invite")]
    );
    assert_eq!(
        members("?membership=join").await,
        vec![pair("alice", "join"), pair("bob", "join")]
    );
    assert_eq!(
        members("?not_membership=join").await,
        vec![pair("carol", "invite"), pair("dave", "ban")]
    );

    eve.get(&format!("/rooms/{}/joined_members", enc(&room)))
        .await
        .err(403, "M_FORBIDDEN");
    eve.get(&format!("/rooms/{}/members", enc(&room)))
        .await
        .err(403, "M_FORBIDDEN");
}

// ---------------------------------------------------------------------------------------------
// Who may send

#[tokio::test]
async fn only_joined_members_may_send_messages() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let carol = server.register("carol").await;
    let room = alice.create_room(json!({"invite": [carol.user_id]})).await;
    send(&bob, &room, "let me in").await.err(403, "M_FORBIDDEN");
    send(&carol, &room, "invited only")
        .await
        .err(403, "M_FORBIDDEN");
    put_state(&bob, &room, "m.room.topic", "", json!({"topic": "mine"}))
        .await
        .err(403, "M_FORBIDDEN");
    carol.join(&room).await.ok();
    let sent = send(&carol, &room, "now I am in").await.ok();
    let id = sent["event_id"].as_str().expect("event_id");
    let event = get_event(&alice, &room, id).await.ok();
    assert_eq!(event["content"]["body"], "now I am in");
    assert_eq!(event["sender"], carol.user_id.as_str());
    let history = messages(&alice, &room).await.ok();
    assert_eq!(bodies(&history), vec!["now I am in".to_string()]);
    send(&bob, "!nosuchroom:localhost", "x")
        .await
        .err(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn state_events_need_the_state_default_level_unless_power_levels_say_otherwise() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice.create_room(json!({"preset": "public_chat"})).await;
    bob.join(&room).await.ok();
    put_state(&bob, &room, "m.room.topic", "", json!({"topic": "bob's"}))
        .await
        .err(403, "M_FORBIDDEN");
    put_state(&bob, &room, "org.example.custom", "", json!({"x": 1}))
        .await
        .err(403, "M_FORBIDDEN");
    put_state(
        &alice,
        &room,
        "m.room.topic",
        "",
        json!({"topic": "alice's"}),
    )
    .await
    .ok();
    assert_eq!(
        get_state(&bob, &room, "m.room.topic", "").await.ok()["topic"],
        "alice's"
    );
    // Messages need only events_default (0).
    send(&bob, &room, "hi").await.ok();

    // A room whose power levels let anyone set the topic, but nothing else.
    let lenient = public_room_with_levels(
        &alice,
        &[&bob],
        json!({"@alice:localhost": 100}),
        json!({"events": {"m.room.topic": 0, "m.room.power_levels": 100}}),
    )
    .await;
    put_state(
        &bob,
        &lenient,
        "m.room.topic",
        "",
        json!({"topic": "bob's"}),
    )
    .await
    .ok();
    put_state(&bob, &lenient, "org.example.custom", "", json!({"x": 1}))
        .await
        .err(403, "M_FORBIDDEN");

    // A room with state_default 0: custom state is open, named events still need their level.
    let open = public_room_with_levels(
        &alice,
        &[&bob],
        json!({"@alice:localhost": 100}),
        json!({"state_default": 0, "events": {"m.room.name": 50}}),
    )
    .await;
    put_state(&bob, &open, "org.example.custom", "", json!({"x": 2}))
        .await
        .ok();
    put_state(&bob, &open, "m.room.name", "", json!({"name": "bob's"}))
        .await
        .err(403, "M_FORBIDDEN");
    // Messages can be restricted too.
    let quiet = public_room_with_levels(
        &alice,
        &[&bob],
        json!({"@alice:localhost": 100}),
        json!({"events_default": 10}),
    )
    .await;
    send(&bob, &quiet, "may I?").await.err(403, "M_FORBIDDEN");
    send(&alice, &quiet, "I may").await.ok();
}

#[tokio::test]
async fn a_user_cannot_raise_power_levels_beyond_their_own_nor_demote_an_equal_peer() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let mod1 = server.register("mod1").await;
    let mod2 = server.register("mod2").await;
    let room = public_room_with_levels(
        &alice,
        &[&bob, &mod1, &mod2],
        json!({"@alice:localhost": 100, "@mod1:localhost": 50, "@mod2:localhost": 50}),
        json!({"events": {"m.room.power_levels": 50, "m.room.name": 50}}),
    )
    .await;
    let before = power_levels(&alice, &room).await;
    let with = |f: &dyn Fn(&mut Value)| {
        let mut pl = before.clone();
        f(&mut pl);
        pl
    };
    let refused: Vec<(&str, Value)> = vec![
        (
            "raise another above own level",
            with(&|pl| pl["users"]["@bob:localhost"] = json!(75)),
        ),
        (
            "raise self",
            with(&|pl| pl["users"]["@mod1:localhost"] = json!(100)),
        ),
        (
            "demote an equal peer",
            with(&|pl| pl["users"]["@mod2:localhost"] = json!(0)),
        ),
        (
            "remove an equal peer",
            with(&|pl| {
                pl["users"]
                    .as_object_mut()
                    .unwrap()
                    .remove("@mod2:localhost");
            }),
        ),
        (
            "demote a higher user",
            with(&|pl| pl["users"]["@alice:localhost"] = json!(0)),
        ),
        ("raise the ban level", with(&|pl| pl["ban"] = json!(75))),
        (
            "raise an event level",
            with(&|pl| pl["events"]["m.room.name"] = json!(100)),
        ),
        (
            "set a notification level above own",
            with(&|pl| pl["notifications"] = json!({"room": 100})),
        ),
        (
            "a string level",
            with(&|pl| pl["users"]["@bob:localhost"] = json!("10")),
        ),
    ];
    for (what, content) in refused {
        let reply = put_state(&mod1, &room, "m.room.power_levels", "", content).await;
        assert!(
            reply.status.is_client_error(),
            "{what} should be refused: {} {}",
            reply.status,
            reply.body
        );
        assert_eq!(
            power_levels(&alice, &room).await,
            before,
            "{what} changed the power levels"
        );
    }
    // Within their own level, a moderator may grant and lower.
    let grant = with(&|pl| {
        pl["users"]["@bob:localhost"] = json!(50);
        pl["kick"] = json!(40);
    });
    put_state(&mod1, &room, "m.room.power_levels", "", grant)
        .await
        .ok();
    let now = power_levels(&alice, &room).await;
    assert_eq!(now["users"]["@bob:localhost"], 50);
    assert_eq!(now["kick"], 40);
    // The creator at 100 may demote a moderator; the moderator may demote themselves.
    let mut demote = now.clone();
    demote["users"]["@mod2:localhost"] = json!(0);
    put_state(&alice, &room, "m.room.power_levels", "", demote.clone())
        .await
        .ok();
    demote["users"]["@mod1:localhost"] = json!(10);
    put_state(&mod1, &room, "m.room.power_levels", "", demote.clone())
        .await
        .ok();
    let last = power_levels(&alice, &room).await;
    assert_eq!(last["users"]["@mod1:localhost"], 10);
    assert_eq!(last["users"]["@mod2:localhost"], 0);
    // At 10, mod1 can no longer send power levels at all.
    demote["users"]["@mod1:localhost"] = json!(0);
    put_state(&mod1, &room, "m.room.power_levels", "", demote)
        .await
        .err(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn state_keys_that_are_user_ids_belong_to_their_user() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = public_room_with_levels(
        &alice,
        &[&bob],
        json!({"@alice:localhost": 100}),
        json!({"state_default": 0}),
    )
    .await;
    put_state(
        &bob,
        &room,
        "org.example.status",
        &bob.user_id,
        json!({"s": "busy"}),
    )
    .await
    .ok();
    put_state(
        &bob,
        &room,
        "org.example.status",
        &alice.user_id,
        json!({"s": "away"}),
    )
    .await
    .err(403, "M_FORBIDDEN");
    // Not even the creator at 100 may write under another user's id.
    put_state(
        &alice,
        &room,
        "org.example.status",
        &bob.user_id,
        json!({"s": "away"}),
    )
    .await
    .err(403, "M_FORBIDDEN");
    assert_eq!(
        get_state(&alice, &room, "org.example.status", &bob.user_id)
            .await
            .ok(),
        json!({"s": "busy"})
    );
    get_state(&alice, &room, "org.example.status", &alice.user_id)
        .await
        .err(404, "M_NOT_FOUND");
    // Keys that merely look alike but do not start with @ are free.
    put_state(
        &bob,
        &room,
        "org.example.status",
        "alice",
        json!({"s": "x"}),
    )
    .await
    .ok();
}

// ---------------------------------------------------------------------------------------------
// Redaction

#[tokio::test]
async fn a_sender_may_redact_their_own_event_which_is_then_served_stripped() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice.create_room(json!({"preset": "public_chat"})).await;
    bob.join(&room).await.ok();
    let id = bob.send_text(&room, "oops, my password").await;
    let redaction = redact(&bob, &room, &id, "typo").await.ok();
    let redaction_id = redaction["event_id"].as_str().expect("event_id");
    assert!(redaction_id.starts_with('$'));

    let event = get_event(&alice, &room, &id).await.ok();
    assert_eq!(event["content"], json!({}));
    assert_eq!(event["type"], "m.room.message");
    assert_eq!(event["sender"], bob.user_id.as_str());
    let because = &event["unsigned"]["redacted_because"];
    assert_eq!(because["event_id"], redaction_id);
    assert_eq!(because["type"], "m.room.redaction");
    assert_eq!(because["sender"], bob.user_id.as_str());
    assert_eq!(because["content"]["reason"], "typo");
    assert_eq!(because["redacts"], id.as_str());

    let history = messages(&alice, &room).await.ok();
    assert!(!bodies(&history).contains(&"oops, my password".to_string()));
    let in_history = history["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_id"] == id.as_str())
        .expect("the redacted event is still in the history");
    assert_eq!(in_history["content"], json!({}));
    assert_eq!(
        in_history["unsigned"]["redacted_because"]["event_id"],
        redaction_id
    );
}

#[tokio::test]
async fn redacting_someone_elses_event_needs_the_redact_level() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice.create_room(json!({"preset": "public_chat"})).await;
    bob.join(&room).await.ok();
    let alices = alice.send_text(&room, "from alice").await;
    let bobs = bob.send_text(&room, "from bob").await;
    redact(&bob, &room, &alices, "no")
        .await
        .err(403, "M_FORBIDDEN");
    let untouched = get_event(&bob, &room, &alices).await.ok();
    assert_eq!(untouched["content"]["body"], "from alice");
    assert!(untouched["unsigned"].get("redacted_because").is_none());

    redact(&alice, &room, &bobs, "moderated").await.ok();
    let stripped = get_event(&bob, &room, &bobs).await.ok();
    assert_eq!(stripped["content"], json!({}));
    assert_eq!(
        stripped["unsigned"]["redacted_because"]["sender"],
        alice.user_id.as_str()
    );
    // Events of other rooms and unknown events cannot be redacted here.
    let other = alice.create_room(json!({})).await;
    redact(&alice, &other, &alices, "wrong room")
        .await
        .err(404, "M_NOT_FOUND");
    assert_eq!(
        get_event(&alice, &room, &alices).await.ok()["content"]["body"],
        "from alice"
    );
}

#[tokio::test]
async fn a_redacted_event_keeps_only_what_the_v10_redaction_algorithm_keeps() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    bob.put(
        &format!("/profile/{}/displayname", enc(&bob.user_id)),
        json!({"displayname": "Bobby"}),
    )
    .await
    .ok();
    let room = alice.create_room(json!({"preset": "public_chat"})).await;
    bob.join(&room).await.ok();
    let state = all_state(&alice, &room).await;
    let bob_join = find(&state, "m.room.member", &bob.user_id).unwrap()["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    let join_rules = put_state(
        &alice,
        &room,
        "m.room.join_rules",
        "",
        json!({"join_rule": "public",
               "allow": [{"type": "m.room_membership", "room_id": "!other:localhost"}],
               "extra": "dropped"}),
    )
    .await
    .ok()["event_id"]
        .as_str()
        .unwrap()
        .to_string();

    redact(&alice, &room, &bob_join, "names").await.ok();
    let member = get_event(&alice, &room, &bob_join).await.ok();
    assert_eq!(member["content"], json!({"membership": "join"}));

    redact(&alice, &room, &join_rules, "rules").await.ok();
    let rules = get_event(&alice, &room, &join_rules).await.ok();
    assert_eq!(
        rules["content"],
        json!({"join_rule": "public",
               "allow": [{"type": "m.room_membership", "room_id": "!other:localhost"}]})
    );
}

#[tokio::test]
async fn a_redacted_state_event_is_served_redacted_as_current_state() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice
        .create_room(json!({"preset": "public_chat", "name": "Rude name"}))
        .await;
    bob.join(&room).await.ok();
    let name_id = find(&all_state(&alice, &room).await, "m.room.name", "").unwrap()["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    redact(&alice, &room, &name_id, "rude").await.ok();
    assert_eq!(
        get_state(&bob, &room, "m.room.name", "").await.ok(),
        json!({}),
        "GET /state/m.room.name serves the redacted content"
    );
    let state = all_state(&bob, &room).await;
    let name = find(&state, "m.room.name", "").expect("the redacted event is still state");
    assert_eq!(name["event_id"], name_id.as_str());
    assert_eq!(name["content"], json!({}));
    assert!(name["unsigned"]["redacted_because"].is_object(), "{name}");

    // The auth rules see the redacted power levels: `invite` is not kept by redaction in v10,
    // so the room falls back to the default invite level 0.
    let carol = server.register("carol").await;
    let gated = alice
        .create_room(json!({"power_level_content_override": {"invite": 100}, "room_version": "10"}))
        .await;
    member_action(&alice, &gated, "invite", &bob.user_id)
        .await
        .ok();
    bob.join(&gated).await.ok();
    member_action(&bob, &gated, "invite", &carol.user_id)
        .await
        .err(403, "M_FORBIDDEN");
    let pl_id = find(&all_state(&alice, &gated).await, "m.room.power_levels", "").unwrap()
        ["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    redact(&alice, &gated, &pl_id, "reset").await.ok();
    let pl = power_levels(&alice, &gated).await;
    assert!(pl.get("invite").is_none(), "{pl}");
    assert_eq!(pl["users"]["@alice:localhost"], 100);
    member_action(&bob, &gated, "invite", &carol.user_id)
        .await
        .ok();

    // After a restart the state is loaded from storage: still redacted.
    let data_dir = server.stop().await;
    let config = test_config(data_dir.path());
    let server = TestServer::start_in(data_dir, config).await;
    let at = |c: &Client| Client {
        base: server.base.clone(),
        ..c.clone()
    };
    let (alice, bob) = (at(&alice), at(&bob));
    assert_eq!(
        get_state(&bob, &room, "m.room.name", "").await.ok(),
        json!({})
    );
    let dave = server.register("dave").await;
    member_action(&bob, &gated, "invite", &dave.user_id)
        .await
        .ok();
    assert!(power_levels(&alice, &gated).await.get("invite").is_none());
}

// ---------------------------------------------------------------------------------------------
// Who may read

#[tokio::test]
async fn a_user_who_was_never_in_a_room_cannot_read_it() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let eve = server.register("eve").await;
    let room = alice
        .create_room(json!({"preset": "public_chat", "name": "Members only"}))
        .await;
    let id = alice.send_text(&room, "private words").await;
    messages(&eve, &room).await.err(403, "M_FORBIDDEN");
    eve.get(&format!("/rooms/{}/state", enc(&room)))
        .await
        .err(403, "M_FORBIDDEN");
    get_state(&eve, &room, "m.room.name", "")
        .await
        .err(403, "M_FORBIDDEN");
    get_event(&eve, &room, &id).await.err(404, "M_NOT_FOUND");
    // An invite alone does not open the history either.
    member_action(&alice, &room, "invite", &eve.user_id)
        .await
        .ok();
    get_event(&eve, &room, &id).await.err(404, "M_NOT_FOUND");
    // Once joined, the shared history is readable.
    eve.join(&room).await.ok();
    assert_eq!(
        get_event(&eve, &room, &id).await.ok()["content"]["body"],
        "private words"
    );
    assert!(bodies(&messages(&eve, &room).await.ok()).contains(&"private words".to_string()));
}

#[tokio::test]
async fn a_user_who_left_sees_history_only_up_to_their_leave() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice.create_room(json!({"preset": "public_chat"})).await;
    bob.join(&room).await.ok();
    let before = alice.send_text(&room, "before").await;
    leave(&bob, &room).await.ok();
    let after = alice.send_text(&room, "after").await;
    put_state(&alice, &room, "m.room.topic", "", json!({"topic": "after"}))
        .await
        .ok();

    let seen = messages(&bob, &room).await.ok();
    let seen_bodies = bodies(&seen);
    assert!(seen_bodies.contains(&"before".to_string()), "{seen}");
    assert!(!seen_bodies.contains(&"after".to_string()), "{seen}");
    assert!(
        seen["chunk"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["type"] != "m.room.topic"),
        "{seen}"
    );
    let own_leave = seen["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["type"] == "m.room.member" && e["content"]["membership"] == "leave");
    assert!(own_leave, "bob sees his own leave: {seen}");
    get_event(&bob, &room, &before).await.ok();
    get_event(&bob, &room, &after).await.err(404, "M_NOT_FOUND");
    // Forward pagination stops at the leave as well.
    let forward = bob
        .get(&format!("/rooms/{}/messages?dir=f&limit=100", enc(&room)))
        .await
        .ok();
    assert!(
        !bodies(&forward).contains(&"after".to_string()),
        "{forward}"
    );
    assert!(
        bodies(&forward).contains(&"before".to_string()),
        "{forward}"
    );
}

#[tokio::test]
async fn a_user_who_left_reads_the_state_as_it_was_when_they_left() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let carol = server.register("carol").await;
    let room = alice
        .create_room(json!({"preset": "public_chat", "name": "Old name"}))
        .await;
    bob.join(&room).await.ok();
    leave(&bob, &room).await.ok();
    put_state(
        &alice,
        &room,
        "m.room.name",
        "",
        json!({"name": "New name"}),
    )
    .await
    .ok();
    put_state(
        &alice,
        &room,
        "m.room.name",
        "",
        json!({"name": "Newer name"}),
    )
    .await
    .ok();
    put_state(&alice, &room, "m.room.topic", "", json!({"topic": "after"}))
        .await
        .ok();
    carol.join(&room).await.ok();

    assert_eq!(
        get_state(&bob, &room, "m.room.name", "").await.ok(),
        json!({"name": "Old name"})
    );
    get_state(&bob, &room, "m.room.topic", "")
        .await
        .err(404, "M_NOT_FOUND");
    assert_eq!(membership(&bob, &room, &bob.user_id).await, "leave");
    let state = all_state(&bob, &room).await;
    assert_eq!(
        find(&state, "m.room.name", "").unwrap()["content"]["name"],
        "Old name"
    );
    assert!(find(&state, "m.room.topic", "").is_none(), "{state:?}");
    assert!(find(&state, "m.room.member", &carol.user_id).is_none());
    assert_eq!(
        find(&state, "m.room.member", &bob.user_id).unwrap()["content"]["membership"],
        "leave"
    );
    let members = bob
        .get(&format!("/rooms/{}/members", enc(&room)))
        .await
        .ok();
    let names: Vec<&str> = members["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state_key"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&carol.user_id.as_str()), "{members}");
    assert!(names.contains(&alice.user_id.as_str()), "{members}");
    // Members still see the current state.
    assert_eq!(
        get_state(&alice, &room, "m.room.name", "").await.ok(),
        json!({"name": "Newer name"})
    );
    // Joining again shows the current state again.
    bob.join(&room).await.ok();
    assert_eq!(
        get_state(&bob, &room, "m.room.name", "").await.ok(),
        json!({"name": "Newer name"})
    );
}

// ---------------------------------------------------------------------------------------------
// Directory

#[tokio::test]
async fn aliases_are_added_resolved_and_deleted_only_by_their_creator_or_a_power_holder() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let carol = server.register("carol").await;
    let moderator = server.register("moderator").await;
    let room = public_room_with_levels(
        &alice,
        &[&bob, &moderator],
        json!({"@alice:localhost": 100, "@moderator:localhost": 50}),
        json!({}),
    )
    .await;
    let path = |a: &str| format!("/directory/room/{}", enc(a));

    alice
        .put(&path("#first:localhost"), json!({ "room_id": room }))
        .await
        .ok();
    let taken = bob
        .put(&path("#first:localhost"), json!({ "room_id": room }))
        .await;
    taken.err(409, "M_UNKNOWN");
    // Not in the room: carol may not point an alias at it.
    carol
        .put(&path("#carols:localhost"), json!({ "room_id": room }))
        .await
        .err(403, "M_FORBIDDEN");
    alice
        .put(&path("#elsewhere:example.org"), json!({ "room_id": room }))
        .await
        .err(400, "M_INVALID_PARAM");
    alice
        .put(
            &path("#ghost:localhost"),
            json!({ "room_id": "!nope:localhost" }),
        )
        .await
        .err(404, "M_NOT_FOUND");
    let resolved = server.client().get(&path("#first:localhost")).await.ok();
    assert_eq!(resolved["room_id"], room.as_str());

    bob.put(&path("#bobs:localhost"), json!({ "room_id": room }))
        .await
        .ok();
    let listed = bob
        .get(&format!("/rooms/{}/aliases", enc(&room)))
        .await
        .ok();
    assert_eq!(
        listed["aliases"],
        json!(["#bobs:localhost", "#first:localhost"])
    );

    // bob (0) may delete neither alice's alias, nor may carol from outside.
    bob.delete(&path("#first:localhost"), json!({}))
        .await
        .err(403, "M_FORBIDDEN");
    carol
        .delete(&path("#bobs:localhost"), json!({}))
        .await
        .err(403, "M_FORBIDDEN");
    server.client().get(&path("#first:localhost")).await.ok();
    // The creator deletes their own; a moderator with the canonical alias level deletes bob's.
    alice
        .delete(&path("#first:localhost"), json!({}))
        .await
        .ok();
    server
        .client()
        .get(&path("#first:localhost"))
        .await
        .err(404, "M_NOT_FOUND");
    moderator
        .delete(&path("#bobs:localhost"), json!({}))
        .await
        .ok();
    server
        .client()
        .get(&path("#bobs:localhost"))
        .await
        .err(404, "M_NOT_FOUND");
    alice
        .delete(&path("#bobs:localhost"), json!({}))
        .await
        .err(404, "M_NOT_FOUND");
    // A deleted alias can be taken again.
    bob.put(&path("#first:localhost"), json!({ "room_id": room }))
        .await
        .ok();
}

#[tokio::test]
async fn room_directory_visibility_is_read_by_anyone_and_set_by_a_moderator() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice
        .create_room(json!({"preset": "public_chat", "name": "Soon listed"}))
        .await;
    bob.join(&room).await.ok();
    let anon = server.client();
    let vis_path = format!("/directory/list/room/{}", enc(&room));
    let listed = |anon: Client| async move {
        anon.get("/publicRooms").await.ok()["chunk"]
            .as_array()
            .expect("chunk")
            .iter()
            .map(|r| r["room_id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(anon.get(&vis_path).await.ok()["visibility"], "private");
    assert!(!listed(anon.clone()).await.contains(&room));

    bob.put(&vis_path, json!({"visibility": "public"}))
        .await
        .err(403, "M_FORBIDDEN");
    assert_eq!(anon.get(&vis_path).await.ok()["visibility"], "private");
    alice
        .put(&vis_path, json!({"visibility": "sideways"}))
        .await
        .err(400, "M_INVALID_PARAM");
    alice
        .put(&vis_path, json!({"visibility": "public"}))
        .await
        .ok();
    assert_eq!(anon.get(&vis_path).await.ok()["visibility"], "public");
    assert!(listed(anon.clone()).await.contains(&room));
    alice
        .put(&vis_path, json!({"visibility": "private"}))
        .await
        .ok();
    assert!(!listed(anon.clone()).await.contains(&room));
    anon.get(&format!("/directory/list/room/{}", enc("!nope:localhost")))
        .await
        .err(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn public_rooms_are_listed_paginated_and_searched_by_generic_search_term() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let rust = alice
        .create_room(json!({
            "visibility": "public", "name": "Rust lovers", "topic": "crabs",
            "room_alias_name": "rust",
        }))
        .await;
    let cooking = alice
        .create_room(json!({"visibility": "public", "name": "Cooking", "topic": "Bake the bread"}))
        .await;
    let hidden = alice
        .create_room(json!({"preset": "public_chat", "name": "Rust secret"}))
        .await;
    bob.join(&rust).await.ok();

    let all = server.client().get("/publicRooms").await.ok();
    let chunk = all["chunk"].as_array().expect("chunk").clone();
    let ids: Vec<&str> = chunk
        .iter()
        .map(|r| r["room_id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&rust.as_str()) && ids.contains(&cooking.as_str()),
        "{all}"
    );
    assert!(!ids.contains(&hidden.as_str()), "{all}");
    assert_eq!(all["total_room_count_estimate"], 2);
    let entry = chunk
        .iter()
        .find(|r| r["room_id"] == rust.as_str())
        .unwrap();
    assert_eq!(entry["name"], "Rust lovers");
    assert_eq!(entry["topic"], "crabs");
    assert_eq!(entry["canonical_alias"], "#rust:localhost");
    assert_eq!(entry["num_joined_members"], 2);
    assert_eq!(entry["join_rule"], "public");
    assert_eq!(entry["world_readable"], false);
    assert_eq!(entry["guest_can_join"], false);

    let search = |term: &str| {
        let alice = alice.clone();
        let body = json!({"filter": {"generic_search_term": term}});
        async move {
            let found = alice.post("/publicRooms", body).await.ok();
            let mut ids: Vec<String> = found["chunk"]
                .as_array()
                .expect("chunk")
                .iter()
                .map(|r| r["room_id"].as_str().unwrap().to_string())
                .collect();
            ids.sort();
            ids
        }
    };
    assert_eq!(search("RUST").await, vec![rust.clone()]);
    assert_eq!(search("bread").await, vec![cooking.clone()]);
    let mut both = vec![rust.clone(), cooking.clone()];
    both.sort();
    assert_eq!(search("").await, both);
    assert!(search("nothing like it").await.is_empty());

    let first = alice.post("/publicRooms", json!({"limit": 1})).await.ok();
    assert_eq!(first["chunk"].as_array().unwrap().len(), 1);
    let next = first["next_batch"].as_str().expect("a next batch");
    let second = alice
        .post("/publicRooms", json!({"limit": 1, "since": next}))
        .await
        .ok();
    assert_eq!(second["chunk"].as_array().unwrap().len(), 1);
    assert_ne!(first["chunk"][0]["room_id"], second["chunk"][0]["room_id"]);
    assert!(second.get("next_batch").is_none(), "{second}");
    // POST needs a login, GET does not.
    server
        .client()
        .post("/publicRooms", json!({}))
        .await
        .err(401, "M_MISSING_TOKEN");
}

// ---------------------------------------------------------------------------------------------
// Profile

#[tokio::test]
async fn a_new_users_display_name_is_their_localpart_in_the_profile_and_in_rooms() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    assert_eq!(
        alice
            .get(&format!("/profile/{}", enc(&alice.user_id)))
            .await
            .ok(),
        json!({"displayname": "alice"})
    );
    let room = alice.create_room(json!({})).await;
    let member = alice
        .get(&format!(
            "/rooms/{}/state/m.room.member/{}",
            enc(&room),
            enc(&alice.user_id)
        ))
        .await
        .ok();
    assert_eq!(member["displayname"], "alice", "{member}");
}

#[tokio::test]
async fn a_profile_displayname_and_mxc_avatar_can_be_set_and_read() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let base = format!("/profile/{}", enc(&alice.user_id));
    alice
        .put(
            &format!("{base}/displayname"),
            json!({"displayname": "Alice A."}),
        )
        .await
        .ok();
    alice
        .put(
            &format!("{base}/avatar_url"),
            json!({"avatar_url": "https://example.org/a.png"}),
        )
        .await
        .err(400, "M_INVALID_PARAM");
    alice
        .put(
            &format!("{base}/avatar_url"),
            json!({"avatar_url": "mxc://localhost/abc123"}),
        )
        .await
        .ok();
    bob.put(
        &format!("{base}/displayname"),
        json!({"displayname": "Not Alice"}),
    )
    .await
    .err(403, "M_FORBIDDEN");

    let anon = server.client();
    assert_eq!(
        anon.get(&base).await.ok(),
        json!({"displayname": "Alice A.", "avatar_url": "mxc://localhost/abc123"})
    );
    assert_eq!(
        anon.get(&format!("{base}/displayname")).await.ok(),
        json!({"displayname": "Alice A."})
    );
    assert_eq!(
        anon.get(&format!("{base}/avatar_url")).await.ok(),
        json!({"avatar_url": "mxc://localhost/abc123"})
    );
    anon.get(&format!("/profile/{}", enc("@nobody:localhost")))
        .await
        .err(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn a_changed_displayname_is_reflected_in_the_member_event_of_every_joined_room() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    bob.put(
        &format!("/profile/{}/displayname", enc(&bob.user_id)),
        json!({"displayname": "Old Bob"}),
    )
    .await
    .ok();
    let rooms: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(alice.create_room(json!({"preset": "public_chat"})).await);
        }
        v
    };
    for r in &rooms {
        bob.join(r).await.ok();
        assert_eq!(
            get_state(&alice, r, "m.room.member", &bob.user_id)
                .await
                .ok()["displayname"],
            "Old Bob"
        );
    }
    let left = rooms[2].clone();
    leave(&bob, &left).await.ok();

    bob.put(
        &format!("/profile/{}/displayname", enc(&bob.user_id)),
        json!({"displayname": "New Bob"}),
    )
    .await
    .ok();
    bob.put(
        &format!("/profile/{}/avatar_url", enc(&bob.user_id)),
        json!({"avatar_url": "mxc://localhost/bob"}),
    )
    .await
    .ok();
    for r in &rooms[..2] {
        let member = get_state(&alice, r, "m.room.member", &bob.user_id)
            .await
            .ok();
        assert_eq!(member["membership"], "join");
        assert_eq!(member["displayname"], "New Bob");
        assert_eq!(member["avatar_url"], "mxc://localhost/bob");
        let joined = alice
            .get(&format!("/rooms/{}/joined_members", enc(r)))
            .await
            .ok();
        assert_eq!(joined["joined"][&bob.user_id]["display_name"], "New Bob");
    }
    let member = get_state(&alice, &left, "m.room.member", &bob.user_id)
        .await
        .ok();
    assert_eq!(member["membership"], "leave", "a left room is not rejoined");
    assert_ne!(member["displayname"], "New Bob");
}

// ---------------------------------------------------------------------------------------------
// Event ids and the server key

fn collect_event_ids(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let (Some(Value::String(id)), Some(_)) = (m.get("event_id"), m.get("type")) {
                out.push(id.clone());
            }
            for v in m.values() {
                collect_event_ids(v, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_event_ids(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn every_event_served_has_an_event_id_starting_with_a_dollar() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice
        .create_room(json!({"preset": "public_chat", "name": "Ids", "topic": "t"}))
        .await;
    bob.join(&room).await.ok();
    let id = alice.send_text(&room, "one").await;
    let redacted = bob.send_text(&room, "two").await;
    redact(&bob, &room, &redacted, "gone").await.ok();

    let mut ids = Vec::new();
    let state = alice
        .get(&format!("/rooms/{}/state", enc(&room)))
        .await
        .ok();
    collect_event_ids(&state, &mut ids);
    let state_count = ids.len();
    assert!(state_count >= 7, "{state}");
    collect_event_ids(&messages(&alice, &room).await.ok(), &mut ids);
    collect_event_ids(&get_event(&alice, &room, &id).await.ok(), &mut ids);
    collect_event_ids(&get_event(&alice, &room, &redacted).await.ok(), &mut ids);
    collect_event_ids(
        &alice
            .get(&format!("/rooms/{}/members", enc(&room)))
            .await
            .ok(),
        &mut ids,
    );
    let sync = alice.sync(None, 0).await;
    assert!(!timeline(&sync, &room).is_empty());
    collect_event_ids(&sync, &mut ids);
    assert!(ids.len() > state_count + 10, "{ids:?}");
    for id in &ids {
        assert!(id.starts_with('$') && id.len() > 1, "bad event id {id:?}");
        assert!(!id.contains(':'), "room v10 ids carry no server name: {id}");
    }
    let unique: HashSet<&String> = ids.iter().collect();
    assert!(unique.contains(&id) && unique.contains(&redacted));
}

#[tokio::test]
async fn the_server_key_is_published_with_a_signature_that_verifies_over_canonical_json() {
    let server = TestServer::start().await;
    let body = server.client().get("/_matrix/key/v2/server").await.ok();
    assert_eq!(body["server_name"], "localhost");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(
        body["valid_until_ts"].as_i64().expect("valid_until_ts") > now,
        "{body}"
    );
    let keys = body["verify_keys"].as_object().expect("verify_keys");
    assert_eq!(keys.len(), 1, "{body}");
    let (key_id, key) = keys.iter().next().unwrap();
    assert!(key_id.starts_with("ed25519:"), "{key_id}");
    let public: [u8; 32] = STANDARD_NO_PAD
        .decode(key["key"].as_str().expect("key"))
        .expect("unpadded base64")
        .try_into()
        .expect("32 bytes");
    let verifying = VerifyingKey::from_bytes(&public).expect("an ed25519 key");
    let signature = body["signatures"]["localhost"][key_id]
        .as_str()
        .expect("a signature by this key");
    let signature = Signature::from_slice(&STANDARD_NO_PAD.decode(signature).expect("base64"))
        .expect("64 bytes");

    let mut signed = body.clone();
    let obj = signed.as_object_mut().unwrap();
    obj.remove("signatures");
    obj.remove("unsigned");
    let canonical = plugboard::service::keys::to_canonical(&signed);
    // serde_json (without preserve_order) sorts keys and writes no whitespace: the same text.
    assert_eq!(canonical, serde_json::to_string(&signed).unwrap());
    assert!(!canonical.contains(' ') && !canonical.contains('\n'));
    verifying
        .verify(canonical.as_bytes(), &signature)
        .expect("the signature verifies");

    let mut tampered = signed.clone();
    tampered["valid_until_ts"] = json!(body["valid_until_ts"].as_i64().unwrap() + 1);
    let tampered = plugboard::service::keys::to_canonical(&tampered);
    assert!(verifying.verify(tampered.as_bytes(), &signature).is_err());
    // The key stays the same across requests.
    let again = server.client().get("/_matrix/key/v2/server").await.ok();
    assert_eq!(again["verify_keys"], body["verify_keys"]);
}

#[tokio::test]
async fn only_a_member_with_alias_power_may_publish_a_room() {
    let server = TestServer::start().await;
    let owner = server.register("owner").await;
    let outsider = server.register("outsider").await;
    let member = server.register("member").await;
    let room = owner
        .create_room(
            json!({"preset": "public_chat", "power_level_content_override": {"state_default": 0}}),
        )
        .await;
    member.join(&room).await.ok();
    let path = format!("/directory/list/room/{}", enc(&room));
    outsider
        .put(&path, json!({"visibility": "public"}))
        .await
        .err(403, "M_FORBIDDEN");
    member
        .put(&path, json!({"visibility": "public"}))
        .await
        .err(403, "M_FORBIDDEN");
    owner.put(&path, json!({"visibility": "public"})).await.ok();
    assert_eq!(owner.get(&path).await.ok()["visibility"], "public");
}

#[tokio::test]
async fn concurrent_creations_with_one_alias_make_one_room() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let body = json!({"room_alias_name": "contested"});
    let (a, b) = tokio::join!(
        alice.post("/createRoom", body.clone()),
        alice.post("/createRoom", body.clone())
    );
    let winners = [&a, &b].iter().filter(|r| r.status.is_success()).count();
    assert_eq!(winners, 1, "{a:?} {b:?}");
    let loser = if a.status.is_success() { &b } else { &a };
    loser.err(400, "M_ROOM_IN_USE");
    let rooms = alice.get("/joined_rooms").await.ok();
    assert_eq!(
        rooms["joined_rooms"].as_array().unwrap().len(),
        1,
        "{rooms}"
    );
}

#[tokio::test]
async fn each_event_is_read_under_the_visibility_it_was_sent_with() {
    let server = TestServer::start().await;
    let owner = server.register("owner").await;
    let bob = server.register("bob").await;
    let room = owner
        .create_room(json!({
            "preset": "public_chat",
            "initial_state": [{"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}}],
        }))
        .await;
    let secret = owner.send_text(&room, "sent while joined-only").await;
    owner
        .put(
            &format!("/rooms/{}/state/m.room.history_visibility/", enc(&room)),
            json!({"history_visibility": "shared"}),
        )
        .await
        .ok();
    let shared = owner.send_text(&room, "sent while shared").await;
    bob.join(&room).await.ok();

    let page = bob
        .get(&format!("/rooms/{}/messages?dir=b&limit=100", enc(&room)))
        .await
        .ok();
    let seen: Vec<&str> = page["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event_id"].as_str())
        .collect();
    assert!(seen.contains(&shared.as_str()), "{page}");
    assert!(!seen.contains(&secret.as_str()), "{page}");
    bob.get(&format!("/rooms/{}/event/{}", enc(&room), enc(&secret)))
        .await
        .err(404, "M_NOT_FOUND");
    let sync = bob.sync(None, 0).await;
    let ids: Vec<&str> = timeline(&sync, &room)
        .iter()
        .filter_map(|e| e["event_id"].as_str())
        .collect();
    assert!(!ids.contains(&secret.as_str()), "{sync}");
}
