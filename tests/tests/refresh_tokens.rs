//! Refresh tokens end to end: `refresh_token: true` at registration or login gives an
//! expiring access token and a refresh token; `POST /refresh` trades it once for a new pair
//! (the old access token and refresh token stop working, also when two trades race); an
//! expired access token is a soft logout; clients that do not ask keep tokens that never
//! expire.

use std::time::Duration;

use plugboard_tests::{Client, TestServer};
use serde_json::{json, Value};

const LIFETIME_MS: u64 = 1_500;

async fn server() -> TestServer {
    TestServer::start_with(|c| c.access_token_lifetime_ms = LIFETIME_MS).await
}

fn with_token(server: &TestServer, token: &Value) -> Client {
    let mut c = server.client();
    c.token = Some(token.as_str().expect("an access token").to_string());
    c
}

async fn register_refreshable(server: &TestServer, name: &str) -> Value {
    server
        .client()
        .post(
            "/register",
            json!({"username": name, "password": "secret-pw", "refresh_token": true,
                   "auth": {"type": "m.login.dummy"}}),
        )
        .await
        .ok()
}

async fn refresh(server: &TestServer, refresh_token: &Value) -> plugboard_tests::Reply {
    server
        .client()
        .post("/refresh", json!({ "refresh_token": refresh_token }))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_trades_the_pair_once_and_the_old_tokens_stop_working() {
    let server = server().await;
    let first = register_refreshable(&server, "alice").await;
    assert_eq!(first["expires_in_ms"], LIFETIME_MS);
    assert!(first["refresh_token"].is_string(), "{first}");
    let old = with_token(&server, &first["access_token"]);
    assert_eq!(
        old.get("/account/whoami").await.ok()["user_id"],
        "@alice:localhost"
    );

    let second = refresh(&server, &first["refresh_token"]).await.ok();
    assert_eq!(second["expires_in_ms"], LIFETIME_MS);
    assert_ne!(second["access_token"], first["access_token"]);
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    let new = with_token(&server, &second["access_token"]);
    let me = new.get("/account/whoami").await.ok();
    assert_eq!(me["user_id"], "@alice:localhost");
    assert_eq!(me["device_id"], first["device_id"], "the same device");
    old.get("/account/whoami").await.err(401, "M_UNKNOWN_TOKEN");
    let again = refresh(&server, &first["refresh_token"]).await;
    again.err(401, "M_UNKNOWN_TOKEN");
    assert_ne!(again.body["soft_logout"], true);

    refresh(&server, &json!("pbr_never_made"))
        .await
        .err(401, "M_UNKNOWN_TOKEN");
    server
        .client()
        .post("/refresh", json!({}))
        .await
        .err(400, "M_BAD_JSON");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_access_token_is_a_soft_logout_that_a_refresh_ends() {
    let server = server().await;
    let first = register_refreshable(&server, "alice").await;
    let old = with_token(&server, &first["access_token"]);
    old.get("/account/whoami").await.ok();
    tokio::time::sleep(Duration::from_millis(LIFETIME_MS + 200)).await;
    let expired = old.get("/account/whoami").await;
    expired.err(401, "M_UNKNOWN_TOKEN");
    assert_eq!(expired.body["soft_logout"], true, "{}", expired.body);

    let second = refresh(&server, &first["refresh_token"]).await.ok();
    with_token(&server, &second["access_token"])
        .get("/account/whoami")
        .await
        .ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_asks_for_a_refresh_token_or_keeps_a_token_that_never_expires() {
    let server = server().await;
    server.register("alice").await;
    let login = |refresh: bool| {
        let c = server.client();
        async move {
            c.post(
                "/login",
                json!({"type": "m.login.password", "refresh_token": refresh,
                       "identifier": {"type": "m.id.user", "user": "alice"},
                       "password": "password"}),
            )
            .await
            .ok()
        }
    };
    let plain = login(false).await;
    assert!(plain.get("refresh_token").is_none(), "{plain}");
    assert!(plain.get("expires_in_ms").is_none(), "{plain}");
    let refreshable = login(true).await;
    assert_eq!(refreshable["expires_in_ms"], LIFETIME_MS);

    tokio::time::sleep(Duration::from_millis(LIFETIME_MS + 200)).await;
    with_token(&server, &plain["access_token"])
        .get("/account/whoami")
        .await
        .ok();
    let expired = with_token(&server, &refreshable["access_token"])
        .get("/account/whoami")
        .await;
    assert_eq!(expired.body["soft_logout"], true, "{}", expired.body);
    let renewed = refresh(&server, &refreshable["refresh_token"]).await.ok();
    with_token(&server, &renewed["access_token"])
        .get("/account/whoami")
        .await
        .ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_refreshes_with_one_token_at_once_make_one_new_pair() {
    let server = server().await;
    let first = register_refreshable(&server, "alice").await;
    let (a, b) = tokio::join!(
        refresh(&server, &first["refresh_token"]),
        refresh(&server, &first["refresh_token"])
    );
    let statuses = [a.status.as_u16(), b.status.as_u16()];
    assert!(
        statuses.contains(&200) && statuses.contains(&401),
        "{statuses:?}: {} / {}",
        a.body,
        b.body
    );
    let winner = if a.status.as_u16() == 200 { a } else { b };
    with_token(&server, &winner.body["access_token"])
        .get("/account/whoami")
        .await
        .ok();
}
