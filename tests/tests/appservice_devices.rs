//! MSC4190 end to end: an application service makes and deletes devices of its users with
//! its as_token (no password: its users have none), which its encrypting bridge then acts
//! through with `?device_id=`; a person's client still cannot make a device this way.

use plugboard_tests::{appservice, enc, Client, TestServer};
use serde_json::json;

const AS_TOKEN: &str = "as_devices_tests";

fn registration() -> String {
    format!(
        "id: bridge\nurl: null\nas_token: {AS_TOKEN}\nhs_token: hs_devices_tests\n\
         sender_localpart: bridgebot\nnamespaces:\n  users:\n    - regex: '@bridge_.*'\n      exclusive: true\n\
         \x20 aliases: []\n  rooms: []\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_makes_and_deletes_its_users_devices_with_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bridge.yaml");
    std::fs::write(&file, registration()).unwrap();
    let server = TestServer::start_with(|c| c.appservice_config_files = vec![file]).await;
    let mut bridge = Client::new(&server.base);
    bridge.token = Some(AS_TOKEN.to_string());
    appservice::register_user(&bridge, "bridge_alice").await;
    let user = enc("@bridge_alice:localhost");

    appservice::make_device(&bridge, "@bridge_alice:localhost", "BRIDGEDEV", "Bridge").await;
    let again = bridge
        .put(
            &format!("/devices/BRIDGEDEV?user_id={user}"),
            json!({"display_name": "Bridge 2"}),
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    let device = bridge
        .get(&format!("/devices/BRIDGEDEV?user_id={user}"))
        .await
        .ok();
    assert_eq!(device["display_name"], "Bridge 2");
    // The bridge acts as that device now.
    let whoami = bridge
        .get(&format!(
            "/account/whoami?user_id={user}&device_id=BRIDGEDEV"
        ))
        .await
        .ok();
    assert_eq!(whoami["device_id"], "BRIDGEDEV");

    bridge
        .delete(&format!("/devices/BRIDGEDEV?user_id={user}"), json!({}))
        .await
        .ok();
    bridge
        .get(&format!("/devices/BRIDGEDEV?user_id={user}"))
        .await
        .err(404, "M_NOT_FOUND");
    bridge
        .get(&format!(
            "/account/whoami?user_id={user}&device_id=BRIDGEDEV"
        ))
        .await
        .err(400, "M_UNKNOWN_DEVICE");

    let alice = server.register("alice").await;
    alice
        .put("/devices/NEWDEVICE", json!({"display_name": "x"}))
        .await
        .err(404, "M_NOT_FOUND");
}
