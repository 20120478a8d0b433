//! Bad input at every route family: malformed and mistyped JSON, bad identifiers, missing and
//! unknown tokens, unknown endpoints and methods, oversized bodies and events, unicode edge
//! cases, registration and room creation errors, rate limits; and at the end a burst of
//! garbage. Every error must be the exact Matrix body `{"errcode", "error"}` with the status
//! the spec gives, the server must keep answering, and nothing may ever be a 5xx. One module
//! per route family or kind of input; the shared world and checks are here.

use std::time::Duration;

use plugboard_tests::{enc, timeline, Client, Reply, TestServer, WAIT};
use reqwest::Method;
use serde_json::{json, Value};

mod endpoints;
mod garbage;
mod identifiers;
mod json;
mod permissions;
mod query;
mod rate_limits;
mod registration;
mod rooms;
mod routes;
mod sizes;
mod tokens;
mod unicode;

/// Asserts the exact Matrix error: this status, this errcode, a non-empty `error` string and
/// no other keys (but `retry_after_ms` on `M_LIMIT_EXCEEDED`).
#[track_caller]
fn expect_error(r: &Reply, status: u16, errcode: &str, what: &str) {
    assert_eq!(
        r.status.as_u16(),
        status,
        "{what}: wanted {status} {errcode}, got body {}",
        r.body
    );
    let obj = r
        .body
        .as_object()
        .unwrap_or_else(|| panic!("{what}: the body is not a JSON object: {}", r.body));
    assert_eq!(
        obj.get("errcode"),
        Some(&json!(errcode)),
        "{what}: {}",
        r.body
    );
    let message = obj.get("error").and_then(Value::as_str).unwrap_or("");
    assert!(!message.is_empty(), "{what}: no error message: {}", r.body);
    for key in obj.keys() {
        let allowed = key == "errcode"
            || key == "error"
            || (errcode == "M_LIMIT_EXCEEDED" && key == "retry_after_ms");
        assert!(allowed, "{what}: unexpected key {key} in {}", r.body);
    }
}

/// A client of `server` holding `token`.
fn with_token(server: &TestServer, token: &str) -> Client {
    let mut c = server.client();
    c.token = Some(token.to_string());
    c
}

/// Sends raw bytes as `application/json`.
async fn send_raw(c: &Client, method: Method, path: &str, body: &[u8]) -> Reply {
    c.raw(method, path, "application/json", body.to_vec()).await
}

/// The server still answers, and a logged-in client still works.
async fn assert_alive(server: &TestServer, c: &Client) {
    let r = server.client().get("/_matrix/client/versions").await;
    assert_eq!(r.status.as_u16(), 200, "the server stopped answering");
    let who = c.get("/account/whoami").await.ok();
    assert_eq!(who["user_id"], c.user_id.as_str());
}

fn txn() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("bad{}", N.fetch_add(1, Ordering::Relaxed))
}

/// A server with alice and bob joined to a public room, where alice sent one message and made
/// the alias `#lobby:localhost`.
struct World {
    server: TestServer,
    alice: Client,
    bob: Client,
    room: String,
    event: String,
    alias: String,
}

async fn world_with(adjust: impl FnOnce(&mut plugboard::config::Config)) -> World {
    let server = TestServer::start_with(adjust).await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice
        .create_room(json!({"preset": "public_chat", "room_alias_name": "lobby"}))
        .await;
    bob.join(&room).await.ok();
    let event = alice.send_text(&room, "hello").await;
    World {
        server,
        alice,
        bob,
        room,
        event,
        alias: "#lobby:localhost".into(),
    }
}

async fn world() -> World {
    world_with(|_| {}).await
}

/// Every route that reads a JSON body, as alice would call it.
fn body_routes(w: &World) -> Vec<(Method, String)> {
    let r = enc(&w.room);
    let a = enc(&w.alice.user_id);
    let e = enc(&w.event);
    let d = enc(&w.alice.device_id);
    vec![
        (Method::POST, "/register".into()),
        (Method::POST, "/login".into()),
        (Method::POST, "/createRoom".into()),
        (
            Method::PUT,
            format!("/rooms/{r}/send/m.room.message/{}", txn()),
        ),
        (
            Method::PUT,
            format!("/_matrix/client/r0/rooms/{r}/send/m.room.message/{}", txn()),
        ),
        (
            Method::POST,
            format!("/_matrix/client/api/v1/rooms/{r}/send/m.room.message"),
        ),
        (Method::PUT, format!("/rooms/{r}/state/m.room.topic")),
        (Method::PUT, format!("/rooms/{r}/state/m.room.topic/")),
        (Method::PUT, format!("/rooms/{r}/state/org.example.thing/k")),
        (Method::POST, format!("/rooms/{r}/invite")),
        (Method::POST, format!("/rooms/{r}/kick")),
        (Method::POST, format!("/rooms/{r}/ban")),
        (Method::POST, format!("/rooms/{r}/unban")),
        (Method::POST, format!("/rooms/{r}/leave")),
        (
            Method::PUT,
            format!("/directory/room/{}", enc("#other:localhost")),
        ),
        (Method::PUT, format!("/directory/list/room/{r}")),
        (Method::POST, "/publicRooms".into()),
        (Method::PUT, format!("/profile/{a}/displayname")),
        (Method::PUT, format!("/profile/{a}/avatar_url")),
        (Method::PUT, format!("/rooms/{r}/typing/{a}")),
        (Method::POST, format!("/rooms/{r}/receipt/m.read/{e}")),
        (Method::POST, format!("/rooms/{r}/read_markers")),
        (Method::PUT, format!("/user/{a}/account_data/org.example.x")),
        (
            Method::PUT,
            format!("/user/{a}/rooms/{r}/account_data/org.example.x"),
        ),
        (Method::POST, format!("/user/{a}/filter")),
        (Method::PUT, format!("/rooms/{r}/redact/{e}/{}", txn())),
        (Method::PUT, format!("/devices/{d}")),
        (Method::DELETE, format!("/devices/{d}")),
        (Method::POST, "/delete_devices".into()),
    ]
}

async fn try_register(server: &TestServer, username: &str) -> Reply {
    server
        .client()
        .post(
            "/register",
            json!({"username": username, "password": "password", "auth": {"type": "m.login.dummy"}}),
        )
        .await
}
