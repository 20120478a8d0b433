//! MSC3202 and MSC2409's to-device messages end to end, for an HTTP application service that
//! opts in (`org.matrix.msc3202: true` with `receive_ephemeral`): a to-device message for a
//! device of one of its users (made with MSC4190) arrives in a transaction once, even across
//! a restart between its push and its acknowledgement; the device's key counts and unused
//! fallback key types come with it; a member of a shared room whose devices change shows up
//! in `device_lists`; and a service that did not opt in sees none of it.

use plugboard_tests::appservice::{self, Recorder};
use plugboard_tests::{enc, Client, ServerProcess};
use serde_json::{json, Value};

const BINARY: &str = env!("CARGO_BIN_EXE_plugboard-test-server");
const TO_DEVICE: &str = "de.sorunome.msc2409.to_device";
const DEVICE_LISTS: &str = "org.matrix.msc3202.device_lists";
const COUNTS: &str = "org.matrix.msc3202.device_one_time_keys_count";
const COUNTS_OLD: &str = "org.matrix.msc3202.device_one_time_key_counts";
const FALLBACK: &str = "org.matrix.msc3202.device_unused_fallback_key_types";
const BRIDGE_USER: &str = "@bridge_alice:localhost";
const DEVICE: &str = "BRIDGEDEV";

fn registration(dir: &std::path::Path, id: &str, url: &str, extra: &str) -> String {
    let path = dir.join(format!("{id}.yaml"));
    let exclusive = id == "bridge";
    std::fs::write(
        &path,
        format!(
            "id: {id}\nurl: {url}\nas_token: as_{id}\nhs_token: hs_{id}\nsender_localpart: {id}bot\n\
             namespaces:\n  users:\n    - regex: '@bridge_.*'\n      exclusive: {exclusive}\n{extra}"
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

async fn receiver(id: &str) -> (Recorder, String) {
    let r = Recorder::new(&format!("hs_{id}"));
    let url = r.start().await;
    (r, url)
}

/// The bodies of the accepted transactions, each txn id once.
fn bodies(r: &Recorder) -> Vec<Value> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for (txn, body) in r.accepted() {
        if !seen.contains(&txn) {
            seen.push(txn);
            out.push(body);
        }
    }
    out
}

/// The to-device messages of the accepted transactions whose content is `content`.
fn messages_with(r: &Recorder, content: &Value) -> Vec<Value> {
    bodies(r)
        .iter()
        .flat_map(|b| b[TO_DEVICE].as_array().cloned().unwrap_or_default())
        .filter(|m| &m["content"] == content)
        .collect()
}

async fn send_to_bridge_device(alice: &Client, txn: &str, content: Value) {
    alice
        .put(
            &format!("/sendToDevice/m.test/{txn}"),
            json!({"messages": {BRIDGE_USER: {DEVICE: content}}}),
        )
        .await
        .ok();
}

fn as_client(server: &ServerProcess, id: &str) -> Client {
    let mut c = server.client();
    c.token = Some(format!("as_{id}"));
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opted_in_bridge_gets_to_device_messages_once_key_counts_and_device_lists() {
    let (bridge, bridge_url) = receiver("bridge").await;
    let (plain, plain_url) = receiver("plain").await;
    let dir = tempfile::tempdir().unwrap();
    let files = [
        registration(
            dir.path(),
            "bridge",
            &bridge_url,
            "org.matrix.msc3202: true\nreceive_ephemeral: true\n",
        ),
        registration(dir.path(), "plain", &plain_url, "receive_ephemeral: true\n"),
    ]
    .join(",");
    let data = dir.path().join("data");
    let env = [
        ("PLUGBOARD_APPSERVICE_CONFIG_FILES", files.as_str()),
        ("PLUGBOARD_APPSERVICE_DELIVERY__RETRY_BASE_MS", "20"),
        ("PLUGBOARD_APPSERVICE_DELIVERY__RETRY_MAX_MS", "200"),
    ];
    let server = ServerProcess::spawn_with_env(BINARY, &data, &env).await;
    let as_bridge = as_client(&server, "bridge");
    appservice::register_user(&as_bridge, "bridge_alice").await;
    let user = enc(BRIDGE_USER);
    appservice::make_device(&as_bridge, BRIDGE_USER, DEVICE, "Bridge").await;
    as_bridge
        .post(
            &format!("/keys/upload?user_id={user}&device_id={DEVICE}"),
            json!({"one_time_keys": {"signed_curve25519:AAA": {"key": "k1"},
                                     "signed_curve25519:AAB": {"key": "k2"}},
                   "fallback_keys": {"signed_curve25519:FFF": {"key": "f", "fallback": true}}}),
        )
        .await
        .ok();

    let alice = server.client().register("alice", "password").await;
    let room = alice.create_room(json!({"preset": "public_chat"})).await;
    as_bridge
        .post(&format!("/join/{}?user_id={user}", enc(&room)), json!({}))
        .await
        .ok();
    let bob = server.client().register("bob", "password").await;
    bob.join(&room).await.ok();

    // A to-device message for the bridge's device arrives with its recipient named, and the
    // device's keys come with it.
    send_to_bridge_device(&alice, "t1", json!({"n": 1})).await;
    bridge
        .wait_for("the first to-device message", |r| {
            !messages_with(r, &json!({"n": 1})).is_empty()
        })
        .await;
    let first = messages_with(&bridge, &json!({"n": 1}));
    assert_eq!(
        first,
        [
            json!({"type": "m.test", "sender": alice.user_id, "content": {"n": 1},
                "to_user_id": BRIDGE_USER, "to_device_id": DEVICE})
        ]
    );
    let with_message = bodies(&bridge)
        .into_iter()
        .find(|b| b[TO_DEVICE].is_array())
        .unwrap();
    assert_eq!(
        with_message[COUNTS][BRIDGE_USER][DEVICE],
        json!({"signed_curve25519": 2}),
        "{with_message}"
    );
    assert_eq!(with_message[COUNTS_OLD], with_message[COUNTS]);
    assert_eq!(
        with_message[FALLBACK][BRIDGE_USER][DEVICE],
        json!(["signed_curve25519"])
    );

    // Claiming a key changes the count the next transaction carries.
    alice
        .post(
            "/keys/claim",
            json!({"one_time_keys": {BRIDGE_USER: {DEVICE: "signed_curve25519"}}}),
        )
        .await
        .ok();
    send_to_bridge_device(&alice, "t2", json!({"n": 2})).await;
    bridge
        .wait_for("the second to-device message", |r| {
            !messages_with(r, &json!({"n": 2})).is_empty()
        })
        .await;
    let second = bodies(&bridge)
        .into_iter()
        .rfind(|b| b[TO_DEVICE].is_array())
        .unwrap();
    assert_eq!(
        second[COUNTS][BRIDGE_USER][DEVICE],
        json!({"signed_curve25519": 1})
    );

    // Bob, who shares the room with the bridge's user, logs a device in and out.
    let login = server
        .client()
        .post(
            "/login",
            json!({"type": "m.login.password",
                   "identifier": {"type": "m.id.user", "user": "bob"}, "password": "password"}),
        )
        .await
        .ok();
    let mut bob_phone = server.client();
    bob_phone.token = Some(login["access_token"].as_str().unwrap().to_string());
    bob_phone.post("/logout", json!({})).await.ok();
    bridge
        .wait_for("bob in device_lists", |r| {
            bodies(r).iter().any(|b| {
                b[DEVICE_LISTS]["changed"]
                    .as_array()
                    .is_some_and(|c| c.contains(&json!(bob.user_id)))
            })
        })
        .await;

    // The bridge is down while a message is pushed; the server dies before it is acknowledged.
    bridge.set_down(true);
    let pushes = bridge.seen().len();
    send_to_bridge_device(&alice, "t3", json!({"n": 3})).await;
    bridge
        .wait_for("a push of the third message", |r| r.seen().len() > pushes)
        .await;
    server.kill();
    bridge.set_down(false);
    let server = ServerProcess::spawn_with_env(BINARY, &data, &env).await;
    let mut alice_again = server.client();
    alice_again.token = alice.token.clone();
    alice_again.user_id = alice.user_id.clone();
    send_to_bridge_device(&alice_again, "t4", json!({"n": 4})).await;
    bridge
        .wait_for("the messages sent around the restart", |r| {
            !messages_with(r, &json!({"n": 3})).is_empty()
                && !messages_with(r, &json!({"n": 4})).is_empty()
        })
        .await;
    for n in 1..=4 {
        assert_eq!(
            messages_with(&bridge, &json!({"n": n})).len(),
            1,
            "message {n} under one txn id: {:?}",
            bridge.accepted()
        );
    }

    // The service that did not opt in saw the room's events and none of the rest.
    plain
        .wait_for("the room's events", |r| !r.accepted_ids().is_empty())
        .await;
    for body in bodies(&plain) {
        for key in [TO_DEVICE, DEVICE_LISTS, COUNTS, COUNTS_OLD, FALLBACK] {
            assert!(body.get(key).is_none(), "{key} in {body}");
        }
    }
    drop(server);
}
