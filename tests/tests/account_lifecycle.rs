//! A user's own account end to end: a password change behind user-interactive auth that logs
//! out the other devices (or not, when asked), and deactivation: no more logins, no tokens,
//! every room left, the name never given to anyone else.

use plugboard_tests::{enc, Client, Reply, TestServer};
use serde_json::{json, Value};

async fn login(server: &TestServer, user: &str, password: &str) -> Reply {
    server
        .client()
        .post(
            "/login",
            json!({"type": "m.login.password",
                   "identifier": {"type": "m.id.user", "user": user}, "password": password}),
        )
        .await
}

/// `c` with the token of a fresh login.
async fn logged_in(server: &TestServer, c: &Client, password: &str) -> Client {
    let body = login(server, &c.user_id, password).await.ok();
    let mut other = c.clone();
    other.token = Some(body["access_token"].as_str().unwrap().to_string());
    other.device_id = body["device_id"].as_str().unwrap().to_string();
    other
}

fn password_auth(user: &str, password: &str, session: &Value) -> Value {
    json!({"type": "m.login.password", "session": session,
           "identifier": {"type": "m.id.user", "user": user}, "password": password})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_needs_the_old_one_and_logs_out_the_other_devices() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let phone = logged_in(&server, &alice, "password").await;
    let laptop = logged_in(&server, &alice, "password").await;

    let challenge = alice
        .post("/account/password", json!({"new_password": "n3w"}))
        .await;
    assert_eq!(challenge.status, 401, "{}", challenge.body);
    assert_eq!(
        challenge.body["flows"][0]["stages"][0], "m.login.password",
        "{}",
        challenge.body
    );
    let session = challenge.body["session"].clone();
    let wrong = alice
        .post(
            "/account/password",
            json!({"new_password": "n3w", "auth": password_auth(&alice.user_id, "nope", &session)}),
        )
        .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.body["errcode"], "M_FORBIDDEN");
    alice
        .post(
            "/account/password",
            json!({"new_password": "", "auth": password_auth(&alice.user_id, "password", &session)}),
        )
        .await
        .err(400, "M_INVALID_PARAM");
    alice
        .post(
            "/account/password",
            json!({"new_password": "n3w", "auth": password_auth(&alice.user_id, "password", &session)}),
        )
        .await
        .ok();

    login(&server, &alice.user_id, "password")
        .await
        .err(403, "M_FORBIDDEN");
    let again = logged_in(&server, &alice, "n3w").await;
    alice.get("/account/whoami").await.ok();
    phone
        .get("/account/whoami")
        .await
        .err(401, "M_UNKNOWN_TOKEN");
    laptop
        .get("/account/whoami")
        .await
        .err(401, "M_UNKNOWN_TOKEN");

    // Asked to keep them, the other devices stay logged in.
    again
        .post(
            "/account/password",
            json!({"new_password": "n3w3r", "logout_devices": false,
                   "auth": password_auth(&alice.user_id, "n3w", &session)}),
        )
        .await
        .ok();
    alice.get("/account/whoami").await.ok();
    login(&server, &alice.user_id, "n3w3r").await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deactivated_account_cannot_log_in_has_left_its_rooms_and_keeps_its_name() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = bob.create_room(json!({"preset": "public_chat"})).await;
    alice.join(&room).await.ok();
    let invited = bob.create_room(json!({})).await;
    bob.invite(&invited, &alice.user_id).await.ok();

    let challenge = alice.post("/account/deactivate", json!({})).await;
    assert_eq!(challenge.status, 401, "{}", challenge.body);
    let session = challenge.body["session"].clone();
    let done = alice
        .post(
            "/account/deactivate",
            json!({"auth": password_auth(&alice.user_id, "password", &session)}),
        )
        .await
        .ok();
    assert_eq!(done, json!({"id_server_unbind_result": "no-support"}));

    alice
        .get("/account/whoami")
        .await
        .err(401, "M_UNKNOWN_TOKEN");
    login(&server, &alice.user_id, "password")
        .await
        .err(403, "M_USER_DEACTIVATED");
    for r in [&room, &invited] {
        let member = bob
            .get(&format!(
                "/rooms/{}/state/m.room.member/{}",
                enc(r),
                enc(&alice.user_id)
            ))
            .await
            .ok();
        assert_eq!(member["membership"], "leave", "{r}: {member}");
    }
    server
        .client()
        .post(
            "/register",
            json!({"username": "alice", "password": "x", "auth": {"type": "m.login.dummy"}}),
        )
        .await
        .err(400, "M_USER_IN_USE");
}
