//! Ping and queries: an application service pings itself through the server (and gets the
//! spec's errors when the server cannot reach it), a successful ping retries a down service
//! at once, and users and aliases inside a service's namespaces that do not exist are asked
//! for — the service creates them on the spot, as a bridge makes its virtual users and rooms.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use plugboard_tests::{enc, Client, Reply, TestServer, WAIT};
use serde_json::{json, Value};

const HS_TOKEN: &str = "hs_query_tests";
const AS_TOKEN: &str = "as_query_tests";

/// How the test service answers a ping.
#[derive(Clone, Copy, Default)]
enum PingAnswer {
    #[default]
    Ok,
    /// 500 with an error body.
    Fail,
    /// Answers only after this long.
    Slow(Duration),
}

/// A test appservice on 127.0.0.1: records pings and queries, creates the users and aliases
/// it was told about when asked for them, and accepts transactions unless `down`.
#[derive(Clone, Default)]
struct Bridge {
    /// The server's base URL, for the calls back made while answering a query.
    server: Arc<Mutex<String>>,
    /// Localparts and aliases the bridge has (and creates when asked); others are 404.
    known: Arc<Mutex<HashSet<String>>>,
    ping_answer: Arc<Mutex<PingAnswer>>,
    /// `(Authorization header, body)` of every ping.
    pings: Arc<Mutex<Vec<(String, Value)>>>,
    /// `(kind, id, Authorization header)` of every query.
    queries: Arc<Mutex<Vec<(String, String, String)>>>,
    down: Arc<AtomicBool>,
    /// Pushes seen (accepted or not), and the event ids of the accepted ones.
    pushes: Arc<Mutex<usize>>,
    accepted: Arc<Mutex<Vec<String>>>,
}

impl Bridge {
    fn knows(&self, what: &str) {
        self.known.lock().unwrap().insert(what.to_string());
    }

    fn queries(&self) -> Vec<(String, String)> {
        let queries = self.queries.lock().unwrap();
        for (_, _, auth) in queries.iter() {
            assert_eq!(
                auth,
                &format!("Bearer {HS_TOKEN}"),
                "queries carry the hs_token"
            );
        }
        queries
            .iter()
            .map(|(kind, id, _)| (kind.clone(), id.clone()))
            .collect()
    }

    /// The bridge's own client: its as_token, acting as its sender.
    fn client(&self) -> Client {
        let mut c = Client::new(&self.server.lock().unwrap());
        c.token = Some(AS_TOKEN.to_string());
        c
    }
}

fn auth_header(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

async fn ping(
    State(b): State<Bridge>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    b.pings.lock().unwrap().push((auth_header(&headers), body));
    let answer = *b.ping_answer.lock().unwrap();
    match answer {
        PingAnswer::Ok => (StatusCode::OK, Json(json!({}))),
        PingAnswer::Fail => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"errcode": "M_UNKNOWN", "error": "the bridge is on fire"})),
        ),
        PingAnswer::Slow(pause) => {
            tokio::time::sleep(pause).await;
            (StatusCode::OK, Json(json!({})))
        }
    }
}

/// GET /_matrix/app/v1/users/{userId}: registers the user (with the as_token, as a bridge
/// does) and sets its display name, if the bridge knows it.
async fn query_user(
    State(b): State<Bridge>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    b.queries
        .lock()
        .unwrap()
        .push(("users".into(), user_id.clone(), auth_header(&headers)));
    let localpart = user_id
        .trim_start_matches('@')
        .split(':')
        .next()
        .unwrap_or("")
        .to_string();
    if !b.known.lock().unwrap().contains(&localpart) {
        return not_found();
    }
    let bridge = b.client();
    bridge
        .post(
            "/register",
            json!({
                "type": "m.login.application_service",
                "username": localpart,
                "inhibit_login": true,
            }),
        )
        .await
        .ok();
    bridge
        .put(
            &format!(
                "/profile/{}/displayname?user_id={}",
                enc(&user_id),
                enc(&user_id)
            ),
            json!({"displayname": format!("{localpart} (bridged)")}),
        )
        .await
        .ok();
    (StatusCode::OK, Json(json!({})))
}

/// GET /_matrix/app/v1/rooms/{alias}: creates a public room with that alias (as the bridge's
/// sender) if the bridge knows it.
async fn query_alias(
    State(b): State<Bridge>,
    Path(alias): Path<String>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    b.queries
        .lock()
        .unwrap()
        .push(("rooms".into(), alias.clone(), auth_header(&headers)));
    if !b.known.lock().unwrap().contains(&alias) {
        return not_found();
    }
    let localpart = alias
        .trim_start_matches('#')
        .split(':')
        .next()
        .unwrap_or("");
    b.client()
        .create_room(json!({
            "preset": "public_chat",
            "room_alias_name": localpart,
            "name": format!("virtual room {localpart}"),
        }))
        .await;
    (StatusCode::OK, Json(json!({})))
}

fn not_found() -> (StatusCode, Json<Value>) {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"errcode": "M_NOT_FOUND", "error": "no such thing here"})),
    )
}

async fn transaction(
    State(b): State<Bridge>,
    Path(_txn_id): Path<String>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    *b.pushes.lock().unwrap() += 1;
    if b.down.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({})));
    }
    let ids = body["events"].as_array().cloned().unwrap_or_default();
    b.accepted.lock().unwrap().extend(
        ids.iter()
            .map(|e| e["event_id"].as_str().unwrap_or("").to_string()),
    );
    (StatusCode::OK, Json(json!({})))
}

async fn start_bridge(bridge: Bridge) -> String {
    let app = Router::new()
        .route("/_matrix/app/v1/ping", post(ping))
        .route("/_matrix/app/v1/users/{user_id}", get(query_user))
        .route("/_matrix/app/v1/rooms/{alias}", get(query_alias))
        .route("/_matrix/app/v1/transactions/{txn_id}", put(transaction))
        .with_state(bridge);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// A registration: users `@{id}_…`, aliases `#{id}_…`, neither exclusive.
fn registration(id: &str, url: Option<&str>, as_token: &str, hs_token: &str) -> String {
    let url = url.unwrap_or("null");
    format!(
        "id: {id}\nurl: {url}\nas_token: {as_token}\nhs_token: {hs_token}\n\
         sender_localpart: {id}bot\nnamespaces:\n  users:\n    - regex: '@{id}_.*'\n      exclusive: false\n\
         \x20 aliases:\n    - regex: '#{id}_.*'\n      exclusive: false\n  rooms: []\n"
    )
}

/// A server with the service `bridge` at `url` (and any `more` registrations), after
/// `adjust` has changed its configuration.
async fn server_with(
    url: Option<&str>,
    more: &[String],
    adjust: impl FnOnce(&mut plugboard::config::Config),
) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let all = std::iter::once(registration("bridge", url, AS_TOKEN, HS_TOKEN))
        .chain(more.iter().cloned());
    for (i, text) in all.enumerate() {
        let path = dir.path().join(format!("service{i}.yaml"));
        std::fs::write(&path, text).unwrap();
        files.push(path);
    }
    let server = TestServer::start_with(|c| {
        c.appservice_config_files = files;
        adjust(c);
    })
    .await;
    (server, dir)
}

/// A server with a running bridge that can call it back.
async fn server_and_bridge() -> (TestServer, tempfile::TempDir, Bridge) {
    let bridge = Bridge::default();
    let url = start_bridge(bridge.clone()).await;
    let (server, dir) = server_with(Some(&url), &[], |_| {}).await;
    *bridge.server.lock().unwrap() = server.base.clone();
    (server, dir, bridge)
}

/// The service's own client: its as_token.
fn service_client(server: &TestServer, as_token: &str) -> Client {
    let mut c = server.client();
    c.token = Some(as_token.to_string());
    c
}

async fn ping_as(client: &Client, id: &str, body: Value) -> Reply {
    client
        .post(&format!("/_matrix/client/v1/appservice/{id}/ping"), body)
        .await
}

#[tokio::test]
async fn a_ping_calls_the_service_back_and_answers_the_duration() {
    let bridge = Bridge::default();
    let url = start_bridge(bridge.clone()).await;
    let (server, _dir) = server_with(Some(&url), &[], |_| {}).await;
    let body = ping_as(
        &service_client(&server, AS_TOKEN),
        "bridge",
        json!({"transaction_id": "ping-1"}),
    )
    .await
    .ok();
    assert!(body["duration_ms"].is_u64(), "{body}");
    let pings = bridge.pings.lock().unwrap().clone();
    assert_eq!(pings.len(), 1);
    assert_eq!(pings[0].0, format!("Bearer {HS_TOKEN}"));
    assert_eq!(pings[0].1, json!({"transaction_id": "ping-1"}));
}

#[tokio::test]
async fn a_ping_of_a_service_without_url_is_url_not_set() {
    let (server, _dir) = server_with(None, &[], |_| {}).await;
    ping_as(&service_client(&server, AS_TOKEN), "bridge", json!({}))
        .await
        .err(400, "M_URL_NOT_SET");
}

#[tokio::test]
async fn a_ping_of_a_closed_port_is_connection_failed() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let (server, _dir) = server_with(Some(&url), &[], |_| {}).await;
    ping_as(&service_client(&server, AS_TOKEN), "bridge", json!({}))
        .await
        .err(502, "M_CONNECTION_FAILED");
}

#[tokio::test]
async fn a_ping_the_service_answers_too_late_is_connection_timeout() {
    let bridge = Bridge::default();
    *bridge.ping_answer.lock().unwrap() = PingAnswer::Slow(Duration::from_secs(5));
    let url = start_bridge(bridge.clone()).await;
    let (server, _dir) = server_with(Some(&url), &[], |c| {
        c.appservice_delivery.ping_timeout_ms = 300;
    })
    .await;
    let started = Instant::now();
    ping_as(&service_client(&server, AS_TOKEN), "bridge", json!({}))
        .await
        .err(504, "M_CONNECTION_TIMEOUT");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the ping gave up after its timeout, not the service's pause: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_ping_the_service_answers_with_an_error_is_bad_status_with_its_answer() {
    let bridge = Bridge::default();
    *bridge.ping_answer.lock().unwrap() = PingAnswer::Fail;
    let url = start_bridge(bridge.clone()).await;
    let (server, _dir) = server_with(Some(&url), &[], |_| {}).await;
    let reply = ping_as(&service_client(&server, AS_TOKEN), "bridge", json!({})).await;
    reply.err(502, "M_BAD_STATUS");
    assert_eq!(reply.body["status"], 500, "{}", reply.body);
    let answered: Value = serde_json::from_str(reply.body["body"].as_str().unwrap()).unwrap();
    assert_eq!(answered["error"], "the bridge is on fire");
}

#[tokio::test]
async fn only_the_service_itself_may_ping_it() {
    let bridge = Bridge::default();
    let url = start_bridge(bridge.clone()).await;
    let other = registration("other", Some(&url), "as_other", "hs_other");
    let (server, _dir) = server_with(Some(&url), &[other], |_| {}).await;
    let alice = server.register("alice").await;
    ping_as(&alice, "bridge", json!({}))
        .await
        .err(403, "M_FORBIDDEN");
    ping_as(&service_client(&server, "as_other"), "bridge", json!({}))
        .await
        .err(403, "M_FORBIDDEN");
    ping_as(&service_client(&server, AS_TOKEN), "other", json!({}))
        .await
        .err(403, "M_FORBIDDEN");
    ping_as(
        &service_client(&server, "no such token"),
        "bridge",
        json!({}),
    )
    .await
    .err(401, "M_UNKNOWN_TOKEN");
    ping_as(&server.client(), "bridge", json!({}))
        .await
        .err(401, "M_MISSING_TOKEN");
    assert!(
        bridge.pings.lock().unwrap().is_empty(),
        "nobody else got a ping through"
    );
}

#[tokio::test]
async fn a_successful_ping_sends_the_backlog_of_a_down_service_at_once() {
    let bridge = Bridge::default();
    bridge.down.store(true, Ordering::SeqCst);
    let url = start_bridge(bridge.clone()).await;
    // Only the ping's poke can explain a delivery within the minute (no probes).
    let (server, _dir) = server_with(Some(&url), &[], |c| {
        c.appservice_delivery.retry_base_ms = 60_000;
        c.appservice_delivery.retry_max_ms = 60_000;
        c.appservice_delivery.probe_interval_ms = 0;
    })
    .await;
    let bob = server.register("bridge_bob").await;
    let room = bob.create_room(json!({})).await;
    let msg = bob
        .send_text(&room, "held back while the bridge is down")
        .await;
    let deadline = Instant::now() + WAIT;
    while *bridge.pushes.lock().unwrap() == 0 {
        assert!(Instant::now() < deadline, "the first push never came");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        *bridge.pushes.lock().unwrap(),
        1,
        "the failed push waits out its minute"
    );
    bridge.down.store(false, Ordering::SeqCst);
    ping_as(&service_client(&server, AS_TOKEN), "bridge", json!({}))
        .await
        .ok();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !bridge.accepted.lock().unwrap().contains(&msg) {
        assert!(
            Instant::now() < deadline,
            "the backlog did not go out after the ping"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_profile_lookup_asks_the_service_which_creates_the_user() {
    let (server, _dir, bridge) = server_and_bridge().await;
    bridge.knows("bridge_alice");
    let alice = server.register("alice").await;
    let profile = alice
        .get(&format!("/profile/{}", enc("@bridge_alice:localhost")))
        .await
        .ok();
    assert_eq!(profile["displayname"], "bridge_alice (bridged)");
    assert_eq!(
        bridge.queries(),
        vec![("users".to_string(), "@bridge_alice:localhost".to_string())]
    );
    // It exists now: no second query.
    alice
        .get(&format!(
            "/profile/{}/displayname",
            enc("@bridge_alice:localhost")
        ))
        .await
        .ok();
    assert_eq!(bridge.queries().len(), 1);
}

#[tokio::test]
async fn an_invite_asks_the_service_for_the_missing_user() {
    let (server, _dir, bridge) = server_and_bridge().await;
    bridge.knows("bridge_carol");
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({})).await;
    alice.invite(&room, "@bridge_carol:localhost").await.ok();
    assert_eq!(
        bridge.queries(),
        vec![("users".to_string(), "@bridge_carol:localhost".to_string())]
    );
    let member = alice
        .get(&format!(
            "/rooms/{}/state/m.room.member/{}",
            enc(&room),
            enc("@bridge_carol:localhost")
        ))
        .await
        .ok();
    assert_eq!(member["membership"], "invite");
    assert_eq!(member["displayname"], "bridge_carol (bridged)");
}

#[tokio::test]
async fn a_room_created_with_invites_asks_the_service_first() {
    let (server, _dir, bridge) = server_and_bridge().await;
    bridge.knows("bridge_dave");
    let alice = server.register("alice").await;
    let room = alice
        .create_room(json!({"invite": ["@bridge_dave:localhost", "@bridgebot:localhost"]}))
        .await;
    // The sender is the service's own: it exists without being asked for.
    assert_eq!(
        bridge.queries(),
        vec![("users".to_string(), "@bridge_dave:localhost".to_string())]
    );
    for user in ["@bridge_dave:localhost", "@bridgebot:localhost"] {
        let member = alice
            .get(&format!(
                "/rooms/{}/state/m.room.member/{}",
                enc(&room),
                enc(user)
            ))
            .await
            .ok();
        assert_eq!(member["membership"], "invite", "{user}");
    }
    // One the service does not have stops the room before it is made.
    alice
        .post(
            "/createRoom",
            json!({"invite": ["@bridge_nobody:localhost"]}),
        )
        .await
        .err(404, "M_NOT_FOUND");
    let rooms = alice.get("/joined_rooms").await.ok();
    assert_eq!(rooms["joined_rooms"], json!([room]));
}

#[tokio::test]
async fn an_alias_lookup_asks_the_service_which_creates_the_room() {
    let (server, _dir, bridge) = server_and_bridge().await;
    bridge.knows("#bridge_lobby:localhost");
    let alice = server.register("alice").await;
    let found = alice
        .get(&format!(
            "/directory/room/{}",
            enc("#bridge_lobby:localhost")
        ))
        .await
        .ok();
    let room_id = found["room_id"].as_str().expect("room_id");
    assert_eq!(found["servers"], json!(["localhost"]));
    assert_eq!(
        bridge.queries(),
        vec![("rooms".to_string(), "#bridge_lobby:localhost".to_string())]
    );
    let made = bridge.client().get("/joined_rooms").await.ok();
    assert_eq!(
        made["joined_rooms"],
        json!([room_id]),
        "the room the bridge made"
    );
    alice
        .get(&format!(
            "/directory/room/{}",
            enc("#bridge_lobby:localhost")
        ))
        .await
        .ok();
    assert_eq!(
        bridge.queries().len(),
        1,
        "an existing alias is not asked for"
    );
}

#[tokio::test]
async fn a_join_by_alias_asks_the_service_which_creates_the_room() {
    let (server, _dir, bridge) = server_and_bridge().await;
    bridge.knows("#bridge_hall:localhost");
    let alice = server.register("alice").await;
    let joined = alice.join("#bridge_hall:localhost").await.ok();
    let room_id = joined["room_id"].as_str().expect("room_id");
    assert_eq!(
        bridge.queries(),
        vec![("rooms".to_string(), "#bridge_hall:localhost".to_string())]
    );
    let name = alice
        .get(&format!("/rooms/{}/state/m.room.name", enc(room_id)))
        .await
        .ok();
    assert_eq!(name["name"], "virtual room bridge_hall");
}

#[tokio::test]
async fn what_the_service_does_not_have_is_not_found() {
    let (server, _dir, bridge) = server_and_bridge().await;
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({})).await;
    alice
        .get(&format!("/profile/{}", enc("@bridge_nobody:localhost")))
        .await
        .err(404, "M_NOT_FOUND");
    alice
        .invite(&room, "@bridge_nobody:localhost")
        .await
        .err(404, "M_NOT_FOUND");
    alice
        .get(&format!(
            "/directory/room/{}",
            enc("#bridge_nowhere:localhost")
        ))
        .await
        .err(404, "M_NOT_FOUND");
    alice
        .join("#bridge_nowhere:localhost")
        .await
        .err(404, "M_NOT_FOUND");
    assert_eq!(
        bridge.queries(),
        vec![
            ("users".to_string(), "@bridge_nobody:localhost".to_string()),
            ("users".to_string(), "@bridge_nobody:localhost".to_string()),
            ("rooms".to_string(), "#bridge_nowhere:localhost".to_string()),
            ("rooms".to_string(), "#bridge_nowhere:localhost".to_string()),
        ]
    );
    // Outside every namespace nobody is asked.
    alice
        .get(&format!("/profile/{}", enc("@stranger:localhost")))
        .await
        .err(404, "M_NOT_FOUND");
    alice
        .get(&format!("/directory/room/{}", enc("#elsewhere:localhost")))
        .await
        .err(404, "M_NOT_FOUND");
    assert_eq!(bridge.queries().len(), 4);
}

#[tokio::test]
async fn a_dead_service_is_the_same_as_no_answer() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let (server, _dir) = server_with(Some(&url), &[], |_| {}).await;
    let alice = server.register("alice").await;
    alice
        .get(&format!("/profile/{}", enc("@bridge_ghost:localhost")))
        .await
        .err(404, "M_NOT_FOUND");
    alice
        .join("#bridge_ghost:localhost")
        .await
        .err(404, "M_NOT_FOUND");
}
