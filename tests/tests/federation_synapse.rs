//! Plugboard and Synapse 1.163 (from PyPI, started by the harness) federating on loopback.
//! One Synapse serves the whole test binary; each test makes its own users and its own
//! Plugboard server, named `127.0.0.1:PORT` after its federation listener.

use plugboard_tests::federation::{request, unsigned_get};
use plugboard_tests::synapse::{self, Synapse};
use plugboard_tests::{enc, Client, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use synapse::peer;

/// A user on `synapse`, named uniquely for the test (the Synapse is shared).
async fn synapse_user(synapse: &Synapse, name: &str) -> Client {
    synapse.user(name).await
}

/// `user`'s displayname as `reader`'s server answers it.
async fn displayname(reader: &Client, user: &str) -> (StatusCode, Value) {
    let reply = reader.get(&format!("/profile/{}", enc(user))).await;
    (reply.status, reply.body)
}

#[tokio::test]
async fn the_synapse_peer_runs_on_loopback_under_an_ip_literal_server_name() {
    let synapse = peer().await;
    let alice = synapse_user(synapse, "alice").await;
    assert!(alice
        .user_id
        .ends_with(&format!(":{}", synapse.server_name)));
    assert!(synapse.server_name.starts_with("127.0.0.1:"));
}

#[tokio::test]
async fn a_synapse_user_reads_a_plugboard_users_profile_over_signed_federation() {
    // Synapse signs the query with X-Matrix; Plugboard fetches Synapse's key over TLS,
    // checks the signature and answers.
    let synapse = peer().await;
    let plugboard = TestServer::start_federating().await;
    let alice = plugboard.register("alice").await;
    alice
        .put(
            &format!("/profile/{}/displayname", enc(&alice.user_id)),
            json!({"displayname": "Alice on Plugboard ✓"}),
        )
        .await
        .ok();
    let bob = synapse_user(synapse, "bob").await;
    let (status, body) = displayname(&bob, &alice.user_id).await;
    assert_eq!(status, StatusCode::OK, "{body}\n{}", synapse.log_tail());
    assert_eq!(body["displayname"], "Alice on Plugboard ✓");

    let (status, body) = displayname(&bob, &format!("@nobody:{}", plugboard.server_name)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["errcode"], "M_NOT_FOUND");
}

#[tokio::test]
async fn a_plugboard_user_reads_a_synapse_users_profile_over_signed_federation() {
    // Plugboard signs the query; Synapse fetches Plugboard's key from its TLS listener.
    let synapse = peer().await;
    let plugboard = TestServer::start_federating().await;
    let bob = synapse_user(synapse, "bob").await;
    bob.put(
        &format!("/profile/{}/displayname", enc(&bob.user_id)),
        json!({"displayname": "Bob on Synapse"}),
    )
    .await
    .ok();
    let alice = plugboard.register("alice").await;
    let (status, body) = displayname(&alice, &bob.user_id).await;
    assert_eq!(status, StatusCode::OK, "{body}\n{}", synapse.log_tail());
    assert_eq!(body["displayname"], "Bob on Synapse");

    let (status, body) = displayname(&alice, &format!("@nobody:{}", synapse.server_name)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["errcode"], "M_NOT_FOUND");
}

/// The keys `notary` answers for `server` (key id `key_id`), and who signed them.
async fn notarised(notary_base: &str, server: &str, key_id: &str) -> (Value, Vec<String>) {
    // Synapse requires `minimum_valid_until_ts`, which the spec makes optional.
    let body = json!({"server_keys": {server: {key_id: {"minimum_valid_until_ts": 0}}}});
    let reply = request(
        notary_base,
        Method::POST,
        "/_matrix/key/v2/query",
        None,
        Some(&body),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let keys = reply.body["server_keys"]
        .as_array()
        .and_then(|list| list.iter().find(|k| k["server_name"] == server))
        .cloned()
        .unwrap_or_else(|| panic!("no keys for {server}: {}", reply.body));
    let mut signers: Vec<String> = keys["signatures"]
        .as_object()
        .map(|s| s.keys().cloned().collect())
        .unwrap_or_default();
    signers.sort();
    (keys, signers)
}

/// The key id a server publishes at `/_matrix/key/v2/server`.
async fn key_id(federation_base: &str) -> String {
    let reply = unsigned_get(federation_base, "/_matrix/key/v2/server").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["verify_keys"]
        .as_object()
        .and_then(|keys| keys.keys().next().cloned())
        .expect("a verify key")
}

#[tokio::test]
async fn each_server_vouches_for_the_others_keys_as_a_notary() {
    let synapse = peer().await;
    let plugboard = TestServer::start_federating().await;
    let ours = key_id(plugboard.federation()).await;
    let theirs = key_id(&synapse.federation_base).await;

    // Synapse fetches Plugboard's key over TLS, checks its self-signature and adds its own.
    let (keys, mut signers) =
        notarised(&synapse.federation_base, &plugboard.server_name, &ours).await;
    assert!(keys["verify_keys"][&ours]["key"].is_string(), "{keys}");
    let mut expected = vec![plugboard.server_name.clone(), synapse.server_name.clone()];
    expected.sort();
    signers.dedup();
    assert_eq!(signers, expected, "{keys}");

    // And the other way round.
    let (keys, signers) = notarised(plugboard.federation(), &synapse.server_name, &theirs).await;
    assert!(keys["verify_keys"][&theirs]["key"].is_string(), "{keys}");
    assert_eq!(signers, expected, "{keys}");
}
