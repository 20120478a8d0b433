//! Bad input at every route family: malformed and mistyped JSON, bad identifiers, missing and
//! unknown tokens, unknown endpoints and methods, oversized bodies and events, unicode edge
//! cases, registration and room creation errors, rate limits; and at the end a burst of
//! garbage. Every error must be the exact Matrix body `{"errcode", "error"}` with the status
//! the spec gives, the server must keep answering, and nothing may ever be a 5xx.

use std::time::Duration;

use plugboard_tests::{enc, timeline, Client, Reply, TestServer, WAIT};
use reqwest::Method;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Malformed and mistyped JSON
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn rejects_malformed_json_on_every_body_route() {
    let w = world().await;
    let malformed: &[&[u8]] = &[
        b"{",
        b"not json",
        b"{\"a\":}",
        b"{\"a\":1}}",
        b"[1, 2",
        b"{'a': 1}",
        b"{\"a\": 1,}",
        b"{\"a\": 01}",
        b"\"unterminated",
        b"{\"a\": 1} trailing",
        b"NaN",
        b"\xff\xfe\x00{}",
        b"{\"a\": \"\xc0\xaf\"}",
        b"{\"body\": \"\\ud800\"}",
        b"{\"body\": \"\\x41\"}",
        b"\x00",
    ];
    for (method, path) in body_routes(&w) {
        for body in malformed {
            let r = send_raw(&w.alice, method.clone(), &path, body).await;
            expect_error(
                &r,
                400,
                "M_NOT_JSON",
                &format!("{method} {path} with {:?}", String::from_utf8_lossy(body)),
            );
        }
    }
    // Nothing of it reached the room: its last event is still alice's message.
    let msgs = w
        .alice
        .get(&format!("/rooms/{}/messages?dir=b&limit=1", enc(&w.room)))
        .await
        .ok();
    assert_eq!(msgs["chunk"][0]["event_id"], w.event.as_str());
    assert_alive(&w.server, &w.alice).await;
}

#[tokio::test]
async fn rejects_wrong_json_types_and_missing_fields_with_bad_json() {
    let w = world().await;
    let r = enc(&w.room);
    let a = enc(&w.alice.user_id);
    let e = enc(&w.event);
    let d = enc(&w.alice.device_id);
    let cases: Vec<(Method, String, Vec<Value>)> = vec![
        (
            Method::POST,
            "/register".into(),
            vec![
                json!([]),
                json!("alice"),
                json!(null),
                json!(42),
                json!({"username": 42, "password": "pw"}),
                json!({"username": "carol", "password": ["pw"]}),
                json!({"username": "carol", "password": "pw", "inhibit_login": "yes"}),
                json!({"username": "carol", "password": "pw", "device_id": 7}),
            ],
        ),
        (
            Method::POST,
            "/login".into(),
            vec![
                json!({}),
                json!([]),
                json!({"type": 5}),
                json!({"type": "m.login.password", "user": "alice", "password": 1}),
                json!({"type": "m.login.password", "user": ["alice"], "password": "password"}),
            ],
        ),
        (
            Method::POST,
            "/createRoom".into(),
            vec![
                json!([]),
                json!({"name": 1}),
                json!({"topic": {"text": "t"}}),
                json!({"invite": "@bob:localhost"}),
                json!({"invite": [5]}),
                json!({"initial_state": [{"content": {}}]}),
                json!({"initial_state": [{"type": "m.room.topic"}]}),
                json!({"initial_state": {"type": "m.room.topic", "content": {}}}),
                json!({"is_direct": "true"}),
                json!({"room_version": 10}),
                json!({"power_level_content_override": []}),
                json!({"creation_content": "x"}),
                json!({"visibility": true}),
            ],
        ),
        (
            Method::PUT,
            format!("/rooms/{r}/send/m.room.message/{}", txn()),
            vec![json!([]), json!("text"), json!(1), json!(null), json!(true)],
        ),
        (
            Method::POST,
            format!("/_matrix/client/api/v1/rooms/{r}/send/m.room.message"),
            vec![json!([]), json!("text")],
        ),
        (
            Method::PUT,
            format!("/rooms/{r}/state/m.room.topic"),
            vec![json!([]), json!("text"), json!(null)],
        ),
        (
            Method::PUT,
            format!("/rooms/{r}/state/org.example.thing/k"),
            vec![json!([1]), json!(2)],
        ),
        (
            Method::POST,
            format!("/rooms/{r}/invite"),
            vec![
                json!({}),
                json!({"user_id": 5}),
                json!({"user_id": null}),
                json!({"user_id": "@carol:localhost", "reason": 5}),
                json!([]),
            ],
        ),
        (
            Method::POST,
            format!("/rooms/{r}/kick"),
            vec![json!({}), json!({"user_id": ["@bob:localhost"]})],
        ),
        (
            Method::POST,
            format!("/rooms/{r}/ban"),
            vec![
                json!({"reason": "no user"}),
                json!({"user_id": "@bob:localhost", "reason": false}),
            ],
        ),
        (
            Method::POST,
            format!("/rooms/{r}/unban"),
            vec![json!({}), json!({"user_id": 1})],
        ),
        (
            Method::POST,
            format!("/rooms/{r}/leave"),
            vec![json!({"reason": 5}), json!([])],
        ),
        (
            Method::PUT,
            format!("/directory/room/{}", enc("#other:localhost")),
            vec![json!({}), json!({"room_id": 1}), json!([])],
        ),
        (
            Method::PUT,
            format!("/directory/list/room/{r}"),
            vec![json!({}), json!({"visibility": true})],
        ),
        (
            Method::POST,
            "/publicRooms".into(),
            vec![
                json!({"limit": "ten"}),
                json!({"limit": -1}),
                json!({"since": 5}),
            ],
        ),
        (
            Method::PUT,
            format!("/profile/{a}/displayname"),
            vec![
                json!({"displayname": 5}),
                json!({"displayname": ["x"]}),
                json!([]),
            ],
        ),
        (
            Method::PUT,
            format!("/profile/{a}/avatar_url"),
            vec![json!({"avatar_url": {}}), json!({"avatar_url": 1})],
        ),
        (
            Method::PUT,
            format!("/rooms/{r}/typing/{a}"),
            vec![
                json!({}),
                json!({"typing": "yes"}),
                json!({"typing": true, "timeout": -1}),
                json!({"typing": true, "timeout": "30000"}),
            ],
        ),
        (
            Method::POST,
            format!("/rooms/{r}/receipt/m.read/{e}"),
            vec![json!({"thread_id": 1}), json!([])],
        ),
        (
            Method::POST,
            format!("/rooms/{r}/read_markers"),
            vec![json!({"m.fully_read": 5}), json!({"m.read": ["$x"]})],
        ),
        (
            Method::PUT,
            format!("/user/{a}/account_data/org.example.x"),
            vec![json!([]), json!("x"), json!(5), json!(null)],
        ),
        (
            Method::PUT,
            format!("/user/{a}/rooms/{r}/account_data/org.example.x"),
            vec![json!([]), json!(false)],
        ),
        (
            Method::POST,
            format!("/user/{a}/filter"),
            vec![
                json!([]),
                json!("x"),
                json!({"room": 5}),
                json!({"room": {"timeline": {"limit": "x"}}}),
                json!({"room": {"timeline": {"limit": 0}}}),
                json!({"room": {"rooms": [1]}}),
                json!({"room": {"rooms": "!a:b"}}),
                json!({"account_data": {"types": "m.*"}}),
            ],
        ),
        (
            Method::PUT,
            format!("/rooms/{r}/redact/{e}/{}", txn()),
            vec![json!({"reason": 5}), json!([])],
        ),
        (
            Method::PUT,
            format!("/devices/{d}"),
            vec![json!({"display_name": 5})],
        ),
        (
            Method::POST,
            "/delete_devices".into(),
            vec![
                json!({}),
                json!({"devices": "ABC"}),
                json!({"devices": [1]}),
            ],
        ),
    ];
    for (method, path, bodies) in cases {
        for body in bodies {
            let reply = w.alice.request(method.clone(), &path, Some(&body)).await;
            expect_error(
                &reply,
                400,
                "M_BAD_JSON",
                &format!("{method} {path} with {body}"),
            );
        }
    }
    // None of it changed anything: carol does not exist, bob is still joined, the room's last
    // event is still alice's message, no topic was set.
    let r2 = w
        .server
        .client()
        .get("/register/available?username=carol")
        .await;
    assert_eq!(r2.ok()["available"], true);
    let members = w
        .alice
        .get(&format!("/rooms/{r}/joined_members"))
        .await
        .ok();
    assert!(members["joined"][&w.bob.user_id].is_object(), "{members}");
    let msgs = w
        .alice
        .get(&format!("/rooms/{r}/messages?dir=b&limit=1"))
        .await
        .ok();
    assert_eq!(msgs["chunk"][0]["event_id"], w.event.as_str());
    let topic = w.alice.get(&format!("/rooms/{r}/state/m.room.topic")).await;
    expect_error(&topic, 404, "M_NOT_FOUND", "no topic was ever set");
    assert_alive(&w.server, &w.alice).await;
}

#[tokio::test]
async fn treats_an_empty_body_as_an_empty_object() {
    let w = world().await;
    let r = enc(&w.room);
    // All fields optional: an empty body is `{}` and succeeds.
    let reply = send_raw(
        &w.alice,
        Method::PUT,
        &format!("/rooms/{r}/send/m.room.message/{}", txn()),
        b"",
    )
    .await;
    assert!(reply.ok()["event_id"].as_str().is_some());
    // A required field missing from an empty body is still M_BAD_JSON.
    let reply = send_raw(
        &w.alice,
        Method::POST,
        &format!("/rooms/{r}/invite"),
        b"  \n",
    )
    .await;
    expect_error(&reply, 400, "M_BAD_JSON", "invite with an empty body");
    let reply = send_raw(&w.alice, Method::POST, "/login", b"").await;
    expect_error(&reply, 400, "M_BAD_JSON", "login with an empty body");
    assert_alive(&w.server, &w.alice).await;
}

#[tokio::test]
async fn accepts_a_trailing_slash_as_the_empty_state_key() {
    let w = world().await;
    let r = enc(&w.room);
    // Clients write `/state/{type}/` for the empty state key; it is the same state as without.
    let id = w
        .alice
        .put(
            &format!("/rooms/{r}/state/m.room.topic/"),
            json!({"topic": "slash"}),
        )
        .await
        .ok()["event_id"]
        .as_str()
        .expect("event_id")
        .to_string();
    let topic = w
        .alice
        .get(&format!("/rooms/{r}/state/m.room.topic"))
        .await
        .ok();
    assert_eq!(topic, json!({"topic": "slash"}));
    let topic = w
        .bob
        .get(&format!("/rooms/{r}/state/m.room.topic/"))
        .await
        .ok();
    assert_eq!(topic, json!({"topic": "slash"}));
    let ev = w
        .alice
        .get(&format!("/rooms/{r}/event/{}", enc(&id)))
        .await
        .ok();
    assert_eq!(ev["state_key"], "");
    // And its bad input is refused like the path without the slash.
    let reply = send_raw(
        &w.alice,
        Method::PUT,
        &format!("/rooms/{r}/state/m.room.topic/"),
        b"{",
    )
    .await;
    expect_error(
        &reply,
        400,
        "M_NOT_JSON",
        "a trailing-slash state PUT with bad JSON",
    );
    let reply = w
        .server
        .client()
        .get(&format!("/rooms/{r}/state/m.room.topic/"))
        .await;
    expect_error(
        &reply,
        401,
        "M_MISSING_TOKEN",
        "a trailing-slash state GET without a token",
    );
    assert_alive(&w.server, &w.alice).await;
}

// ---------------------------------------------------------------------------------------------
// Identifiers
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn rejects_malformed_room_ids_in_paths_with_invalid_param() {
    let w = world().await;
    let a = enc(&w.alice.user_id);
    let e = enc(&w.event);
    let bad_rooms = [
        "notaroom",
        "!nocolon",
        "!:localhost",
        "#lobby:localhost",
        "@alice:localhost",
        "!a:bad server",
        "!a:",
        "!a\u{0}b:localhost",
    ];
    for bad in bad_rooms {
        let r = enc(bad);
        let routes: Vec<(Method, String, Option<Value>)> = vec![
            (
                Method::PUT,
                format!("/rooms/{r}/send/m.room.message/{}", txn()),
                Some(json!({"body": "x"})),
            ),
            (
                Method::PUT,
                format!("/rooms/{r}/state/m.room.topic"),
                Some(json!({"topic": "x"})),
            ),
            (Method::GET, format!("/rooms/{r}/state/m.room.topic"), None),
            (Method::GET, format!("/rooms/{r}/state"), None),
            (Method::POST, format!("/rooms/{r}/join"), Some(json!({}))),
            (
                Method::POST,
                format!("/rooms/{r}/invite"),
                Some(json!({"user_id": "@bob:localhost"})),
            ),
            (Method::POST, format!("/rooms/{r}/leave"), Some(json!({}))),
            (Method::POST, format!("/rooms/{r}/forget"), Some(json!({}))),
            (
                Method::POST,
                format!("/rooms/{r}/kick"),
                Some(json!({"user_id": "@bob:localhost"})),
            ),
            (
                Method::POST,
                format!("/rooms/{r}/ban"),
                Some(json!({"user_id": "@bob:localhost"})),
            ),
            (
                Method::POST,
                format!("/rooms/{r}/unban"),
                Some(json!({"user_id": "@bob:localhost"})),
            ),
            (Method::GET, format!("/rooms/{r}/messages"), None),
            (Method::GET, format!("/rooms/{r}/joined_members"), None),
            (Method::GET, format!("/rooms/{r}/members"), None),
            (Method::GET, format!("/rooms/{r}/event/{e}"), None),
            (Method::GET, format!("/rooms/{r}/aliases"), None),
            (
                Method::PUT,
                format!("/rooms/{r}/redact/{e}/{}", txn()),
                Some(json!({})),
            ),
            (
                Method::PUT,
                format!("/rooms/{r}/typing/{a}"),
                Some(json!({"typing": true})),
            ),
            (
                Method::POST,
                format!("/rooms/{r}/receipt/m.read/{e}"),
                Some(json!({})),
            ),
            (
                Method::POST,
                format!("/rooms/{r}/read_markers"),
                Some(json!({})),
            ),
            (
                Method::PUT,
                format!("/user/{a}/rooms/{r}/account_data/org.example.x"),
                Some(json!({})),
            ),
            (
                Method::GET,
                format!("/user/{a}/rooms/{r}/account_data/org.example.x"),
                None,
            ),
            (Method::GET, format!("/directory/list/room/{r}"), None),
            (
                Method::PUT,
                format!("/directory/list/room/{r}"),
                Some(json!({"visibility": "public"})),
            ),
            (
                Method::POST,
                format!("/_matrix/client/api/v1/rooms/{r}/send/m.room.message"),
                Some(json!({"body": "x"})),
            ),
        ];
        for (method, path, body) in routes {
            let reply = w.alice.request(method.clone(), &path, body.as_ref()).await;
            expect_error(
                &reply,
                400,
                "M_INVALID_PARAM",
                &format!("{method} {path} (room id {bad:?})"),
            );
        }
        // Joining by id-or-alias: neither a room id nor an alias.
        if !bad.starts_with('#') {
            let reply = w.alice.join(bad).await;
            expect_error(&reply, 400, "M_INVALID_PARAM", &format!("join {bad:?}"));
        }
    }
    // A path segment that is not UTF-8 once percent-decoded.
    let reply = w
        .alice
        .put(
            &format!("/rooms/%FF%FE/send/m.room.message/{}", txn()),
            json!({"body": "x"}),
        )
        .await;
    expect_error(
        &reply,
        400,
        "M_INVALID_PARAM",
        "a room id that is not UTF-8",
    );
    assert_alive(&w.server, &w.alice).await;
}

#[tokio::test]
async fn rejects_malformed_user_ids_aliases_and_event_ids_in_paths_with_invalid_param() {
    let w = world().await;
    let r = enc(&w.room);
    for bad in [
        "alice",
        "@alice",
        "@:localhost",
        "@al ice:localhost",
        "!r:localhost",
        "@a:b c",
    ] {
        let u = enc(bad);
        let routes: Vec<(Method, String, Option<Value>)> = vec![
            (Method::GET, format!("/profile/{u}"), None),
            (Method::GET, format!("/profile/{u}/displayname"), None),
            (Method::GET, format!("/profile/{u}/avatar_url"), None),
            (
                Method::PUT,
                format!("/profile/{u}/displayname"),
                Some(json!({"displayname": "x"})),
            ),
            (
                Method::PUT,
                format!("/profile/{u}/avatar_url"),
                Some(json!({"avatar_url": "mxc://localhost/x"})),
            ),
            (
                Method::PUT,
                format!("/rooms/{r}/typing/{u}"),
                Some(json!({"typing": true})),
            ),
            (Method::POST, format!("/user/{u}/filter"), Some(json!({}))),
            (Method::GET, format!("/user/{u}/filter/0"), None),
            (
                Method::PUT,
                format!("/user/{u}/account_data/org.example.x"),
                Some(json!({})),
            ),
            (
                Method::GET,
                format!("/user/{u}/account_data/org.example.x"),
                None,
            ),
            (
                Method::PUT,
                format!("/user/{u}/rooms/{r}/account_data/org.example.x"),
                Some(json!({})),
            ),
        ];
        for (method, path, body) in routes {
            let reply = w.alice.request(method.clone(), &path, body.as_ref()).await;
            expect_error(
                &reply,
                400,
                "M_INVALID_PARAM",
                &format!("{method} {path} (user id {bad:?})"),
            );
        }
    }
    for bad in [
        "lobby",
        "#lobby",
        "#:localhost",
        "#lob by:localhost",
        "!lobby:localhost",
    ] {
        let path = format!("/directory/room/{}", enc(bad));
        let reply = w.alice.get(&path).await;
        expect_error(&reply, 400, "M_INVALID_PARAM", &format!("GET {path}"));
        let reply = w.alice.put(&path, json!({"room_id": w.room})).await;
        expect_error(&reply, 400, "M_INVALID_PARAM", &format!("PUT {path}"));
        let reply = w.alice.delete(&path, json!({})).await;
        expect_error(&reply, 400, "M_INVALID_PARAM", &format!("DELETE {path}"));
    }
    // An alias on another server cannot be made here.
    let reply = w
        .alice
        .put(
            &format!("/directory/room/{}", enc("#x:elsewhere.example")),
            json!({"room_id": w.room}),
        )
        .await;
    expect_error(&reply, 400, "M_INVALID_PARAM", "an alias of another server");
    for bad in ["notanevent", "!event:localhost", "$", "$a\u{1}b"] {
        let e = enc(bad);
        let routes: Vec<(Method, String, Option<Value>)> = vec![
            (Method::GET, format!("/rooms/{r}/event/{e}"), None),
            (
                Method::PUT,
                format!("/rooms/{r}/redact/{e}/{}", txn()),
                Some(json!({})),
            ),
            (
                Method::POST,
                format!("/rooms/{r}/receipt/m.read/{e}"),
                Some(json!({})),
            ),
            (
                Method::POST,
                format!("/rooms/{r}/read_markers"),
                Some(json!({"m.fully_read": bad})),
            ),
        ];
        for (method, path, body) in routes {
            let reply = w.alice.request(method.clone(), &path, body.as_ref()).await;
            // `$` alone has no opaque part: it is no event id either (spec_input.rs).
            expect_error(
                &reply,
                400,
                "M_INVALID_PARAM",
                &format!("{method} {path} (event id {bad:?})"),
            );
        }
    }
    // Bad event types in paths.
    for bad in ["", "a\u{0}b", "a\nb"] {
        let t = enc(bad);
        let reply = w
            .alice
            .put(
                &format!("/rooms/{r}/send/{t}/{}", txn()),
                json!({"body": "x"}),
            )
            .await;
        expect_error(
            &reply,
            400,
            "M_INVALID_PARAM",
            &format!("event type {bad:?}"),
        );
        if !bad.is_empty() {
            let reply = w
                .alice
                .put(&format!("/rooms/{r}/state/{t}"), json!({"x": 1}))
                .await;
            expect_error(
                &reply,
                400,
                "M_INVALID_PARAM",
                &format!("state type {bad:?}"),
            );
            let a = enc(&w.alice.user_id);
            let reply = w
                .alice
                .put(&format!("/user/{a}/account_data/{t}"), json!({"x": 1}))
                .await;
            expect_error(
                &reply,
                400,
                "M_INVALID_PARAM",
                &format!("account data type {bad:?}"),
            );
        }
    }
    let long_type = "t".repeat(300);
    let reply = w
        .alice
        .put(
            &format!("/rooms/{r}/send/{long_type}/{}", txn()),
            json!({"body": "x"}),
        )
        .await;
    expect_error(&reply, 400, "M_INVALID_PARAM", "a 300-byte event type");
    assert_alive(&w.server, &w.alice).await;
}

#[tokio::test]
async fn rejects_malformed_identifiers_in_bodies_with_invalid_param() {
    let w = world().await;
    let r = enc(&w.room);
    for bad in [
        "bob",
        "@bob",
        "@:localhost",
        "@b ob:localhost",
        "#bob:localhost",
        "",
    ] {
        for what in ["invite", "kick", "ban", "unban"] {
            let reply = w
                .alice
                .post(&format!("/rooms/{r}/{what}"), json!({"user_id": bad}))
                .await;
            expect_error(
                &reply,
                400,
                "M_INVALID_PARAM",
                &format!("{what} with user_id {bad:?}"),
            );
        }
        let rooms_before = w.alice.get("/joined_rooms").await.ok()["joined_rooms"].clone();
        let reply = w.alice.post("/createRoom", json!({"invite": [bad]})).await;
        expect_error(
            &reply,
            400,
            "M_INVALID_PARAM",
            &format!("createRoom inviting {bad:?}"),
        );
        let rooms_after = w.alice.get("/joined_rooms").await.ok()["joined_rooms"].clone();
        assert_eq!(
            rooms_before, rooms_after,
            "a refused createRoom made a room"
        );
    }
    for bad in ["lobby", "#lobby:localhost", "!:localhost", ""] {
        let reply = w
            .alice
            .put(
                &format!("/directory/room/{}", enc("#fresh:localhost")),
                json!({"room_id": bad}),
            )
            .await;
        expect_error(
            &reply,
            400,
            "M_INVALID_PARAM",
            &format!("alias to room {bad:?}"),
        );
    }
    let missing = w
        .server
        .client()
        .get(&format!("/directory/room/{}", enc("#fresh:localhost")))
        .await;
    expect_error(&missing, 404, "M_NOT_FOUND", "no alias was made");
    for bad in ["has space", "co:lon", "hash#", "tab\t", ""] {
        let reply = w
            .alice
            .post("/createRoom", json!({"room_alias_name": bad}))
            .await;
        expect_error(
            &reply,
            400,
            "M_INVALID_PARAM",
            &format!("alias name {bad:?}"),
        );
    }
    // Bob is still there after all those refused kicks and bans.
    let members = w
        .alice
        .get(&format!("/rooms/{r}/joined_members"))
        .await
        .ok();
    assert!(members["joined"][&w.bob.user_id].is_object(), "{members}");
    assert_alive(&w.server, &w.alice).await;
}

#[tokio::test]
async fn answers_not_found_for_well_formed_but_unknown_ids() {
    let w = world().await;
    let r = enc(&w.room);
    let a = enc(&w.alice.user_id);
    let nosuch_room = enc("!nosuchroom:localhost");
    let nosuch_event = enc("$nosuchevent");
    let client = w.server.client();
    let cases: Vec<(&Client, Method, String, Option<Value>)> = vec![
        (
            &client,
            Method::GET,
            format!("/directory/room/{}", enc("#nosuch:localhost")),
            None,
        ),
        (
            &w.alice,
            Method::DELETE,
            format!("/directory/room/{}", enc("#nosuch:localhost")),
            Some(json!({})),
        ),
        (
            &client,
            Method::GET,
            format!("/profile/{}", enc("@nosuch:localhost")),
            None,
        ),
        (
            &client,
            Method::GET,
            format!("/profile/{}/displayname", enc("@nosuch:localhost")),
            None,
        ),
        (
            &client,
            Method::GET,
            format!("/profile/{a}/avatar_url"),
            None,
        ),
        (
            &w.alice,
            Method::POST,
            format!("/join/{}", enc("#nosuch:localhost")),
            Some(json!({})),
        ),
        (
            &w.alice,
            Method::POST,
            format!("/join/{nosuch_room}"),
            Some(json!({})),
        ),
        (
            &w.alice,
            Method::POST,
            format!("/rooms/{nosuch_room}/join"),
            Some(json!({})),
        ),
        (
            &w.alice,
            Method::PUT,
            format!("/rooms/{nosuch_room}/send/m.room.message/{}", txn()),
            Some(json!({"body": "x"})),
        ),
        (
            &w.alice,
            Method::PUT,
            format!("/rooms/{nosuch_room}/state/m.room.topic"),
            Some(json!({"topic": "x"})),
        ),
        (
            &w.alice,
            Method::PUT,
            format!("/directory/room/{}", enc("#fresh:localhost")),
            Some(json!({"room_id": "!nosuchroom:localhost"})),
        ),
        (
            &client,
            Method::GET,
            format!("/directory/list/room/{nosuch_room}"),
            None,
        ),
        (
            &w.alice,
            Method::GET,
            format!("/rooms/{r}/event/{nosuch_event}"),
            None,
        ),
        (
            &w.alice,
            Method::PUT,
            format!("/rooms/{r}/redact/{nosuch_event}/{}", txn()),
            Some(json!({})),
        ),
        (
            &w.alice,
            Method::POST,
            format!("/rooms/{r}/receipt/m.read/{nosuch_event}"),
            Some(json!({})),
        ),
        (
            &w.alice,
            Method::GET,
            format!("/rooms/{r}/state/m.room.topic"),
            None,
        ),
        (
            &w.alice,
            Method::GET,
            format!(
                "/rooms/{r}/state/m.room.member/{}",
                enc("@nosuch:localhost")
            ),
            None,
        ),
        (
            &w.alice,
            Method::GET,
            format!("/user/{a}/filter/12345"),
            None,
        ),
        (
            &w.alice,
            Method::GET,
            format!("/user/{a}/filter/notanumber"),
            None,
        ),
        (
            &w.alice,
            Method::GET,
            format!("/user/{a}/account_data/org.example.never"),
            None,
        ),
        (
            &w.alice,
            Method::GET,
            format!("/user/{a}/rooms/{r}/account_data/org.example.never"),
            None,
        ),
        (
            &w.alice,
            Method::PUT,
            format!("/user/{a}/rooms/{nosuch_room}/account_data/org.example.x"),
            Some(json!({})),
        ),
        (&w.alice, Method::GET, "/devices/NOSUCHDEVICE".into(), None),
        (
            &w.alice,
            Method::PUT,
            "/devices/NOSUCHDEVICE".into(),
            Some(json!({"display_name": "x"})),
        ),
        (
            &client,
            Method::GET,
            "/_matrix/media/v3/download/localhost/nosuchmedia".into(),
            None,
        ),
        (
            &w.alice,
            Method::GET,
            "/_matrix/client/v1/media/download/localhost/nosuchmedia".into(),
            None,
        ),
    ];
    for (c, method, path, body) in cases {
        let reply = c.request(method.clone(), &path, body.as_ref()).await;
        expect_error(&reply, 404, "M_NOT_FOUND", &format!("{method} {path}"));
    }
    // An event of another room is not found through this one.
    let other = w.alice.create_room(json!({})).await;
    let other_event = w.alice.send_text(&other, "elsewhere").await;
    let reply = w
        .alice
        .get(&format!("/rooms/{r}/event/{}", enc(&other_event)))
        .await;
    expect_error(&reply, 404, "M_NOT_FOUND", "an event of another room");
    let reply = w
        .alice
        .put(
            &format!("/rooms/{r}/redact/{}/{}", enc(&other_event), txn()),
            json!({}),
        )
        .await;
    expect_error(
        &reply,
        404,
        "M_NOT_FOUND",
        "redacting an event of another room",
    );
    assert_alive(&w.server, &w.alice).await;
}

// ---------------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------------

/// Every authenticated route, with a body that would be fine.
fn authenticated_routes(w: &World) -> Vec<(Method, String, Option<Value>)> {
    let r = enc(&w.room);
    let a = enc(&w.alice.user_id);
    let e = enc(&w.event);
    let mut routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/capabilities".into(), None),
        (Method::POST, "/logout".into(), Some(json!({}))),
        (Method::POST, "/logout/all".into(), Some(json!({}))),
        (Method::GET, "/account/whoami".into(), None),
        (Method::GET, "/devices".into(), None),
        (Method::GET, "/devices/ABC".into(), None),
        (Method::PUT, "/devices/ABC".into(), Some(json!({}))),
        (Method::DELETE, "/devices/ABC".into(), Some(json!({}))),
        (
            Method::POST,
            "/delete_devices".into(),
            Some(json!({"devices": []})),
        ),
        (Method::POST, "/createRoom".into(), Some(json!({}))),
        (Method::POST, format!("/join/{r}"), Some(json!({}))),
        (Method::POST, format!("/rooms/{r}/join"), Some(json!({}))),
        (
            Method::POST,
            format!("/rooms/{r}/invite"),
            Some(json!({"user_id": "@carol:localhost"})),
        ),
        (Method::POST, format!("/rooms/{r}/leave"), Some(json!({}))),
        (Method::POST, format!("/rooms/{r}/forget"), Some(json!({}))),
        (
            Method::POST,
            format!("/rooms/{r}/kick"),
            Some(json!({"user_id": "@bob:localhost"})),
        ),
        (
            Method::POST,
            format!("/rooms/{r}/ban"),
            Some(json!({"user_id": "@bob:localhost"})),
        ),
        (
            Method::POST,
            format!("/rooms/{r}/unban"),
            Some(json!({"user_id": "@bob:localhost"})),
        ),
        (Method::GET, "/joined_rooms".into(), None),
        (Method::GET, format!("/rooms/{r}/joined_members"), None),
        (Method::GET, format!("/rooms/{r}/members"), None),
        (
            Method::PUT,
            format!("/rooms/{r}/send/m.room.message/{}", txn()),
            Some(json!({"body": "x"})),
        ),
        (
            Method::PUT,
            format!("/_matrix/client/r0/rooms/{r}/send/m.room.message/{}", txn()),
            Some(json!({"body": "x"})),
        ),
        (
            Method::POST,
            format!("/_matrix/client/api/v1/rooms/{r}/send/m.room.message"),
            Some(json!({"body": "x"})),
        ),
        (Method::GET, format!("/rooms/{r}/state/m.room.name"), None),
        (
            Method::PUT,
            format!("/rooms/{r}/state/m.room.name"),
            Some(json!({"name": "x"})),
        ),
        (Method::GET, format!("/rooms/{r}/state/m.room.name/"), None),
        (
            Method::PUT,
            format!("/rooms/{r}/state/m.room.name/"),
            Some(json!({"name": "x"})),
        ),
        (Method::GET, format!("/rooms/{r}/state"), None),
        (
            Method::PUT,
            format!("/rooms/{r}/redact/{e}/{}", txn()),
            Some(json!({})),
        ),
        (Method::GET, format!("/rooms/{r}/event/{e}"), None),
        (Method::GET, format!("/rooms/{r}/messages"), None),
        (Method::GET, "/sync".into(), None),
        (Method::POST, format!("/user/{a}/filter"), Some(json!({}))),
        (Method::GET, format!("/user/{a}/filter/0"), None),
        (
            Method::PUT,
            format!("/directory/room/{}", enc("#fresh:localhost")),
            Some(json!({"room_id": w.room})),
        ),
        (
            Method::DELETE,
            format!("/directory/room/{}", enc(&w.alias)),
            Some(json!({})),
        ),
        (Method::GET, format!("/rooms/{r}/aliases"), None),
        (
            Method::PUT,
            format!("/directory/list/room/{r}"),
            Some(json!({"visibility": "private"})),
        ),
        (Method::POST, "/publicRooms".into(), Some(json!({}))),
        (
            Method::PUT,
            format!("/profile/{a}/displayname"),
            Some(json!({"displayname": "x"})),
        ),
        (
            Method::PUT,
            format!("/profile/{a}/avatar_url"),
            Some(json!({"avatar_url": "mxc://localhost/x"})),
        ),
        (
            Method::PUT,
            format!("/rooms/{r}/typing/{a}"),
            Some(json!({"typing": true})),
        ),
        (
            Method::POST,
            format!("/rooms/{r}/receipt/m.read/{e}"),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/rooms/{r}/read_markers"),
            Some(json!({})),
        ),
        (
            Method::PUT,
            format!("/user/{a}/account_data/org.example.x"),
            Some(json!({})),
        ),
        (
            Method::GET,
            format!("/user/{a}/account_data/org.example.x"),
            None,
        ),
        (
            Method::PUT,
            format!("/user/{a}/rooms/{r}/account_data/org.example.x"),
            Some(json!({})),
        ),
        (
            Method::GET,
            format!("/user/{a}/rooms/{r}/account_data/org.example.x"),
            None,
        ),
        (
            Method::POST,
            "/_matrix/media/v3/upload".into(),
            Some(json!({})),
        ),
        (
            Method::POST,
            "/_matrix/media/r0/upload".into(),
            Some(json!({})),
        ),
    ];
    {
        let prefix = "/_matrix/client/v1/media";
        routes.extend([
            (Method::GET, format!("{prefix}/config"), None),
            (Method::POST, format!("{prefix}/upload"), Some(json!({}))),
            (
                Method::GET,
                format!("{prefix}/download/localhost/abc"),
                None,
            ),
            (
                Method::GET,
                format!("{prefix}/download/localhost/abc/name.png"),
                None,
            ),
            (
                Method::GET,
                format!("{prefix}/thumbnail/localhost/abc?width=32&height=32"),
                None,
            ),
        ]);
    }
    routes
}

#[tokio::test]
async fn requires_a_valid_token_on_every_authenticated_route() {
    let w = world().await;
    let anonymous = w.server.client();
    let bogus = with_token(&w.server, "pb_this_is_not_a_token");
    let empty = with_token(&w.server, "");
    let http = reqwest::Client::new();
    for (method, path, body) in authenticated_routes(&w) {
        let what = format!("{method} {path}");
        let reply = anonymous
            .request(method.clone(), &path, body.as_ref())
            .await;
        expect_error(
            &reply,
            401,
            "M_MISSING_TOKEN",
            &format!("{what} without a token"),
        );
        let reply = bogus.request(method.clone(), &path, body.as_ref()).await;
        expect_error(
            &reply,
            401,
            "M_UNKNOWN_TOKEN",
            &format!("{what} with a bad token"),
        );
        // `Bearer ` with nothing after it carries no token.
        let reply = empty.request(method.clone(), &path, body.as_ref()).await;
        expect_error(
            &reply,
            401,
            "M_MISSING_TOKEN",
            &format!("{what} with an empty bearer token"),
        );
        // The token in the query string.
        let sep = if path.contains('?') { '&' } else { '?' };
        let reply = anonymous
            .request(
                method.clone(),
                &format!("{path}{sep}access_token=pb_nope"),
                body.as_ref(),
            )
            .await;
        expect_error(
            &reply,
            401,
            "M_UNKNOWN_TOKEN",
            &format!("{what} with a bad ?access_token="),
        );
        // An Authorization header of another scheme is no token.
        let mut req = http
            .request(method.clone(), anonymous.url(&path))
            .header("authorization", "Basic YWxpY2U6cGFzc3dvcmQ=")
            .timeout(WAIT);
        if let Some(b) = &body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let bytes = resp.bytes().await.expect("body read");
        let reply = Reply {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        };
        expect_error(
            &reply,
            401,
            "M_MISSING_TOKEN",
            &format!("{what} with a Basic Authorization header"),
        );
        // Header bytes that are not UTF-8.
        let mut req = http
            .request(method.clone(), anonymous.url(&path))
            .header(
                "authorization",
                reqwest::header::HeaderValue::from_bytes(b"Bearer pb_\xff\xfe").expect("bytes"),
            )
            .timeout(WAIT);
        if let Some(b) = &body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let bytes = resp.bytes().await.expect("body read");
        let reply = Reply {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        };
        expect_error(
            &reply,
            401,
            "M_MISSING_TOKEN",
            &format!("{what} with a token that is not UTF-8"),
        );
    }
    // A revoked token is unknown.
    let carol = w.server.register("carol").await;
    carol.post("/logout", json!({})).await.ok();
    let reply = carol.get("/account/whoami").await;
    expect_error(&reply, 401, "M_UNKNOWN_TOKEN", "a logged-out token");
    let reply = carol.get("/_matrix/client/v1/media/config").await;
    expect_error(
        &reply,
        401,
        "M_UNKNOWN_TOKEN",
        "a logged-out token on media",
    );
    // Alice's own token was never touched by any of it.
    assert_alive(&w.server, &w.alice).await;
    let r = w
        .alice
        .get(&format!("/rooms/{}/joined_members", enc(&w.room)))
        .await
        .ok();
    assert!(r["joined"][&w.bob.user_id].is_object(), "{r}");
}

#[tokio::test]
async fn leaves_public_routes_open_without_a_token() {
    let w = world().await;
    let anonymous = w.server.client();
    for path in [
        "/_matrix/client/versions".to_string(),
        "/login".into(),
        format!("/directory/room/{}", enc(&w.alias)),
        format!("/profile/{}", enc(&w.alice.user_id)),
        "/publicRooms".into(),
        "/register/available?username=zed".into(),
        "/_matrix/media/v3/config".into(),
        format!("/directory/list/room/{}", enc(&w.room)),
    ] {
        let r = anonymous.get(&path).await;
        assert_eq!(r.status.as_u16(), 200, "GET {path}: {}", r.body);
    }
}

// ---------------------------------------------------------------------------------------------
// Unknown endpoints and methods
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn answers_unrecognized_for_unknown_endpoints_and_wrong_methods() {
    let w = world().await;
    let r = enc(&w.room);
    for c in [&w.server.client(), &w.alice] {
        for (method, path) in [
            (Method::GET, "/_matrix/client/v3/nonexistent".to_string()),
            (Method::POST, "/_matrix/client/v3/nonexistent".into()),
            (Method::GET, "/_matrix/nothing".into()),
            (Method::GET, "/".into()),
            (Method::GET, "/_matrix/client/v9/sync".into()),
            (Method::GET, "/_matrix/client/v1/media/nothing".into()),
            (Method::GET, format!("/_matrix/client/v3/rooms/{r}/nothing")),
            (
                Method::PUT,
                format!("/_matrix/client/v3/rooms/{r}/send/m.room.message"),
            ),
            (Method::GET, "/_matrix/client/v3/sync/extra".into()),
            (Method::GET, "/_matrix/client/v3/%F0%9F%98%80".into()),
        ] {
            let reply = c.request(method.clone(), &path, None).await;
            expect_error(&reply, 404, "M_UNRECOGNIZED", &format!("{method} {path}"));
        }
        for (method, path) in [
            (Method::POST, "/_matrix/client/v3/sync".to_string()),
            (Method::GET, "/_matrix/client/v3/createRoom".into()),
            (Method::DELETE, "/_matrix/client/v3/login".into()),
            (Method::PUT, "/_matrix/client/v3/register".into()),
            (Method::GET, "/_matrix/client/r0/logout".into()),
            (Method::PATCH, "/_matrix/client/v3/sync".into()),
            (Method::POST, "/_matrix/client/versions".into()),
            (Method::GET, format!("/_matrix/client/v3/rooms/{r}/invite")),
            (
                Method::POST,
                format!("/_matrix/client/v3/rooms/{r}/send/m.room.message/t1"),
            ),
            (Method::GET, "/_matrix/client/v1/media/upload".into()),
            (Method::DELETE, "/_matrix/client/v1/media/config".into()),
            (Method::POST, "/_matrix/media/v3/config".into()),
        ] {
            let reply = c.request(method.clone(), &path, Some(&json!({}))).await;
            expect_error(&reply, 405, "M_UNRECOGNIZED", &format!("{method} {path}"));
        }
    }
    assert_alive(&w.server, &w.alice).await;
}

// ---------------------------------------------------------------------------------------------
// Sizes
// ---------------------------------------------------------------------------------------------

/// A JSON message body of exactly `size` bytes.
fn message_of_size(size: usize) -> Vec<u8> {
    let empty = br#"{"msgtype":"m.text","body":""}"#.len();
    let body = format!(
        r#"{{"msgtype":"m.text","body":"{}"}}"#,
        "x".repeat(size - empty)
    );
    assert_eq!(body.len(), size);
    body.into_bytes()
}

#[tokio::test]
async fn refuses_request_bodies_over_max_request_bytes() {
    let w = world_with(|c| {
        c.max_request_bytes = 4096;
        c.media.max_upload_bytes = 1024;
    })
    .await;
    let r = enc(&w.room);
    let a = enc(&w.alice.user_id);
    // Exactly at the limit is fine; one byte over is not.
    let path = format!("/rooms/{r}/send/m.room.message/{}", txn());
    let reply = send_raw(&w.alice, Method::PUT, &path, &message_of_size(4096)).await;
    let at_limit = reply.ok()["event_id"]
        .as_str()
        .expect("event_id")
        .to_string();
    let big = message_of_size(4097);
    let huge = message_of_size(60_000);
    for body in [&big, &huge] {
        for (method, path) in [
            (
                Method::PUT,
                format!("/rooms/{r}/send/m.room.message/{}", txn()),
            ),
            (Method::PUT, format!("/rooms/{r}/state/m.room.topic")),
            (Method::POST, "/createRoom".into()),
            (Method::POST, "/register".into()),
            (Method::POST, "/login".into()),
            (
                Method::PUT,
                format!("/user/{a}/account_data/org.example.big"),
            ),
            (Method::POST, format!("/user/{a}/filter")),
            (Method::PUT, format!("/profile/{a}/displayname")),
            (Method::POST, format!("/rooms/{r}/invite")),
        ] {
            let reply = send_raw(&w.alice, method.clone(), &path, body).await;
            expect_error(
                &reply,
                413,
                "M_TOO_LARGE",
                &format!("{method} {path} with {} bytes", body.len()),
            );
        }
    }
    // Uploads have their own limit.
    for path in [
        "/_matrix/media/v3/upload",
        "/_matrix/client/v1/media/upload",
    ] {
        let reply = w
            .alice
            .raw(
                Method::POST,
                path,
                "application/octet-stream",
                vec![7u8; 1025],
            )
            .await;
        expect_error(
            &reply,
            413,
            "M_TOO_LARGE",
            &format!("upload of 1025 bytes to {path}"),
        );
        let reply = w
            .alice
            .raw(
                Method::POST,
                path,
                "application/octet-stream",
                vec![7u8; 1024],
            )
            .await;
        assert!(reply.ok()["content_uri"].is_string());
    }
    // Nothing of the big bodies was stored: the last event is the one at the limit.
    let msgs = w
        .alice
        .get(&format!("/rooms/{r}/messages?dir=b&limit=1"))
        .await
        .ok();
    assert_eq!(msgs["chunk"][0]["event_id"], at_limit.as_str());
    let reply = w
        .alice
        .get(&format!("/user/{a}/account_data/org.example.big"))
        .await;
    expect_error(
        &reply,
        404,
        "M_NOT_FOUND",
        "the big account data was not stored",
    );
    assert_alive(&w.server, &w.alice).await;
}

#[tokio::test]
async fn refuses_events_over_65536_bytes_and_stores_nothing() {
    let w = world().await;
    let r = enc(&w.room);
    let before = w.alice.sync(None, 0).await;
    let since = before["next_batch"]
        .as_str()
        .expect("next_batch")
        .to_string();

    // A message whose content alone is under the body limit but makes the event too big.
    let t = txn();
    let big = "x".repeat(66_000);
    let reply = w
        .alice
        .put(
            &format!("/rooms/{r}/send/m.room.message/{t}"),
            json!({"msgtype": "m.text", "body": big}),
        )
        .await;
    expect_error(&reply, 413, "M_TOO_LARGE", "a 66 kB message");
    // Just under: the content fills the event to about 65,000 bytes.
    let near = "y".repeat(64_000);
    let reply = w
        .alice
        .put(
            &format!("/rooms/{r}/send/m.room.message/{}", txn()),
            json!({"msgtype": "m.text", "body": near}),
        )
        .await;
    let near_id = reply.ok()["event_id"]
        .as_str()
        .expect("event_id")
        .to_string();
    // Multi-byte characters count as bytes: 22,000 three-byte characters are 66,000 bytes.
    let reply = w
        .alice
        .put(
            &format!("/rooms/{r}/send/m.room.message/{}", txn()),
            json!({"msgtype": "m.text", "body": "\u{20AC}".repeat(22_000)}),
        )
        .await;
    expect_error(&reply, 413, "M_TOO_LARGE", "66 kB of three-byte characters");
    // Escapes in the canonical form count too: 11,000 NULs are 66,000 bytes as \u0000.
    let reply = w
        .alice
        .put(
            &format!("/rooms/{r}/send/m.room.message/{}", txn()),
            json!({"msgtype": "m.text", "body": "\u{0}".repeat(11_000)}),
        )
        .await;
    expect_error(&reply, 413, "M_TOO_LARGE", "11,000 NULs");
    // State: the topic stays what it was.
    w.alice
        .put(
            &format!("/rooms/{r}/state/m.room.topic"),
            json!({"topic": "small"}),
        )
        .await
        .ok();
    let reply = w
        .alice
        .put(
            &format!("/rooms/{r}/state/m.room.topic"),
            json!({"topic": big}),
        )
        .await;
    expect_error(&reply, 413, "M_TOO_LARGE", "a 66 kB topic");
    let topic = w
        .alice
        .get(&format!("/rooms/{r}/state/m.room.topic"))
        .await
        .ok();
    assert_eq!(topic, json!({"topic": "small"}));
    // Legacy send, and a redaction whose reason is too big.
    let reply = w
        .alice
        .post(
            &format!("/_matrix/client/api/v1/rooms/{r}/send/m.room.message"),
            json!({"body": big}),
        )
        .await;
    expect_error(&reply, 413, "M_TOO_LARGE", "a 66 kB legacy send");
    let reply = w
        .alice
        .put(
            &format!("/rooms/{r}/redact/{}/{}", enc(&w.event), txn()),
            json!({"reason": big}),
        )
        .await;
    expect_error(&reply, 413, "M_TOO_LARGE", "a 66 kB redaction reason");
    // A room whose creation would need a too-big event is not made at all.
    let rooms_before = w.alice.get("/joined_rooms").await.ok()["joined_rooms"].clone();
    let reply = w
        .alice
        .post(
            "/createRoom",
            json!({"topic": big, "room_alias_name": "toobig"}),
        )
        .await;
    expect_error(&reply, 413, "M_TOO_LARGE", "a room with a 66 kB topic");
    let reply = w
        .alice
        .post(
            "/createRoom",
            json!({"initial_state": [{"type": "org.example.big", "content": {"x": big}}]}),
        )
        .await;
    expect_error(
        &reply,
        413,
        "M_TOO_LARGE",
        "a room with 66 kB initial state",
    );
    let rooms_after = w.alice.get("/joined_rooms").await.ok()["joined_rooms"].clone();
    assert_eq!(
        rooms_before, rooms_after,
        "a refused createRoom left a room"
    );
    let alias = w
        .server
        .client()
        .get(&format!("/directory/room/{}", enc("#toobig:localhost")))
        .await;
    expect_error(&alias, 404, "M_NOT_FOUND", "the refused room's alias");

    // The refused txn id is not burnt: it can carry a small message now.
    let reply = w
        .alice
        .put(
            &format!("/rooms/{r}/send/m.room.message/{t}"),
            json!({"msgtype": "m.text", "body": "small"}),
        )
        .await;
    let small_id = reply.ok()["event_id"]
        .as_str()
        .expect("event_id")
        .to_string();

    // /messages: the two accepted events and the topic, nothing else.
    let msgs = w
        .alice
        .get(&format!("/rooms/{r}/messages?dir=b&limit=4"))
        .await
        .ok();
    let ids: Vec<&str> = msgs["chunk"]
        .as_array()
        .expect("chunk")
        .iter()
        .map(|e| e["event_id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(ids.len(), 4, "{ids:?}");
    assert_eq!(ids[0], small_id);
    assert_eq!(msgs["chunk"][1]["type"], "m.room.topic");
    assert_eq!(ids[2], near_id);
    assert_eq!(ids[3], w.event);
    // /sync since before: the same three, in order, and no too-big content anywhere.
    let after = w.alice.sync(Some(&since), 0).await;
    let events = timeline(&after, &w.room);
    let got: Vec<&str> = events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0], near_id);
    assert_eq!(got[2], small_id);
    assert!(
        after.to_string().len() < 100_000,
        "a refused event reached /sync"
    );
    assert_alive(&w.server, &w.alice).await;
}

/// `{"a":{"a":…1…}}`, `depth` objects deep.
fn nested(depth: usize) -> Vec<u8> {
    format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth)).into_bytes()
}

#[tokio::test]
async fn refuses_event_content_nested_too_deeply_to_be_read_back() {
    let w = world().await;
    let r = enc(&w.room);
    let since = w.alice.sync(None, 0).await["next_batch"]
        .as_str()
        .expect("next_batch")
        .to_string();
    let a = enc(&w.alice.user_id);
    // Deeper than the server will store, but still within what the JSON parser takes.
    for depth in [101, 120, 127] {
        for (method, path) in [
            (
                Method::PUT,
                format!("/rooms/{r}/send/m.room.message/{}", txn()),
            ),
            (Method::PUT, format!("/rooms/{r}/state/org.example.deep")),
            (
                Method::POST,
                format!("/_matrix/client/api/v1/rooms/{r}/send/m.room.message"),
            ),
            (
                Method::PUT,
                format!("/user/{a}/account_data/org.example.deep"),
            ),
            (
                Method::PUT,
                format!("/user/{a}/rooms/{r}/account_data/org.example.deep"),
            ),
        ] {
            let reply = send_raw(&w.alice, method.clone(), &path, &nested(depth)).await;
            expect_error(
                &reply,
                400,
                "M_BAD_JSON",
                &format!("{method} {path} with content {depth} deep"),
            );
        }
        if depth + 3 >= 128 {
            continue;
        }
        let body = format!(
            r#"{{"initial_state":[{{"type":"org.example.deep","content":{}}}]}}"#,
            String::from_utf8(nested(depth)).expect("utf-8")
        );
        let reply = send_raw(&w.alice, Method::POST, "/createRoom", body.as_bytes()).await;
        expect_error(&reply, 400, "M_BAD_JSON", "initial state nested too deeply");
    }
    // Past the parser's own limit it is not JSON at all.
    let reply = send_raw(
        &w.alice,
        Method::PUT,
        &format!("/rooms/{r}/send/m.room.message/{}", txn()),
        &nested(100_000),
    )
    .await;
    expect_error(&reply, 400, "M_NOT_JSON", "content 100,000 deep");
    // Up to the limit is fine, and reads back everywhere, twice as state (the second
    // carrying the first as prev_content).
    let id = w
        .alice
        .raw(
            Method::PUT,
            &format!("/rooms/{r}/send/m.room.message/{}", txn()),
            "application/json",
            nested(100),
        )
        .await
        .ok()["event_id"]
        .as_str()
        .expect("event_id")
        .to_string();
    for _ in 0..2 {
        send_raw(
            &w.alice,
            Method::PUT,
            &format!("/rooms/{r}/state/org.example.deep"),
            &nested(100),
        )
        .await
        .ok();
    }
    for path in [
        format!("/user/{a}/account_data/org.example.deep"),
        format!("/user/{a}/rooms/{r}/account_data/org.example.deep"),
    ] {
        send_raw(&w.alice, Method::PUT, &path, &nested(100))
            .await
            .ok();
        let back = w.alice.get(&path).await.ok();
        assert!(back["a"]["a"].is_object(), "{back}");
    }
    let ev = w
        .alice
        .get(&format!("/rooms/{r}/event/{}", enc(&id)))
        .await
        .ok();
    assert!(ev["content"]["a"]["a"].is_object(), "{ev}");
    let msgs = w
        .alice
        .get(&format!("/rooms/{r}/messages?dir=b&limit=3"))
        .await
        .ok();
    assert_eq!(msgs["chunk"][0]["type"], "org.example.deep");
    assert_eq!(msgs["chunk"][1]["type"], "org.example.deep");
    assert_eq!(msgs["chunk"][2]["event_id"], id.as_str());
    // The harness client parses with the same 128-level limit many clients have.
    let sync = w.alice.sync(Some(&since), 0).await;
    assert_eq!(timeline(&sync, &w.room).len(), 3, "{sync}");
    let global = sync["account_data"]["events"]
        .as_array()
        .expect("account_data");
    assert!(
        global.iter().any(|e| e["type"] == "org.example.deep"),
        "{sync}"
    );
    let state = w
        .alice
        .get(&format!("/rooms/{r}/state/org.example.deep"))
        .await
        .ok();
    assert!(state["a"].is_object(), "{state}");
    assert_alive(&w.server, &w.alice).await;
}

// ---------------------------------------------------------------------------------------------
// Unicode
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn keeps_emoji_rtl_nul_and_zero_width_text_intact() {
    let w = world().await;
    let r = enc(&w.room);
    let a = enc(&w.alice.user_id);
    let texts = [
        "\u{1F600}\u{1F469}\u{200D}\u{1F469}\u{200D}\u{1F467}\u{1F1FA}\u{1F1F3}",
        "\u{645}\u{631}\u{62D}\u{628}\u{627} \u{5E9}\u{5DC}\u{5D5}\u{5DD} \u{202E}reversed\u{202C}",
        "nul\u{0}inside\u{0}",
        "zero\u{200B}width\u{FEFF}joiner\u{200D}",
        "e\u{301}\u{301}\u{301} combining",
        "\u{10FFFF}\u{FFFD}\u{E000}",
        "line\nbreaks\r\tand \"quotes\" \\ and \u{2028}\u{2029}",
    ];
    for text in texts {
        let id = w.alice.send_text(&w.room, text).await;
        let ev = w
            .alice
            .get(&format!("/rooms/{r}/event/{}", enc(&id)))
            .await
            .ok();
        assert_eq!(ev["content"]["body"], text, "{ev}");
        let msgs = w
            .bob
            .get(&format!("/rooms/{r}/messages?dir=b&limit=1"))
            .await
            .ok();
        assert_eq!(msgs["chunk"][0]["content"]["body"], text);

        // A display name is one line without control characters (spec_input.rs); the rest
        // of the text is kept as it is.
        let reply = w
            .alice
            .put(
                &format!("/profile/{a}/displayname"),
                json!({"displayname": text}),
            )
            .await;
        if text.chars().any(char::is_control) {
            expect_error(&reply, 400, "M_INVALID_PARAM", "a control character");
        } else {
            reply.ok();
            let p = w.server.client().get(&format!("/profile/{a}")).await.ok();
            assert_eq!(p["displayname"], text);
        }

        w.alice
            .put(
                &format!("/user/{a}/account_data/org.example.text"),
                json!({"t": text, text: 1}),
            )
            .await
            .ok();
        let d = w
            .alice
            .get(&format!("/user/{a}/account_data/org.example.text"))
            .await
            .ok();
        assert_eq!(d, json!({"t": text, text: 1}));
    }
    // A surrogate pair escape is one character.
    let path = format!("/rooms/{r}/send/m.room.message/{}", txn());
    let reply = send_raw(
        &w.alice,
        Method::PUT,
        &path,
        br#"{"msgtype":"m.text","body":"\ud83d\ude00"}"#,
    )
    .await;
    let id = reply.ok()["event_id"]
        .as_str()
        .expect("event_id")
        .to_string();
    let ev = w
        .alice
        .get(&format!("/rooms/{r}/event/{}", enc(&id)))
        .await
        .ok();
    assert_eq!(ev["content"]["body"], "\u{1F600}");
    // Emoji in event types, state keys, txn ids and room names.
    let t = enc("org.example.\u{1F600}");
    let sk = enc("\u{5E9}\u{200B}key");
    w.alice
        .put(
            &format!("/rooms/{r}/state/{t}/{sk}"),
            json!({"v": "\u{1F600}"}),
        )
        .await
        .ok();
    let s = w
        .alice
        .get(&format!("/rooms/{r}/state/{t}/{sk}"))
        .await
        .ok();
    assert_eq!(s, json!({"v": "\u{1F600}"}));
    let reply = w
        .alice
        .put(
            &format!(
                "/rooms/{r}/send/m.room.message/{}",
                enc("\u{1F600}\u{0}txn")
            ),
            json!({"body": "x"}),
        )
        .await;
    assert!(reply.ok()["event_id"].is_string());
    let room = w
        .alice
        .create_room(
            json!({"name": "\u{1F3E0} \u{627}\u{644}\u{628}\u{64A}\u{62A}", "topic": "\u{200B}"}),
        )
        .await;
    let name = w
        .alice
        .get(&format!("/rooms/{}/state/m.room.name", enc(&room)))
        .await
        .ok();
    assert_eq!(
        name["name"],
        "\u{1F3E0} \u{627}\u{644}\u{628}\u{64A}\u{62A}"
    );
    assert_alive(&w.server, &w.alice).await;
}

#[tokio::test]
async fn rejects_lone_surrogates_and_invalid_utf8_as_not_json() {
    let w = world().await;
    let r = enc(&w.room);
    let a = enc(&w.alice.user_id);
    let bodies: &[&[u8]] = &[
        br#"{"msgtype":"m.text","body":"\ud800"}"#,
        br#"{"msgtype":"m.text","body":"\udc00"}"#,
        br#"{"msgtype":"m.text","body":"\ud800\u0041"}"#,
        br#"{"msgtype":"m.text","body":"\udfff\ud800"}"#,
        br#"{"msgtype":"m.text","\ud800":"key"}"#,
        b"{\"msgtype\":\"m.text\",\"body\":\"\xed\xa0\x80\"}",
        b"{\"msgtype\":\"m.text\",\"body\":\"\xc3\x28\"}",
        b"{\"msgtype\":\"m.text\",\"body\":\"\xf8\x88\x80\x80\x80\"}",
        b"{\"msgtype\":\"m.text\",\"body\":\"\x80\"}",
    ];
    let routes = [
        (
            Method::PUT,
            format!("/rooms/{r}/send/m.room.message/{}", txn()),
        ),
        (Method::PUT, format!("/rooms/{r}/state/m.room.topic")),
        (Method::POST, "/createRoom".to_string()),
        (Method::POST, "/register".to_string()),
        (Method::POST, "/login".to_string()),
        (Method::PUT, format!("/profile/{a}/displayname")),
        (Method::PUT, format!("/user/{a}/account_data/org.example.x")),
        (Method::POST, format!("/user/{a}/filter")),
    ];
    for (method, path) in &routes {
        for body in bodies {
            let reply = send_raw(&w.alice, method.clone(), path, body).await;
            expect_error(
                &reply,
                400,
                "M_NOT_JSON",
                &format!("{method} {path} with {:?}", String::from_utf8_lossy(body)),
            );
        }
    }
    // The lone surrogate in a query parameter (the inline filter) is refused too.
    let reply = w
        .alice
        .get(&format!(
            "/sync?filter={}",
            enc(r#"{"room":{"rooms":["\ud800"]}}"#)
        ))
        .await;
    expect_error(
        &reply,
        400,
        "M_NOT_JSON",
        "a lone surrogate in an inline sync filter",
    );
    let reply = w
        .alice
        .get(&format!(
            "/rooms/{r}/messages?filter={}",
            enc(r#"{"types":["\udc00"]}"#)
        ))
        .await;
    expect_error(
        &reply,
        400,
        "M_NOT_JSON",
        "a lone surrogate in a /messages filter",
    );
    let reply = w.alice.get("/sync?filter=%7Bnot%20json").await;
    expect_error(
        &reply,
        400,
        "M_NOT_JSON",
        "an inline filter that is not JSON",
    );
    let reply = w
        .alice
        .get(&format!("/rooms/{r}/messages?filter=%7B"))
        .await;
    expect_error(
        &reply,
        400,
        "M_NOT_JSON",
        "a /messages filter that is not JSON",
    );
    let reply = w
        .alice
        .get(&format!("/rooms/{r}/messages?filter=%5B%5D"))
        .await;
    expect_error(
        &reply,
        400,
        "M_BAD_JSON",
        "a /messages filter that is a list",
    );
    // Nothing was stored.
    let msgs = w
        .alice
        .get(&format!("/rooms/{r}/messages?dir=b&limit=1"))
        .await
        .ok();
    assert_eq!(msgs["chunk"][0]["event_id"], w.event.as_str());
    assert_alive(&w.server, &w.alice).await;
}

#[tokio::test]
async fn refuses_very_long_strings_where_the_spec_or_server_bounds_them() {
    let w = world().await;
    let a = enc(&w.alice.user_id);
    let r = enc(&w.room);
    // Display names are bounded at 256 bytes; avatar URLs at 1000.
    let reply = w
        .alice
        .put(
            &format!("/profile/{a}/displayname"),
            json!({"displayname": "n".repeat(257)}),
        )
        .await;
    expect_error(&reply, 400, "M_INVALID_PARAM", "a 257-byte display name");
    let reply = w
        .alice
        .put(
            &format!("/profile/{a}/displayname"),
            json!({"displayname": "\u{1F600}".repeat(65)}),
        )
        .await;
    expect_error(&reply, 400, "M_INVALID_PARAM", "65 emoji are 260 bytes");
    let long_url = format!("mxc://localhost/{}", "u".repeat(70_000));
    let reply = w
        .alice
        .put(
            &format!("/profile/{a}/avatar_url"),
            json!({"avatar_url": long_url}),
        )
        .await;
    expect_error(&reply, 400, "M_INVALID_PARAM", "a 70 kB avatar URL");
    // Neither was half-written: the profile and the member event are unchanged.
    let p = w.server.client().get(&format!("/profile/{a}")).await.ok();
    assert_eq!(p, json!({}), "a refused profile change was stored");
    let member = w
        .alice
        .get(&format!("/rooms/{r}/state/m.room.member/{a}"))
        .await
        .ok();
    assert!(member.get("avatar_url").is_none(), "{member}");
    let msgs = w
        .alice
        .get(&format!("/rooms/{r}/messages?dir=b&limit=1"))
        .await
        .ok();
    assert_eq!(msgs["chunk"][0]["event_id"], w.event.as_str());
    // Passwords over 512 bytes, usernames over 200, aliases over 200.
    let reply = w
        .server
        .client()
        .post(
            "/register",
            json!({"username": "longpw", "password": "p".repeat(513), "auth": {"type": "m.login.dummy"}}),
        )
        .await;
    expect_error(&reply, 400, "M_INVALID_PARAM", "a 513-byte password");
    let reply = w
        .server
        .client()
        .post(
            "/register",
            json!({"username": "u".repeat(201), "password": "pw", "auth": {"type": "m.login.dummy"}}),
        )
        .await;
    expect_error(&reply, 400, "M_INVALID_USERNAME", "a 201-byte username");
    let reply = w
        .alice
        .post("/createRoom", json!({"room_alias_name": "a".repeat(201)}))
        .await;
    expect_error(&reply, 400, "M_INVALID_PARAM", "a 201-byte alias name");
    // A long login user that is no user is just a failed login.
    let reply = w
        .server
        .client()
        .post(
            "/login",
            json!({"type": "m.login.password", "user": "@".repeat(10_000), "password": "x"}),
        )
        .await;
    expect_error(&reply, 403, "M_FORBIDDEN", "a 10 kB login user");
    // Long but legal strings are kept whole.
    let long = "\u{5E9}".repeat(20_000);
    let id = w.alice.send_text(&w.room, &long).await;
    let ev = w
        .alice
        .get(&format!("/rooms/{r}/event/{}", enc(&id)))
        .await
        .ok();
    assert_eq!(ev["content"]["body"], long.as_str());
    assert_alive(&w.server, &w.alice).await;
}

// ---------------------------------------------------------------------------------------------
// Registration
// ---------------------------------------------------------------------------------------------

async fn try_register(server: &TestServer, username: &str) -> Reply {
    server
        .client()
        .post(
            "/register",
            json!({"username": username, "password": "password", "auth": {"type": "m.login.dummy"}}),
        )
        .await
}

#[tokio::test]
async fn refuses_usernames_with_zero_width_or_invalid_characters() {
    let server = TestServer::start().await;
    let bad = [
        "al\u{200B}ice",
        "\u{200B}",
        "alice\u{200D}",
        "\u{FEFF}alice",
        "ali ce",
        "alice:evil",
        "@alice:localhost",
        "\u{E5}lice",
        "\u{0430}lice",
        "alice\u{0}",
        "alice\n",
        "\u{1F600}",
        "",
        "#room",
        "ali\u{202E}ce",
    ];
    for name in bad {
        let reply = try_register(&server, name).await;
        expect_error(
            &reply,
            400,
            "M_INVALID_USERNAME",
            &format!("register {name:?}"),
        );
        let reply = server
            .client()
            .get(&format!("/register/available?username={}", enc(name)))
            .await;
        expect_error(
            &reply,
            400,
            "M_INVALID_USERNAME",
            &format!("available {name:?}"),
        );
    }
    // Without the auth step, the username is still checked first.
    let reply = server
        .client()
        .post(
            "/register",
            json!({"username": "al\u{200B}ice", "password": "pw"}),
        )
        .await;
    expect_error(
        &reply,
        400,
        "M_INVALID_USERNAME",
        "a zero-width username, no auth",
    );
    // None of them made an account: alice is free, and registers fine.
    let reply = server
        .client()
        .get("/register/available?username=alice")
        .await;
    assert_eq!(reply.ok()["available"], true);
    let alice = server.register("alice").await;
    assert_eq!(alice.user_id, "@alice:localhost");
    assert_alive(&server, &alice).await;
}

#[tokio::test]
async fn lowercases_uppercase_usernames_and_treats_case_variants_as_taken() {
    let server = TestServer::start().await;
    let alice = server.register("AlIcE").await;
    assert_eq!(alice.user_id, "@alice:localhost");
    for name in ["alice", "ALICE", "Alice"] {
        let reply = try_register(&server, name).await;
        expect_error(&reply, 400, "M_USER_IN_USE", &format!("register {name:?}"));
        let reply = server
            .client()
            .get(&format!("/register/available?username={name}"))
            .await;
        expect_error(&reply, 400, "M_USER_IN_USE", &format!("available {name:?}"));
    }
    let reply = server
        .client()
        .get("/register/available?username=Bob")
        .await;
    assert_eq!(reply.ok()["available"], true);
    // Login is case-insensitive on the localpart too.
    let login = server
        .client()
        .post(
            "/login",
            json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "ALICE"}, "password": "password"}),
        )
        .await
        .ok();
    assert_eq!(login["user_id"], "@alice:localhost");
    assert_alive(&server, &alice).await;
}

#[tokio::test]
async fn refuses_registration_errors_with_the_spec_errcodes() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    // Taken: with and without the auth step.
    let reply = try_register(&server, "alice").await;
    expect_error(&reply, 400, "M_USER_IN_USE", "alice again");
    let reply = server
        .client()
        .post("/register", json!({"username": "alice", "password": "x"}))
        .await;
    expect_error(&reply, 400, "M_USER_IN_USE", "alice again, no auth");
    // Guests are not allowed.
    for path in [
        "/register?kind=guest",
        "/_matrix/client/r0/register?kind=guest",
    ] {
        let reply = server
            .client()
            .post(path, json!({"auth": {"type": "m.login.dummy"}}))
            .await;
        expect_error(&reply, 403, "M_GUEST_ACCESS_FORBIDDEN", path);
    }
    let reply = server
        .client()
        .post(
            "/register?kind=user",
            json!({"username": "kinduser", "password": "pw", "auth": {"type": "m.login.dummy"}}),
        )
        .await;
    assert_eq!(reply.ok()["user_id"], "@kinduser:localhost");
    // A malformed query string.
    let reply = server.client().get("/register/available").await;
    expect_error(
        &reply,
        400,
        "M_INVALID_PARAM",
        "available without a username",
    );
    // No password.
    let reply = server
        .client()
        .post(
            "/register",
            json!({"username": "nopw", "auth": {"type": "m.login.dummy"}}),
        )
        .await;
    expect_error(&reply, 400, "M_MISSING_PARAM", "no password");
    // An unknown auth type answers the flows again with M_UNRECOGNIZED inside.
    let reply = server
        .client()
        .post(
            "/register",
            json!({"username": "weird", "password": "pw", "auth": {"type": "m.login.nope"}}),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 401, "{}", reply.body);
    assert_eq!(reply.body["errcode"], "M_UNRECOGNIZED", "{}", reply.body);
    assert!(reply.body["flows"].is_array(), "{}", reply.body);
    // A device id that cannot be stored must not leave an account behind.
    for device in [json!(""), json!("d".repeat(300))] {
        let reply = server
            .client()
            .post(
                "/register",
                json!({"username": "devbad", "password": "pw", "device_id": device, "auth": {"type": "m.login.dummy"}}),
            )
            .await;
        expect_error(
            &reply,
            400,
            "M_INVALID_PARAM",
            &format!("device id {device}"),
        );
        let reply = server
            .client()
            .get("/register/available?username=devbad")
            .await;
        assert_eq!(
            reply.ok()["available"],
            true,
            "a refused registration made devbad"
        );
    }
    // Login errors.
    let reply = server
        .client()
        .post(
            "/login",
            json!({"type": "m.login.password", "user": "alice", "password": "wrong"}),
        )
        .await;
    expect_error(&reply, 403, "M_FORBIDDEN", "a wrong password");
    let reply = server
        .client()
        .post(
            "/login",
            json!({"type": "m.login.password", "user": "nosuch", "password": "password"}),
        )
        .await;
    expect_error(&reply, 403, "M_FORBIDDEN", "an unknown user");
    let reply = server
        .client()
        .post("/login", json!({"type": "m.login.token", "token": "x"}))
        .await;
    expect_error(&reply, 400, "M_UNKNOWN", "an unsupported login type");
    let reply = server
        .client()
        .post(
            "/login",
            json!({"type": "m.login.password", "password": "password"}),
        )
        .await;
    expect_error(&reply, 400, "M_MISSING_PARAM", "login without a user");
    let reply = server
        .client()
        .post(
            "/login",
            json!({"type": "m.login.password", "identifier": {"type": "m.id.phone"}, "password": "x"}),
        )
        .await;
    expect_error(&reply, 400, "M_INVALID_PARAM", "a phone identifier");
    let reply = server
        .client()
        .post(
            "/login",
            json!({"type": "m.login.password", "user": "alice", "password": "password", "device_id": ""}),
        )
        .await;
    expect_error(
        &reply,
        400,
        "M_INVALID_PARAM",
        "login with an empty device id",
    );
    assert_alive(&server, &alice).await;
}

// ---------------------------------------------------------------------------------------------
// Room creation and aliases
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn refuses_create_room_with_a_taken_alias_or_an_unsupported_version() {
    let w = world().await;
    let rooms_before = w.alice.get("/joined_rooms").await.ok()["joined_rooms"].clone();
    let reply = w
        .alice
        .post("/createRoom", json!({"room_alias_name": "lobby"}))
        .await;
    expect_error(&reply, 400, "M_ROOM_IN_USE", "a taken alias");
    let reply = w
        .bob
        .post(
            "/createRoom",
            json!({"room_alias_name": "lobby", "name": "mine"}),
        )
        .await;
    expect_error(&reply, 400, "M_ROOM_IN_USE", "a taken alias, by bob");
    for version in ["1", "11", "", "banana", "10 ", "\u{1F600}"] {
        let reply = w
            .alice
            .post("/createRoom", json!({"room_version": version}))
            .await;
        expect_error(
            &reply,
            400,
            "M_UNSUPPORTED_ROOM_VERSION",
            &format!("room version {version:?}"),
        );
    }
    for (body, errcode) in [
        (json!({"preset": "nope"}), "M_INVALID_PARAM"),
        (json!({"visibility": "secret"}), "M_INVALID_PARAM"),
        (
            json!({"initial_state": [{"type": "m.room.member", "state_key": "@alice:localhost", "content": {"membership": "join"}}]}),
            "M_INVALID_PARAM",
        ),
        (
            json!({"initial_state": [{"type": "m.room.create", "content": {}}]}),
            "M_INVALID_PARAM",
        ),
        (
            json!({"initial_state": [{"type": "", "content": {}}]}),
            "M_INVALID_PARAM",
        ),
        (
            json!({"initial_state": [{"type": "m.room.topic", "content": "x"}]}),
            "M_BAD_JSON",
        ),
    ] {
        let reply = w.alice.post("/createRoom", body.clone()).await;
        expect_error(&reply, 400, errcode, &format!("createRoom {body}"));
    }
    let rooms_after = w.alice.get("/joined_rooms").await.ok()["joined_rooms"].clone();
    assert_eq!(
        rooms_before, rooms_after,
        "a refused createRoom made a room"
    );
    // The alias still names the first room.
    let a = w
        .server
        .client()
        .get(&format!("/directory/room/{}", enc(&w.alias)))
        .await
        .ok();
    assert_eq!(a["room_id"], w.room.as_str());
    // Putting a taken alias through the directory is a conflict.
    let other = w.alice.create_room(json!({})).await;
    let reply = w
        .alice
        .put(
            &format!("/directory/room/{}", enc(&w.alias)),
            json!({"room_id": other}),
        )
        .await;
    expect_error(
        &reply,
        409,
        "M_UNKNOWN",
        "a taken alias through the directory",
    );
    assert_alive(&w.server, &w.alice).await;
}

// ---------------------------------------------------------------------------------------------
// Query parameters
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn rejects_bad_query_parameters_with_invalid_param() {
    let w = world().await;
    let r = enc(&w.room);
    for path in [
        format!("/rooms/{r}/messages?limit=-1"),
        format!("/rooms/{r}/messages?limit=ten"),
        format!("/rooms/{r}/messages?dir=sideways"),
        format!("/rooms/{r}/messages?from=nonsense"),
        format!("/rooms/{r}/messages?from=t-5"),
        // No position is negative: the server never writes such a token.
        format!("/rooms/{r}/messages?from=s-9223372036854775808_0&dir=b"),
        format!("/rooms/{r}/messages?to=s1"),
        "/sync?timeout=-5".to_string(),
        "/sync?timeout=soon".into(),
        "/sync?since=garbage".into(),
        "/sync?since=s1".into(),
        "/sync?since=s_".into(),
        "/sync?since=s-9223372036854775808_0&timeout=0".into(),
        "/sync?full_state=yes".into(),
        "/publicRooms?limit=-3".into(),
        "/publicRooms?since=abc".into(),
        "/_matrix/media/v3/thumbnail/localhost/abc?width=a&height=1".into(),
        "/_matrix/media/v3/thumbnail/localhost/abc".into(),
        "/_matrix/media/v3/thumbnail/localhost/abc?width=1&height=1&method=stretch".into(),
    ] {
        let reply = w.alice.get(&path).await;
        expect_error(&reply, 400, "M_INVALID_PARAM", &format!("GET {path}"));
    }
    // Extreme but well-formed values are clamped, not errors.
    for path in [
        format!("/rooms/{r}/messages?limit=18446744073709551615"),
        format!("/rooms/{r}/messages?limit=0"),
        format!("/rooms/{r}/messages?from=t9223372036854775807&dir=b"),
        format!("/rooms/{r}/messages?from=s9223372036854775807_0&dir=f"),
        "/publicRooms?limit=18446744073709551615".into(),
        "/publicRooms?since=18446744073709551615".into(),
        "/publicRooms?since=18446744073709551615&limit=18446744073709551615".into(),
        "/sync?since=s9223372036854775807_18446744073709551615&timeout=0".into(),
        "/sync?timeout=18446744073709551615&since=s0_0&filter=%7B%7D&full_state=true".into(),
    ] {
        let reply = tokio::time::timeout(WAIT, w.alice.get(&path))
            .await
            .unwrap_or_else(|_| panic!("GET {path} did not answer in time"));
        assert_eq!(reply.status.as_u16(), 200, "GET {path}: {}", reply.body);
    }
    let reply = w
        .server
        .client()
        .post(
            "/publicRooms",
            json!({"since": "18446744073709551615", "limit": 5}),
        )
        .await;
    expect_error(
        &reply,
        401,
        "M_MISSING_TOKEN",
        "POST publicRooms without a token",
    );
    let reply = w
        .alice
        .post(
            "/publicRooms",
            json!({"since": "18446744073709551615", "limit": 18446744073709551615u64}),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.body);
    // A typing time-out past the spec's integers is refused, not an overflow (a large one
    // within them is capped: spec_input.rs).
    let reply = w
        .alice
        .put(
            &format!("/rooms/{r}/typing/{}", enc(&w.alice.user_id)),
            json!({"typing": true, "timeout": 18446744073709551615u64}),
        )
        .await;
    expect_error(&reply, 400, "M_BAD_JSON", "a typing time-out of 2^64 - 1");
    assert_alive(&w.server, &w.alice).await;
}

// ---------------------------------------------------------------------------------------------
// Rate limits
// ---------------------------------------------------------------------------------------------

#[track_caller]
fn retry_after(r: &Reply, what: &str) -> u64 {
    expect_error(r, 429, "M_LIMIT_EXCEEDED", what);
    let ms = r.body["retry_after_ms"]
        .as_u64()
        .unwrap_or_else(|| panic!("{what}: retry_after_ms is not an integer: {}", r.body));
    assert!(ms > 0, "{what}: retry_after_ms is 0");
    ms
}

#[tokio::test]
async fn answers_limit_exceeded_with_retry_after_when_rate_limited() {
    let w = world_with(|c| {
        c.rate_limits.enabled = true;
        c.rate_limits.message_burst = 3;
        c.rate_limits.messages_per_second = 0.5;
        c.rate_limits.registration_burst = 3;
        c.rate_limits.registrations_per_second = 0.001;
        c.rate_limits.login_burst = 2;
        c.rate_limits.logins_per_second = 0.001;
    })
    .await;
    let r = enc(&w.room);
    // The world setup sent one message as alice: two more fit the burst of three.
    let mut sent = vec![w.event.clone()];
    let mut limited = None;
    for i in 0..10 {
        let reply = w
            .alice
            .put(
                &format!("/rooms/{r}/send/m.room.message/{}", txn()),
                json!({"msgtype": "m.text", "body": format!("m{i}")}),
            )
            .await;
        if reply.status.as_u16() == 429 {
            limited = Some(reply);
            break;
        }
        sent.push(
            reply.ok()["event_id"]
                .as_str()
                .expect("event_id")
                .to_string(),
        );
    }
    let limited = limited.expect("ten quick sends were never rate limited");
    assert!(sent.len() >= 3, "limited before the burst: {sent:?}");
    let wait = retry_after(&limited, "a send past the burst");
    assert!(
        wait <= 2_000,
        "retry_after_ms {wait} is longer than one token takes"
    );
    // Redactions draw on the same bucket.
    let reply = w
        .alice
        .put(
            &format!("/rooms/{r}/redact/{}/{}", enc(&w.event), txn()),
            json!({}),
        )
        .await;
    retry_after(&reply, "a redaction past the burst");
    // The limited sends stored nothing.
    let msgs = w
        .alice
        .get(&format!("/rooms/{r}/messages?dir=b&limit=1"))
        .await
        .ok();
    assert_eq!(msgs["chunk"][0]["event_id"], sent.last().unwrap().as_str());
    // Buckets are per user: bob still sends.
    bob_sends(&w).await;
    // After the wait, alice may send again.
    tokio::time::sleep(Duration::from_millis(wait + 250).min(WAIT)).await;
    w.alice.send_text(&w.room, "after the wait").await;

    // Registrations: alice and bob took two of three.
    let reply = try_register(&w.server, "carol").await;
    assert_eq!(reply.ok()["user_id"], "@carol:localhost");
    let reply = try_register(&w.server, "dave").await;
    retry_after(&reply, "a registration past the burst");
    // Logins: two, then limited, even with the right password.
    for _ in 0..2 {
        w.server
            .client()
            .post(
                "/login",
                json!({"type": "m.login.password", "user": "alice", "password": "password"}),
            )
            .await
            .ok();
    }
    let reply = w
        .server
        .client()
        .post(
            "/login",
            json!({"type": "m.login.password", "user": "alice", "password": "password"}),
        )
        .await;
    retry_after(&reply, "a login past the burst");
    assert_alive(&w.server, &w.alice).await;
}

async fn bob_sends(w: &World) {
    w.bob.send_text(&w.room, "bob is not limited").await;
}

// ---------------------------------------------------------------------------------------------
// Permissions on other users' data
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn forbids_acting_on_another_users_data() {
    let w = world().await;
    let r = enc(&w.room);
    let b = enc(&w.bob.user_id);
    for (method, path, body) in [
        (
            Method::PUT,
            format!("/profile/{b}/displayname"),
            Some(json!({"displayname": "pwned"})),
        ),
        (
            Method::PUT,
            format!("/profile/{b}/avatar_url"),
            Some(json!({"avatar_url": "mxc://localhost/x"})),
        ),
        (
            Method::PUT,
            format!("/rooms/{r}/typing/{b}"),
            Some(json!({"typing": true})),
        ),
        (Method::POST, format!("/user/{b}/filter"), Some(json!({}))),
        (Method::GET, format!("/user/{b}/filter/0"), None),
        (
            Method::PUT,
            format!("/user/{b}/account_data/org.example.x"),
            Some(json!({})),
        ),
        (
            Method::GET,
            format!("/user/{b}/account_data/org.example.x"),
            None,
        ),
        (
            Method::PUT,
            format!("/user/{b}/rooms/{r}/account_data/org.example.x"),
            Some(json!({})),
        ),
        (
            Method::PUT,
            format!("/rooms/{r}/state/org.example.thing/{b}"),
            Some(json!({"mine": true})),
        ),
        (
            Method::PUT,
            format!("/rooms/{r}/state/m.room.create"),
            Some(json!({})),
        ),
    ] {
        let reply = w.alice.request(method.clone(), &path, body.as_ref()).await;
        expect_error(&reply, 403, "M_FORBIDDEN", &format!("{method} {path}"));
    }
    let p = w.server.client().get(&format!("/profile/{b}")).await.ok();
    assert!(p.get("displayname").is_none(), "{p}");
    assert_alive(&w.server, &w.alice).await;
}

#[tokio::test]
async fn uploads_filters_concurrently_without_a_server_error() {
    let w = world().await;
    let path = format!("/user/{}/filter", enc(&w.alice.user_id));
    let mut handles = Vec::new();
    for i in 0..24 {
        let alice = w.alice.clone();
        let path = path.clone();
        handles.push(tokio::spawn(async move {
            let body = json!({"room": {"timeline": {"limit": i + 1}}});
            alice.post(&path, body).await
        }));
    }
    let mut ids = Vec::new();
    for h in handles {
        let reply = tokio::time::timeout(WAIT, h)
            .await
            .expect("the upload answered in time")
            .expect("the upload task ran");
        let id = reply.ok()["filter_id"]
            .as_str()
            .expect("filter_id")
            .to_string();
        ids.push(id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 24, "filter ids are not distinct: {ids:?}");
    assert_alive(&w.server, &w.alice).await;
}

#[tokio::test]
async fn logs_out_many_devices_concurrently_without_a_server_error() {
    let w = world().await;
    let mut devices = Vec::new();
    for _ in 0..16 {
        let login = w
            .server
            .client()
            .post(
                "/login",
                json!({"type": "m.login.password", "user": "alice", "password": "password"}),
            )
            .await
            .ok();
        let token = login["access_token"].as_str().expect("access_token");
        devices.push(with_token(&w.server, token));
    }
    let mut handles = Vec::new();
    for c in devices.clone() {
        handles.push(tokio::spawn(
            async move { c.post("/logout", json!({})).await },
        ));
    }
    for h in handles {
        let reply = tokio::time::timeout(WAIT, h)
            .await
            .expect("the logout answered in time")
            .expect("the logout task ran");
        assert_eq!(reply.ok(), json!({}));
    }
    for c in &devices {
        let reply = c.get("/account/whoami").await;
        expect_error(
            &reply,
            401,
            "M_UNKNOWN_TOKEN",
            "a token logged out concurrently",
        );
    }
    // Alice's first device was not among them.
    assert_alive(&w.server, &w.alice).await;
}

// ---------------------------------------------------------------------------------------------
// Garbage
// ---------------------------------------------------------------------------------------------

/// xorshift64*: deterministic per seed, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const KEYS: &[&str] = &[
    "user_id",
    "typing",
    "timeout",
    "room_id",
    "displayname",
    "avatar_url",
    "visibility",
    "username",
    "password",
    "auth",
    "type",
    "identifier",
    "user",
    "name",
    "topic",
    "invite",
    "initial_state",
    "room_version",
    "preset",
    "limit",
    "since",
    "filter",
    "reason",
    "thread_id",
    "m.read",
    "m.fully_read",
    "room",
    "timeline",
    "rooms",
    "types",
    "body",
    "msgtype",
    "devices",
    "device_id",
    "is_direct",
    "creation_content",
    "power_level_content_override",
    "room_alias_name",
    "display_name",
    "content",
    "state_key",
    "inhibit_login",
    "generic_search_term",
    "session",
    "users",
    "",
    "\u{0}",
    "\u{1F600}",
];

const STRINGS: &[&str] = &[
    "",
    "@alice:localhost",
    "@bob:localhost",
    "@",
    "!nosuch:localhost",
    "#lobby:localhost",
    "$nosuch",
    "m.login.dummy",
    "m.login.password",
    "m.id.user",
    "public",
    "private",
    "public_chat",
    "10",
    "\u{0}",
    "\u{200B}",
    "\u{202E}",
    "\u{1F600}",
    "\u{FFFF}",
    "mxc://localhost/x",
    "s0_0",
    "t0",
    "18446744073709551616",
    "-1",
    "m.room.message",
    "%00",
    "../../etc/passwd",
    "'; DROP TABLE events; --",
];

fn random_string(rng: &mut Rng) -> String {
    match rng.below(4) {
        0 => (*rng.pick(STRINGS)).to_string(),
        1 => (0..rng.below(40))
            .map(|_| char::from_u32(rng.below(0x11_0000) as u32).unwrap_or('\u{FFFD}'))
            .collect(),
        2 => "z".repeat(rng.below(5_000)),
        _ => (0..rng.below(20))
            .map(|_| (b' ' + rng.below(95) as u8) as char)
            .collect(),
    }
}

fn random_json(rng: &mut Rng, depth: usize) -> Value {
    let kinds = if depth == 0 { 6 } else { 8 };
    match rng.below(kinds) {
        0 => Value::Null,
        1 => json!(rng.below(2) == 0),
        2 => match rng.below(6) {
            0 => json!(rng.next()),
            1 => json!(-(rng.below(1_000_000) as i64)),
            2 => json!(0),
            3 => serde_json::from_str("1e999").unwrap_or(json!(1)),
            4 => serde_json::from_str("-0.0000000001").unwrap_or(json!(1)),
            _ => serde_json::from_str("123456789012345678901234567890").unwrap_or(json!(1)),
        },
        3 | 4 => json!(random_string(rng)),
        5 => json!(*rng.pick(STRINGS)),
        6 => Value::Array(
            (0..rng.below(5))
                .map(|_| random_json(rng, depth - 1))
                .collect(),
        ),
        _ => {
            let mut m = serde_json::Map::new();
            for _ in 0..rng.below(6) {
                let key = if rng.below(4) == 0 {
                    random_string(rng)
                } else {
                    (*rng.pick(KEYS)).to_string()
                };
                m.insert(key, random_json(rng, depth - 1));
            }
            Value::Object(m)
        }
    }
}

fn garbage_body(rng: &mut Rng) -> Vec<u8> {
    match rng.below(9) {
        0 => (0..rng.below(300)).map(|_| rng.next() as u8).collect(),
        1 => (0..rng.below(300))
            .map(|_| b' ' + rng.below(95) as u8)
            .collect(),
        2..=4 => random_json(rng, 4).to_string().into_bytes(),
        5 => {
            // A valid body, mutated.
            let mut b = random_json(rng, 3).to_string().into_bytes();
            for _ in 0..1 + rng.below(4) {
                if b.is_empty() {
                    break;
                }
                let i = rng.below(b.len());
                match rng.below(3) {
                    0 => b[i] = rng.next() as u8,
                    1 => {
                        b.remove(i);
                    }
                    _ => b.insert(i, *rng.pick(b"{}[]\",:\\\x00")),
                }
            }
            b
        }
        6 => {
            let n = *rng.pick(&[64usize, 127, 128, 129, 1_000, 100_000]);
            let (open, close) = if rng.below(2) == 0 {
                ("[", "]")
            } else {
                ("{\"a\":", "}")
            };
            format!("{}1{}", open.repeat(n), close.repeat(n)).into_bytes()
        }
        7 => rng
            .pick(&[
                &br#"{"body":"\ud800"}"#[..],
                b"1e99999",
                b"-0",
                b"18446744073709551616",
                br#"{"typing":true,"timeout":1e400}"#,
                br#"{"limit":-1}"#,
                b"\"\"",
                b"null",
                br#""\u0000""#,
                br#"{"user_id":"@alice:localhost"}"#,
                br#"{"visibility":"public"}"#,
                br#"{"devices":[]}"#,
                b"",
                b"   ",
                b"\xef\xbb\xbf{}",
            ])
            .to_vec(),
        _ => {
            let mut m = serde_json::Map::new();
            for _ in 0..rng.below(8) {
                m.insert((*rng.pick(KEYS)).to_string(), random_json(rng, 2));
            }
            Value::Object(m).to_string().into_bytes()
        }
    }
}

/// A path segment: usually the real one, sometimes garbage.
fn segment(rng: &mut Rng, real: &str) -> String {
    match rng.below(6) {
        0 => enc(&random_string(rng)),
        1 => {
            let bytes: Vec<u8> = (0..1 + rng.below(12)).map(|_| rng.next() as u8).collect();
            bytes.iter().map(|b| format!("%{b:02X}")).collect()
        }
        _ => enc(real),
    }
}

#[tokio::test]
async fn garbage_bodies_to_every_route_never_cause_a_server_error() {
    let w = world().await;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    eprintln!("garbage seed: {seed}");
    let anonymous = w.server.client();
    let bogus = with_token(&w.server, "pb_bogus");
    let mut handles = Vec::new();
    for worker in 0..8u64 {
        let alice = w.alice.clone();
        let anonymous = anonymous.clone();
        let bogus = bogus.clone();
        let room = w.room.clone();
        let event = w.event.clone();
        let user = w.alice.user_id.clone();
        let device = w.alice.device_id.clone();
        handles.push(tokio::spawn(async move {
            let mut rng = Rng(seed.wrapping_add(worker.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1);
            for i in 0..150 {
                let r = segment(&mut rng, &room);
                let u = segment(&mut rng, &user);
                let e = segment(&mut rng, &event);
                let t = segment(&mut rng, "m.room.message");
                let k = segment(&mut rng, "");
                let d = segment(&mut rng, &device);
                let x = format!("g{worker}_{i}");
                let routes: Vec<(Method, String)> = vec![
                    (Method::POST, "/register".into()),
                    (Method::POST, "/register?kind=user".into()),
                    (Method::POST, "/login".into()),
                    (Method::POST, "/createRoom".into()),
                    (Method::POST, format!("/join/{r}")),
                    (Method::POST, format!("/rooms/{r}/join")),
                    (Method::PUT, format!("/rooms/{r}/send/{t}/{x}")),
                    (
                        Method::POST,
                        format!("/_matrix/client/api/v1/rooms/{r}/send/{t}"),
                    ),
                    (Method::PUT, format!("/rooms/{r}/state/{t}")),
                    (Method::PUT, format!("/rooms/{r}/state/{t}/{k}")),
                    (Method::GET, format!("/rooms/{r}/state/{t}/{k}")),
                    (Method::POST, format!("/rooms/{r}/invite")),
                    (Method::POST, format!("/rooms/{r}/kick")),
                    (Method::POST, format!("/rooms/{r}/ban")),
                    (Method::POST, format!("/rooms/{r}/unban")),
                    (Method::PUT, format!("/directory/room/{k}")),
                    (Method::GET, format!("/directory/room/{k}")),
                    (Method::PUT, format!("/directory/list/room/{r}")),
                    (Method::POST, "/publicRooms".into()),
                    (Method::PUT, format!("/profile/{u}/displayname")),
                    (Method::PUT, format!("/profile/{u}/avatar_url")),
                    (Method::GET, format!("/profile/{u}")),
                    (Method::PUT, format!("/rooms/{r}/typing/{u}")),
                    (Method::POST, format!("/rooms/{r}/receipt/{t}/{e}")),
                    (Method::POST, format!("/rooms/{r}/read_markers")),
                    (Method::PUT, format!("/user/{u}/account_data/{t}")),
                    (Method::GET, format!("/user/{u}/account_data/{t}")),
                    (Method::PUT, format!("/user/{u}/rooms/{r}/account_data/{t}")),
                    (Method::POST, format!("/user/{u}/filter")),
                    (Method::GET, format!("/user/{u}/filter/{k}")),
                    (Method::PUT, format!("/rooms/{r}/redact/{e}/{x}")),
                    (Method::GET, format!("/rooms/{r}/event/{e}")),
                    (
                        Method::GET,
                        format!("/rooms/{r}/messages?filter={k}&from={k}"),
                    ),
                    (Method::GET, format!("/sync?filter={k}&since={k}&timeout=0")),
                    (Method::PUT, format!("/devices/{d}")),
                    (Method::DELETE, format!("/devices/{d}")),
                    (Method::POST, "/delete_devices".into()),
                    (Method::POST, "/_matrix/media/v3/upload".into()),
                    (Method::POST, "/_matrix/client/v1/media/upload".into()),
                    (
                        Method::GET,
                        format!("/_matrix/client/v1/media/thumbnail/{k}/{k}?width={k}&height=1"),
                    ),
                    (Method::GET, format!("/_matrix/media/v3/download/{k}/{k}")),
                    (Method::PUT, format!("/rooms/{r}/{k}")),
                ];
                let (method, path) = rng.pick(&routes).clone();
                let body = garbage_body(&mut rng);
                let client = match rng.below(10) {
                    0 => &anonymous,
                    1 => &bogus,
                    _ => &alice,
                };
                let content_type = *rng.pick(&[
                    "application/json",
                    "application/json",
                    "text/plain",
                    "application/octet-stream",
                ]);
                let reply = client
                    .raw(method.clone(), &path, content_type, body.clone())
                    .await;
                let what = format!(
                    "{method} {path} with {:?}",
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                );
                assert!(
                    reply.status.as_u16() < 500,
                    "{what}: {} {}",
                    reply.status,
                    reply.body
                );
                if reply.status.as_u16() >= 400 {
                    let uia = reply.status.as_u16() == 401 && reply.body["flows"].is_array();
                    assert!(
                        uia || reply.body["errcode"]
                            .as_str()
                            .is_some_and(|c| c.starts_with("M_")),
                        "{what}: not a Matrix error: {} {}",
                        reply.status,
                        reply.body
                    );
                    assert!(
                        uia || reply.body["error"].is_string(),
                        "{what}: no error message: {}",
                        reply.body
                    );
                }
            }
        }));
    }
    for h in handles {
        tokio::time::timeout(Duration::from_secs(120), h)
            .await
            .expect("the garbage burst finished in time")
            .expect("a garbage worker panicked");
    }
    // The server is alive and alice's token and room work.
    let mut alice = w.alice.clone();
    if alice.get("/account/whoami").await.status.as_u16() != 200 {
        // The garbage may have deleted alice's device; log in again.
        let login = w
            .server
            .client()
            .post(
                "/login",
                json!({"type": "m.login.password", "user": "alice", "password": "password"}),
            )
            .await
            .ok();
        alice.token = login["access_token"].as_str().map(str::to_string);
    }
    assert_alive(&w.server, &alice).await;
    let resp = alice
        .http
        .get(alice.url("/sync?timeout=0"))
        .bearer_auth(alice.token.clone().unwrap_or_default())
        .timeout(WAIT)
        .send()
        .await
        .expect("sync sent");
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await.expect("sync body");
    let sync: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "the sync after the garbage is not JSON a client can read ({e}): {}",
            &text[..text.len().min(3000)]
        )
    });
    assert!(sync["next_batch"].is_string(), "{sync}");
}
