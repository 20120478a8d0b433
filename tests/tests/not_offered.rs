//! What this server deliberately does not offer answers as the spec has such a server answer
//! (404 `M_UNRECOGNIZED`), saying what is not offered and what to do instead, unlike the
//! router's answer for a path that is no route at all; and `/capabilities` says the same.

use plugboard_tests::{enc, TestServer};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_features_not_offered_say_so_and_capabilities_agree() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({})).await;
    let me = enc(&alice.user_id);
    for (method, path) in [
        (
            Method::GET,
            format!("/_matrix/client/v1/admin/suspend/{me}"),
        ),
        (Method::PUT, format!("/_matrix/client/v1/admin/lock/{me}")),
        (
            Method::GET,
            "/_matrix/client/v1/media/preview_url?url=https%3A%2F%2Fexample.org".into(),
        ),
        (Method::POST, "/_matrix/media/v1/create".into()),
        (Method::PUT, "/_matrix/media/v3/upload/localhost/abc".into()),
        (Method::POST, "/_matrix/client/v1/login/get_token".into()),
        (Method::GET, "/events?from=s0_0".into()),
        (Method::GET, format!("/profile/{me}/m.tz")),
        (Method::PUT, format!("/profile/{me}/m.tz")),
        (
            Method::PUT,
            format!("/directory/list/appservice/irc/{}", enc(&room)),
        ),
    ] {
        let reply = alice.request(method.clone(), &path, Some(&json!({}))).await;
        assert_eq!(reply.status, 404, "{method} {path}: {}", reply.body);
        assert_eq!(reply.body["errcode"], "M_UNRECOGNIZED", "{method} {path}");
        let said = reply.body["error"].as_str().unwrap_or_default();
        assert!(said.contains("not offered"), "{method} {path}: {said}");
    }
    let nothing = alice.get("/no/such/route").await;
    assert_eq!(nothing.body["error"], "unrecognized request");

    let caps = alice.get("/capabilities").await.ok()["capabilities"].clone();
    assert_eq!(caps["m.change_password"]["enabled"], true, "{caps}");
    assert_eq!(caps["m.get_login_token"]["enabled"], false);
    assert_eq!(caps["m.profile_fields"]["enabled"], false);
    // The profile keys that are offered still answer.
    assert_eq!(
        alice.get(&format!("/profile/{me}/displayname")).await.ok(),
        json!({"displayname": "alice"})
    );
}
