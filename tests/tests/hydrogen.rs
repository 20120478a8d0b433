//! Hydrogen (the web client, `hydrogen-view-sdk` from npm) in headless Chromium against a real
//! server, driven as a person uses it: log in with a password, open a room from the room
//! list, read what another user sent over HTTP, send an answer; the server has it. The
//! browser's last screen is kept in `target/test-output/hydrogen/`. The script is
//! tests/clients/js/hydrogen.mjs.

use std::time::Duration;

use plugboard_tests::node::{ensure_chromium, ensure_js_clients, run_node};
use plugboard_tests::{enc, repo_root, TestServer};
use serde_json::{json, Value};

const ROOM_NAME: &str = "Tea at four";
const FROM_BOB: &str = "The kettle is on, come over";
const FROM_HYDROGEN: &str = "On my way, typed in Hydrogen";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hydrogen_in_chromium_logs_in_reads_a_room_and_sends_to_it() {
    let chromium = ensure_chromium();
    let work = ensure_js_clients();
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = bob
        .create_room(json!({"preset": "public_chat", "name": ROOM_NAME}))
        .await;
    alice.join(&room).await.ok();
    bob.send_text(&room, FROM_BOB).await;

    let screenshot = repo_root()
        .join("target")
        .join("test-output")
        .join("hydrogen")
        .join("room.png");
    let report = run_node(
        &work,
        "hydrogen.mjs",
        &[
            &server.base,
            "alice",
            "password",
            ROOM_NAME,
            FROM_BOB,
            FROM_HYDROGEN,
            screenshot.to_str().unwrap(),
            chromium.to_str().unwrap(),
        ],
        Duration::from_secs(300),
    )
    .await;
    println!("Hydrogen's last screen: {}", screenshot.display());
    let steps: Vec<&str> = report.iter().filter_map(|l| l["step"].as_str()).collect();
    assert_eq!(
        steps,
        [
            "logged_in",
            "room_opened",
            "read",
            "sent",
            "screenshot",
            "done"
        ]
    );
    assert!(screenshot.exists(), "no {}", screenshot.display());

    let page = bob
        .get(&format!("/rooms/{}/messages?dir=b&limit=20", enc(&room)))
        .await
        .ok();
    let sent: Vec<&Value> = page["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["sender"] == *alice.user_id && e["type"] == "m.room.message")
        .collect();
    assert_eq!(sent.len(), 1, "{page}");
    assert_eq!(sent[0]["content"]["body"], FROM_HYDROGEN);
    assert_eq!(sent[0]["content"]["msgtype"], "m.text");
}
