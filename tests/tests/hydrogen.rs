//! Hydrogen (the web client, `hydrogen-view-sdk` from npm) in headless Chromium against a real
//! server, driven as a person uses it: log in with a password, open a room from the room
//! list, read what another user sent over HTTP, send an answer; the server has it, encrypted
//! when the room is. The browser's last screen is kept in `target/test-output/hydrogen/`. The script is
//! tests/clients/js/hydrogen.mjs.

use std::time::Duration;

use plugboard_tests::node::{ensure_chromium, ensure_js_clients, run_node};
use plugboard_tests::{enc, repo_root, TestServer};
use serde_json::{json, Value};

const ROOM_NAME: &str = "Tea at four";
const FROM_BOB: &str = "The kettle is on, come over";
const FROM_HYDROGEN: &str = "On my way, typed in Hydrogen";

/// Bob's room (`initial_state` added to a public room's) with alice in it and his message,
/// then Hydrogen in Chromium as alice: her steps as the script reported them, and the
/// events she sent as the server has them.
async fn hydrogen_answers_bob(initial_state: Value, shot: &str) -> (Vec<String>, Vec<Value>) {
    let chromium = ensure_chromium();
    let work = ensure_js_clients();
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = bob
        .create_room(json!({
            "preset": "public_chat",
            "name": ROOM_NAME,
            "initial_state": initial_state,
        }))
        .await;
    alice.join(&room).await.ok();
    bob.send_text(&room, FROM_BOB).await;

    let screenshot = repo_root()
        .join("target")
        .join("test-output")
        .join("hydrogen")
        .join(shot);
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
    assert!(screenshot.exists(), "no {}", screenshot.display());
    let steps = report
        .iter()
        .filter_map(|l| l["step"].as_str().map(str::to_owned))
        .collect();

    let page = bob
        .get(&format!("/rooms/{}/messages?dir=b&limit=20", enc(&room)))
        .await
        .ok();
    let sent = page["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["sender"] == *alice.user_id && e["state_key"].is_null())
        .cloned()
        .collect();
    (steps, sent)
}

const STEPS: [&str; 6] = [
    "logged_in",
    "room_opened",
    "read",
    "sent",
    "screenshot",
    "done",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hydrogen_in_chromium_logs_in_reads_a_room_and_sends_to_it() {
    let (steps, sent) = hydrogen_answers_bob(json!([]), "room.png").await;
    assert_eq!(steps, STEPS);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(sent[0]["type"], "m.room.message");
    assert_eq!(sent[0]["content"]["body"], FROM_HYDROGEN);
    assert_eq!(sent[0]["content"]["msgtype"], "m.text");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hydrogen_encrypts_what_it_sends_to_an_encrypted_room() {
    let encryption = json!([{
        "type": "m.room.encryption",
        "state_key": "",
        "content": {"algorithm": "m.megolm.v1.aes-sha2"},
    }]);
    let (steps, sent) = hydrogen_answers_bob(encryption, "encrypted-room.png").await;
    assert_eq!(steps, STEPS);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(sent[0]["type"], "m.room.encrypted");
    assert_eq!(sent[0]["content"]["algorithm"], "m.megolm.v1.aes-sha2");
    assert!(!sent[0].to_string().contains(FROM_HYDROGEN), "{}", sent[0]);
}
