//! Small routes of the spec whose answers come from configuration: `/voip/turnServer` (nothing
//! without a `[turn]` section; time-limited credentials with a shared secret), the
//! registration token validity check (only where registration uses tokens), and
//! `/.well-known/matrix/support` (404 without a `[support]` section); and what is not offered
//! (OAuth 2.0 discovery, single sign-on) answered as the spec says.

use std::time::{SystemTime, UNIX_EPOCH};

use plugboard::config::{RegistrationMode, SupportContact};
use plugboard_tests::TestServer;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turn_credentials_come_from_the_turn_section() {
    let plain = TestServer::start().await;
    let alice = plain.register("alice").await;
    assert_eq!(alice.get("/voip/turnServer").await.ok(), json!({}));
    plain
        .client()
        .get("/voip/turnServer")
        .await
        .err(401, "M_MISSING_TOKEN");

    let server = TestServer::start_with(|c| {
        c.turn.uris = vec!["turn:turn.example.org?transport=udp".into()];
        c.turn.shared_secret = "s3cret".into();
        c.turn.ttl_s = 600;
    })
    .await;
    let bob = server.register("bob").await;
    let turn = bob.get("/voip/turnServer").await.ok();
    assert_eq!(turn["uris"], json!(["turn:turn.example.org?transport=udp"]));
    assert_eq!(turn["ttl"], 600);
    let (expiry, user) = turn["username"].as_str().unwrap().split_once(':').unwrap();
    assert_eq!(user, bob.user_id);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expiry: u64 = expiry.parse().unwrap();
    assert!(
        (now + 590..=now + 610).contains(&expiry),
        "{expiry} vs {now}"
    );
    // A base64 HMAC-SHA1: 20 bytes.
    assert_eq!(turn["password"].as_str().unwrap().len(), 28, "{turn}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_tokens_can_be_checked_where_registration_uses_them() {
    let path = "/_matrix/client/v1/register/m.login.registration_token/validity";
    let open = TestServer::start().await;
    open.client()
        .get(&format!("{path}?token=abc"))
        .await
        .err(403, "M_FORBIDDEN");

    let server = TestServer::start_with(|c| {
        c.registration = Some(RegistrationMode::Token);
        c.registration_tokens = vec!["letmein".into()];
    })
    .await;
    let anonymous = server.client();
    let good = anonymous.get(&format!("{path}?token=letmein")).await.ok();
    assert_eq!(good, json!({"valid": true}));
    let bad = anonymous.get(&format!("{path}?token=guess")).await.ok();
    assert_eq!(bad, json!({"valid": false}));
    anonymous.get(path).await.err(400, "M_MISSING_PARAM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn support_information_is_published_only_when_configured() {
    let plain = TestServer::start().await;
    let anonymous = plain.client();
    anonymous
        .get("/.well-known/matrix/support")
        .await
        .err(404, "M_NOT_FOUND");
    anonymous
        .get("/.well-known/matrix/policy_server")
        .await
        .err(404, "M_NOT_FOUND");

    let server = TestServer::start_with(|c| {
        c.support.page = "https://example.org/help".into();
        c.support.contacts = vec![SupportContact {
            role: "m.role.admin".into(),
            matrix_id: Some("@admin:localhost".into()),
            email_address: None,
        }];
    })
    .await;
    let support = server
        .client()
        .get("/.well-known/matrix/support")
        .await
        .ok();
    assert_eq!(
        support,
        json!({"contacts": [{"role": "m.role.admin", "matrix_id": "@admin:localhost"}],
               "support_page": "https://example.org/help"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_not_offered_is_answered_as_the_spec_says() {
    let server = TestServer::start().await;
    let anonymous = server.client();
    let oauth = anonymous.get("/_matrix/client/v1/auth_metadata").await;
    oauth.err(404, "M_UNRECOGNIZED");
    assert!(
        oauth.body["error"]
            .as_str()
            .unwrap()
            .starts_with("Legacy authentication is in use"),
        "{}",
        oauth.body
    );
    for path in ["/login/sso/redirect", "/login/sso/redirect/oidc-github"] {
        anonymous
            .get(&format!("{path}?redirectUrl=https%3A%2F%2Fexample.org"))
            .await
            .err(404, "M_NOT_FOUND");
    }
    // And GET /login offers no single sign-on flow that would lead there.
    let flows = anonymous.get("/login").await.ok();
    assert!(!flows.to_string().contains("m.login.sso"), "{flows}");
}
