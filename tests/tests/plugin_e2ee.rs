//! `e2ee` end to end: a plugin whose manifest sets `e2ee = true` makes a device for its
//! sender and uploads keys for it through the host, gets a to-device message a client sent
//! to that device in its transaction (once, with the device's key counts), and answers it with
//! one that the client's /sync receives.

use plugboard_tests::plugins::{self, admin, install, wait_until};
use plugboard_tests::{Client, TestServer};
use serde_json::{json, Value};

const BOT: &str = "@e2eebot:localhost";

async fn seen(c: &Client) -> Value {
    c.get("/_plugboard/plugins/e2ee/seen").await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_makes_a_device_uploads_keys_and_answers_a_to_device_message() {
    let server = TestServer::start().await;
    let admin = admin(&server.base, server.data_dir.path());
    install(&admin, &plugins::e2ee()).await;
    let web = server.client();
    let setup = web
        .post("/_plugboard/plugins/e2ee/setup", json!({}))
        .await
        .ok();
    assert_eq!(setup["made"], true, "{setup}");
    assert_eq!(
        setup["counts"],
        json!({"one_time_key_counts": {"signed_curve25519": 2}})
    );

    let alice = server.register("alice").await;
    let since = alice.sync(None, 0).await["next_batch"]
        .as_str()
        .unwrap()
        .to_string();
    alice
        .put(
            "/sendToDevice/m.test/t1",
            json!({"messages": {BOT: {"PLUGDEV": {"n": 1}}}}),
        )
        .await
        .ok();
    wait_until("the plugin to get the message", async || {
        !seen(&web).await["to_device"].as_array().unwrap().is_empty()
    })
    .await;
    let got = seen(&web).await;
    assert_eq!(
        got["to_device"],
        json!([{"sender": alice.user_id, "type": "m.test", "content": {"n": 1},
                "to_user_id": BOT, "to_device_id": "PLUGDEV"}])
    );
    assert_eq!(
        got["keys"]["keys"],
        json!([{"user_id": BOT, "device_id": "PLUGDEV",
                "counts": {"signed_curve25519": 2}, "fallback": ["signed_curve25519"]}]),
        "{got}"
    );

    let mut next = since;
    let mut answers = Vec::new();
    wait_until("alice's sync to get the answer", async || {
        let sync = alice.sync(Some(&next), 1000).await;
        next = sync["next_batch"].as_str().unwrap().to_string();
        answers.extend(
            sync["to_device"]["events"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
        !answers.is_empty()
    })
    .await;
    assert_eq!(
        answers,
        [json!({"sender": BOT, "type": "m.answer", "content": {"re": 1}})]
    );
}
