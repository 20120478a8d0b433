//! Server-side key backups end to end: versions made, read, updated and deleted; keys stored
//! per session, per room and all at once, the better of two keys of a session kept, `etag`
//! and `count`; uploads to an old version refused with `M_WRONG_ROOM_KEYS_VERSION`; the
//! spec's errors; and uploads sent at once all kept.

use plugboard_tests::{enc, Client, TestServer};
use serde_json::{json, Value};

const ALGORITHM: &str = "m.megolm_backup.v1.curve25519-aes-sha2";

fn key(first_message_index: u32, forwarded_count: u32, is_verified: bool) -> Value {
    json!({
        "first_message_index": first_message_index,
        "forwarded_count": forwarded_count,
        "is_verified": is_verified,
        "session_data": {"ephemeral": "e", "ciphertext": format!("c{first_message_index}"), "mac": "m"},
    })
}

fn session_path(room: &str, session: &str, version: &str) -> String {
    format!(
        "/room_keys/keys/{}/{}?version={version}",
        enc(room),
        enc(session)
    )
}

async fn new_version(c: &Client, public_key: &str) -> String {
    let body = json!({"algorithm": ALGORITHM, "auth_data": {"public_key": public_key}});
    let made = c.post("/room_keys/version", body).await.ok();
    made["version"].as_str().expect("a version").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_backed_up_and_the_better_key_of_a_session_is_kept() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    alice
        .get("/room_keys/version")
        .await
        .err(404, "M_NOT_FOUND");

    let v1 = new_version(&alice, "pk1").await;
    assert_eq!(v1, "1");
    let current = alice.get("/room_keys/version").await.ok();
    assert_eq!(
        current,
        json!({"algorithm": ALGORITHM, "auth_data": {"public_key": "pk1"},
               "count": 0, "etag": "0", "version": "1"})
    );
    bob.get("/room_keys/version").await.err(404, "M_NOT_FOUND");

    let room = "!room:localhost";
    let path = session_path(room, "s1", &v1);
    let stored = alice.put(&path, key(5, 0, false)).await.ok();
    assert_eq!(stored, json!({"etag": "1", "count": 1}));
    // A worse key (a later first message) leaves the stored one and the etag.
    let same = alice.put(&path, key(7, 0, false)).await.ok();
    assert_eq!(same, json!({"etag": "1", "count": 1}));
    assert_eq!(alice.get(&path).await.ok(), key(5, 0, false));
    // A verified key is better, whatever its index.
    let better = alice.put(&path, key(10, 1, true)).await.ok();
    assert_eq!(better, json!({"etag": "2", "count": 1}));
    assert_eq!(alice.get(&path).await.ok(), key(10, 1, true));

    // A room's keys, and everything at once.
    let other = "!other:localhost";
    let room_path = format!("/room_keys/keys/{}?version={v1}", enc(other));
    let sessions = json!({"sessions": {"s2": key(0, 0, false), "s3": key(1, 0, false)}});
    let after = alice.put(&room_path, sessions.clone()).await.ok();
    assert_eq!(after["count"], 3);
    let all = json!({"rooms": {room: {"sessions": {"s4": key(2, 0, true)}}}});
    let after = alice
        .put(&format!("/room_keys/keys?version={v1}"), all)
        .await
        .ok();
    assert_eq!(after, json!({"etag": "4", "count": 4}));
    assert_eq!(alice.get(&room_path).await.ok(), sessions);
    let everything = alice
        .get(&format!("/room_keys/keys?version={v1}"))
        .await
        .ok();
    assert_eq!(
        everything["rooms"][room]["sessions"]["s1"],
        key(10, 1, true)
    );
    assert_eq!(
        everything["rooms"][other]["sessions"]
            .as_object()
            .unwrap()
            .len(),
        2
    );
    let empty_room = format!("/room_keys/keys/{}?version={v1}", enc("!none:localhost"));
    assert_eq!(alice.get(&empty_room).await.ok(), json!({"sessions": {}}));
    alice
        .get(&session_path(room, "nope", &v1))
        .await
        .err(404, "M_NOT_FOUND");

    // Deleting a session, a room, everything.
    let after = alice.delete(&path, json!({})).await.ok();
    assert_eq!(after["count"], 3);
    let after = alice.delete(&room_path, json!({})).await.ok();
    assert_eq!(after["count"], 1);
    let after = alice
        .delete(&format!("/room_keys/keys?version={v1}"), json!({}))
        .await
        .ok();
    assert_eq!(after, json!({"etag": "7", "count": 0}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_current_version_takes_keys_and_versions_are_never_reused() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let v1 = new_version(&alice, "pk1").await;
    let v2 = new_version(&alice, "pk2").await;
    assert_eq!(v2, "2");
    assert_eq!(alice.get("/room_keys/version").await.ok()["version"], "2");

    let old = alice
        .put(&session_path("!r:localhost", "s", &v1), key(0, 0, false))
        .await;
    old.err(403, "M_WRONG_ROOM_KEYS_VERSION");
    assert_eq!(old.body["current_version"], "2");
    // The old version can still be read.
    let first = alice.get(&format!("/room_keys/version/{v1}")).await.ok();
    assert_eq!(first["auth_data"]["public_key"], "pk1");

    // Updating: only auth_data changes.
    let update =
        json!({"algorithm": ALGORITHM, "auth_data": {"public_key": "pk2b"}, "version": "2"});
    alice
        .put(&format!("/room_keys/version/{v2}"), update)
        .await
        .ok();
    let second = alice.get(&format!("/room_keys/version/{v2}")).await.ok();
    assert_eq!(second["auth_data"]["public_key"], "pk2b");
    let other_algorithm = json!({"algorithm": "org.example.other", "auth_data": {}});
    alice
        .put(&format!("/room_keys/version/{v2}"), other_algorithm)
        .await
        .err(400, "M_INVALID_PARAM");
    let other_version = json!({"algorithm": ALGORITHM, "auth_data": {}, "version": "1"});
    alice
        .put(&format!("/room_keys/version/{v2}"), other_version)
        .await
        .err(400, "M_INVALID_PARAM");

    // Deleting the current version makes the one before it current; a new one is 3.
    alice
        .put(&session_path("!r:localhost", "s", &v2), key(0, 0, false))
        .await
        .ok();
    alice
        .delete(&format!("/room_keys/version/{v2}"), json!({}))
        .await
        .ok();
    alice
        .get(&format!("/room_keys/version/{v2}"))
        .await
        .err(404, "M_NOT_FOUND");
    alice
        .get(&format!("/room_keys/keys?version={v2}"))
        .await
        .err(404, "M_NOT_FOUND");
    assert_eq!(alice.get("/room_keys/version").await.ok()["version"], "1");
    assert_eq!(new_version(&alice, "pk3").await, "3");
    alice
        .delete(&format!("/room_keys/version/{v2}"), json!({}))
        .await
        .err(404, "M_NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_backup_requests_get_the_specs_errors() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    alice
        .post(
            "/room_keys/version",
            json!({"algorithm": "org.example.rot13", "auth_data": {}}),
        )
        .await
        .err(400, "M_INVALID_PARAM");
    alice
        .post("/room_keys/version", json!({"algorithm": ALGORITHM}))
        .await
        .err(400, "M_BAD_JSON");
    let v = new_version(&alice, "pk").await;
    alice
        .put("/room_keys/keys/%21r%3Alocalhost/s", key(0, 0, false))
        .await
        .err(400, "M_MISSING_PARAM");
    alice
        .put(&session_path("notaroom", "s", &v), key(0, 0, false))
        .await
        .err(400, "M_INVALID_PARAM");
    alice
        .put(
            &session_path("!r:localhost", "s", &v),
            json!({"first_message_index": -1, "forwarded_count": 0, "is_verified": false, "session_data": {}}),
        )
        .await
        .err(400, "M_BAD_JSON");
    for version in ["9", "x"] {
        alice
            .get(&format!("/room_keys/version/{version}"))
            .await
            .err(404, "M_NOT_FOUND");
        alice
            .put(
                &session_path("!r:localhost", "s", version),
                key(0, 0, false),
            )
            .await
            .err(404, "M_NOT_FOUND");
    }
    // Bob has his own backups: alice's version is not his.
    bob.get(&format!("/room_keys/version/{v}"))
        .await
        .err(404, "M_NOT_FOUND");
    bob.put(&session_path("!r:localhost", "s", &v), key(0, 0, false))
        .await
        .err(404, "M_NOT_FOUND");
    server
        .client()
        .get("/room_keys/version")
        .await
        .err(401, "M_MISSING_TOKEN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_sent_at_once_are_all_kept() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let v = new_version(&alice, "pk").await;
    let mut puts = tokio::task::JoinSet::new();
    for i in 0..20 {
        let (alice, v) = (alice.clone(), v.clone());
        puts.spawn(async move {
            let path = session_path("!r:localhost", &format!("s{i}"), &v);
            alice.put(&path, key(i, 0, false)).await.ok();
        });
    }
    while let Some(done) = puts.join_next().await {
        done.expect("an upload");
    }
    let current = alice.get("/room_keys/version").await.ok();
    assert_eq!(current["count"], 20);
    assert_eq!(current["etag"], "20");
}
