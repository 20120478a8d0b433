//! What the server enforces for application services, end to end: an `as_token` acting as the
//! service's sender or as a user and device it asserts, registration and login of its users
//! with `m.login.application_service`, exclusive namespaces for users and aliases, `?ts=`,
//! and rate limits.
//!
//! Two services, neither with a URL (nothing is pushed): `bridge` holds `@bridge_…` and
//! `#bridge_…` exclusively and `@shared_…` not exclusively, and is rate limited; `relay`
//! holds `@relay_…`, `@shared_relay_…` and `#relay_…` exclusively and is not rate limited.

use plugboard::config::{Config, RegistrationMode};
use plugboard_tests::{enc, Client, Reply, TestServer};
use serde_json::{json, Value};
use tempfile::TempDir;

const BRIDGE_TOKEN: &str = "bridge_as_token";
const RELAY_TOKEN: &str = "relay_as_token";
const BRIDGE_BOT: &str = "@bridgebot:localhost";

const BRIDGE: &str = "id: bridge
url: null
as_token: bridge_as_token
hs_token: bridge_hs_token
sender_localpart: bridgebot
namespaces:
  users:
    - regex: '@bridge_.*'
      exclusive: true
    - regex: '@shared_.*'
      exclusive: false
  aliases:
    - regex: '#bridge_.*'
      exclusive: true
  rooms: []
";

const RELAY: &str = "id: relay
url: null
as_token: relay_as_token
hs_token: relay_hs_token
sender_localpart: relaybot
rate_limited: false
namespaces:
  users:
    - regex: '@relay_.*'
      exclusive: true
    - regex: '@shared_relay_.*'
      exclusive: true
  aliases:
    - regex: '#relay_.*'
      exclusive: true
";

/// A server with both services registered, after `adjust`; the dir holds their files.
async fn server_with(adjust: impl FnOnce(&mut Config)) -> (TestServer, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let bridge = dir.path().join("bridge.yaml");
    let relay = dir.path().join("relay.yaml");
    std::fs::write(&bridge, BRIDGE).unwrap();
    std::fs::write(&relay, RELAY).unwrap();
    let server = TestServer::start_with(|c| {
        c.appservice_config_files = vec![bridge, relay];
        adjust(c);
    })
    .await;
    (server, dir)
}

async fn server() -> (TestServer, TempDir) {
    server_with(|_| {}).await
}

/// A client that authenticates with an `as_token`.
fn service(server: &TestServer, as_token: &str) -> Client {
    let mut client = server.client();
    client.token = Some(as_token.to_string());
    client
}

/// `path` with `?user_id=` (or `&user_id=`) for identity assertion.
fn acting_as(path: &str, user_id: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}user_id={}", enc(user_id))
}

/// POST /register with the application service type.
async fn register_as(service: &Client, username: &str, extra: Value) -> Reply {
    let mut body = json!({"type": "m.login.application_service", "username": username});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    service.post("/register", body).await
}

/// POST /login with the application service type.
async fn login_as(service: &Client, user: &str, extra: Value) -> Reply {
    let mut body = json!({
        "type": "m.login.application_service",
        "identifier": {"type": "m.id.user", "user": user},
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    service.post("/login", body).await
}

async fn whoami(client: &Client, user_id: Option<&str>) -> Reply {
    match user_id {
        Some(u) => client.get(&acting_as("/account/whoami", u)).await,
        None => client.get("/account/whoami").await,
    }
}

fn send_path(room_id: &str, txn: &str) -> String {
    format!("/rooms/{}/send/m.room.message/{txn}", enc(room_id))
}

fn text(body: &str) -> Value {
    json!({"msgtype": "m.text", "body": body})
}

async fn event(client: &Client, room_id: &str, event_id: &str) -> Value {
    client
        .get(&format!("/rooms/{}/event/{}", enc(room_id), enc(event_id)))
        .await
        .ok()
}

// Identity assertion.

#[tokio::test]
async fn an_as_token_acts_as_the_services_sender() {
    let (server, _dir) = server().await;
    let bridge = service(&server, BRIDGE_TOKEN);
    let me = whoami(&bridge, None).await.ok();
    assert_eq!(me["user_id"], BRIDGE_BOT);
    assert!(
        me.get("device_id").is_none(),
        "no ?device_id=, no device: {me}"
    );
    // The same through ?access_token=, and naming the sender explicitly.
    let query = server
        .client()
        .get(&format!("/account/whoami?access_token={BRIDGE_TOKEN}"))
        .await
        .ok();
    assert_eq!(query["user_id"], BRIDGE_BOT);
    assert_eq!(
        whoami(&bridge, Some(BRIDGE_BOT)).await.ok()["user_id"],
        BRIDGE_BOT
    );
    // Every client endpoint takes it, the authenticated media paths included.
    bridge.get("/_matrix/client/v1/media/config").await.ok();
    let room = bridge.create_room(json!({})).await;
    let id = bridge.send_text(&room, "from the bot").await;
    assert_eq!(event(&bridge, &room, &id).await["sender"], BRIDGE_BOT);
}

#[tokio::test]
async fn an_as_token_acts_as_a_registered_user_of_its_namespace() {
    let (server, _dir) = server().await;
    let bridge = service(&server, BRIDGE_TOKEN);
    register_as(&bridge, "bridge_alice", json!({"inhibit_login": true}))
        .await
        .ok();
    let me = whoami(&bridge, Some("@bridge_alice:localhost")).await.ok();
    assert_eq!(me["user_id"], "@bridge_alice:localhost");
    // A non-exclusive namespace is enough, for a user someone else registered.
    server.register("shared_carol").await;
    let me = whoami(&bridge, Some("@shared_carol:localhost")).await.ok();
    assert_eq!(me["user_id"], "@shared_carol:localhost");
}

#[tokio::test]
async fn a_message_sent_with_user_id_comes_from_that_user() {
    let (server, _dir) = server().await;
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({"preset": "public_chat"})).await;
    let bridge = service(&server, BRIDGE_TOKEN);
    register_as(&bridge, "bridge_dan", json!({"inhibit_login": true}))
        .await
        .ok();
    let dan = "@bridge_dan:localhost";
    bridge
        .post(&acting_as(&format!("/join/{}", enc(&room)), dan), json!({}))
        .await
        .ok();
    let sent = bridge
        .put(
            &acting_as(&send_path(&room, "d1"), dan),
            text("hi from irc"),
        )
        .await
        .ok();
    let id = sent["event_id"].as_str().unwrap();
    let seen = event(&alice, &room, id).await;
    assert_eq!(seen["sender"], dan);
    assert_eq!(seen["content"]["body"], "hi from irc");
}

#[tokio::test]
async fn acting_as_a_user_outside_the_namespace_is_forbidden() {
    let (server, _dir) = server().await;
    server.register("alice").await;
    let bridge = service(&server, BRIDGE_TOKEN);
    whoami(&bridge, Some("@alice:localhost"))
        .await
        .err(403, "M_FORBIDDEN");
    // Another service's users, its sender included, are outside too.
    let relay = service(&server, RELAY_TOKEN);
    register_as(&relay, "relay_zed", json!({"inhibit_login": true}))
        .await
        .ok();
    whoami(&bridge, Some("@relay_zed:localhost"))
        .await
        .err(403, "M_FORBIDDEN");
    whoami(&relay, Some("@relaybot:localhost")).await.ok();
    whoami(&bridge, Some("@relaybot:localhost"))
        .await
        .err(403, "M_FORBIDDEN");
    // A user of another server never matches a users namespace.
    whoami(&bridge, Some("@bridge_alice:elsewhere.org"))
        .await
        .err(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn acting_as_an_unregistered_user_of_the_namespace_is_forbidden() {
    let (server, _dir) = server().await;
    let bridge = service(&server, BRIDGE_TOKEN);
    whoami(&bridge, Some("@bridge_nobody:localhost"))
        .await
        .err(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn a_users_own_token_ignores_user_id() {
    let (server, _dir) = server().await;
    let alice = server.register("alice").await;
    let bridge = service(&server, BRIDGE_TOKEN);
    register_as(&bridge, "bridge_erin", json!({"inhibit_login": true}))
        .await
        .ok();
    let me = whoami(&alice, Some("@bridge_erin:localhost")).await.ok();
    assert_eq!(me["user_id"], "@alice:localhost");
    assert_eq!(me["device_id"], alice.device_id.as_str());
}

#[tokio::test]
async fn device_id_selects_one_of_the_users_devices() {
    let (server, _dir) = server().await;
    let bridge = service(&server, BRIDGE_TOKEN);
    let reg = register_as(&bridge, "bridge_frank", json!({"device_id": "FRANKDEV"}))
        .await
        .ok();
    assert_eq!(reg["device_id"], "FRANKDEV");
    let frank = "@bridge_frank:localhost";
    let path = format!("{}&device_id=FRANKDEV", acting_as("/account/whoami", frank));
    let me = bridge.get(&path).await.ok();
    assert_eq!(me["user_id"], frank);
    assert_eq!(me["device_id"], "FRANKDEV");
    // A send through that device is that device's: its sync shows the transaction id.
    let room = bridge
        .post(&acting_as("/createRoom", frank), json!({}))
        .await
        .ok()["room_id"]
        .as_str()
        .unwrap()
        .to_string();
    let send = format!(
        "{}&device_id=FRANKDEV",
        acting_as(&send_path(&room, "frank-txn"), frank)
    );
    let id = bridge.put(&send, text("from frank's device")).await.ok()["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut device = server.client();
    device.token = reg["access_token"].as_str().map(str::to_string);
    let seen = device
        .get(&format!("/rooms/{}/event/{}", enc(&room), enc(&id)))
        .await
        .ok();
    assert_eq!(seen["unsigned"]["transaction_id"], "frank-txn", "{seen}");
}

#[tokio::test]
async fn an_unknown_device_id_is_unknown_device() {
    let (server, _dir) = server().await;
    let bridge = service(&server, BRIDGE_TOKEN);
    register_as(&bridge, "bridge_gina", json!({"device_id": "GINADEV"}))
        .await
        .ok();
    let alice = server.register("alice").await;
    let gina = "@bridge_gina:localhost";
    for device in ["NOSUCHDEV", alice.device_id.as_str()] {
        bridge
            .get(&format!(
                "{}&device_id={}",
                acting_as("/account/whoami", gina),
                enc(device)
            ))
            .await
            .err(400, "M_UNKNOWN_DEVICE");
    }
    // Without user_id the device must be the sender's, which has none.
    bridge
        .get("/account/whoami?device_id=GINADEV")
        .await
        .err(400, "M_UNKNOWN_DEVICE");
}

#[tokio::test]
async fn a_token_that_is_no_ones_is_unknown_token() {
    let (server, _dir) = server().await;
    let stranger = service(&server, "not_an_as_token");
    whoami(&stranger, Some(BRIDGE_BOT))
        .await
        .err(401, "M_UNKNOWN_TOKEN");
    // The hs_token is what the server presents to the service, never a client credential.
    whoami(&service(&server, "bridge_hs_token"), None)
        .await
        .err(401, "M_UNKNOWN_TOKEN");
}

// Registration and login with m.login.application_service.

#[tokio::test]
async fn a_service_registers_a_user_of_its_namespace_without_interactive_auth() {
    let (server, _dir) = server().await;
    let bridge = service(&server, BRIDGE_TOKEN);
    let reg = register_as(&bridge, "bridge_hal", json!({})).await.ok();
    assert_eq!(reg["user_id"], "@bridge_hal:localhost");
    let mut hal = server.client();
    hal.token = reg["access_token"].as_str().map(str::to_string);
    assert!(hal.token.is_some(), "{reg}");
    assert_eq!(
        whoami(&hal, None).await.ok()["user_id"],
        "@bridge_hal:localhost"
    );
    // Taken is taken, for the service too.
    register_as(&bridge, "bridge_hal", json!({}))
        .await
        .err(400, "M_USER_IN_USE");
    // A non-exclusive namespace of its own is enough.
    register_as(&bridge, "shared_ivy", json!({})).await.ok();
}

#[tokio::test]
async fn inhibit_login_registers_the_user_without_a_device_or_token() {
    let (server, _dir) = server().await;
    let bridge = service(&server, BRIDGE_TOKEN);
    let reg = register_as(&bridge, "bridge_jan", json!({"inhibit_login": true}))
        .await
        .ok();
    assert_eq!(reg["user_id"], "@bridge_jan:localhost");
    assert!(reg.get("access_token").is_none(), "{reg}");
    assert!(reg.get("device_id").is_none(), "{reg}");
    let jan = "@bridge_jan:localhost";
    whoami(&bridge, Some(jan)).await.ok();
    let devices = bridge.get(&acting_as("/devices", jan)).await.ok();
    assert_eq!(devices["devices"], json!([]), "{devices}");
}

#[tokio::test]
async fn a_service_registers_its_users_even_when_registration_is_closed() {
    let (server, _dir) = server_with(|c| c.registration = Some(RegistrationMode::Closed)).await;
    let closed = server
        .client()
        .post(
            "/register",
            json!({"username": "alice", "password": "pw", "auth": {"type": "m.login.dummy"}}),
        )
        .await;
    closed.err(403, "M_FORBIDDEN");
    let bridge = service(&server, BRIDGE_TOKEN);
    let reg = register_as(&bridge, "bridge_kim", json!({})).await.ok();
    assert_eq!(reg["user_id"], "@bridge_kim:localhost");
}

#[tokio::test]
async fn a_service_cannot_register_a_user_outside_its_namespace() {
    let (server, _dir) = server().await;
    let bridge = service(&server, BRIDGE_TOKEN);
    register_as(&bridge, "plainuser", json!({}))
        .await
        .err(400, "M_EXCLUSIVE");
    // Another service's exclusive namespace, though it overlaps one of ours that is not.
    register_as(&bridge, "relay_leo", json!({}))
        .await
        .err(400, "M_EXCLUSIVE");
    register_as(&bridge, "shared_relay_leo", json!({}))
        .await
        .err(400, "M_EXCLUSIVE");
    // Nothing was made.
    let relay = service(&server, RELAY_TOKEN);
    register_as(&relay, "shared_relay_leo", json!({}))
        .await
        .ok();
    register_as(&relay, "relay_leo", json!({})).await.ok();
    let free = server
        .client()
        .get("/register/available?username=plainuser")
        .await
        .ok();
    assert_eq!(free["available"], true);
}

#[tokio::test]
async fn application_service_registration_without_an_as_token_is_refused() {
    let (server, _dir) = server().await;
    let anonymous = server.client();
    register_as(&anonymous, "bridge_max", json!({}))
        .await
        .err(401, "M_MISSING_TOKEN");
    let alice = server.register("alice").await;
    register_as(&alice, "bridge_max", json!({}))
        .await
        .err(401, "M_UNKNOWN_TOKEN");
    register_as(&service(&server, "wrong"), "bridge_max", json!({}))
        .await
        .err(401, "M_UNKNOWN_TOKEN");
    // Still free for its service.
    register_as(&service(&server, BRIDGE_TOKEN), "bridge_max", json!({}))
        .await
        .ok();
}

#[tokio::test]
async fn get_login_advertises_the_application_service_type() {
    let (server, _dir) = server().await;
    let flows = server.client().get("/login").await.ok();
    let types: Vec<&str> = flows["flows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["type"].as_str())
        .collect();
    assert!(types.contains(&"m.login.application_service"), "{flows}");
    assert!(types.contains(&"m.login.password"), "{flows}");
}

#[tokio::test]
async fn a_service_logs_in_as_a_user_of_its_namespace() {
    let (server, _dir) = server().await;
    let bridge = service(&server, BRIDGE_TOKEN);
    register_as(&bridge, "bridge_ned", json!({"inhibit_login": true}))
        .await
        .ok();
    let login = login_as(&bridge, "bridge_ned", json!({"device_id": "NEDDEV"}))
        .await
        .ok();
    assert_eq!(login["user_id"], "@bridge_ned:localhost");
    assert_eq!(login["device_id"], "NEDDEV");
    let mut ned = server.client();
    ned.token = login["access_token"].as_str().map(str::to_string);
    let me = whoami(&ned, None).await.ok();
    assert_eq!(me["user_id"], "@bridge_ned:localhost");
    assert_eq!(me["device_id"], "NEDDEV");
    // A full user id works too, and so does the service's own sender.
    login_as(&bridge, "@bridge_ned:localhost", json!({}))
        .await
        .ok();
    assert_eq!(
        login_as(&bridge, "bridgebot", json!({})).await.ok()["user_id"],
        BRIDGE_BOT
    );
}

#[tokio::test]
async fn a_service_cannot_log_in_as_a_user_outside_its_namespace() {
    let (server, _dir) = server().await;
    server.register("alice").await;
    let bridge = service(&server, BRIDGE_TOKEN);
    login_as(&bridge, "alice", json!({}))
        .await
        .err(400, "M_EXCLUSIVE");
    register_as(&service(&server, RELAY_TOKEN), "relay_olga", json!({}))
        .await
        .ok();
    login_as(&bridge, "relay_olga", json!({}))
        .await
        .err(400, "M_EXCLUSIVE");
    // Inside the namespace but never registered.
    login_as(&bridge, "bridge_nobody", json!({}))
        .await
        .err(403, "M_FORBIDDEN");
    // The type needs an as_token.
    login_as(&server.client(), "bridge_nobody", json!({}))
        .await
        .err(401, "M_MISSING_TOKEN");
    let alice = server.client().register("alice2", "password").await;
    login_as(&alice, "alice2", json!({}))
        .await
        .err(401, "M_UNKNOWN_TOKEN");
}

// Exclusive namespaces.

#[tokio::test]
async fn a_normal_user_cannot_register_inside_an_exclusive_namespace() {
    let (server, _dir) = server().await;
    let client = server.client();
    for name in ["bridge_pat", "BRIDGE_pat", "bridgebot", "relay_pat"] {
        client
            .post(
                "/register",
                json!({"username": name, "password": "pw", "auth": {"type": "m.login.dummy"}}),
            )
            .await
            .err(400, "M_EXCLUSIVE");
        client
            .get(&format!("/register/available?username={}", enc(name)))
            .await
            .err(400, "M_EXCLUSIVE");
    }
    // A namespace that is not exclusive, or none, leaves the name free.
    client
        .get("/register/available?username=shared_pat")
        .await
        .ok();
    server.register("shared_pat").await;
    server.register("pat").await;
}

#[tokio::test]
async fn a_normal_user_cannot_create_an_alias_inside_an_exclusive_namespace() {
    let (server, _dir) = server().await;
    let alice = server.register("alice").await;
    alice
        .post("/createRoom", json!({"room_alias_name": "bridge_lobby"}))
        .await
        .err(400, "M_EXCLUSIVE");
    let room = alice.create_room(json!({})).await;
    for alias in ["#bridge_side:localhost", "#relay_side:localhost"] {
        alice
            .put(
                &format!("/directory/room/{}", enc(alias)),
                json!({"room_id": room}),
            )
            .await
            .err(400, "M_EXCLUSIVE");
    }
    // Nothing was made; an alias outside every exclusive namespace is fine.
    alice
        .get(&format!(
            "/directory/room/{}",
            enc("#bridge_side:localhost")
        ))
        .await
        .err(404, "M_NOT_FOUND");
    alice
        .put(
            &format!("/directory/room/{}", enc("#plain:localhost")),
            json!({"room_id": room}),
        )
        .await
        .ok();
    alice
        .create_room(json!({"room_alias_name": "plain_lobby"}))
        .await;
}

#[tokio::test]
async fn the_owning_service_creates_aliases_in_its_exclusive_namespace() {
    let (server, _dir) = server().await;
    let bridge = service(&server, BRIDGE_TOKEN);
    let room = bridge
        .create_room(json!({"room_alias_name": "bridge_lobby"}))
        .await;
    bridge
        .put(
            &format!("/directory/room/{}", enc("#bridge_side:localhost")),
            json!({"room_id": room}),
        )
        .await
        .ok();
    let alice = server.register("alice").await;
    for alias in ["#bridge_lobby:localhost", "#bridge_side:localhost"] {
        let found = alice
            .get(&format!("/directory/room/{}", enc(alias)))
            .await
            .ok();
        assert_eq!(found["room_id"], room.as_str());
    }
    // One of its users, acting through it, may too.
    register_as(&bridge, "bridge_quin", json!({"inhibit_login": true}))
        .await
        .ok();
    bridge
        .post(
            &acting_as("/createRoom", "@bridge_quin:localhost"),
            json!({"room_alias_name": "bridge_quins_room"}),
        )
        .await
        .ok();
}

#[tokio::test]
async fn a_service_cannot_create_an_alias_outside_its_namespace() {
    let (server, _dir) = server().await;
    let bridge = service(&server, BRIDGE_TOKEN);
    for name in ["plain_room", "relay_room"] {
        bridge
            .post("/createRoom", json!({"room_alias_name": name}))
            .await
            .err(400, "M_EXCLUSIVE");
    }
    let room = bridge.create_room(json!({})).await;
    bridge
        .put(
            &format!("/directory/room/{}", enc("#relay_room:localhost")),
            json!({"room_id": room}),
        )
        .await
        .err(400, "M_EXCLUSIVE");
    // The owner of that namespace may.
    service(&server, RELAY_TOKEN)
        .create_room(json!({"room_alias_name": "relay_room"}))
        .await;
}

// ?ts=

#[tokio::test]
async fn ts_sets_origin_server_ts_on_send_and_state_for_a_service() {
    let (server, _dir) = server().await;
    let bridge = service(&server, BRIDGE_TOKEN);
    let room = bridge.create_room(json!({})).await;
    let sent = bridge
        .put(
            &format!("{}?ts=1234567890", send_path(&room, "ts1")),
            text("then"),
        )
        .await
        .ok();
    let message = event(&bridge, &room, sent["event_id"].as_str().unwrap()).await;
    assert_eq!(message["origin_server_ts"], 1234567890, "{message}");
    let topic = bridge
        .put(
            &format!("/rooms/{}/state/m.room.topic/?ts=1111", enc(&room)),
            json!({"topic": "old news"}),
        )
        .await
        .ok();
    let state = event(&bridge, &room, topic["event_id"].as_str().unwrap()).await;
    assert_eq!(state["origin_server_ts"], 1111, "{state}");
    let named = bridge
        .put(
            &format!("/rooms/{}/state/m.room.name?ts=2222", enc(&room)),
            json!({"name": "old name"}),
        )
        .await
        .ok();
    let state = event(&bridge, &room, named["event_id"].as_str().unwrap()).await;
    assert_eq!(state["origin_server_ts"], 2222, "{state}");
}

#[tokio::test]
async fn ts_is_ignored_for_a_normal_user() {
    let (server, _dir) = server().await;
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({})).await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for (txn, ts) in [("a1", "1000"), ("a2", "not-a-number")] {
        let sent = alice
            .put(&format!("{}?ts={ts}", send_path(&room, txn)), text("now"))
            .await
            .ok();
        let message = event(&alice, &room, sent["event_id"].as_str().unwrap()).await;
        let at = message["origin_server_ts"].as_i64().unwrap();
        assert!(at >= before, "ts={ts} was applied: {message}");
    }
    let topic = alice
        .put(
            &format!("/rooms/{}/state/m.room.topic/?ts=1000", enc(&room)),
            json!({"topic": "now"}),
        )
        .await
        .ok();
    let state = event(&alice, &room, topic["event_id"].as_str().unwrap()).await;
    assert!(
        state["origin_server_ts"].as_i64().unwrap() >= before,
        "{state}"
    );
}

#[tokio::test]
async fn an_invalid_ts_from_a_service_is_refused() {
    let (server, _dir) = server().await;
    let bridge = service(&server, BRIDGE_TOKEN);
    let room = bridge.create_room(json!({})).await;
    for ts in ["soon", "-5", "1.5", "9007199254740992"] {
        bridge
            .put(&format!("{}?ts={ts}", send_path(&room, ts)), text("when?"))
            .await
            .err(400, "M_INVALID_PARAM");
        bridge
            .put(
                &format!("/rooms/{}/state/m.room.topic/?ts={ts}", enc(&room)),
                json!({"topic": "when?"}),
            )
            .await
            .err(400, "M_INVALID_PARAM");
    }
}

// Rate limits.

/// A server whose message limit allows a burst of 2 and then almost nothing, and whose
/// registration limit a burst of 3.
async fn limited_server() -> (TestServer, TempDir) {
    server_with(|c| {
        c.rate_limits.enabled = true;
        c.rate_limits.messages_per_second = 0.001;
        c.rate_limits.message_burst = 2;
        c.rate_limits.registrations_per_second = 0.001;
        c.rate_limits.registration_burst = 3;
        c.rate_limits.logins_per_second = 0.001;
        c.rate_limits.login_burst = 3;
    })
    .await
}

/// Sends `n` messages through `client` (as `user_id` when given); answers how many were
/// refused with `M_LIMIT_EXCEEDED`, and fails on any other error.
async fn refused_of(client: &Client, user_id: Option<&str>, room: &str, n: usize) -> usize {
    let mut refused = 0;
    for i in 0..n {
        let path = send_path(room, &format!("rl{i}_{}", user_id.unwrap_or("")));
        let path = match user_id {
            Some(u) => acting_as(&path, u),
            None => path,
        };
        let reply = client.put(&path, text("burst")).await;
        if reply.status.as_u16() == 429 {
            reply.err(429, "M_LIMIT_EXCEEDED");
            refused += 1;
        } else {
            reply.ok();
        }
    }
    refused
}

#[tokio::test]
async fn rate_limits_do_not_apply_to_the_services_sender() {
    let (server, _dir) = limited_server().await;
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({"preset": "public_chat"})).await;
    let bridge = service(&server, BRIDGE_TOKEN);
    bridge.join(&room).await.ok();
    assert_eq!(refused_of(&bridge, None, &room, 8).await, 0);
    assert_eq!(refused_of(&bridge, Some(BRIDGE_BOT), &room, 4).await, 0);
    // The limit is on: a normal user is held to it.
    assert!(refused_of(&alice, None, &room, 6).await > 0);
}

#[tokio::test]
async fn rate_limits_apply_to_the_users_of_a_rate_limited_service() {
    let (server, _dir) = limited_server().await;
    let bridge = service(&server, BRIDGE_TOKEN);
    let room = bridge.create_room(json!({"preset": "public_chat"})).await;
    register_as(&bridge, "bridge_rae", json!({"inhibit_login": true}))
        .await
        .ok();
    let rae = "@bridge_rae:localhost";
    bridge
        .post(&acting_as(&format!("/join/{}", enc(&room)), rae), json!({}))
        .await
        .ok();
    assert!(refused_of(&bridge, Some(rae), &room, 6).await > 0);
}

#[tokio::test]
async fn rate_limits_do_not_apply_to_any_user_of_a_service_with_rate_limited_false() {
    let (server, _dir) = limited_server().await;
    let relay = service(&server, RELAY_TOKEN);
    let room = relay.create_room(json!({"preset": "public_chat"})).await;
    register_as(&relay, "relay_sam", json!({"inhibit_login": true}))
        .await
        .ok();
    let sam = "@relay_sam:localhost";
    relay
        .post(&acting_as(&format!("/join/{}", enc(&room)), sam), json!({}))
        .await
        .ok();
    assert_eq!(refused_of(&relay, Some(sam), &room, 8).await, 0);
    assert_eq!(refused_of(&relay, None, &room, 8).await, 0);
}

#[tokio::test]
async fn a_services_registrations_are_not_rate_limited() {
    let (server, _dir) = limited_server().await;
    let bridge = service(&server, BRIDGE_TOKEN);
    for i in 0..6 {
        register_as(
            &bridge,
            &format!("bridge_u{i}"),
            json!({"inhibit_login": true}),
        )
        .await
        .ok();
        login_as(&bridge, &format!("bridge_u{i}"), json!({}))
            .await
            .ok();
    }
    // The limit is on: anyone else is held to it.
    let mut limited = false;
    for i in 0..6 {
        let reply = server
            .client()
            .post(
                "/register",
                json!({"username": format!("user{i}"), "password": "pw",
                       "auth": {"type": "m.login.dummy"}}),
            )
            .await;
        if reply.status.as_u16() == 429 {
            reply.err(429, "M_LIMIT_EXCEEDED");
            limited = true;
            break;
        }
        reply.ok();
    }
    assert!(limited, "normal registrations were never limited");
}
