//! Room versions 10, 11 and 12 end to end, as a client sees them: the advertised versions,
//! each version's create event, version 12's room ids (the create event's hash, no server) and
//! its creators' power, version 11's redactions, joins by id and by alias, upgrades between
//! versions, and the spec's error for a version this server does not have.

use plugboard_tests::{enc, Client, TestServer};
use serde_json::{json, Value};

async fn state(c: &Client, room: &str, kind: &str) -> Value {
    c.get(&format!("/rooms/{}/state/{kind}/", enc(room)))
        .await
        .ok()
}

async fn event(c: &Client, room: &str, id: &str) -> Value {
    c.get(&format!("/rooms/{}/event/{}", enc(room), enc(id)))
        .await
        .ok()
}

/// The id of the room's create event, read from its state.
async fn create_event_id(c: &Client, room: &str) -> String {
    let all = c.get(&format!("/rooms/{}/state", enc(room))).await.ok();
    all.as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "m.room.create")
        .and_then(|e| e["event_id"].as_str())
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_10_11_and_12_are_stable_and_12_is_the_default() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let caps = alice.get("/capabilities").await.ok();
    let versions = &caps["capabilities"]["m.room_versions"];
    assert_eq!(
        versions,
        &json!({"default": "12", "available": {"10": "stable", "11": "stable", "12": "stable"}})
    );
    let room = alice.create_room(json!({})).await;
    assert_eq!(
        state(&alice, &room, "m.room.create").await["room_version"],
        "12"
    );
    for version in ["1", "9", "13", ""] {
        alice
            .post("/createRoom", json!({ "room_version": version }))
            .await
            .err(400, "M_UNSUPPORTED_ROOM_VERSION");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_version_makes_its_own_create_event() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let v10 = alice.create_room(json!({"room_version": "10"})).await;
    assert!(v10.ends_with(":localhost"), "{v10}");
    assert_eq!(
        state(&alice, &v10, "m.room.create").await["creator"],
        "@alice:localhost"
    );

    // From version 11 the sender is the creator: the content names none.
    let v11 = alice.create_room(json!({"room_version": "11"})).await;
    assert!(v11.ends_with(":localhost"), "{v11}");
    let create = state(&alice, &v11, "m.room.create").await;
    assert!(create.get("creator").is_none(), "{create}");

    // Version 12: the room id is the create event's id with the room sigil, no server.
    let v12 = alice.create_room(json!({"room_version": "12"})).await;
    assert!(!v12.contains(':'), "{v12}");
    let id = create_event_id(&alice, &v12).await;
    assert_eq!(v12[1..], id[1..]);
    assert!(state(&alice, &v12, "m.room.create")
        .await
        .get("creator")
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_created_at_once_with_the_same_content_get_different_ids() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let made = create_at_once(&alice, 8).await;
    let mut unique = made.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), made.len(), "{made:?}");
}

async fn create_at_once(c: &Client, n: usize) -> Vec<String> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.post("/createRoom", json!({})).await.ok()["room_id"]
                .as_str()
                .unwrap()
                .to_string()
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_12_room_is_joined_by_id_and_by_alias_and_messages_flow() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let carol = server.register("carol").await;
    let room = alice
        .create_room(json!({"preset": "public_chat", "room_alias_name": "twelve"}))
        .await;
    let joined = bob.join(&room).await.ok();
    assert_eq!(joined["room_id"], room.as_str());
    let by_alias = carol
        .post(&format!("/join/{}", enc("#twelve:localhost")), json!({}))
        .await
        .ok();
    assert_eq!(by_alias["room_id"], room.as_str());
    let resolved = carol
        .get(&format!("/directory/room/{}", enc("#twelve:localhost")))
        .await
        .ok();
    assert_eq!(resolved["room_id"], room.as_str());
    let sent = bob.send_text(&room, "hello twelve").await;
    let seen = event(&carol, &room, &sent).await;
    assert_eq!(seen["content"]["body"], "hello twelve");
    assert_eq!(seen["room_id"], room.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_12_creators_hold_infinite_power_outside_the_power_levels() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let dave = server.register("dave").await;
    let room = alice
        .create_room(json!({
            "preset": "public_chat",
            "creation_content": {"additional_creators": ["@dave:localhost"]},
        }))
        .await;
    let levels = state(&alice, &room, "m.room.power_levels").await;
    assert!(
        levels["users"].get("@alice:localhost").is_none(),
        "{levels}"
    );
    assert_eq!(levels["events"]["m.room.tombstone"], 150, "{levels}");
    dave.join(&room).await.ok();
    bob.join(&room).await.ok();

    // An additional creator may change what needs 100, and may not be named in the levels.
    let mut raised = levels.clone();
    raised["users"]["@bob:localhost"] = json!(100);
    dave.put(
        &format!("/rooms/{}/state/m.room.power_levels/", enc(&room)),
        raised.clone(),
    )
    .await
    .ok();
    let mut naming = raised.clone();
    naming["users"]["@alice:localhost"] = json!(100);
    alice
        .put(
            &format!("/rooms/{}/state/m.room.power_levels/", enc(&room)),
            naming,
        )
        .await
        .err(403, "M_FORBIDDEN");
    // Bob at 100 is still below the creators: he may neither kick nor ban them.
    for (action, user) in [("kick", "@alice:localhost"), ("ban", "@dave:localhost")] {
        bob.post(
            &format!("/rooms/{}/{action}", enc(&room)),
            json!({ "user_id": user }),
        )
        .await
        .err(403, "M_FORBIDDEN");
    }
    // Nor upgrade the room: the tombstone needs 150.
    bob.post(
        &format!("/rooms/{}/upgrade", enc(&room)),
        json!({"new_version": "12"}),
    )
    .await
    .err(403, "M_FORBIDDEN");
    // Bad additional creators are the client's error.
    alice
        .post(
            "/createRoom",
            json!({"creation_content": {"additional_creators": ["dave"]}}),
        )
        .await
        .err(400, "M_INVALID_PARAM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_11_redaction_names_its_target_in_its_content_and_at_the_top_for_clients() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    for version in ["10", "11", "12"] {
        let room = alice.create_room(json!({ "room_version": version })).await;
        let sent = alice.send_text(&room, "oops").await;
        let redaction = alice
            .put(
                &format!("/rooms/{}/redact/{}/t{version}", enc(&room), enc(&sent)),
                json!({"reason": "typo"}),
            )
            .await
            .ok()["event_id"]
            .as_str()
            .unwrap()
            .to_string();
        let seen = event(&alice, &room, &redaction).await;
        assert_eq!(seen["redacts"], sent.as_str(), "v{version}: {seen}");
        assert_eq!(
            seen["content"]["redacts"],
            sent.as_str(),
            "v{version}: {seen}"
        );
        let original = event(&alice, &room, &sent).await;
        assert_eq!(original["content"], json!({}), "v{version}: {original}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_upgrade_from_10_to_12_and_from_12_to_11_with_their_creators() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let old = alice
        .create_room(json!({"room_version": "10", "preset": "public_chat", "name": "Cheese"}))
        .await;
    bob.join(&old).await.ok();
    let twelve = alice
        .post(
            &format!("/rooms/{}/upgrade", enc(&old)),
            json!({"new_version": "12", "additional_creators": ["@bob:localhost"]}),
        )
        .await
        .ok()["replacement_room"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!twelve.contains(':'), "{twelve}");
    let create = state(&alice, &twelve, "m.room.create").await;
    assert_eq!(create["predecessor"]["room_id"], old.as_str());
    assert_eq!(create["additional_creators"], json!(["@bob:localhost"]));
    let levels = state(&alice, &twelve, "m.room.power_levels").await;
    assert!(
        levels["users"].get("@alice:localhost").is_none(),
        "{levels}"
    );
    assert_eq!(
        state(&alice, &twelve, "m.room.name").await["name"],
        "Cheese"
    );
    let tombstone = state(&alice, &old, "m.room.tombstone").await;
    assert_eq!(tombstone["replacement_room"], twelve.as_str());
    // The old room's levels keep its creator at 100 while closing it to others.
    let closed = state(&alice, &old, "m.room.power_levels").await;
    assert_eq!(closed["users"]["@alice:localhost"], 100, "{closed}");

    // Back to a version without creators' power: the upgrader's comes from the levels.
    let eleven = alice
        .post(
            &format!("/rooms/{}/upgrade", enc(&twelve)),
            json!({"new_version": "11"}),
        )
        .await
        .ok()["replacement_room"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(eleven.ends_with(":localhost"), "{eleven}");
    let levels = state(&alice, &eleven, "m.room.power_levels").await;
    assert_eq!(levels["users"]["@alice:localhost"], 100, "{levels}");
    assert_eq!(
        state(&alice, &twelve, "m.room.tombstone").await["replacement_room"],
        eleven.as_str()
    );
    alice
        .post(
            &format!("/rooms/{}/upgrade", enc(&eleven)),
            json!({"new_version": "13"}),
        )
        .await
        .err(400, "M_UNSUPPORTED_ROOM_VERSION");
}
