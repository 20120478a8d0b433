//! Room tags end to end: tags set, listed and removed through `/tags`, each change reaching
//! the next /sync as the room's `m.tag` account data; tags sent at once all kept; and the
//! errors for another user's tags, bad room ids and bad tag content.

use plugboard_tests::{enc, Client, TestServer};
use serde_json::{json, Value};

fn tags_path(c: &Client, room: &str) -> String {
    format!("/user/{}/rooms/{}/tags", enc(&c.user_id), enc(room))
}

/// The `m.tag` content of `room` in a sync response, if it has one.
fn tags_in(sync: &Value, room: &str) -> Option<Value> {
    sync["rooms"]["join"][room]["account_data"]["events"]
        .as_array()?
        .iter()
        .find(|e| e["type"] == "m.tag")
        .map(|e| e["content"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_are_set_listed_and_removed_and_sync_carries_them() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({})).await;
    let path = tags_path(&alice, &room);
    assert_eq!(alice.get(&path).await.ok(), json!({"tags": {}}));
    let since = alice.sync(None, 0).await["next_batch"]
        .as_str()
        .unwrap()
        .to_string();

    alice
        .put(&format!("{path}/u.work"), json!({"order": 0.25}))
        .await
        .ok();
    alice
        .put(&format!("{path}/m.favourite"), json!({}))
        .await
        .ok();
    let both = json!({"tags": {"u.work": {"order": 0.25}, "m.favourite": {}}});
    assert_eq!(alice.get(&path).await.ok(), both);
    let next = alice.sync(Some(&since), 0).await;
    assert_eq!(tags_in(&next, &room), Some(both));

    let since = next["next_batch"].as_str().unwrap().to_string();
    alice
        .delete(&format!("{path}/m.favourite"), json!({}))
        .await
        .ok();
    // Removing a tag the room does not have is no error.
    alice
        .delete(&format!("{path}/u.never"), json!({}))
        .await
        .ok();
    let one = json!({"tags": {"u.work": {"order": 0.25}}});
    assert_eq!(alice.get(&path).await.ok(), one);
    let next = alice.sync(Some(&since), 0).await;
    assert_eq!(tags_in(&next, &room), Some(one));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_sent_at_once_are_all_kept() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({})).await;
    let path = tags_path(&alice, &room);
    let mut puts = tokio::task::JoinSet::new();
    for i in 0..10 {
        let (alice, path) = (alice.clone(), path.clone());
        puts.spawn(async move {
            alice
                .put(&format!("{path}/u.t{i}"), json!({"order": i as f64 / 10.0}))
                .await
                .ok();
        });
    }
    while let Some(done) = puts.join_next().await {
        done.expect("a put");
    }
    let tags = alice.get(&path).await.ok();
    assert_eq!(tags["tags"].as_object().unwrap().len(), 10, "{tags}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tag_requests_get_clear_errors() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice.create_room(json!({})).await;
    let path = tags_path(&alice, &room);
    bob.get(&path).await.err(403, "M_FORBIDDEN");
    bob.put(&format!("{path}/u.x"), json!({}))
        .await
        .err(403, "M_FORBIDDEN");
    let bad_room = format!("/user/{}/rooms/notaroom/tags", enc(&alice.user_id));
    alice.get(&bad_room).await.err(400, "M_INVALID_PARAM");
    let unknown = tags_path(&alice, "!nowhere:localhost");
    alice
        .put(&format!("{unknown}/u.x"), json!({}))
        .await
        .err(404, "M_NOT_FOUND");
    alice
        .put(&format!("{path}/u.x"), json!({"order": "first"}))
        .await
        .err(400, "M_BAD_JSON");
    alice
        .put(&format!("{path}/{}", "t".repeat(256)), json!({}))
        .await
        .err(400, "M_INVALID_PARAM");
    assert_eq!(alice.get(&path).await.ok(), json!({"tags": {}}));
}
