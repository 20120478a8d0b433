//! Notification counts and `GET /notifications` end to end: messages count for the other
//! members, a mention highlights, a read receipt resets the counts, threads are counted apart
//! when the filter asks, a user's own rules are obeyed, and `/notifications` lists what
//! notified with its actions, `read` and paging.

use plugboard_tests::{enc, Client, TestServer};
use serde_json::{json, Value};

fn counts(sync: &Value, room: &str) -> Value {
    sync["rooms"]["join"][room]["unread_notifications"].clone()
}

fn n(notification: u64, highlight: u64) -> Value {
    json!({"notification_count": notification, "highlight_count": highlight})
}

async fn receipt(c: &Client, room: &str, kind: &str, event: &str, body: Value) {
    c.post(
        &format!("/rooms/{}/receipt/{kind}/{}", enc(room), enc(event)),
        body,
    )
    .await
    .ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_count_for_the_others_until_their_receipt_and_a_mention_highlights() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice
        .create_room(json!({"preset": "public_chat", "name": "counts"}))
        .await;
    bob.join(&room).await.ok();

    let first = bob.sync(None, 0).await;
    assert_eq!(counts(&first, &room), n(0, 0));
    let since = first["next_batch"].as_str().unwrap().to_string();

    alice.send_text(&room, "one").await;
    let mention = alice
        .send_message(
            &room,
            json!({"msgtype": "m.text", "body": "bob!", "m.mentions": {"user_ids": [bob.user_id]}}),
        )
        .await;
    let later = bob.sync(Some(&since), 0).await;
    assert_eq!(counts(&later, &room), n(2, 1));
    // The sender's own messages never count for them.
    let mine = alice.sync(None, 0).await;
    assert_eq!(counts(&mine, &room), n(0, 0));

    // A receipt on the mention reads both; the room comes back with the counts reset.
    let since = later["next_batch"].as_str().unwrap().to_string();
    receipt(&bob, &room, "m.read.private", &mention, json!({})).await;
    let read = bob.sync(Some(&since), 0).await;
    assert_eq!(counts(&read, &room), n(0, 0));
    alice.send_text(&room, "three").await;
    assert_eq!(counts(&bob.sync(None, 0).await, &room), n(1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_are_counted_apart_when_the_filter_asks_and_a_threaded_receipt_reads_its_own() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice.create_room(json!({"preset": "public_chat"})).await;
    bob.join(&room).await.ok();

    let root = alice.send_text(&room, "root").await;
    let reply = alice
        .send_message(
            &room,
            json!({"msgtype": "m.text", "body": "in thread",
               "m.relates_to": {"rel_type": "m.thread", "event_id": root}}),
        )
        .await;
    let filter =
        enc(&json!({"room": {"timeline": {"unread_thread_notifications": true}}}).to_string());
    let by_thread = bob.get(&format!("/sync?filter={filter}")).await.ok();
    let joined = &by_thread["rooms"]["join"][&room];
    assert_eq!(joined["unread_notifications"], n(1, 0));
    assert_eq!(joined["unread_thread_notifications"][&root], n(1, 0));
    // Without the filter, one count for everything and no thread counts.
    let plain = bob.sync(None, 0).await;
    assert_eq!(counts(&plain, &room), n(2, 0));
    assert!(plain["rooms"]["join"][&room]
        .get("unread_thread_notifications")
        .is_none());

    receipt(&bob, &room, "m.read", &reply, json!({"thread_id": root})).await;
    let after = bob.get(&format!("/sync?filter={filter}")).await.ok();
    let joined = &after["rooms"]["join"][&room];
    assert_eq!(joined["unread_notifications"], n(1, 0));
    assert_eq!(joined["unread_thread_notifications"], json!({}));

    let bad =
        enc(&json!({"room": {"timeline": {"unread_thread_notifications": "yes"}}}).to_string());
    bob.get(&format!("/sync?filter={bad}"))
        .await
        .err(400, "M_BAD_JSON");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_own_rule_is_obeyed_and_notifications_lists_what_notified() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice.create_room(json!({"preset": "public_chat"})).await;
    bob.join(&room).await.ok();
    bob.put(
        "/pushrules/global/content/fruit",
        json!({"pattern": "banana", "actions": ["notify", {"set_tweak": "highlight"}]}),
    )
    .await
    .ok();

    let plain = alice.send_text(&room, "apple").await;
    let fruit = alice.send_text(&room, "a banana").await;
    assert_eq!(counts(&bob.sync(None, 0).await, &room), n(2, 1));

    let all = bob.get("/notifications").await.ok();
    let list = all["notifications"].as_array().unwrap();
    let ids: Vec<&str> = list
        .iter()
        .map(|x| x["event"]["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [fruit.as_str(), plain.as_str()]);
    assert_eq!(list[0]["room_id"], room);
    assert_eq!(list[0]["read"], false);
    assert_eq!(list[0]["actions"][1], json!({"set_tweak": "highlight"}));
    assert!(list[0]["ts"].as_i64().unwrap() > 0);
    assert_eq!(list[0]["event"]["content"]["body"], "a banana");

    let highlights = bob.get("/notifications?only=highlight").await.ok();
    assert_eq!(highlights["notifications"].as_array().unwrap().len(), 1);

    let page = bob.get("/notifications?limit=1").await.ok();
    let token = page["next_token"]
        .as_str()
        .expect("a next_token")
        .to_string();
    let rest = bob.get(&format!("/notifications?from={token}")).await.ok();
    assert_eq!(rest["notifications"][0]["event"]["event_id"], plain);
    assert!(rest.get("next_token").is_none());

    receipt(&bob, &room, "m.read", &fruit, json!({})).await;
    let read = bob.get("/notifications").await.ok();
    assert_eq!(read["notifications"][0]["read"], true);
    // Alice sent them: nothing notified her.
    let none = alice.get("/notifications").await.ok();
    assert_eq!(none["notifications"], json!([]));

    bob.get("/notifications?limit=lots")
        .await
        .err(400, "M_INVALID_PARAM");
    bob.get("/notifications?from=x")
        .await
        .err(400, "M_INVALID_PARAM");
}
