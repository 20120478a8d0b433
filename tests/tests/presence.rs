//! Presence end to end: set with `PUT …/status` and by a syncing client's `set_presence`,
//! read with `GET …/status` by oneself and by users sharing a room (no one else), and
//! delivered as `m.presence` in /sync, waking a long-poll; the errors of the spec.

use std::time::{Duration, Instant};

use plugboard_tests::{enc, Client, TestServer};
use serde_json::{json, Value};

fn status_path(user: &str) -> String {
    format!("/presence/{}/status", enc(user))
}

/// The `m.presence` content of `user` in a sync response.
fn presence_of(sync: &Value, user: &str) -> Option<Value> {
    sync["presence"]["events"]
        .as_array()?
        .iter()
        .find(|e| e["sender"] == user && e["type"] == "m.presence")
        .map(|e| e["content"].clone())
}

async fn sharing_a_room(server: &TestServer) -> (Client, Client) {
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice.create_room(json!({"preset": "public_chat"})).await;
    bob.join(&room).await.ok();
    (alice, bob)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_set_and_read_by_oneself_and_room_mates_only() {
    let server = TestServer::start().await;
    let (alice, bob) = sharing_a_room(&server).await;
    let carol = server.register("carol").await;
    alice
        .put(
            &status_path(&alice.user_id),
            json!({"presence": "unavailable", "status_msg": "at lunch"}),
        )
        .await
        .ok();
    for reader in [&alice, &bob] {
        let got = reader.get(&status_path(&alice.user_id)).await.ok();
        assert_eq!(got["presence"], "unavailable", "{got}");
        assert_eq!(got["status_msg"], "at lunch");
        assert_eq!(got["currently_active"], false);
        assert!(got["last_active_ago"].as_i64().is_some(), "{got}");
    }
    carol
        .get(&status_path(&alice.user_id))
        .await
        .err(403, "M_FORBIDDEN");
    // Someone who never set any is offline.
    assert_eq!(
        alice.get(&status_path(&bob.user_id)).await.ok(),
        json!({"presence": "offline"})
    );
    alice
        .put(&status_path(&bob.user_id), json!({"presence": "online"}))
        .await
        .err(403, "M_FORBIDDEN");
    alice
        .put(&status_path(&alice.user_id), json!({"presence": "busy"}))
        .await
        .err(400, "M_INVALID_PARAM");
    alice
        .put(
            &status_path(&alice.user_id),
            json!({"presence": "online", "status_msg": "x".repeat(2000)}),
        )
        .await
        .err(400, "M_INVALID_PARAM");
    alice
        .put(
            &status_path(&alice.user_id),
            json!({"status_msg": "no state"}),
        )
        .await
        .err(400, "M_BAD_JSON");
    alice
        .get(&status_path("@nobody:localhost"))
        .await
        .err(404, "M_NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_reaches_room_mates_in_sync_and_wakes_their_long_poll() {
    let server = TestServer::start().await;
    let (alice, bob) = sharing_a_room(&server).await;
    alice
        .put(
            &status_path(&alice.user_id),
            json!({"presence": "unavailable"}),
        )
        .await
        .ok();
    let first = bob.get("/sync?set_presence=offline&timeout=0").await.ok();
    assert_eq!(
        presence_of(&first, &alice.user_id).expect("alice's presence")["presence"],
        "unavailable"
    );
    let since = first["next_batch"].as_str().unwrap().to_string();

    let waiting = {
        let bob_path = format!(
            "/sync?set_presence=offline&timeout=10000&since={}",
            enc(&since)
        );
        let bob = bob.clone();
        tokio::spawn(async move { bob.get(&bob_path).await.ok() })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    alice
        .put(&status_path(&alice.user_id), json!({"presence": "online"}))
        .await
        .ok();
    let woken = waiting.await.unwrap();
    let content = presence_of(&woken, &alice.user_id).expect("the change");
    assert_eq!(content["presence"], "online", "{woken}");
    assert_eq!(content["currently_active"], true);

    // A filter that leaves presence out gets none.
    let filter = enc(&json!({"presence": {"not_types": ["*"]}}).to_string());
    let filtered = bob
        .get(&format!("/sync?set_presence=offline&filter={filter}"))
        .await
        .ok();
    assert!(
        presence_of(&filtered, &alice.user_id).is_none(),
        "{filtered}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_syncing_client_is_online_unless_it_says_otherwise_and_its_next_poll_still_waits() {
    let server = TestServer::start().await;
    let carol = server.register("carol").await;
    let dave = server.register("dave").await;
    dave.get("/sync?set_presence=offline").await.ok();
    assert_eq!(
        dave.get(&status_path(&dave.user_id)).await.ok()["presence"],
        "offline"
    );
    carol
        .get("/sync?set_presence=sleepy")
        .await
        .err(400, "M_INVALID_PARAM");
    let first = carol.get("/sync").await.ok();
    let mut online = Value::Null;
    for _ in 0..100 {
        online = carol.get(&status_path(&carol.user_id)).await.ok();
        if online["presence"] == "online" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(online["presence"], "online", "{online}");
    assert_eq!(online["currently_active"], true);

    // Her own change comes once; after it, a poll with nothing new waits its time out
    // instead of writing her activity again and waking itself.
    let mut since = first["next_batch"].as_str().unwrap().to_string();
    for _ in 0..3 {
        let next = carol
            .get(&format!("/sync?timeout=0&since={}", enc(&since)))
            .await
            .ok();
        since = next["next_batch"].as_str().unwrap().to_string();
    }
    let started = Instant::now();
    let idle = carol
        .get(&format!("/sync?timeout=1000&since={}", enc(&since)))
        .await
        .ok();
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "answered at once: {idle}"
    );
    assert!(presence_of(&idle, &carol.user_id).is_none(), "{idle}");
}
