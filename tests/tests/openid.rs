//! OpenID end to end: a user asks for a token, and a third party learns from the federation
//! endpoint `/openid/userinfo` whose it is; an unknown token, a missing one, and one asked
//! for another user are refused.

use plugboard_tests::{enc, TestServer};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openid_token_tells_a_third_party_who_made_it() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let path = format!("/user/{}/openid/request_token", enc(&alice.user_id));
    let token = alice.post(&path, json!({})).await.ok();
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["matrix_server_name"], "localhost");
    assert_eq!(token["expires_in"], 3600);
    let access = token["access_token"].as_str().unwrap();
    assert!(access.len() >= 32, "{token}");

    let third_party = server.client();
    let info = format!("/_matrix/federation/v1/openid/userinfo?access_token={access}");
    assert_eq!(
        third_party.get(&info).await.ok(),
        json!({"sub": alice.user_id})
    );
    // Not an access token for the client API.
    let mut posing = server.client();
    posing.token = Some(access.to_string());
    posing
        .get("/account/whoami")
        .await
        .err(401, "M_UNKNOWN_TOKEN");

    third_party
        .get("/_matrix/federation/v1/openid/userinfo?access_token=nope")
        .await
        .err(401, "M_UNKNOWN_TOKEN");
    third_party
        .get("/_matrix/federation/v1/openid/userinfo")
        .await
        .err(401, "M_MISSING_TOKEN");
    bob.post(&path, json!({})).await.err(403, "M_FORBIDDEN");
}
