//! Federation's queries against Synapse 1.163 and a second Plugboard: end-to-end encryption
//! keys across servers (a Plugboard user and the peer's user in an encrypted room query each
//! other's device keys, signatures intact, and claim each other's one-time keys, which are
//! then used up; the peer user's new device and new cross-signing keys reach Plugboard's
//! `device_lists.changed` and its next query), the peer's public rooms listed through
//! Plugboard (each of these against both peers), a space's hierarchy as another
//! server sees it, the event nearest a time (`/timestamp_to_event`) for a server in the room,
//! and hostile queries on the federation port answered without a 5xx.
//! Media is in `federation_media.rs`.
//!
//! The device keys are made here as a client makes them: a real ed25519 key per device signs
//! the device keys and the one-time keys over canonical JSON (ed25519-dalek); the curve25519
//! keys are random 32-byte values, never used for a real Olm session.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use plugboard::service::keys::to_canonical;
use plugboard_tests::federation::Peer;
use plugboard_tests::federation::{request, Identity};
use plugboard_tests::reading::wait_member;
use plugboard_tests::{against_both, enc, Client, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

against_both!(
    keys_are_queried_and_one_time_keys_claimed_across_servers_both_ways,
    a_new_device_of_the_peers_user_reaches_our_device_lists_and_next_query,
    the_peers_public_rooms_are_listed_through_plugboard,
    new_cross_signing_keys_of_the_peers_user_reach_our_device_lists_and_queries,
);

/// 32 bytes no other call of this run gets.
fn fresh_bytes(tag: u8) -> [u8; 32] {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut out = [tag; 32];
    out[..16].copy_from_slice(&nanos.to_le_bytes());
    out[16..24].copy_from_slice(&n.to_le_bytes());
    out[24..28].copy_from_slice(&std::process::id().to_le_bytes());
    out
}

/// `object` without `signatures` and `unsigned`: what a signature covers.
fn signed_part(object: &Value) -> Value {
    let mut bare = object.clone();
    let o = bare.as_object_mut().unwrap();
    o.remove("signatures");
    o.remove("unsigned");
    bare
}

fn sign(key: &SigningKey, user: &str, key_id: &str, object: &mut Value) {
    let sig = key.sign(to_canonical(&signed_part(object)).as_bytes());
    object["signatures"][user][key_id] = json!(STANDARD_NO_PAD.encode(sig.to_bytes()));
}

/// Whether `object` carries a good signature of `user`'s `key_id` by `public` (base64).
fn verifies(object: &Value, user: &str, key_id: &str, public: &str) -> bool {
    let (Some(sig), Ok(public)) = (
        object["signatures"][user][key_id].as_str(),
        STANDARD_NO_PAD.decode(public),
    ) else {
        return false;
    };
    let (Ok(sig), Ok(public)) = (STANDARD_NO_PAD.decode(sig), <[u8; 32]>::try_from(public)) else {
        return false;
    };
    let (Ok(sig), Ok(key)) = (
        Signature::from_slice(&sig),
        VerifyingKey::from_bytes(&public),
    ) else {
        return false;
    };
    key.verify(to_canonical(&signed_part(object)).as_bytes(), &sig)
        .is_ok()
}

/// A device's keys as its client uploads them: device keys and two one-time keys, all signed
/// by the device's ed25519 key.
struct DeviceKeys {
    device_keys: Value,
    one_time_keys: Value,
}

fn make_keys(c: &Client) -> DeviceKeys {
    let key = SigningKey::from_bytes(&fresh_bytes(1));
    let ed_id = format!("ed25519:{}", c.device_id);
    let mut device_keys = json!({
        "user_id": c.user_id,
        "device_id": c.device_id,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {
            ed_id.clone(): STANDARD_NO_PAD.encode(key.verifying_key().to_bytes()),
            format!("curve25519:{}", c.device_id): STANDARD_NO_PAD.encode(fresh_bytes(2)),
        },
    });
    sign(&key, &c.user_id, &ed_id, &mut device_keys);
    let mut one_time_keys = json!({});
    for id in ["AAAAAQ", "AAAAAg"] {
        let mut otk = json!({ "key": STANDARD_NO_PAD.encode(fresh_bytes(3)) });
        sign(&key, &c.user_id, &ed_id, &mut otk);
        one_time_keys[format!("signed_curve25519:{id}")] = otk;
    }
    DeviceKeys {
        device_keys,
        one_time_keys,
    }
}

/// Uploads `keys` for `c`'s device on its own server.
async fn upload(c: &Client, keys: &DeviceKeys) {
    let reply = c
        .post(
            "/keys/upload",
            json!({ "device_keys": keys.device_keys, "one_time_keys": keys.one_time_keys }),
        )
        .await
        .ok();
    assert_eq!(
        reply["one_time_key_counts"]["signed_curve25519"], 2,
        "{reply}"
    );
}

/// `c`'s device's count of unclaimed one-time keys, as its own server tells it.
async fn one_time_keys_left(c: &Client) -> Value {
    c.post("/keys/upload", json!({})).await.ok()["one_time_key_counts"]["signed_curve25519"].clone()
}

/// `asker`'s `/keys/query` of `user` (all devices).
async fn query(asker: &Client, user: &str) -> Value {
    asker
        .post(
            "/keys/query",
            json!({ "device_keys": { user: [] }, "timeout": 10_000 }),
        )
        .await
        .ok()
}

/// A Plugboard user (Alice) and the peer's user (Bob) in an encrypted room on Plugboard.
async fn encrypted_room(plugboard: &TestServer, alice: &Client, bob: &Client, peer: &Peer) {
    let room_id = alice
        .create_room(json!({
            "preset": "public_chat",
            "initial_state": [{
                "type": "m.room.encryption", "state_key": "",
                "content": {"algorithm": "m.megolm.v1.aes-sha2"},
            }],
        }))
        .await;
    let joined = bob.join_via(&room_id, &plugboard.server_name).await;
    assert_eq!(joined.status, 200, "{}\n{}", joined.body, peer.log_tail());
    wait_member(alice, &room_id, &bob.user_id).await;
}

async fn keys_are_queried_and_one_time_keys_claimed_across_servers_both_ways(peer: Peer) {
    let plugboard = TestServer::start_federating().await;
    let alice = plugboard.register("alice").await;
    let bob = peer.user("bob").await;
    let alice_keys = make_keys(&alice);
    let bob_keys = make_keys(&bob);
    upload(&alice, &alice_keys).await;
    upload(&bob, &bob_keys).await;
    encrypted_room(&plugboard, &alice, &bob, &peer).await;

    // Each side reads the other's device keys as they were uploaded, signatures intact.
    for (asker, owner, uploaded) in [(&alice, &bob, &bob_keys), (&bob, &alice, &alice_keys)] {
        let answer = query(asker, &owner.user_id).await;
        assert_eq!(
            answer["failures"],
            json!({}),
            "{answer}\n{}",
            peer.log_tail()
        );
        let got = &answer["device_keys"][&owner.user_id][&owner.device_id];
        assert_eq!(
            signed_part(got),
            signed_part(&uploaded.device_keys),
            "{answer}"
        );
        assert_eq!(got["signatures"], uploaded.device_keys["signatures"]);
        let ed_id = format!("ed25519:{}", owner.device_id);
        let public = got["keys"][&ed_id].as_str().unwrap();
        assert!(verifies(got, &owner.user_id, &ed_id, public), "{got}");
    }

    // Each side claims one of the other's one-time keys: one that was uploaded, still signed,
    // and used up on its own server.
    for (asker, owner, uploaded) in [(&alice, &bob, &bob_keys), (&bob, &alice, &alice_keys)] {
        let claimed = asker
            .post(
                "/keys/claim",
                json!({
                    "one_time_keys": { owner.user_id.clone(): { owner.device_id.clone(): "signed_curve25519" } },
                    "timeout": 10_000,
                }),
            )
            .await
            .ok();
        assert_eq!(claimed["failures"], json!({}), "{claimed}");
        let keys = claimed["one_time_keys"][&owner.user_id][&owner.device_id]
            .as_object()
            .unwrap_or_else(|| panic!("no key claimed: {claimed}\n{}", peer.log_tail()));
        assert_eq!(keys.len(), 1, "{claimed}");
        let (id, key) = keys.iter().next().unwrap();
        assert_eq!(key, &uploaded.one_time_keys[id], "{claimed}");
        let ed_id = format!("ed25519:{}", owner.device_id);
        let public = uploaded.device_keys["keys"][&ed_id].as_str().unwrap();
        assert!(verifies(key, &owner.user_id, &ed_id, public));
        assert_eq!(one_time_keys_left(owner).await, 1, "{}", owner.user_id);
    }
}

/// Waits (30 s at most) until `reader`'s sync since `since` lists `user` in
/// `device_lists.changed`.
async fn wait_changed(reader: &Client, since: &str, user: &str, peer: &Peer) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let sync = reader.sync(Some(since), 1000).await;
        let changed = sync["device_lists"]["changed"].as_array();
        if changed.is_some_and(|c| c.iter().any(|u| u == user)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{user} never showed in device_lists.changed: {sync}\n{}",
            peer.log_tail()
        );
    }
}

async fn a_new_device_of_the_peers_user_reaches_our_device_lists_and_next_query(peer: Peer) {
    let plugboard = TestServer::start_federating().await;
    let alice = plugboard.register("alice").await;
    let bob = peer.user("bob").await;
    upload(&bob, &make_keys(&bob)).await;
    encrypted_room(&plugboard, &alice, &bob, &peer).await;
    let first = query(&alice, &bob.user_id).await;
    let devices = first["device_keys"][&bob.user_id].as_object().unwrap();
    assert_eq!(devices.len(), 1, "{first}");
    let since = alice.sync(None, 0).await["next_batch"]
        .as_str()
        .unwrap()
        .to_string();

    // Bob signs in on a second device and uploads its keys.
    let login = Client::new(&bob.base)
        .post(
            "/login",
            json!({
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": bob.user_id},
                "password": "password",
            }),
        )
        .await
        .ok();
    let mut phone = Client::new(&bob.base);
    phone.token = login["access_token"].as_str().map(str::to_string);
    phone.user_id = bob.user_id.clone();
    phone.device_id = login["device_id"].as_str().unwrap().to_string();
    upload(&phone, &make_keys(&phone)).await;

    // The peer's m.device_list_update makes Bob changed in Alice's sync…
    wait_changed(&alice, &since, &bob.user_id, &peer).await;
    // …and her next query asks the peer again: both devices.
    let second = query(&alice, &bob.user_id).await;
    let devices = second["device_keys"][&bob.user_id].as_object().unwrap();
    assert!(devices.contains_key(&phone.device_id), "{second}");
    assert!(devices.contains_key(&bob.device_id), "{second}");
}

async fn the_peers_public_rooms_are_listed_through_plugboard(peer: Peer) {
    let plugboard = TestServer::start_federating().await;
    let alice = plugboard.register("alice").await;
    let bob = peer.user("bob").await;
    let name = format!("Federated lobby {}", STANDARD_NO_PAD.encode(fresh_bytes(4)));
    let room_id = bob
        .create_room(json!({"preset": "public_chat", "visibility": "public", "name": name}))
        .await;
    let server = enc(peer.server_name());

    let listed = |reply: &Value| {
        reply["chunk"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["room_id"] == room_id.as_str() && r["name"] == name.as_str())
    };
    let all = alice
        .get(&format!("/publicRooms?server={server}&limit=500"))
        .await
        .ok();
    assert!(listed(&all), "{all}");
    let searched = alice
        .post(
            &format!("/publicRooms?server={server}"),
            json!({"filter": {"generic_search_term": name}}),
        )
        .await
        .ok();
    assert!(listed(&searched), "{searched}");
    // Plugboard's own directory does not have it.
    let local = alice.get("/publicRooms").await.ok();
    assert!(!listed(&local), "{local}");
    // Anyone may read Plugboard's directory, but only a user may have it ask another server.
    let anonymous = Client::new(&alice.base);
    anonymous.get("/publicRooms").await.ok();
    anonymous
        .get(&format!("/publicRooms?server={server}"))
        .await
        .err(401, "M_MISSING_TOKEN");
}

#[tokio::test]
async fn queries_about_other_servers_users_and_unknown_things_are_4xx_never_5xx() {
    let a = TestServer::start_federating().await;
    let b = TestServer::start_federating().await;
    let b_id = Identity::of(&b);
    let alice = a.register("alice").await;
    upload(&alice, &make_keys(&alice)).await;

    let elsewhere = format!("@someone:{}", b.server_name);
    for (uri, want) in [
        // Another server's user: not A's to answer for.
        (
            format!("/_matrix/federation/v1/user/devices/{}", enc(&elsewhere)),
            404,
        ),
        ("/_matrix/federation/v1/user/devices/not-a-user".into(), 400),
        (
            "/_matrix/federation/v1/media/download/NoSuchMedia".into(),
            404,
        ),
        (
            "/_matrix/federation/v1/media/download/..%2Fsigning.key".into(),
            404,
        ),
        (
            format!(
                "/_matrix/federation/v1/hierarchy/{}",
                enc("!AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            ),
            404,
        ),
    ] {
        let reply = a.signed_get(&b_id, &uri).await;
        assert_eq!(reply.status.as_u16(), want, "{uri}: {}", reply.body);
        assert!(reply.body["errcode"].is_string(), "{uri}: {}", reply.body);
    }

    // Alice's own devices are A's to tell.
    let uri = format!(
        "/_matrix/federation/v1/user/devices/{}",
        enc(&alice.user_id)
    );
    let devices = a.signed_get(&b_id, &uri).await.ok();
    assert_eq!(devices["user_id"], alice.user_id.as_str());
    assert_eq!(devices["devices"][0]["device_id"], alice.device_id.as_str());
    assert!(devices["stream_id"].as_i64().unwrap() > 0, "{devices}");

    // A query or claim names another server's user beside Alice: only Alice is answered.
    let signed_post = |uri: &'static str, body: Value| {
        let auth = b_id.authorization("POST", uri, &a.server_name, Some(&body));
        let base = a.federation().to_string();
        async move { request(&base, Method::POST, uri, Some(&auth), Some(&body)).await }
    };
    let queried = signed_post(
        "/_matrix/federation/v1/user/keys/query",
        json!({"device_keys": {alice.user_id.clone(): [], elsewhere.clone(): []}}),
    )
    .await
    .ok();
    assert!(queried["device_keys"][&alice.user_id][&alice.device_id].is_object());
    assert!(
        queried["device_keys"].get(&elsewhere).is_none(),
        "{queried}"
    );
    let claimed = signed_post(
        "/_matrix/federation/v1/user/keys/claim",
        json!({"one_time_keys": {
            alice.user_id.clone(): {alice.device_id.clone(): "signed_curve25519"},
            elsewhere.clone(): {"DEV": "signed_curve25519"},
        }}),
    )
    .await
    .ok();
    assert_eq!(
        claimed["one_time_keys"][&alice.user_id][&alice.device_id]
            .as_object()
            .map(|k| k.len()),
        Some(1),
        "{claimed}"
    );
    assert!(claimed["one_time_keys"].get(&elsewhere).is_none());
    // A body that is not a key query, and no signature at all.
    let bad = signed_post(
        "/_matrix/federation/v1/user/keys/query",
        json!({"device_keys": "everything"}),
    )
    .await;
    bad.err(400, "M_BAD_JSON");
    let unsigned = request(a.federation(), Method::GET, &uri, None, None).await;
    unsigned.err(401, "M_UNAUTHORIZED");
}

#[tokio::test]
async fn another_server_sees_a_public_spaces_children_and_which_it_may_not_see() {
    let a = TestServer::start_federating().await;
    let b = TestServer::start_federating().await;
    let alice = a.register("alice").await;
    let space = alice
        .create_room(json!({"preset": "public_chat", "name": "Space", "creation_content": {"type": "m.space"}}))
        .await;
    let open = alice
        .create_room(json!({"preset": "public_chat", "name": "Open"}))
        .await;
    let closed = alice
        .create_room(json!({"preset": "private_chat", "name": "Closed"}))
        .await;
    for child in [&open, &closed] {
        alice
            .put(
                &format!("/rooms/{}/state/m.space.child/{}", enc(&space), enc(child)),
                json!({"via": [a.server_name]}),
            )
            .await
            .ok();
    }
    let uri = format!("/_matrix/federation/v1/hierarchy/{}", enc(&space));
    let tree = a.signed_get(&Identity::of(&b), &uri).await.ok();
    assert_eq!(tree["room"]["room_id"], space.as_str(), "{tree}");
    assert_eq!(tree["room"]["room_type"], "m.space", "{tree}");
    assert_eq!(
        tree["room"]["children_state"].as_array().map(Vec::len),
        Some(2),
        "{tree}"
    );
    let children: Vec<&str> = tree["children"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["room_id"].as_str())
        .collect();
    assert_eq!(children, [open.as_str()], "{tree}");
    assert_eq!(tree["inaccessible_children"], json!([closed]), "{tree}");

    // The closed room itself is not another server's to look into.
    let uri = format!("/_matrix/federation/v1/hierarchy/{}", enc(&closed));
    a.signed_get(&Identity::of(&b), &uri)
        .await
        .err(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn a_server_that_does_not_answer_in_the_clients_timeout_is_named_in_failures() {
    let plugboard = TestServer::start_federating().await;
    let alice = plugboard.register("alice").await;
    upload(&alice, &make_keys(&alice)).await;
    // A server that takes the connection and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_name = format!("127.0.0.1:{}", silent.local_addr().unwrap().port());
    // And one whose port takes no connection at all.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_name = format!("127.0.0.1:{}", closed.local_addr().unwrap().port());
    drop(closed);

    let started = Instant::now();
    let answer = alice
        .post(
            "/keys/query",
            json!({
                "device_keys": {
                    alice.user_id.clone(): [],
                    format!("@bob:{silent_name}"): [],
                    format!("@carol:{closed_name}"): [],
                },
                "timeout": 1500,
            }),
        )
        .await
        .ok();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(8), "the query took {took:?}");
    assert_eq!(answer["failures"][&silent_name]["status"], 504, "{answer}");
    assert!(
        answer["failures"][&closed_name]["status"].is_u64(),
        "{answer}"
    );
    // What this server has is answered all the same.
    assert!(answer["device_keys"][&alice.user_id][&alice.device_id].is_object());

    let claimed = alice
        .post(
            "/keys/claim",
            json!({
                "one_time_keys": { format!("@bob:{silent_name}"): {"DEV": "signed_curve25519"} },
                "timeout": 1500,
            }),
        )
        .await
        .ok();
    assert_eq!(
        claimed["failures"][&silent_name]["status"], 504,
        "{claimed}"
    );
    assert_eq!(claimed["one_time_keys"], json!({}));
    drop(silent);
}

/// A cross-signing key of `user` for `usage`: (its JSON, its signing key).
fn cross_signing_key(user: &str, usage: &str) -> (Value, SigningKey) {
    let key = SigningKey::from_bytes(&fresh_bytes(5));
    let public = STANDARD_NO_PAD.encode(key.verifying_key().to_bytes());
    let json = json!({ "user_id": user, "usage": [usage], "keys": { format!("ed25519:{public}"): public } });
    (json, key)
}

async fn new_cross_signing_keys_of_the_peers_user_reach_our_device_lists_and_queries(peer: Peer) {
    let plugboard = TestServer::start_federating().await;
    let alice = plugboard.register("alice").await;
    let bob = peer.user("bob").await;
    upload(&bob, &make_keys(&bob)).await;
    encrypted_room(&plugboard, &alice, &bob, &peer).await;
    let first = query(&alice, &bob.user_id).await;
    assert!(first["master_keys"].get(&bob.user_id).is_none(), "{first}");
    let since = alice.sync(None, 0).await["next_batch"]
        .as_str()
        .unwrap()
        .to_string();

    // Bob sets up cross-signing: a master key, and a self-signing key it signs.
    let (master, master_key) = cross_signing_key(&bob.user_id, "master");
    let (mut self_signing, _) = cross_signing_key(&bob.user_id, "self_signing");
    let master_public = STANDARD_NO_PAD.encode(master_key.verifying_key().to_bytes());
    let master_id = format!("ed25519:{master_public}");
    sign(&master_key, &bob.user_id, &master_id, &mut self_signing);
    bob.post(
        "/keys/device_signing/upload",
        json!({ "master_key": master, "self_signing_key": self_signing }),
    )
    .await
    .ok();

    wait_changed(&alice, &since, &bob.user_id, &peer).await;
    let second = query(&alice, &bob.user_id).await;
    let got = &second["master_keys"][&bob.user_id];
    assert_eq!(got["keys"], master["keys"], "{second}");
    let got = &second["self_signing_keys"][&bob.user_id];
    assert_eq!(got["keys"], self_signing["keys"], "{second}");
    assert!(
        verifies(got, &bob.user_id, &master_id, &master_public),
        "{got}"
    );
}

#[tokio::test]
async fn a_server_in_the_room_finds_the_event_nearest_a_time_and_one_outside_is_refused() {
    let a = TestServer::start_federating().await;
    let b = TestServer::start_federating().await;
    let c = TestServer::start_federating().await;
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let room_id = alice.create_room(json!({"preset": "public_chat"})).await;
    let joined = bob.join_via(&room_id, &a.server_name).await;
    assert_eq!(joined.status, 200, "{}", joined.body);
    wait_member(&alice, &room_id, &bob.user_id).await;

    let sent_at = |event_id: String| {
        let alice = alice.clone();
        let room_id = room_id.clone();
        async move {
            let event = alice
                .get(&format!(
                    "/rooms/{}/event/{}",
                    enc(&room_id),
                    enc(&event_id)
                ))
                .await
                .ok();
            (event_id, event["origin_server_ts"].as_i64().unwrap())
        }
    };
    let first = sent_at(alice.send_text(&room_id, "first").await).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = sent_at(alice.send_text(&room_id, "second").await).await;
    assert!(second.1 > first.1 + 1, "{first:?} {second:?}");

    let ask = |ts: i64, dir: &str| {
        format!(
            "/_matrix/federation/v1/timestamp_to_event/{}?ts={ts}&dir={dir}",
            enc(&room_id)
        )
    };
    let b_id = Identity::of(&b);
    for (ts, dir, want) in [
        (first.1 + 1, "f", &second),
        (second.1 - 1, "b", &first),
        (first.1, "f", &first),
        (second.1 + 60_000, "b", &second),
    ] {
        let found = a.signed_get(&b_id, &ask(ts, dir)).await.ok();
        assert_eq!(found["event_id"], want.0.as_str(), "{ts} {dir}: {found}");
        assert_eq!(found["origin_server_ts"], want.1, "{found}");
    }
    // Nothing after the last event; a missing or odd `dir`; a server with no one in the room.
    a.signed_get(&b_id, &ask(second.1 + 60_000, "f"))
        .await
        .err(404, "M_NOT_FOUND");
    let uri = format!(
        "/_matrix/federation/v1/timestamp_to_event/{}?ts=1",
        enc(&room_id)
    );
    a.signed_get(&b_id, &uri).await.err(400, "M_MISSING_PARAM");
    a.signed_get(&b_id, &ask(1, "sideways"))
        .await
        .err(400, "M_INVALID_PARAM");
    a.signed_get(&Identity::of(&c), &ask(first.1, "f"))
        .await
        .err(403, "M_FORBIDDEN");
}
