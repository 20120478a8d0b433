//! Push delivery end to end, to a fake push gateway on 127.0.0.1: a message notifies the other
//! member's pusher with the spec's `/_matrix/push/v1/notify` body (whole, or `event_id_only`);
//! a gateway that answers 500 gets the same notification again; one that rejects the pushkey
//! has the pusher removed; a restart of the server while the gateway is down loses nothing;
//! and a device logged out takes its pushers with it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use plugboard_tests::{enc, Client, ServerProcess, TestServer, WAIT};
use serde_json::{json, Value};

const BINARY: &str = env!("CARGO_BIN_EXE_plugboard-test-server");

/// What the gateway answers next, and every request it was sent (with what it answered).
#[derive(Default)]
struct Gateway {
    /// Statuses to answer, first first; 200 once they run out.
    failures: Vec<u16>,
    /// Answer `{"rejected": [pushkey]}` to every notification.
    reject: bool,
    /// Every request: the body and the status answered.
    seen: Vec<(Value, u16)>,
}

#[derive(Clone, Default)]
struct FakeGateway(Arc<Mutex<Gateway>>);

impl FakeGateway {
    /// Starts it on a free port: answers the notify URL to give a pusher.
    async fn start(&self) -> String {
        async fn notify(
            State(g): State<FakeGateway>,
            Json(body): Json<Value>,
        ) -> (StatusCode, Json<Value>) {
            let mut g = g.0.lock().unwrap();
            let status = if g.failures.is_empty() {
                200
            } else {
                g.failures.remove(0)
            };
            g.seen.push((body.clone(), status));
            let answer = if g.reject && status == 200 {
                json!({"rejected": [body["notification"]["devices"][0]["pushkey"]]})
            } else {
                json!({"rejected": []})
            };
            (StatusCode::from_u16(status).unwrap(), Json(answer))
        }
        let app = Router::new()
            .route("/_matrix/push/v1/notify", post(notify))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/_matrix/push/v1/notify")
    }

    fn set(&self, change: impl FnOnce(&mut Gateway)) {
        change(&mut self.0.lock().unwrap());
    }

    /// The notifications of every request so far, with their statuses.
    fn seen(&self) -> Vec<(Value, u16)> {
        self.0.lock().unwrap().seen.clone()
    }

    /// The notifications the gateway took (answered 200).
    fn delivered(&self) -> Vec<Value> {
        self.seen()
            .into_iter()
            .filter(|(_, s)| *s == 200)
            .map(|(b, _)| b["notification"].clone())
            .collect()
    }

    /// Waits until `done` holds of the requests so far.
    async fn wait_for(&self, what: &str, done: impl Fn(&[(Value, u16)]) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if done(&self.seen()) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "gateway: {what}; seen {:#?}",
                self.seen()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn pusher(url: &str, format: Option<&str>) -> Value {
    let mut data = json!({"url": url, "extra": "for the app"});
    if let Some(f) = format {
        data["format"] = json!(f);
    }
    json!({
        "app_id": "org.example.app", "pushkey": "PUSHKEY", "kind": "http",
        "app_display_name": "Example", "device_display_name": "Phone", "lang": "en",
        "data": data
    })
}

/// Alice's room "Lounge" that bob joined, and bob's pusher to `url`.
async fn lounge(alice: &Client, bob: &Client, url: &str, format: Option<&str>) -> String {
    let room = alice
        .create_room(json!({"preset": "public_chat", "name": "Lounge"}))
        .await;
    bob.join(&room).await.ok();
    bob.post("/pushers/set", pusher(url, format)).await.ok();
    room
}

async fn pushers_of(c: &Client) -> usize {
    c.get("/pushers").await.ok()["pushers"]
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_notifies_the_other_members_pusher_with_the_specs_body() {
    let gateway = FakeGateway::default();
    let url = gateway.start().await;
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    alice
        .put(
            &format!("/profile/{}/displayname", enc(&alice.user_id)),
            json!({"displayname": "Alice"}),
        )
        .await
        .ok();
    let room = lounge(&alice, &bob, &url, None).await;
    let event_id = alice.send_text(&room, "hello bob").await;

    gateway
        .wait_for("the message", |s| {
            s.iter()
                .any(|(b, _)| b["notification"]["event_id"] == event_id)
        })
        .await;
    let got = gateway.delivered();
    assert_eq!(got.len(), 1, "only the message notifies: {got:#?}");
    let n = &got[0];
    assert_eq!(n["event_id"], event_id);
    assert_eq!(n["room_id"], room);
    assert_eq!(n["type"], "m.room.message");
    assert_eq!(n["sender"], alice.user_id);
    assert_eq!(n["sender_display_name"], "Alice");
    assert_eq!(n["room_name"], "Lounge");
    assert_eq!(
        n["content"],
        json!({"msgtype": "m.text", "body": "hello bob"})
    );
    assert_eq!(n["counts"], json!({"unread": 1}));
    // A room of two: the one-to-one rule rings with a sound, which is urgent.
    assert_eq!(n["prio"], "high");
    let device = &n["devices"][0];
    assert_eq!(device["app_id"], "org.example.app");
    assert_eq!(device["pushkey"], "PUSHKEY");
    assert!(device["pushkey_ts"].as_i64().unwrap() > 1_600_000_000);
    assert_eq!(device["data"], json!({"extra": "for the app"}));
    assert_eq!(device["tweaks"], json!({"sound": "default"}));

    // Bob's own message does not notify his own pusher.
    bob.send_text(&room, "hi").await;
    let next = alice.send_text(&room, "again").await;
    gateway
        .wait_for("the second message", |s| {
            s.iter().any(|(b, _)| b["notification"]["event_id"] == next)
        })
        .await;
    assert_eq!(gateway.delivered().len(), 2);
    assert_eq!(gateway.delivered()[1]["counts"], json!({"unread": 2}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_id_only_tells_the_gateway_which_event_and_not_what_it_says() {
    let gateway = FakeGateway::default();
    let url = gateway.start().await;
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = lounge(&alice, &bob, &url, Some("event_id_only")).await;
    let event_id = alice.send_text(&room, "secret").await;
    gateway.wait_for("the message", |s| !s.is_empty()).await;
    let n = &gateway.delivered()[0];
    let mut keys: Vec<&str> = n.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["counts", "devices", "event_id", "prio", "room_id"]);
    assert_eq!(n["event_id"], event_id);
    assert_eq!(
        n["devices"][0]["data"],
        json!({"extra": "for the app", "format": "event_id_only"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_answering_500_gets_the_same_notification_again() {
    let gateway = FakeGateway::default();
    gateway.set(|g| g.failures = vec![500]);
    let url = gateway.start().await;
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = lounge(&alice, &bob, &url, None).await;
    alice.send_text(&room, "try again").await;
    gateway
        .wait_for("a retry that is taken", |s| s.len() == 2)
        .await;
    let seen = gateway.seen();
    assert_eq!((seen[0].1, seen[1].1), (500, 200));
    assert_eq!(seen[0].0, seen[1].0, "the retry carries the same content");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushkey_the_gateway_rejects_removes_the_pusher() {
    let gateway = FakeGateway::default();
    gateway.set(|g| g.reject = true);
    let url = gateway.start().await;
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = lounge(&alice, &bob, &url, None).await;
    assert_eq!(pushers_of(&bob).await, 1);
    alice.send_text(&room, "anyone?").await;
    gateway.wait_for("the message", |s| !s.is_empty()).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while pushers_of(&bob).await > 0 {
        assert!(tokio::time::Instant::now() < deadline, "the pusher stays");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Nothing more goes to a pushkey that was rejected.
    alice.send_text(&room, "still there?").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(gateway.seen().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_while_the_gateway_is_down_loses_no_notification() {
    let gateway = FakeGateway::default();
    gateway.set(|g| g.failures = vec![503; 1_000]);
    let url = gateway.start().await;
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("PLUGBOARD_APPSERVICE_DELIVERY__RETRY_BASE_MS", "20"),
        ("PLUGBOARD_APPSERVICE_DELIVERY__RETRY_MAX_MS", "100"),
    ];
    let server = ServerProcess::spawn_with_env(BINARY, dir.path(), &env).await;
    let alice = server.client().register("alice", "password").await;
    let bob = server.client().register("bob", "password").await;
    let room = lounge(&alice, &bob, &url, Some("event_id_only")).await;
    let mut sent = Vec::new();
    for i in 0..3 {
        sent.push(alice.send_text(&room, &format!("m{i}")).await);
    }
    gateway.wait_for("a first try", |s| !s.is_empty()).await;
    server.kill();

    let server = ServerProcess::spawn_with_env(BINARY, dir.path(), &env).await;
    gateway.set(|g| g.failures.clear());
    let mut alice_again = server.client();
    alice_again.token = alice.token.clone();
    sent.push(alice_again.send_text(&room, "after").await);
    gateway
        .wait_for("every message, delivered", |s| {
            s.iter().filter(|(_, st)| *st == 200).count() >= sent.len()
        })
        .await;
    let delivered: Vec<Value> = gateway
        .delivered()
        .iter()
        .map(|n| n["event_id"].clone())
        .collect();
    assert_eq!(delivered, sent, "each once, in order, across the restart");
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_logged_out_takes_its_pushers_and_leaves_the_others() {
    let server = TestServer::start().await;
    let phone = server.register("bob").await;
    let laptop = login_bob(&server).await;
    let url = "http://127.0.0.1:9/_matrix/push/v1/notify";
    phone.post("/pushers/set", pusher(url, None)).await.ok();
    let mut other = pusher(url, None);
    other["pushkey"] = json!("LAPTOPKEY");
    laptop.post("/pushers/set", other).await.ok();
    assert_eq!(pushers_of(&laptop).await, 2);

    phone.post("/logout", json!({})).await.ok();
    let left = laptop.get("/pushers").await.ok();
    assert_eq!(left["pushers"][0]["pushkey"], "LAPTOPKEY");
    assert_eq!(pushers_of(&laptop).await, 1);
    laptop.post("/logout/all", json!({})).await.ok();
    assert_eq!(pushers_of(&login_bob(&server).await).await, 0);
}

/// Bob on a new device.
async fn login_bob(server: &TestServer) -> Client {
    let mut c = server.client();
    let login = c
        .post(
            "/login",
            json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "bob"},
                   "password": "password"}),
        )
        .await
        .ok();
    c.token = Some(login["access_token"].as_str().unwrap().to_string());
    c
}
