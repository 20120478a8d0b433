//! Registration: invalid usernames, case variants and the spec errcodes of `/register`.

use super::*;

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
