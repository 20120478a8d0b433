//! Rooms shared between Plugboard and Synapse 1.163: joins both ways (by alias, by id with
//! `via`), messages both ways arriving in order and byte-exact, state changes applied on both
//! sides. One Synapse serves the binary; each test has its own Plugboard and users.

use std::time::{Duration, Instant};

use plugboard_tests::synapse::{peer, Synapse};
use plugboard_tests::{enc, Client, TestServer};
use serde_json::{json, Value};

/// The `m.room.message` bodies `reader` can read in `room_id`, oldest first (one page of 200).
async fn bodies(reader: &Client, room_id: &str) -> Vec<String> {
    let reply = reader
        .get(&format!("/rooms/{}/messages?dir=b&limit=200", enc(room_id)))
        .await;
    let mut out: Vec<String> = reply.body["chunk"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["type"] == "m.room.message")
        .filter_map(|e| e["content"]["body"].as_str().map(str::to_string))
        .collect();
    out.reverse();
    out
}

/// Waits (30 s at most) until `reader` reads every body of `expected`, in that order, in
/// `room_id`; fails with what it read and the peer's log.
async fn wait_for_bodies(reader: &Client, room_id: &str, expected: &[String], synapse: &Synapse) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let read = bodies(reader, room_id).await;
        let got: Vec<&String> = read.iter().filter(|b| expected.contains(b)).collect();
        if got.len() == expected.len() {
            let want: Vec<&String> = expected.iter().collect();
            assert_eq!(got, want, "the messages arrived out of order");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} messages arrived: {read:?}\n{}",
            got.len(),
            expected.len(),
            synapse.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until `user`'s server lists them joined to `room_id`.
async fn wait_joined(user: &Client, room_id: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rooms = user.get("/joined_rooms").await.body;
        if rooms["joined_rooms"]
            .as_array()
            .is_some_and(|r| r.iter().any(|id| id == room_id))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} never joined {room_id}",
            user.user_id
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The members `reader` sees joined in `room_id`.
async fn joined_members(reader: &Client, room_id: &str) -> Vec<String> {
    let reply = reader
        .get(&format!("/rooms/{}/joined_members", enc(room_id)))
        .await;
    let mut members: Vec<String> = reply.body["joined"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    members.sort();
    members
}

#[tokio::test]
async fn a_synapse_user_joins_a_plugboard_room_by_alias_and_its_messages_arrive_in_order() {
    let synapse = peer().await;
    let plugboard = TestServer::start_federating().await;
    let alice = plugboard.register("alice").await;
    let room_id = alice
        .create_room(json!({"preset": "public_chat", "room_alias_name": "lobby", "name": "Lobby"}))
        .await;
    let alias = format!("#lobby:{}", plugboard.server_name);
    let bob = synapse.user("bob").await;

    let joined = bob.join(&alias).await;
    assert_eq!(
        joined.status,
        200,
        "{}\n{}",
        joined.body,
        synapse.log_tail()
    );
    assert_eq!(joined.body["room_id"], room_id.as_str());

    // Plugboard took Synapse's signed join into the room.
    let mut want = vec![alice.user_id.clone(), bob.user_id.clone()];
    want.sort();
    let deadline = Instant::now() + Duration::from_secs(30);
    while joined_members(&alice, &room_id).await != want {
        assert!(
            Instant::now() < deadline,
            "bob's join never showed on Plugboard"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Synapse has the room's state from send_join: the name Plugboard set.
    let name = bob
        .get(&format!("/rooms/{}/state/m.room.name/", enc(&room_id)))
        .await;
    assert_eq!(name.body["name"], "Lobby", "{}", name.body);

    let sent: Vec<String> = (0..20).map(|i| format!("from synapse #{i} ✓")).collect();
    for text in &sent {
        bob.send_text(&room_id, text).await;
    }
    wait_for_bodies(&alice, &room_id, &sent, synapse).await;
}

#[tokio::test]
async fn a_plugboard_user_joins_a_synapse_room_by_id_with_via_and_reads_what_is_sent_there() {
    let synapse = peer().await;
    let plugboard = TestServer::start_federating().await;
    let bob = synapse.user("bob").await;
    let room_id = bob
        .create_room(json!({"preset": "public_chat", "name": "Synapse side"}))
        .await;
    let alice = plugboard.register("alice").await;

    // A version 12 room id names no server: the join needs `via`.
    let joined = alice
        .post(
            &format!("/join/{}?via={}", enc(&room_id), enc(&synapse.server_name)),
            json!({}),
        )
        .await;
    assert_eq!(
        joined.status,
        200,
        "{}\n{}",
        joined.body,
        synapse.log_tail()
    );
    wait_joined(&alice, &room_id).await;
    let name = alice
        .get(&format!("/rooms/{}/state/m.room.name/", enc(&room_id)))
        .await;
    assert_eq!(name.body["name"], "Synapse side", "{}", name.body);

    // Synapse sees Plugboard's join.
    let mut want = vec![alice.user_id.clone(), bob.user_id.clone()];
    want.sort();
    let deadline = Instant::now() + Duration::from_secs(30);
    while joined_members(&bob, &room_id).await != want {
        assert!(
            Instant::now() < deadline,
            "alice's join never showed on Synapse"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let sent: Vec<String> = (0..20).map(|i| format!("to plugboard #{i}")).collect();
    for text in &sent {
        bob.send_text(&room_id, text).await;
    }
    wait_for_bodies(&alice, &room_id, &sent, synapse).await;
}

#[tokio::test]
async fn a_join_without_a_server_to_join_through_is_a_clear_404() {
    let plugboard = TestServer::start_federating().await;
    let alice = plugboard.register("alice").await;
    let unknown = "!AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let reply = alice
        .post(&format!("/join/{}", enc(unknown)), json!({}))
        .await;
    assert_eq!(reply.status, 404, "{}", reply.body);
    assert_eq!(reply.body["errcode"], "M_NOT_FOUND");
    let _: Value = reply.body;
}
