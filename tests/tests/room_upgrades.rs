//! Room upgrades end to end: the new room names its predecessor and carries the old one's
//! name, topic, rules, encryption, power levels, canonical alias and bans; the old room gets
//! a tombstone, is closed to ordinary users and loses its aliases to the new one; those
//! without the power, unknown versions and bad bodies get the spec's errors.

use plugboard_tests::{enc, Client, TestServer};
use serde_json::{json, Value};

fn upgrade_path(room: &str) -> String {
    format!("/rooms/{}/upgrade", enc(room))
}

async fn state(c: &Client, room: &str, kind: &str) -> Value {
    c.get(&format!("/rooms/{}/state/{kind}/", enc(room)))
        .await
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_room_carries_its_state_and_bans_and_the_old_one_points_to_it() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let carol = server.register("carol").await;
    let old = alice
        .create_room(json!({
            // Version 10 to 10: the levels go over as they are (room_versions.rs has upgrades
            // into and out of version 12, whose creators are not in the levels).
            "room_version": "10",
            "preset": "public_chat", "visibility": "public", "name": "Cheese", "topic": "Tasty",
            "room_alias_name": "cheese",
            "initial_state": [{"type": "m.room.encryption", "state_key": "",
                               "content": {"algorithm": "m.megolm.v1.aes-sha2"}}],
        }))
        .await;
    bob.join(&old).await.ok();
    alice
        .post(
            &format!("/rooms/{}/ban", enc(&old)),
            json!({"user_id": carol.user_id}),
        )
        .await
        .ok();
    let old_levels = state(&alice, &old, "m.room.power_levels").await;

    let caps = alice.get("/capabilities").await.ok();
    let versions = &caps["capabilities"]["m.room_versions"];
    assert_eq!(versions["available"]["10"], "stable", "{caps}");

    let answer = alice
        .post(&upgrade_path(&old), json!({"new_version": "10"}))
        .await
        .ok();
    let new = answer["replacement_room"].as_str().unwrap().to_string();
    assert_ne!(new, old);

    let create = state(&alice, &new, "m.room.create").await;
    assert_eq!(create["predecessor"]["room_id"], old.as_str());
    assert_eq!(create["room_version"], "10");
    assert_eq!(state(&alice, &new, "m.room.name").await["name"], "Cheese");
    assert_eq!(state(&alice, &new, "m.room.topic").await["topic"], "Tasty");
    assert_eq!(
        state(&alice, &new, "m.room.join_rules").await["join_rule"],
        "public"
    );
    assert_eq!(
        state(&alice, &new, "m.room.encryption").await["algorithm"],
        "m.megolm.v1.aes-sha2"
    );
    assert_eq!(state(&alice, &new, "m.room.power_levels").await, old_levels);
    assert_eq!(
        state(&alice, &new, "m.room.canonical_alias").await["alias"],
        "#cheese:localhost"
    );
    let banned = alice
        .get(&format!(
            "/rooms/{}/state/m.room.member/{}",
            enc(&new),
            enc(&carol.user_id)
        ))
        .await
        .ok();
    assert_eq!(banned["membership"], "ban");
    carol.join(&new).await.err(403, "M_FORBIDDEN");

    let tombstone = state(&bob, &old, "m.room.tombstone").await;
    assert_eq!(tombstone["replacement_room"], new.as_str());
    assert!(tombstone["body"].is_string());
    let closed = state(&bob, &old, "m.room.power_levels").await;
    assert_eq!(closed["events_default"], 50);
    assert_eq!(closed["invite"], 50);
    bob.put(
        &format!("/rooms/{}/send/m.room.message/t1", enc(&old)),
        json!({"msgtype": "m.text", "body": "still here?"}),
    )
    .await
    .err(403, "M_FORBIDDEN");
    let old_alias = alice
        .get(&format!(
            "/rooms/{}/state/m.room.canonical_alias/",
            enc(&old)
        ))
        .await
        .ok();
    assert!(old_alias.get("alias").is_none(), "{old_alias}");

    let resolved = bob
        .get(&format!("/directory/room/{}", enc("#cheese:localhost")))
        .await
        .ok();
    assert_eq!(resolved["room_id"], new.as_str());
    let public = bob.get("/publicRooms").await.ok();
    let listed: Vec<&str> = public["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["room_id"].as_str())
        .collect();
    assert_eq!(listed, [new.as_str()]);
    bob.join("#cheese:localhost").await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrading_takes_the_tombstone_power_and_a_supported_version() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let carol = server.register("carol").await;
    // Version 10, where those with the tombstone's level (100) may upgrade; in version 12
    // only creators may unless the levels say otherwise (room_versions.rs).
    let room = alice
        .create_room(json!({"preset": "public_chat", "room_version": "10"}))
        .await;
    bob.join(&room).await.ok();

    bob.post(&upgrade_path(&room), json!({"new_version": "10"}))
        .await
        .err(403, "M_FORBIDDEN");
    carol
        .post(&upgrade_path(&room), json!({"new_version": "10"}))
        .await
        .err(403, "M_FORBIDDEN");
    for version in ["1", "9", "", "org.example.nope"] {
        alice
            .post(&upgrade_path(&room), json!({"new_version": version}))
            .await
            .err(400, "M_UNSUPPORTED_ROOM_VERSION");
    }
    alice
        .post(&upgrade_path(&room), json!({}))
        .await
        .err(400, "M_BAD_JSON");
    alice
        .post(
            &upgrade_path("!nowhere:localhost"),
            json!({"new_version": "10"}),
        )
        .await
        .err(404, "M_NOT_FOUND");
    alice
        .get(&format!("/rooms/{}/state/m.room.tombstone/", enc(&room)))
        .await
        .err(404, "M_NOT_FOUND");

    // Those with the power to tombstone may upgrade without being the creator.
    let mut levels = state(&alice, &room, "m.room.power_levels").await;
    levels["users"][bob.user_id.as_str()] = json!(100);
    alice
        .put(
            &format!("/rooms/{}/state/m.room.power_levels/", enc(&room)),
            levels,
        )
        .await
        .ok();
    let answer = bob
        .post(&upgrade_path(&room), json!({"new_version": "10"}))
        .await
        .ok();
    assert!(answer["replacement_room"].is_string());
}
