//! Appservice delivery across failures: a backlog for a down service survives SIGKILL of the
//! server and arrives whole and in order, and a dead service does not hold up a live one.

use plugboard_tests::appservice::Recorder;
use plugboard_tests::{enc, joined_users, send_until_gone, ServerProcess, TestServer};
use serde_json::json;

const BINARY: &str = env!("CARGO_BIN_EXE_plugboard-test-server");

/// A test appservice for service `id` (whose hs_token is `hs_{id}`) and its URL.
async fn receiver(id: &str) -> (Recorder, String) {
    let r = Recorder::new(&format!("hs_{id}"));
    let url = r.start().await;
    (r, url)
}

/// Waits until every one of `wanted` has arrived.
async fn wait_for_all(r: &Recorder, wanted: &[String]) {
    r.wait_for("every event", |r| {
        let ids = r.accepted_ids();
        wanted.iter().all(|w| ids.contains(w))
    })
    .await;
}

fn registration(dir: &std::path::Path, id: &str, url: &str, users: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{id}.yaml"));
    std::fs::write(
        &path,
        format!(
            "id: {id}\nurl: {url}\nas_token: as_{id}\nhs_token: hs_{id}\nsender_localpart: {id}bot\n\
             namespaces:\n  users:\n    - regex: '{users}'\n      exclusive: false\n"
        ),
    )
    .unwrap();
    path
}

async fn send_n(
    client: &plugboard_tests::Client,
    room: &str,
    prefix: &str,
    n: usize,
) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let body = client
            .put(
                &format!("/rooms/{}/send/m.room.message/{prefix}{i}", enc(room)),
                json!({"msgtype": "m.text", "body": format!("{prefix} {i}")}),
            )
            .await
            .ok();
        ids.push(body["event_id"].as_str().unwrap().to_string());
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_survives_sigkill_and_arrives_whole_and_in_order() {
    let (receiver, url) = receiver("bridge").await;
    receiver.set_down(true);
    let dir = tempfile::tempdir().unwrap();
    let reg = registration(dir.path(), "bridge", &url, "@bridge_.*");
    let data = dir.path().join("data");
    let env = [
        ("PLUGBOARD_APPSERVICE_CONFIG_FILES", reg.to_str().unwrap()),
        ("PLUGBOARD_APPSERVICE_DELIVERY__RETRY_BASE_MS", "20"),
        ("PLUGBOARD_APPSERVICE_DELIVERY__RETRY_MAX_MS", "200"),
    ];
    let server = ServerProcess::spawn_with_env(BINARY, &data, &env).await;
    let bob = server.client().register("bridge_bob", "password").await;
    let room = bob.create_room(json!({})).await;
    let sent = send_n(&bob, &room, "before", 300).await;
    server.kill();

    let server = ServerProcess::spawn_with_env(BINARY, &data, &env).await;
    receiver.set_down(false);
    let mut bob_again = server.client();
    bob_again.token = bob.token.clone();
    let after = send_n(&bob_again, &room, "after", 20).await;
    let all: Vec<String> = sent.iter().chain(after.iter()).cloned().collect();
    wait_for_all(&receiver, &all).await;
    let got: Vec<String> = receiver
        .accepted_ids()
        .into_iter()
        .filter(|id| all.contains(id))
        .collect();
    assert_eq!(
        got, all,
        "each event once, in stream order, across the restart"
    );
}

#[tokio::test]
async fn a_dead_service_does_not_hold_up_a_live_one() {
    let (live, live_url) = receiver("live").await;
    // A port nobody listens on: every push to it fails.
    let dead_url = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let dir = tempfile::tempdir().unwrap();
    let live_reg = registration(dir.path(), "live", &live_url, "@bridge_.*");
    let dead_reg = registration(dir.path(), "dead", &dead_url, "@bridge_.*");
    let server = TestServer::start_with(|c| {
        c.appservice_config_files = vec![dead_reg.clone(), live_reg.clone()];
        c.appservice_delivery.retry_base_ms = 20;
        c.appservice_delivery.retry_max_ms = 200;
    })
    .await;
    let bob = server.register("bridge_bob").await;
    let room = bob.create_room(json!({})).await;
    let sent = send_n(&bob, &room, "m", 200).await;
    wait_for_all(&live, &sent).await;
}

/// Pushes to a live service while the server is killed mid-stream: every acknowledged send
/// arrives, a txnId seen twice carries the same events both times, no event comes under two
/// txnIds, and each sender's events come in the order it sent them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_service_sees_repeats_only_as_retried_txn_ids_across_sigkill() {
    let (receiver, url) = receiver("live").await;
    let dir = tempfile::tempdir().unwrap();
    let reg = registration(dir.path(), "live", &url, "@live_.*");
    let data = dir.path().join("data");
    let env = [
        ("PLUGBOARD_APPSERVICE_CONFIG_FILES", reg.to_str().unwrap()),
        ("PLUGBOARD_APPSERVICE_DELIVERY__RETRY_BASE_MS", "20"),
        ("PLUGBOARD_APPSERVICE_DELIVERY__RETRY_MAX_MS", "200"),
    ];
    let server = ServerProcess::spawn_with_env(BINARY, &data, &env).await;
    let owner = server.client().register("live_owner", "password").await;
    let room = owner.create_room(json!({"preset": "public_chat"})).await;
    let senders = joined_users(&server, &room, "live_sender", 4).await;
    // Each sender sends one at a time until the server dies under it; what was answered 200
    // is what must arrive.
    let tasks: Vec<_> = senders
        .iter()
        .enumerate()
        .map(|(i, c)| send_until_gone(c, &room, &format!("k{i}")))
        .collect();
    receiver
        .wait_for("deliveries under way", |r| r.accepted_ids().len() > 150)
        .await;
    server.kill();
    let mut acked: Vec<Vec<String>> = Vec::new();
    for t in tasks {
        acked.push(t.await.unwrap());
    }

    let server = ServerProcess::spawn_with_env(BINARY, &data, &env).await;
    let mut again = server.client();
    again.token = senders[0].token.clone();
    let after = send_n(&again, &room, "after", 5).await;
    let all: Vec<String> = acked.iter().flatten().chain(&after).cloned().collect();
    wait_for_all(&receiver, &all).await;

    let mut txns: std::collections::HashMap<String, serde_json::Value> = Default::default();
    for (txn, body) in receiver.accepted() {
        if let Some(first) = txns.get(&txn) {
            assert_eq!(
                first["events"], body["events"],
                "txnId {txn} came with other events"
            );
        }
        txns.insert(txn, body);
    }
    let ids = receiver.accepted_ids();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "an event came under two txnIds");
    for sent in &acked {
        let arrived: Vec<&String> = ids.iter().filter(|id| sent.contains(id)).collect();
        assert_eq!(
            arrived,
            sent.iter().collect::<Vec<_>>(),
            "one sender's order"
        );
    }
}
