//! HTTP application services: a registration file loaded at start-up, the events its
//! namespaces select pushed as transactions in stream order, retries that keep the txnId and
//! its events, and a backlog delivered whole once the service comes up.

use plugboard_tests::appservice::Recorder;
use plugboard_tests::{enc, TestServer};
use serde_json::{json, Value};

const HS_TOKEN: &str = "hs_secret_for_tests";

/// A fresh test appservice and its URL.
async fn recorder() -> (Recorder, String) {
    let r = Recorder::new(HS_TOKEN);
    let url = r.start().await;
    (r, url)
}

/// A server with one registered service at `url` whose users are `@bridge_…` and whose
/// aliases are `#bridge_…`, and the dir holding its registration file.
async fn server_with_service(url: &str) -> (TestServer, tempfile::TempDir) {
    server_with_service_and(url, "").await
}

/// As [`server_with_service`], with more top-level registration keys (`extra`, YAML lines).
async fn server_with_service_and(url: &str, extra: &str) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bridge.yaml");
    std::fs::write(
        &path,
        format!(
            "id: bridge\nurl: {url}\nas_token: as_secret_for_tests\nhs_token: {HS_TOKEN}\n\
             sender_localpart: bridgebot\nnamespaces:\n  users:\n    - regex: '@bridge_.*'\n      exclusive: false\n\
             \x20 aliases:\n    - regex: '#bridge_.*'\n      exclusive: false\n  rooms: []\n{extra}"
        ),
    )
    .unwrap();
    let server = TestServer::start_with(|c| {
        c.appservice_config_files = vec![path.clone()];
        c.appservice_delivery.retry_base_ms = 20;
        c.appservice_delivery.retry_max_ms = 200;
    })
    .await;
    (server, dir)
}

#[tokio::test]
async fn the_service_receives_what_its_namespaces_select_and_nothing_else() {
    let (recorder, url) = recorder().await;
    let (server, _dir) = server_with_service(&url).await;
    let alice = server.register("alice").await;
    let bob = server.register("bridge_bob").await;

    let unrelated = alice.create_room(json!({"name": "unrelated"})).await;
    let unrelated_msg = alice.send_text(&unrelated, "not for the bridge").await;

    let with_member = alice.create_room(json!({"preset": "public_chat"})).await;
    bob.join(&with_member).await.ok();
    let member_msg = alice.send_text(&with_member, "hello bridge member").await;

    let aliased = alice
        .create_room(json!({"room_alias_name": "bridge_lobby"}))
        .await;
    let alias_msg = alice.send_text(&aliased, "hello aliased room").await;

    let by_sender = bob.create_room(json!({})).await;
    let sender_msg = bob.send_text(&by_sender, "bob speaks").await;

    recorder
        .wait_for("the bridge's events", |r| {
            let ids: Vec<String> = r
                .accepted_events()
                .iter()
                .map(|e| e["event_id"].as_str().unwrap_or("").to_string())
                .collect();
            [&member_msg, &alias_msg, &sender_msg]
                .iter()
                .all(|id| ids.contains(id))
        })
        .await;
    let events = recorder.accepted_events();
    assert!(
        events.iter().all(|e| e["room_id"] != unrelated.as_str()),
        "an event of an unrelated room was pushed: {unrelated_msg}"
    );
    let joins: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "m.room.member" && e["state_key"] == "@bridge_bob:localhost")
        .collect();
    assert!(!joins.is_empty(), "the namespaced user's join was pushed");
    // Stream order: each room's events arrive in the order they were sent.
    let order: Vec<&str> = events
        .iter()
        .filter(|e| e["room_id"] == with_member.as_str())
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(order.last(), Some(&"m.room.message"), "{order:?}");
}

#[tokio::test]
async fn a_failed_push_is_retried_with_the_same_txn_id_and_events() {
    let (recorder, url) = recorder().await;
    recorder.fail_next(2);
    let (server, _dir) = server_with_service(&url).await;
    let bob = server.register("bridge_bob").await;
    let room = bob.create_room(json!({})).await;
    let msg = bob.send_text(&room, "retried").await;
    recorder
        .wait_for("the message", |r| {
            r.accepted_events()
                .iter()
                .any(|e| e["event_id"] == msg.as_str())
        })
        .await;
    let seen = recorder.seen();
    let first = &seen[0];
    assert!(seen.len() >= 3, "{seen:?}");
    assert_eq!(
        &seen[1], first,
        "a retry carries the same txn id and events"
    );
    assert_eq!(
        &seen[2], first,
        "a retry carries the same txn id and events"
    );
    let accepted = recorder.accepted();
    assert_eq!(accepted[0].0, first.0);
}

#[tokio::test]
async fn a_backlog_reaches_a_service_that_comes_up_whole_and_in_order() {
    let (recorder, url) = recorder().await;
    recorder.set_down(true);
    let (server, _dir) = server_with_service(&url).await;
    let bob = server.register("bridge_bob").await;
    let room = bob.create_room(json!({})).await;
    let mut sent = Vec::new();
    for i in 0..1000 {
        let id = bob
            .put(
                &format!("/rooms/{}/send/m.room.message/b{i}", enc(&room)),
                json!({"msgtype": "m.text", "body": format!("backlog {i}")}),
            )
            .await
            .ok()["event_id"]
            .as_str()
            .unwrap()
            .to_string();
        sent.push(id);
    }
    recorder.set_down(false);
    recorder
        .wait_for("the whole backlog", |r| {
            r.accepted_events()
                .iter()
                .any(|e| e["event_id"] == sent.last().unwrap().as_str())
        })
        .await;
    let accepted = recorder.accepted();
    let mut txn_ids: Vec<&String> = accepted.iter().map(|(t, _)| t).collect();
    let all = txn_ids.len();
    txn_ids.dedup();
    assert_eq!(txn_ids.len(), all, "each transaction is accepted once");
    for (_, body) in &accepted {
        assert!(body["events"].as_array().unwrap().len() <= 100);
    }
    let messages: Vec<String> = recorder
        .accepted_events()
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(messages, sent, "every event once, in order");
    assert!(
        accepted.len() >= 10,
        "a backlog goes out in full transactions, not one event each: {}",
        accepted.len()
    );
}

#[tokio::test]
async fn typing_and_receipts_reach_a_service_that_asks_for_ephemeral_data() {
    let (recorder, url) = recorder().await;
    let (server, _dir) = server_with_service_and(&url, "receive_ephemeral: true\n").await;
    let alice = server.register("alice").await;
    let bob = server.register("bridge_bob").await;
    let room = alice.create_room(json!({"preset": "public_chat"})).await;
    bob.join(&room).await.ok();
    let msg = alice.send_text(&room, "read me").await;
    alice
        .put(
            &format!("/rooms/{}/typing/{}", enc(&room), enc(&alice.user_id)),
            json!({"typing": true, "timeout": 30000}),
        )
        .await
        .ok();
    alice
        .post(
            &format!("/rooms/{}/receipt/m.read/{}", enc(&room), enc(&msg)),
            json!({}),
        )
        .await
        .ok();
    let ephemeral = |r: &Recorder| -> Vec<Value> {
        r.accepted()
            .iter()
            .flat_map(|(_, b)| b["ephemeral"].as_array().cloned().unwrap_or_default())
            .collect()
    };
    recorder
        .wait_for("typing and a receipt", |r| {
            let e = ephemeral(r);
            e.iter().any(|x| x["type"] == "m.typing") && e.iter().any(|x| x["type"] == "m.receipt")
        })
        .await;
    let all = ephemeral(&recorder);
    let typing = all.iter().find(|x| x["type"] == "m.typing").unwrap();
    assert_eq!(typing["room_id"], room.as_str());
    assert_eq!(typing["content"]["user_ids"], json!([alice.user_id]));
    let receipt = all.iter().find(|x| x["type"] == "m.receipt").unwrap();
    assert!(receipt["content"][msg.as_str()]["m.read"][alice.user_id.as_str()]["ts"].is_i64());
    let bodies = recorder.accepted();
    assert!(bodies
        .iter()
        .all(|(_, b)| b["ephemeral"] == b["de.sorunome.msc2409.ephemeral"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_behind_a_long_run_of_receipts_it_does_not_want_still_reaches_a_service() {
    let (recorder, url) = recorder().await;
    let (server, _dir) = server_with_service_and(&url, "receive_ephemeral: true\n").await;
    let alice = server.register("alice").await;
    let bob = server.register("bridge_bob").await;
    let bridged = alice.create_room(json!({"preset": "public_chat"})).await;
    bob.join(&bridged).await.ok();
    // More rooms without a bridged user than one read of receipts takes (500), each with a
    // message to mark read.
    let mut elsewhere = Vec::new();
    for i in 0..520 {
        let room = alice.create_room(json!({})).await;
        let msg = alice.send_text(&room, &format!("m{i}")).await;
        elsewhere.push((room, msg));
    }
    let marker = bob.send_text(&bridged, "caught up").await;
    recorder.wait_for("the marker", |r| r.has(&marker)).await;
    // While the service is down, a message it wants waits in a transaction that is being
    // retried, and only receipts are written behind it: 520 it does not want, then one it does.
    recorder.set_down(true);
    let waiting = bob.send_text(&bridged, "waiting").await;
    for (room, msg) in &elsewhere {
        alice
            .post(
                &format!("/rooms/{}/receipt/m.read/{}", enc(room), enc(msg)),
                json!({}),
            )
            .await
            .ok();
    }
    alice
        .post(
            &format!("/rooms/{}/receipt/m.read/{}", enc(&bridged), enc(&marker)),
            json!({}),
        )
        .await
        .ok();
    recorder.set_down(false);
    recorder
        .wait_for("the waiting message", |r| r.has(&waiting))
        .await;
    recorder
        .wait_for("the receipt in the bridged room", |r| {
            r.accepted().iter().any(|(_, b)| {
                b["ephemeral"].as_array().is_some_and(|e| {
                    e.iter()
                        .any(|x| x["type"] == "m.receipt" && x["room_id"] == bridged.as_str())
                })
            })
        })
        .await;
}

#[tokio::test]
async fn a_service_that_does_not_ask_gets_no_ephemeral_data() {
    let (recorder, url) = recorder().await;
    let (server, _dir) = server_with_service(&url).await;
    let bob = server.register("bridge_bob").await;
    let room = bob.create_room(json!({})).await;
    bob.put(
        &format!("/rooms/{}/typing/{}", enc(&room), enc(&bob.user_id)),
        json!({"typing": true, "timeout": 30000}),
    )
    .await
    .ok();
    let last = bob.send_text(&room, "after typing").await;
    recorder
        .wait_for("the message", |r| {
            r.accepted_events()
                .iter()
                .any(|e| e["event_id"] == last.as_str())
        })
        .await;
    let bodies = recorder.accepted();
    assert!(bodies.iter().all(|(_, b)| b.get("ephemeral").is_none()));
}

#[tokio::test]
async fn a_room_becomes_interesting_when_it_gets_a_namespaced_alias() {
    let (recorder, url) = recorder().await;
    let (server, _dir) = server_with_service(&url).await;
    let alice = server.register("alice").await;
    let bob = server.register("bridge_bob").await;
    let room = alice.create_room(json!({})).await;
    let before = alice.send_text(&room, "before the alias").await;
    // Something the service does want, so we know it has looked past `before`.
    let other = bob.create_room(json!({})).await;
    let marker = bob.send_text(&other, "marker").await;
    recorder
        .wait_for("the marker", |r| {
            r.accepted_events()
                .iter()
                .any(|e| e["event_id"] == marker.as_str())
        })
        .await;
    alice
        .put(
            &format!("/directory/room/{}", enc("#bridge_late:localhost")),
            json!({"room_id": room}),
        )
        .await
        .ok();
    let after = alice.send_text(&room, "after the alias").await;
    recorder
        .wait_for("the message after the alias", |r| {
            r.accepted_events()
                .iter()
                .any(|e| e["event_id"] == after.as_str())
        })
        .await;
    assert!(!recorder
        .accepted_events()
        .iter()
        .any(|e| e["event_id"] == before.as_str()));
}
