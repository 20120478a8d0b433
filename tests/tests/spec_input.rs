//! Input the spec does not allow is refused: control characters in names, device ids and
//! reasons; state contents the server interprets (join rules, history visibility, guest
//! access, power levels, membership, names, aliases) of the wrong type or value; integers
//! past 2^53 - 1 in event content and in request bodies; enum values outside the
//! spec in queries and bodies; identifiers outside the spec's grammar; filters with mistyped
//! fields; tokens in a spelling the server never writes; and a malformed chunked body. Each
//! is `400 M_BAD_JSON` (wrong shape) or `400 M_INVALID_PARAM` (bad value), or `413` for what
//! is too large, and nothing of a refused request is stored.

use plugboard_tests::{enc, Client, Reply, TestServer, WAIT};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Asserts the exact Matrix error body with this status and errcode.
#[track_caller]
fn refused(r: &Reply, status: u16, errcode: &str, what: &str) {
    assert_eq!(
        (r.status.as_u16(), r.body["errcode"].as_str()),
        (status, Some(errcode)),
        "{what}: {}",
        r.body
    );
    let message = r.body["error"].as_str().unwrap_or("");
    assert!(!message.is_empty(), "{what}: no message: {}", r.body);
    assert_eq!(
        r.body.as_object().map(|o| o.len()),
        Some(2),
        "{what}: {}",
        r.body
    );
}

fn txn() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("spec{}", N.fetch_add(1, Ordering::Relaxed))
}

/// A server with alice (who made a public room) and bob, both in it.
async fn room() -> (TestServer, Client, Client, String) {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice
        .create_room(json!({"preset": "public_chat", "name": "Lobby"}))
        .await;
    bob.join(&room).await.ok();
    (server, alice, bob, room)
}

/// The id of the newest event of the room, as alice sees it.
async fn newest_event(alice: &Client, room: &str) -> Value {
    let msgs = alice
        .get(&format!("/rooms/{}/messages?dir=b&limit=1", enc(room)))
        .await
        .ok();
    msgs["chunk"][0]["event_id"].clone()
}

#[tokio::test]
async fn refuses_nul_and_control_characters_in_names_device_ids_and_reasons() {
    let (server, alice, bob, room) = room().await;
    let r = enc(&room);
    let a = enc(&alice.user_id);
    let before = newest_event(&alice, &room).await;

    for name in ["nul\u{0}inside", "two\nlines", "\u{1b}[31mred", "tab\there"] {
        let reply = alice
            .put(
                &format!("/profile/{a}/displayname"),
                json!({ "displayname": name }),
            )
            .await;
        refused(
            &reply,
            400,
            "M_INVALID_PARAM",
            &format!("displayname {name:?}"),
        );
    }
    let profile = server.client().get(&format!("/profile/{a}")).await.ok();
    assert_eq!(profile["displayname"], "alice", "kept as it was: {profile}");

    let reply = alice
        .put(
            &format!("/devices/{}", enc(&alice.device_id)),
            json!({"display_name": "phone\u{0}"}),
        )
        .await;
    refused(
        &reply,
        400,
        "M_INVALID_PARAM",
        "a device display name with NUL",
    );

    // A device id with NUL or a space, at login and at registration; the refused
    // registration leaves no account behind.
    let reply = server
        .client()
        .post(
            "/login",
            json!({"type": "m.login.password", "user": "alice", "password": "password",
                   "device_id": "DEV\u{0}ICE"}),
        )
        .await;
    refused(
        &reply,
        400,
        "M_INVALID_PARAM",
        "a device id with NUL at login",
    );
    for (device_id, device_name) in [("A B", "ok"), ("GOOD", "bell\u{7}")] {
        let reply = server
            .client()
            .post(
                "/register",
                json!({"username": "carol", "password": "pw", "auth": {"type": "m.login.dummy"},
                       "device_id": device_id, "initial_device_display_name": device_name}),
            )
            .await;
        refused(
            &reply,
            400,
            "M_INVALID_PARAM",
            "a bad device at registration",
        );
    }
    let available = server
        .client()
        .get("/register/available?username=carol")
        .await
        .ok();
    assert_eq!(available["available"], true);

    // Reasons of kicks, bans, leaves and redactions.
    let bob_id = bob.user_id.clone();
    for (path, body) in [
        ("kick", json!({"user_id": bob_id, "reason": "bye\u{0}"})),
        ("ban", json!({"user_id": bob_id, "reason": "\u{1b}[2J"})),
    ] {
        let reply = alice.post(&format!("/rooms/{r}/{path}"), body).await;
        refused(&reply, 400, "M_INVALID_PARAM", path);
    }
    let reply = bob
        .post(&format!("/rooms/{r}/leave"), json!({"reason": "x\u{0}"}))
        .await;
    refused(&reply, 400, "M_INVALID_PARAM", "a leave reason with NUL");
    let event = before.as_str().expect("an event").to_string();
    let reply = alice
        .put(
            &format!("/rooms/{r}/redact/{}/{}", enc(&event), txn()),
            json!({"reason": "nul\u{0}"}),
        )
        .await;
    refused(
        &reply,
        400,
        "M_INVALID_PARAM",
        "a redaction reason with NUL",
    );
    // A reason over several lines is still a reason.
    let reply = alice
        .post(
            &format!("/rooms/{r}/invite"),
            json!({"user_id": "@nobody:localhost", "reason": "line one\nline two"}),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.body);
    let invite = alice
        .get(&format!(
            "/rooms/{r}/state/m.room.member/{}",
            enc("@nobody:localhost")
        ))
        .await
        .ok();
    assert_eq!(invite["reason"], "line one\nline two");

    // Room names are one line; topics may break lines but hold no NUL. A refused creation
    // makes no room.
    let rooms_before = alice.get("/joined_rooms").await.ok();
    for (body, what) in [
        (json!({"name": "a\nb"}), "a room name over two lines"),
        (json!({"name": "n".repeat(256)}), "a 256-byte room name"),
        (json!({"topic": "nul\u{0}"}), "a topic with NUL"),
    ] {
        let reply = alice.post("/createRoom", body).await;
        refused(&reply, 400, "M_INVALID_PARAM", what);
    }
    assert_eq!(alice.get("/joined_rooms").await.ok(), rooms_before);
    let reply = alice
        .put(
            &format!("/rooms/{r}/state/m.room.name"),
            json!({"name": "\u{0}"}),
        )
        .await;
    refused(&reply, 400, "M_INVALID_PARAM", "m.room.name with NUL");
    let reply = alice
        .put(
            &format!("/rooms/{r}/state/m.room.topic"),
            json!({"topic": "two\nlines are fine"}),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.body);

    // Only the invite and the topic were stored; the bob membership is as it was.
    let member = alice
        .get(&format!(
            "/rooms/{r}/state/m.room.member/{}",
            enc(&bob.user_id)
        ))
        .await
        .ok();
    assert_eq!(member["membership"], "join");
    let name = alice
        .get(&format!("/rooms/{r}/state/m.room.name"))
        .await
        .ok();
    assert_eq!(name["name"], "Lobby");
}

#[tokio::test]
async fn refuses_state_contents_the_server_interprets_when_they_break_the_spec() {
    let (_server, alice, _bob, room) = room().await;
    let r = enc(&room);
    let a = enc(&alice.user_id);
    let me = alice.user_id.as_str();
    let cases = [
        (
            "m.room.join_rules",
            "",
            json!({"join_rule": 5}),
            "M_BAD_JSON",
        ),
        (
            "m.room.join_rules",
            "",
            json!({"join_rule": "open"}),
            "M_INVALID_PARAM",
        ),
        ("m.room.join_rules", "", json!({}), "M_BAD_JSON"),
        (
            "m.room.join_rules",
            "",
            json!({"join_rule": "restricted", "allow": "all"}),
            "M_BAD_JSON",
        ),
        (
            "m.room.history_visibility",
            "",
            json!({"history_visibility": "everyone"}),
            "M_INVALID_PARAM",
        ),
        (
            "m.room.history_visibility",
            "",
            json!({"history_visibility": null}),
            "M_BAD_JSON",
        ),
        (
            "m.room.guest_access",
            "",
            json!({"guest_access": true}),
            "M_BAD_JSON",
        ),
        (
            "m.room.power_levels",
            "",
            json!({"users": {"@alice:localhost": "100"}}),
            "M_BAD_JSON",
        ),
        (
            "m.room.power_levels",
            "",
            json!({"ban": 50.5}),
            "M_BAD_JSON",
        ),
        (
            "m.room.power_levels",
            "",
            json!({"users": {"not a user": 1}}),
            "M_BAD_JSON",
        ),
        (
            "m.room.member",
            me,
            json!({"membership": "joined"}),
            "M_INVALID_PARAM",
        ),
        (
            "m.room.member",
            me,
            json!({"membership": ["join"]}),
            "M_BAD_JSON",
        ),
        (
            "m.room.member",
            me,
            json!({"membership": "join", "displayname": 7}),
            "M_BAD_JSON",
        ),
        ("m.room.name", "", json!({"name": 7}), "M_BAD_JSON"),
        ("m.room.topic", "", json!({}), "M_BAD_JSON"),
        (
            "m.room.canonical_alias",
            "",
            json!({"alias": "lobby"}),
            "M_INVALID_PARAM",
        ),
        (
            "m.room.canonical_alias",
            "",
            json!({"alt_aliases": ["#ok:localhost", 5]}),
            "M_BAD_JSON",
        ),
        (
            "m.room.avatar",
            "",
            json!({"url": "https://example.org/a.png"}),
            "M_INVALID_PARAM",
        ),
    ];
    for (kind, key, content, errcode) in cases {
        let reply = alice
            .put(
                &format!("/rooms/{r}/state/{kind}/{}", enc(key)),
                content.clone(),
            )
            .await;
        refused(&reply, 400, errcode, &format!("{kind} {content}"));
    }
    // Nothing changed: the room is still public, shared, and alice still has 100.
    let rules = alice
        .get(&format!("/rooms/{r}/state/m.room.join_rules"))
        .await
        .ok();
    assert_eq!(rules, json!({"join_rule": "public"}));
    let pl = alice
        .get(&format!("/rooms/{r}/state/m.room.power_levels"))
        .await
        .ok();
    // Unchanged: alice created the (version 12) room, whose levels do not name creators.
    assert!(pl["users"].get(&alice.user_id).is_none(), "{pl}");
    let me = alice
        .get(&format!("/rooms/{r}/state/m.room.member/{a}"))
        .await
        .ok();
    assert_eq!(me["membership"], "join");
    // The same rules hold for what createRoom puts in the room.
    for body in [
        json!({"initial_state": [{"type": "m.room.join_rules", "content": {"join_rule": "everyone"}}]}),
        json!({"power_level_content_override": {"events_default": "0"}}),
        json!({"creation_content": {"m.federate": "no"}}),
    ] {
        let reply = alice.post("/createRoom", body.clone()).await;
        assert_eq!(reply.status.as_u16(), 400, "{body}: {}", reply.body);
    }
    // And good values still go through.
    let reply = alice
        .put(
            &format!("/rooms/{r}/state/m.room.join_rules"),
            json!({"join_rule": "knock"}),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.body);
}

#[tokio::test]
async fn refuses_integers_past_two_to_the_53_in_event_content_and_keeps_other_numbers() {
    let (_server, alice, _bob, room) = room().await;
    let r = enc(&room);
    let before = newest_event(&alice, &room).await;
    for raw in [
        r#"{"msgtype":"m.text","body":"x","n":9007199254740992}"#,
        r#"{"msgtype":"m.text","body":"x","deep":[{"n":-9007199254740992}]}"#,
        r#"{"msgtype":"m.text","body":"x","n":123456789012345678901234567890}"#,
    ] {
        let reply = alice
            .raw(
                reqwest::Method::PUT,
                &format!("/rooms/{r}/send/m.room.message/{}", txn()),
                "application/json",
                raw.as_bytes().to_vec(),
            )
            .await;
        refused(&reply, 400, "M_BAD_JSON", raw);
    }
    assert_eq!(
        newest_event(&alice, &room).await,
        before,
        "a refused event was stored"
    );
    // The largest integers, and numbers with a fraction or an exponent (the talk's payloads),
    // are stored as written.
    let raw = r#"{"n":9007199254740991,"m":-9007199254740991,"g":-9.81,"e":1E5}"#;
    let reply = alice
        .raw(
            reqwest::Method::PUT,
            &format!("/rooms/{r}/send/org.example/{}", txn()),
            "application/json",
            raw.as_bytes().to_vec(),
        )
        .await;
    let id = reply.ok()["event_id"]
        .as_str()
        .expect("event id")
        .to_string();
    let ev = alice
        .get(&format!("/rooms/{r}/event/{}", enc(&id)))
        .await
        .ok();
    assert_eq!(ev["content"]["n"], json!(9_007_199_254_740_991_i64));
    assert_eq!(ev["content"]["g"].to_string(), "-9.81");
}

#[tokio::test]
async fn refuses_a_typing_timeout_past_the_spec_integers_and_clamps_a_large_one() {
    let (_server, alice, _bob, room) = room().await;
    let path = format!("/rooms/{}/typing/{}", enc(&room), enc(&alice.user_id));
    for timeout in [
        json!(1u64 << 63),
        json!(u64::MAX),
        json!(-1),
        json!(1.5),
        json!("30000"),
    ] {
        let reply = alice
            .put(&path, json!({"typing": true, "timeout": timeout}))
            .await;
        refused(&reply, 400, "M_BAD_JSON", &format!("timeout {timeout}"));
    }
    let reply = alice
        .put(&path, json!({"typing": true, "timeout": (1u64 << 53) - 1}))
        .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.body);
    let sync = alice.sync(None, 0).await;
    let events = sync["rooms"]["join"][&room]["ephemeral"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let typing = events
        .iter()
        .find(|e| e["type"] == "m.typing")
        .unwrap_or_else(|| panic!("no m.typing in {sync}"));
    assert_eq!(typing["content"]["user_ids"], json!([alice.user_id]));
}

#[tokio::test]
async fn refuses_enum_values_outside_the_spec_in_queries_and_bodies() {
    let (server, alice, _bob, room) = room().await;
    let r = enc(&room);
    let anyone = server.client();
    let reply = anyone
        .post(
            "/register?kind=admin",
            json!({"username": "dave", "password": "pw", "auth": {"type": "m.login.dummy"}}),
        )
        .await;
    refused(&reply, 400, "M_INVALID_PARAM", "?kind=admin");
    let reply = alice.get("/sync?set_presence=busy").await;
    refused(&reply, 400, "M_INVALID_PARAM", "?set_presence=busy");
    let reply = alice
        .get(&format!("/rooms/{r}/members?membership=joined"))
        .await;
    refused(&reply, 400, "M_INVALID_PARAM", "?membership=joined");
    let reply = alice
        .get(&format!("/rooms/{r}/members?not_membership=gone"))
        .await;
    refused(&reply, 400, "M_INVALID_PARAM", "?not_membership=gone");
    let members = alice
        .get(&format!("/rooms/{r}/members?membership=join"))
        .await
        .ok();
    assert_eq!(members["chunk"].as_array().map(Vec::len), Some(2));

    let reply = anyone
        .post(
            "/register",
            json!({"username": "dave", "password": "pw", "auth": "m.login.dummy"}),
        )
        .await;
    refused(&reply, 400, "M_BAD_JSON", "auth that is a string");
    let reply = anyone
        .post(
            "/login",
            json!({"type": "m.login.password", "identifier": "alice", "password": "password"}),
        )
        .await;
    refused(&reply, 400, "M_BAD_JSON", "an identifier that is a string");
    let reply = anyone
        .post(
            "/login",
            json!({"type": "m.login.password", "password": "password",
                   "identifier": {"type": "m.id.user", "user": 5}}),
        )
        .await;
    refused(
        &reply,
        400,
        "M_BAD_JSON",
        "identifier.user that is a number",
    );
    let reply = alice.post("/publicRooms", json!({"filter": 5})).await;
    refused(
        &reply,
        400,
        "M_BAD_JSON",
        "a publicRooms filter that is a number",
    );
    let reply = alice
        .post(
            "/publicRooms",
            json!({"filter": {"generic_search_term": ["x"]}}),
        )
        .await;
    refused(&reply, 400, "M_BAD_JSON", "a search term that is a list");
    let event = newest_event(&alice, &room).await;
    let event = enc(event.as_str().expect("an event"));
    let reply = alice
        .post(
            &format!("/rooms/{r}/receipt/m.read/{event}"),
            json!({"thread_id": "not a thread"}),
        )
        .await;
    refused(
        &reply,
        400,
        "M_INVALID_PARAM",
        "a thread_id that is no event id",
    );
    let reply = alice
        .post(
            &format!("/rooms/{r}/receipt/m.read/{event}"),
            json!({"thread_id": "main"}),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.body);
}

#[tokio::test]
async fn refuses_identifiers_outside_the_spec_grammar() {
    let (_server, alice, _bob, room) = room().await;
    let r = enc(&room);
    let a = enc(&alice.user_id);
    for user in [
        "@a:x:y:z",
        "@\u{fc}ber:localhost",
        "@a:exa mple.org",
        "@a:[::1",
        "@a:x:99999x",
    ] {
        let reply = alice
            .post(&format!("/rooms/{r}/invite"), json!({ "user_id": user }))
            .await;
        refused(&reply, 400, "M_INVALID_PARAM", &format!("invite {user:?}"));
    }
    let reply = alice
        .post(&format!("/join/{}", enc("!r:[[bad")), json!({}))
        .await;
    refused(
        &reply,
        400,
        "M_INVALID_PARAM",
        "a room id with a bad server name",
    );
    let reply = alice
        .get(&format!("/directory/room/{}", enc("#a:bad_server")))
        .await;
    refused(
        &reply,
        400,
        "M_INVALID_PARAM",
        "an alias with a bad server name",
    );
    let reply = alice.get(&format!("/rooms/{r}/event/{}", enc("$"))).await;
    refused(&reply, 400, "M_INVALID_PARAM", "an event id of just $");
    for url in [
        "mxc://localhost/",
        "mxc://localhost/a/b",
        "mxc://bad server/x",
        "http://localhost/x",
    ] {
        let reply = alice
            .put(
                &format!("/profile/{a}/avatar_url"),
                json!({ "avatar_url": url }),
            )
            .await;
        refused(&reply, 400, "M_INVALID_PARAM", &format!("avatar_url {url}"));
    }
    let reply = alice
        .put(
            &format!("/profile/{a}/avatar_url"),
            json!({"avatar_url": "mxc://localhost/AbC_-9"}),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.body);
    // The spec's limit on a state key is 255 bytes, as for ids.
    let key = "k".repeat(256);
    let reply = alice
        .put(&format!("/rooms/{r}/state/org.example/{key}"), json!({}))
        .await;
    refused(&reply, 413, "M_TOO_LARGE", "a 256-byte state key");
    let reply = alice
        .put(
            &format!("/rooms/{r}/state/org.example/{}", &key[..255]),
            json!({}),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.body);
}

#[tokio::test]
async fn refuses_filters_whose_fields_have_the_wrong_type() {
    let (_server, alice, _bob, _room) = room().await;
    let a = enc(&alice.user_id);
    for filter in [
        json!({"event_format": "raw"}),
        json!({"event_fields": "content.body"}),
        json!({"room": {"include_leave": "yes"}}),
        json!({"room": {"rooms": ["lobby"]}}),
        json!({"room": {"timeline": {"senders": ["bob"]}}}),
        json!({"room": {"state": {"lazy_load_members": 1}}}),
        json!({"presence": {"limit": -1}}),
    ] {
        let reply = alice
            .post(&format!("/user/{a}/filter"), filter.clone())
            .await;
        refused(&reply, 400, "M_BAD_JSON", &format!("filter {filter}"));
        let reply = alice
            .get(&format!("/sync?filter={}", enc(&filter.to_string())))
            .await;
        refused(
            &reply,
            400,
            "M_BAD_JSON",
            &format!("inline filter {filter}"),
        );
    }
}

#[tokio::test]
async fn reads_only_tokens_in_the_spelling_the_server_writes() {
    let (_server, alice, _bob, room) = room().await;
    let next = alice.sync(None, 0).await["next_batch"]
        .as_str()
        .expect("next_batch")
        .to_string();
    let (stream, typing) = next[1..].split_once('_').expect("s{stream}_{typing}");
    for since in [
        format!("s+{stream}_{typing}"),
        format!("s0{stream}_{typing}"),
        format!("s{stream}_+{typing}"),
        format!("s-{stream}_{typing}"),
    ] {
        let reply = alice.get(&format!("/sync?since={}", enc(&since))).await;
        refused(&reply, 400, "M_INVALID_PARAM", &format!("since {since}"));
    }
    let reply = alice.get(&format!("/sync?since={next}")).await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.body);
    for from in ["t05", "t+5", "t 5"] {
        let reply = alice
            .get(&format!(
                "/rooms/{}/messages?from={}",
                enc(&room),
                enc(from)
            ))
            .await;
        refused(&reply, 400, "M_INVALID_PARAM", &format!("from {from}"));
    }
}

/// Sends a raw HTTP/1.1 request and answers the status and the JSON body.
async fn raw_http(server: &TestServer, request: String) -> (u16, Value) {
    let addr = server.base.trim_start_matches("http://");
    let mut stream = tokio::time::timeout(WAIT, tokio::net::TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .expect("an answer in time")
        .expect("read");
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text}"));
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    // A chunked answer: the JSON is the first chunk.
    let json = body
        .find('{')
        .and_then(|i| body[i..].rfind('}').map(|j| &body[i..=i + j]))
        .unwrap_or("");
    (status, serde_json::from_str(json).unwrap_or(Value::Null))
}

#[tokio::test]
async fn answers_a_malformed_chunked_body_with_400_and_an_over_long_one_with_413() {
    let server = TestServer::start_with(|c| c.max_request_bytes = 1024).await;
    let alice = server.register("alice").await;
    let token = alice.token.clone().expect("token");
    let head = |extra: &str| {
        format!(
            "POST /_matrix/client/v3/createRoom HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
             Transfer-Encoding: chunked\r\nConnection: close\r\n{extra}\r\n"
        )
    };
    for (body, what) in [
        ("zz\r\n{}\r\n0\r\n\r\n", "a chunk size that is not hex"),
        ("2\r\n{}XX0\r\n\r\n", "a chunk without its line end"),
    ] {
        let (status, reply) = raw_http(&server, format!("{}{body}", head(""))).await;
        assert_eq!(
            (status, reply["errcode"].as_str()),
            (400, Some("M_NOT_JSON")),
            "{what}: {reply}"
        );
        assert!(reply["error"].is_string(), "{what}: {reply}");
    }
    let big = format!("{{\"name\": \"{}\"}}", "n".repeat(2000));
    let body = format!("{:x}\r\n{big}\r\n0\r\n\r\n", big.len());
    let (status, reply) = raw_http(&server, format!("{}{body}", head(""))).await;
    assert_eq!(
        (status, reply["errcode"].as_str()),
        (413, Some("M_TOO_LARGE")),
        "{reply}"
    );
    // A well-formed chunked body is read as any other.
    let body = "2\r\n{}\r\n0\r\n\r\n";
    let (status, reply) = raw_http(&server, format!("{}{body}", head(""))).await;
    assert_eq!(status, 200, "{reply}");
    assert!(reply["room_id"].is_string(), "{reply}");
}
