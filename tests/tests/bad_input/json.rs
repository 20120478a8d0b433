//! Malformed and mistyped JSON: every body route refuses what is not JSON, or JSON of the wrong
//! shape, with `M_NOT_JSON` / `M_BAD_JSON`.

use super::*;

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
