//! Third-party identifiers, which this server does not support: `/capabilities` says so, the
//! account lists none, nothing can be added or bound, removing answers that there was no
//! identity server, and every requestToken route refuses with `M_THREEPID_DENIED`.

use plugboard_tests::TestServer;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn third_party_identifiers_are_refused_clearly_and_the_account_has_none() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let caps = alice.get("/capabilities").await.ok();
    assert_eq!(caps["capabilities"]["m.3pid_changes"]["enabled"], false);
    assert_eq!(
        alice.get("/account/3pid").await.ok(),
        json!({"threepids": []})
    );
    for path in ["/account/3pid/add", "/account/3pid/bind"] {
        let body = json!({"client_secret": "s", "sid": "1", "id_server": "id.example.org",
                          "id_access_token": "t"});
        alice.post(path, body).await.err(403, "M_FORBIDDEN");
    }
    for path in ["/account/3pid/delete", "/account/3pid/unbind"] {
        let body = json!({"medium": "email", "address": "alice@example.org"});
        let reply = alice.post(path, body).await.ok();
        assert_eq!(reply, json!({"id_server_unbind_result": "no-support"}));
        alice
            .post(path, json!({"medium": "email"}))
            .await
            .err(400, "M_BAD_JSON");
    }
    let anonymous = server.client();
    for path in [
        "/register/email/requestToken",
        "/register/msisdn/requestToken",
        "/account/password/email/requestToken",
        "/account/password/msisdn/requestToken",
        "/account/3pid/email/requestToken",
        "/account/3pid/msisdn/requestToken",
    ] {
        let body = json!({"client_secret": "s", "email": "a@example.org", "send_attempt": 1});
        anonymous
            .post(path, body)
            .await
            .err(403, "M_THREEPID_DENIED");
    }
    anonymous
        .get("/account/3pid")
        .await
        .err(401, "M_MISSING_TOKEN");
}
