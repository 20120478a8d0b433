//! Sizes: request bodies over `max_request_bytes`, events over 65,536 bytes and content nested
//! too deeply are refused, and nothing is stored.

use super::*;

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
