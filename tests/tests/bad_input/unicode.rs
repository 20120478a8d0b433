//! Unicode: emoji, right-to-left, NUL and zero-width text survive the round trip; lone
//! surrogates and invalid UTF-8 are not JSON; long strings are bounded.

use super::*;

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
    assert_eq!(
        p,
        json!({"displayname": "alice"}),
        "a refused profile change was stored"
    );
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
