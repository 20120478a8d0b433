//! The federation transport between two (or three) Plugboard servers on one machine, each
//! with its own TLS federation listener and a `127.0.0.1:PORT` server name: version and keys,
//! keys fetched directly and through a notary, a signed profile query, and every way a
//! request's authentication can be wrong (401, never 5xx), a denied server (403) and a
//! denied address.

use plugboard_tests::federation::{request, unsigned_get, Identity};
use plugboard_tests::{enc, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

fn profile_uri(user_id: &str) -> String {
    format!(
        "/_matrix/federation/v1/query/profile?user_id={}",
        enc(user_id)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_federation_listener_serves_version_and_self_signed_keys_over_tls() {
    let b = TestServer::start_federating().await;
    let version = unsigned_get(b.federation(), "/_matrix/federation/v1/version")
        .await
        .ok();
    assert_eq!(version["server"]["name"], "Plugboard");
    assert!(version["server"]["version"].is_string());
    let keys = unsigned_get(b.federation(), "/_matrix/key/v2/server")
        .await
        .ok();
    assert_eq!(keys["server_name"], b.server_name);
    let key_id = Identity::of(&b).key_id;
    assert!(keys["verify_keys"][&key_id]["key"].is_string(), "{keys}");
    assert!(
        keys["signatures"][&b.server_name][&key_id].is_string(),
        "{keys}"
    );
    unsigned_get(b.federation(), "/_matrix/federation/v1/nope")
        .await
        .err(404, "M_UNRECOGNIZED");
    // The client listener keeps what it served, and no federation route.
    b.client().get("/_matrix/key/v2/server").await.ok();
    b.client()
        .get("/_matrix/federation/v1/version")
        .await
        .err(404, "M_UNRECOGNIZED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gets_the_profile_of_a_user_of_another_server_over_signed_federation() {
    let a = TestServer::start_federating().await;
    let b = TestServer::start_federating().await;
    let alice = b.register("alice").await;
    alice
        .put(
            &format!("/profile/{}/displayname", enc(&alice.user_id)),
            json!({"displayname": "Alice on B"}),
        )
        .await
        .ok();
    let carol = a.register("carol").await;
    // A signs the query; B fetches A's key from A to check it. Sent at once, all answered.
    let asks = (0..8).map(|_| {
        let carol = carol.clone();
        let path = format!("/profile/{}", enc(&alice.user_id));
        tokio::spawn(async move { carol.get(&path).await })
    });
    for ask in asks {
        let profile = ask.await.unwrap().ok();
        assert_eq!(profile["displayname"], "Alice on B");
    }
    // B's own answer for a user it does not have, passed on.
    carol
        .get(&format!(
            "/profile/{}",
            enc(&format!("@nobody:{}", b.server_name))
        ))
        .await
        .err(404, "M_NOT_FOUND");
    // Asked directly, signed as A: one field, or a 404 for a field not set.
    let a_id = Identity::of(&a);
    let uri = format!("{}&field=displayname", profile_uri(&alice.user_id));
    assert_eq!(
        b.signed_get(&a_id, &uri).await.ok(),
        json!({"displayname": "Alice on B"})
    );
    let uri = format!("{}&field=avatar_url", profile_uri(&alice.user_id));
    b.signed_get(&a_id, &uri).await.err(404, "M_NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notary_serves_another_servers_keys_signed_by_both() {
    let a = TestServer::start_federating().await;
    let b = TestServer::start_federating().await;
    let b_key = Identity::of(&b).key_id;
    let a_key = Identity::of(&a).key_id;
    let batch = request(
        a.federation(),
        Method::POST,
        "/_matrix/key/v2/query",
        None,
        Some(&json!({"server_keys": {&b.server_name: {&b_key: {}}}})),
    )
    .await
    .ok();
    let one = unsigned_get(
        a.federation(),
        &format!("/_matrix/key/v2/query/{}", enc(&b.server_name)),
    )
    .await
    .ok();
    for answer in [&batch, &one] {
        let keys = answer["server_keys"].as_array().expect("server_keys");
        assert_eq!(keys.len(), 1, "{answer}");
        assert_eq!(keys[0]["server_name"], b.server_name);
        assert!(keys[0]["verify_keys"][&b_key].is_object());
        assert!(keys[0]["signatures"][&b.server_name][&b_key].is_string());
        assert!(keys[0]["signatures"][&a.server_name][&a_key].is_string());
    }
    // A server that cannot be reached and is not cached: nothing, not an error.
    let none = request(
        a.federation(),
        Method::POST,
        "/_matrix/key/v2/query",
        None,
        Some(&json!({"server_keys": {"127.0.0.1:1": {}}})),
    )
    .await
    .ok();
    assert_eq!(none["server_keys"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_checks_a_request_with_keys_from_its_notary_when_the_origin_is_gone() {
    let a = TestServer::start_federating().await;
    let b = TestServer::start_federating().await;
    let b_id = Identity::of(&b);
    // A, the notary, has B's keys; then B goes away.
    unsigned_get(
        a.federation(),
        &format!("/_matrix/key/v2/query/{}", enc(&b.server_name)),
    )
    .await
    .ok();
    b.stop().await;
    let notary = a.server_name.clone();
    let c = TestServer::start_federating_with(|c| c.federation.trusted_key_servers = vec![notary])
        .await;
    let bob = c.register("bob").await;
    let profile = c.signed_get(&b_id, &profile_uri(&bob.user_id)).await.ok();
    assert_eq!(profile["displayname"], "bob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_wrong_authentication_is_401_and_never_a_server_error() {
    let a = TestServer::start_federating().await;
    let b = TestServer::start_federating().await;
    let alice = b.register("alice").await;
    let uri = profile_uri(&alice.user_id);
    let a_id = Identity::of(&a);
    let fed = b.federation();
    let get = |auth: Option<String>, body: Option<Value>| {
        let uri = uri.clone();
        async move { request(fed, Method::GET, &uri, auth.as_deref(), body.as_ref()).await }
    };
    // The honest request works.
    get(
        Some(a_id.authorization("GET", &uri, &b.server_name, None)),
        None,
    )
    .await
    .ok();
    let mut wrong = Vec::new();
    wrong.push(("no header", get(None, None).await));
    wrong.push(("another scheme", get(Some("Bearer abc".into()), None).await));
    wrong.push(("garbage", get(Some("X-Matrix garbage".into()), None).await));
    let mut unknown_key = Identity::of(&a);
    unknown_key.key_id = "ed25519:nope".into();
    wrong.push((
        "a key id the origin does not have",
        get(
            Some(unknown_key.authorization("GET", &uri, &b.server_name, None)),
            None,
        )
        .await,
    ));
    // A's key, claiming to be another server (one that does not answer, and B itself).
    for origin in ["127.0.0.1:1".to_string(), b.server_name.clone()] {
        let mut forger = Identity::of(&a);
        forger.name = origin;
        wrong.push((
            "a wrong origin",
            get(
                Some(forger.authorization("GET", &uri, &b.server_name, None)),
                None,
            )
            .await,
        ));
    }
    wrong.push((
        "a wrong destination",
        get(
            Some(a_id.authorization("GET", &uri, &a.server_name, None)),
            None,
        )
        .await,
    ));
    let mut other_key = Identity::made_up(&a.server_name);
    other_key.key_id = a_id.key_id.clone();
    wrong.push((
        "a signature by another key",
        get(
            Some(other_key.authorization("GET", &uri, &b.server_name, None)),
            None,
        )
        .await,
    ));
    let other_uri = profile_uri("@someone:else");
    wrong.push((
        "a signature of another URI",
        get(
            Some(a_id.authorization("GET", &other_uri, &b.server_name, None)),
            None,
        )
        .await,
    ));
    let signed_body = json!({"a": 1});
    wrong.push((
        "a body changed after signing",
        get(
            Some(a_id.authorization("GET", &uri, &b.server_name, Some(&signed_body))),
            Some(json!({"a": 2})),
        )
        .await,
    ));
    for (what, reply) in wrong {
        assert_eq!(reply.status.as_u16(), 401, "{what}: {}", reply.body);
        assert_eq!(reply.body["errcode"], "M_UNAUTHORIZED", "{what}");
        assert!(reply.body["error"].is_string(), "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_server_is_refused_both_ways() {
    let a = TestServer::start_federating().await;
    let denied = a.server_name.clone();
    let b = TestServer::start_federating_with(|c| c.federation.denied_servers = vec![denied]).await;
    let alice = b.register("alice").await;
    let uri = profile_uri(&alice.user_id);
    b.signed_get(&Identity::of(&a), &uri)
        .await
        .err(403, "M_FORBIDDEN");
    let bob = b.register("bob").await;
    bob.get(&format!(
        "/profile/{}",
        enc(&format!("@carol:{}", a.server_name))
    ))
    .await
    .err(403, "M_FORBIDDEN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_denylist_refuses_a_loopback_destination() {
    let b = TestServer::start_federating().await;
    let alice = b.register("alice").await;
    // No allowlist: 127.0.0.1 is in the default denylist.
    let a = TestServer::start_federating_with(|c| c.federation.ip_range_allowlist.clear()).await;
    let carol = a.register("carol").await;
    let reply = carol
        .get(&format!("/profile/{}", enc(&alice.user_id)))
        .await;
    reply.err(403, "M_FORBIDDEN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_listener_serves_the_configured_well_known_server() {
    let plain = TestServer::start().await;
    plain
        .client()
        .get("/.well-known/matrix/server")
        .await
        .err(404, "M_NOT_FOUND");
    let delegating = TestServer::start_with(|c| {
        c.federation.well_known_server = "fed.example.org:443".into();
    })
    .await;
    let body = delegating
        .client()
        .get("/.well-known/matrix/server")
        .await
        .ok();
    assert_eq!(body, json!({"m.server": "fed.example.org:443"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_federation_port_leaves_the_server_running_without_the_listener() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let server = TestServer::start_with(|c| {
        c.federation.enabled = true;
        c.federation.listen = addr;
    })
    .await;
    server.client().get("/_matrix/client/versions").await.ok();
    drop(taken);
}
