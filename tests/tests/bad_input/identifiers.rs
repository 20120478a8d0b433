//! Identifiers: malformed room, user, alias and event ids in paths and bodies are
//! `M_INVALID_PARAM`; well-formed unknown ones are `M_NOT_FOUND`.

use super::routes::room_routes;
use super::*;

#[tokio::test]
async fn rejects_malformed_room_ids_in_paths_with_invalid_param() {
    let w = world().await;
    let a = enc(&w.alice.user_id);
    let e = enc(&w.event);
    let bad_rooms = [
        "notaroom",
        // A room id without a server is version 12's: `!` and a 43-character hash, nothing
        // else.
        "!nocolon",
        "!",
        "!a b",
        "!:localhost",
        "#lobby:localhost",
        "@alice:localhost",
        "!a:bad server",
        "!a:",
        "!a\u{0}b:localhost",
    ];
    for bad in bad_rooms {
        let r = enc(bad);
        let mut routes = room_routes(&r, &a, &e);
        // Public, so not in the table: who may see the room in the directory.
        routes.push((Method::GET, format!("/directory/list/room/{r}"), None));
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
