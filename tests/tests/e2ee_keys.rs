//! End-to-end encryption served end to end: device keys uploaded (signed by their device) and
//! queried, one-time keys claimed once and then the fallback key, key changes in the other
//! user's /sync and /keys/changes, to-device messages delivered once and idempotent per
//! transaction id, cross-signing behind user-interactive auth, and a deleted device's keys
//! and messages gone with it.

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use plugboard::service::keys::to_canonical;
use plugboard_tests::{enc, Client, TestServer};
use serde_json::{json, Value};

/// Signs `object` as `user`'s key `key_id`.
fn sign(key: &SigningKey, user: &str, key_id: &str, object: &mut Value) {
    let mut bare = object.clone();
    bare.as_object_mut().unwrap().remove("signatures");
    bare.as_object_mut().unwrap().remove("unsigned");
    let sig = key.sign(to_canonical(&bare).as_bytes());
    object["signatures"][user][key_id] = json!(STANDARD_NO_PAD.encode(sig.to_bytes()));
}

fn public(key: &SigningKey) -> String {
    STANDARD_NO_PAD.encode(key.verifying_key().to_bytes())
}

/// A device's keys, signed by its ed25519 key `key`.
fn device_keys(c: &Client, key: &SigningKey) -> Value {
    let id = format!("ed25519:{}", c.device_id);
    let mut keys = json!({
        "user_id": c.user_id,
        "device_id": c.device_id,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": { id.clone(): public(key), format!("curve25519:{}", c.device_id): "curve" },
    });
    sign(key, &c.user_id, &id, &mut keys);
    keys
}

async fn shared_room(alice: &Client, bob: &Client) -> String {
    let room = alice.create_room(json!({"preset": "private_chat"})).await;
    alice.invite(&room, &bob.user_id).await.ok();
    bob.join(&room).await.ok();
    room
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_uploaded_queried_and_a_one_time_key_claimed_once_then_the_fallback() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let key = SigningKey::from_bytes(&[1; 32]);
    let keys = device_keys(&alice, &key);
    let uploaded = alice
        .post(
            "/keys/upload",
            json!({
                "device_keys": keys,
                "one_time_keys": {
                    "signed_curve25519:AAA": {"key": "k1"},
                    "signed_curve25519:AAB": {"key": "k2"},
                },
                "fallback_keys": { "signed_curve25519:FFF": {"key": "f", "fallback": true} },
            }),
        )
        .await
        .ok();
    assert_eq!(
        uploaded,
        json!({"one_time_key_counts": {"signed_curve25519": 2}})
    );

    let queried = bob
        .post(
            "/keys/query",
            json!({"device_keys": {alice.user_id.clone(): []}}),
        )
        .await
        .ok();
    let got = &queried["device_keys"][&alice.user_id][&alice.device_id];
    assert_eq!(got["keys"], keys["keys"], "{queried}");
    assert_eq!(got["signatures"], keys["signatures"]);
    assert_eq!(queried["failures"], json!({}));

    let claim = json!({"one_time_keys": {alice.user_id.clone(): {alice.device_id.clone(): "signed_curve25519"}}});
    let mut claimed = Vec::new();
    for _ in 0..4 {
        let c = bob.post("/keys/claim", claim.clone()).await.ok();
        let keys = c["one_time_keys"][&alice.user_id][&alice.device_id]
            .as_object()
            .cloned()
            .unwrap();
        claimed.push(keys.keys().next().unwrap().clone());
    }
    assert_eq!(
        claimed,
        [
            "signed_curve25519:AAA",
            "signed_curve25519:AAB",
            "signed_curve25519:FFF",
            "signed_curve25519:FFF"
        ]
    );

    // The counts and the used fallback in alice's sync.
    let sync = alice.sync(None, 0).await;
    assert_eq!(
        sync["device_one_time_keys_count"],
        json!({"signed_curve25519": 0})
    );
    assert_eq!(sync["device_unused_fallback_key_types"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_keys_of_another_device_or_badly_signed_are_refused() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let key = SigningKey::from_bytes(&[2; 32]);
    let mut keys = device_keys(&alice, &key);
    keys["device_id"] = json!("OTHER");
    alice
        .post("/keys/upload", json!({"device_keys": keys}))
        .await
        .err(400, "M_INVALID_PARAM");
    let mut keys = device_keys(&alice, &key);
    keys["algorithms"] = json!(["changed.after.signing"]);
    alice
        .post("/keys/upload", json!({"device_keys": keys}))
        .await
        .err(400, "M_INVALID_SIGNATURE");
    alice
        .post("/keys/upload", json!({"one_time_keys": {"no_colon": {}}}))
        .await
        .err(400, "M_INVALID_PARAM");
    let nothing = alice
        .post(
            "/keys/query",
            json!({"device_keys": {alice.user_id.clone(): []}}),
        )
        .await
        .ok();
    assert_eq!(nothing["device_keys"][&alice.user_id], json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_change_shows_in_the_other_users_sync_and_keys_changes() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let carol = server.register("carol").await;
    shared_room(&alice, &bob).await;
    let since = bob.sync(None, 0).await["next_batch"]
        .as_str()
        .unwrap()
        .to_string();
    let carol_since = carol.sync(None, 0).await["next_batch"]
        .as_str()
        .unwrap()
        .to_string();

    let key = SigningKey::from_bytes(&[3; 32]);
    alice
        .post(
            "/keys/upload",
            json!({"device_keys": device_keys(&alice, &key)}),
        )
        .await
        .ok();
    let sync = bob.sync(Some(&since), 10_000).await;
    assert_eq!(
        sync["device_lists"]["changed"],
        json!([alice.user_id]),
        "{sync}"
    );
    let upto = sync["next_batch"].as_str().unwrap();
    let changes = bob
        .get(&format!(
            "/keys/changes?from={}&to={}",
            enc(&since),
            enc(upto)
        ))
        .await
        .ok();
    assert_eq!(changes, json!({"changed": [alice.user_id], "left": []}));
    // Carol shares no room with alice: nothing for her.
    let carol_sync = carol.sync(Some(&carol_since), 0).await;
    assert_eq!(
        carol_sync["device_lists"],
        json!({"changed": [], "left": []})
    );

    // Bob leaves the only room they share: alice is in his `left`.
    let rooms = bob.get("/joined_rooms").await.ok();
    let room = rooms["joined_rooms"][0].as_str().unwrap().to_string();
    bob.post(&format!("/rooms/{}/leave", enc(&room)), json!({}))
        .await
        .ok();
    let after_leave = bob.sync(Some(upto), 0).await;
    assert_eq!(
        after_leave["device_lists"]["left"],
        json!([alice.user_id]),
        "{after_leave}"
    );
    bob.get("/keys/changes?from=s1_0")
        .await
        .err(400, "M_MISSING_PARAM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_to_device_message_is_delivered_once_idempotent_per_txn_and_deleted_after_the_next_sync()
{
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let since = bob.sync(None, 0).await["next_batch"]
        .as_str()
        .unwrap()
        .to_string();
    let body = json!({"messages": {bob.user_id.clone(): {"*": {"secret": 1}}}});
    for _ in 0..2 {
        alice
            .put("/sendToDevice/m.room_key_request/txn1", body.clone())
            .await
            .ok();
    }
    let sync = bob.sync(Some(&since), 10_000).await;
    let events = sync["to_device"]["events"].clone();
    assert_eq!(
        events,
        json!([{"sender": alice.user_id, "type": "m.room_key_request", "content": {"secret": 1}}])
    );
    // The same since again (a lost response): handed out again.
    let again = bob.sync(Some(&since), 0).await;
    assert_eq!(again["to_device"]["events"], events);
    // The next since acknowledges it.
    let next = sync["next_batch"].as_str().unwrap();
    let later = bob.sync(Some(next), 0).await;
    assert_eq!(later["to_device"]["events"], json!([]));
    alice
        .put("/sendToDevice/m.room_key_request/txn1", body.clone())
        .await
        .ok();
    let none = bob.sync(Some(next), 0).await;
    assert_eq!(none["to_device"]["events"], json!([]));
}

fn cross_signing_key(user: &str, usage: &str, key: &SigningKey) -> Value {
    let public = public(key);
    json!({"user_id": user, "usage": [usage], "keys": {format!("ed25519:{public}"): public}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_signing_keys_go_up_without_auth_first_then_behind_the_password() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let device = SigningKey::from_bytes(&[4; 32]);
    alice
        .post(
            "/keys/upload",
            json!({"device_keys": device_keys(&alice, &device)}),
        )
        .await
        .ok();
    let master = SigningKey::from_bytes(&[5; 32]);
    let ssk = SigningKey::from_bytes(&[6; 32]);
    let usk = SigningKey::from_bytes(&[7; 32]);
    let master_id = format!("ed25519:{}", public(&master));
    let master_key = cross_signing_key(&alice.user_id, "master", &master);
    let mut self_signing = cross_signing_key(&alice.user_id, "self_signing", &ssk);
    let mut user_signing = cross_signing_key(&alice.user_id, "user_signing", &usk);
    let mut badly_signed = self_signing.clone();
    sign(&ssk, &alice.user_id, &master_id, &mut badly_signed);
    alice
        .post(
            "/keys/device_signing/upload",
            json!({"master_key": master_key, "self_signing_key": badly_signed}),
        )
        .await
        .err(400, "M_INVALID_SIGNATURE");
    sign(&master, &alice.user_id, &master_id, &mut self_signing);
    sign(&master, &alice.user_id, &master_id, &mut user_signing);
    let upload = json!({
        "master_key": master_key,
        "self_signing_key": self_signing,
        "user_signing_key": user_signing,
    });
    alice
        .post("/keys/device_signing/upload", upload.clone())
        .await
        .ok();
    // The same keys again go without auth; new ones need the password.
    alice
        .post("/keys/device_signing/upload", upload.clone())
        .await
        .ok();
    let new_master = cross_signing_key(&alice.user_id, "master", &SigningKey::from_bytes(&[8; 32]));
    let challenge = alice
        .post(
            "/keys/device_signing/upload",
            json!({"master_key": new_master}),
        )
        .await;
    assert_eq!(challenge.status.as_u16(), 401, "{}", challenge.body);
    assert_eq!(
        challenge.body["flows"],
        json!([{"stages": ["m.login.password"]}])
    );

    // Alice's self-signing key signs her device; bob sees it, and her keys but not her
    // user-signing key.
    let mut signed_device = device_keys(&alice, &device);
    signed_device["signatures"] = json!({});
    sign(
        &ssk,
        &alice.user_id,
        &format!("ed25519:{}", public(&ssk)),
        &mut signed_device,
    );
    let failures = alice
        .post(
            "/keys/signatures/upload",
            json!({alice.user_id.clone(): {alice.device_id.clone(): signed_device}}),
        )
        .await
        .ok();
    assert_eq!(failures, json!({"failures": {}}));
    let seen = bob
        .post(
            "/keys/query",
            json!({"device_keys": {alice.user_id.clone(): []}}),
        )
        .await
        .ok();
    let sigs = &seen["device_keys"][&alice.user_id][&alice.device_id]["signatures"][&alice.user_id];
    assert_eq!(sigs.as_object().unwrap().len(), 2, "{seen}");
    assert_eq!(seen["master_keys"][&alice.user_id], master_key);
    assert_eq!(seen["self_signing_keys"][&alice.user_id], self_signing);
    assert_eq!(seen["user_signing_keys"], json!({}));
    let own = alice
        .post(
            "/keys/query",
            json!({"device_keys": {alice.user_id.clone(): []}}),
        )
        .await
        .ok();
    assert_eq!(own["user_signing_keys"][&alice.user_id], user_signing);

    // With the password, a new master key replaces the old.
    let authed = json!({
        "master_key": new_master,
        "auth": {"type": "m.login.password", "session": challenge.body["session"],
                 "identifier": {"type": "m.id.user", "user": alice.user_id}, "password": "password"},
    });
    alice.post("/keys/device_signing/upload", authed).await.ok();
    let seen = bob
        .post(
            "/keys/query",
            json!({"device_keys": {alice.user_id.clone(): []}}),
        )
        .await
        .ok();
    assert_eq!(seen["master_keys"][&alice.user_id], new_master);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_device_loses_its_keys_and_messages_and_its_contacts_hear_of_it() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    shared_room(&alice, &bob).await;
    let alice_phone = {
        let body = server
            .client()
            .post(
                "/login",
                json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": "password"}),
            )
            .await
            .ok();
        let mut c = server.client();
        c.token = Some(body["access_token"].as_str().unwrap().to_string());
        c.user_id = alice.user_id.clone();
        c.device_id = body["device_id"].as_str().unwrap().to_string();
        c
    };
    let key = SigningKey::from_bytes(&[9; 32]);
    alice_phone
        .post(
            "/keys/upload",
            json!({"device_keys": device_keys(&alice_phone, &key),
                   "one_time_keys": {"signed_curve25519:A": {"key": "k"}}}),
        )
        .await
        .ok();
    bob.put(
        "/sendToDevice/m.test/t1",
        json!({"messages": {alice.user_id.clone(): {alice_phone.device_id.clone(): {"x": 1}}}}),
    )
    .await
    .ok();
    let since = bob.sync(None, 0).await["next_batch"]
        .as_str()
        .unwrap()
        .to_string();

    let path = format!("/devices/{}", enc(&alice_phone.device_id));
    let auth = json!({"auth": {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": alice.user_id}, "password": "password"}});
    alice.delete(&path, auth).await.ok();

    let queried = bob
        .post(
            "/keys/query",
            json!({"device_keys": {alice.user_id.clone(): []}}),
        )
        .await
        .ok();
    assert_eq!(queried["device_keys"][&alice.user_id], json!({}));
    let claim = json!({"one_time_keys": {alice.user_id.clone(): {alice_phone.device_id.clone(): "signed_curve25519"}}});
    let claimed = bob.post("/keys/claim", claim).await.ok();
    assert_eq!(claimed["one_time_keys"], json!({}));
    let sync = bob.sync(Some(&since), 10_000).await;
    assert_eq!(
        sync["device_lists"]["changed"],
        json!([alice.user_id]),
        "{sync}"
    );
}
