//! matrix-js-sdk 43 (the library under Element Web, from npm) with its Rust crypto against a
//! real server: two users reach PREPARED, alice's message in an encrypted room made as Element
//! makes one reaches bob and he decrypts it while the server only ever holds ciphertext,
//! cross-signing is set up and bob sees alice's device signed by her new identity, secret
//! storage with a key backup is set up and the room's key backed up, and a bundled bot plugin
//! answers in a plain room. The script is tests/clients/js/js_sdk.mjs.

use std::time::Duration;

use plugboard_tests::node::{ensure_js_clients, run_node};
use plugboard_tests::{enc, TestServer};
use serde_json::Value;

const BOT: &str = "@bot:localhost";
const PLAINTEXT: &str = "the owl flies at midnight";

/// The one report line of `step`.
fn step<'a>(report: &'a [Value], step: &str) -> &'a Value {
    report
        .iter()
        .find(|line| line["step"] == step)
        .unwrap_or_else(|| panic!("no {step} in {report:#?}"))
}

/// Every file of `dir` and below, read whole.
fn files_below(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read the data dir") {
        let path = entry.expect("a data dir entry").path();
        if path.is_dir() {
            found.extend(files_below(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            found.push((path, bytes));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn element_s_library_talks_encrypted_backs_up_keys_and_hears_a_bot() {
    let work = ensure_js_clients();
    let server = TestServer::start_with(|c| c.plugins.bundled = true).await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;

    let report = run_node(
        &work,
        "js_sdk.mjs",
        &[&server.base, &alice.user_id, &bob.user_id, "password", BOT],
        Duration::from_secs(240),
    )
    .await;
    for user in [&alice.user_id, &bob.user_id] {
        assert!(
            report
                .iter()
                .any(|l| l["step"] == "prepared" && l["user"] == *user),
            "{user} never reached PREPARED: {report:#?}"
        );
    }

    // Bob read the plaintext; the server holds the ciphertext alone, in what it serves and
    // in every file it wrote.
    let decrypted = step(&report, "decrypted");
    assert_eq!(decrypted["body"], PLAINTEXT);
    assert_eq!(decrypted["wire_type"], "m.room.encrypted");
    assert_eq!(decrypted["type"], "m.room.message");
    let room = step(&report, "room_created")["room_id"].as_str().unwrap();
    let event_id = decrypted["event_id"].as_str().unwrap();
    let served = bob
        .get(&format!("/rooms/{}/event/{}", enc(room), enc(event_id)))
        .await
        .ok();
    assert_eq!(served["type"], "m.room.encrypted");
    assert_eq!(served["content"]["algorithm"], "m.megolm.v1.aes-sha2");
    assert!(!served.to_string().contains(PLAINTEXT), "{served}");
    for (path, bytes) in files_below(server.data_dir.path()) {
        assert!(
            !bytes
                .windows(PLAINTEXT.len())
                .any(|w| w == PLAINTEXT.as_bytes()),
            "the plaintext is in {}",
            path.display()
        );
    }

    // Cross-signing is set up and published; the key backup the SDK made is the server's.
    assert_eq!(step(&report, "cross_signing")["ready"], true);
    let keys = alice
        .post(
            "/keys/query",
            serde_json::json!({"device_keys": {alice.user_id.clone(): []}}),
        )
        .await
        .ok();
    assert!(
        keys["master_keys"][&alice.user_id].is_object(),
        "no master key: {keys}"
    );
    assert!(keys["self_signing_keys"][&alice.user_id].is_object());
    assert!(step(&report, "bob_sees_identity").is_object());
    let backup = step(&report, "key_backup");
    assert_eq!(backup["secret_storage_ready"], true);
    let version = alice.get("/room_keys/version").await.ok();
    assert_eq!(version["version"], backup["version"], "{version}");
    assert_eq!(
        version["algorithm"],
        "m.megolm_backup.v1.curve25519-aes-sha2"
    );
    // The room key of the encrypted room went into it, encrypted for the backup.
    let backed_up = alice
        .get(&format!(
            "/room_keys/keys?version={}",
            version["version"].as_str().unwrap()
        ))
        .await
        .ok();
    let sessions = backed_up["rooms"][room]["sessions"]
        .as_object()
        .unwrap_or_else(|| panic!("no key of {room} backed up: {backed_up}"));
    assert!(!sessions.is_empty());
    assert!(sessions
        .values()
        .all(|s| s["session_data"]["ciphertext"].is_string()));

    let answer = step(&report, "bot_answered");
    assert_eq!(answer["msgtype"], "m.notice");
    assert!(step(&report, "done").is_object());
}
