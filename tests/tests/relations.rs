//! Relations end to end: threads, edits and references aggregated in `unsigned.m.relations`
//! wherever an event is served (`/event`, `/sync`, `/messages`), `/relations` with its filters,
//! directions, pages and `recurse`, `/threads` in order of activity, and `/context` around an
//! event; what an outsider asks is refused as for `/messages`.

use plugboard_tests::{enc, timeline, Client, TestServer};
use serde_json::{json, Value};

/// Sends `content` as an `m.room.message`; answers its event id.
fn in_thread(root: &str, body: &str) -> Value {
    json!({ "msgtype": "m.text", "body": body,
            "m.relates_to": { "rel_type": "m.thread", "event_id": root, "is_falling_back": true,
                              "m.in_reply_to": { "event_id": root } } })
}

fn edit_of(target: &str, body: &str) -> Value {
    json!({ "msgtype": "m.text", "body": format!("* {body}"),
            "m.new_content": { "msgtype": "m.text", "body": body },
            "m.relates_to": { "rel_type": "m.replace", "event_id": target } })
}

fn ids(events: &Value) -> Vec<String> {
    events
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {events}"))
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect()
}

fn relations_path(room: &str, event: &str, rest: &str) -> String {
    format!(
        "/_matrix/client/v1/rooms/{}/relations/{}{rest}",
        enc(room),
        enc(event)
    )
}

/// A room where alice and bob are joined.
async fn room_of_two(server: &TestServer) -> (Client, Client, String) {
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice.create_room(json!({"preset": "public_chat"})).await;
    bob.join(&room).await.ok();
    (alice, bob, room)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_edits_and_references_are_aggregated_wherever_the_event_is_served() {
    let server = TestServer::start().await;
    let (alice, bob, room) = room_of_two(&server).await;
    let root = alice.send_text(&room, "root").await;
    bob.send_text(&room, "not in the thread").await;
    bob.send_message(&room, in_thread(&root, "first reply"))
        .await;
    let second = bob
        .send_message(&room, in_thread(&root, "second reply"))
        .await;
    bob.send_message(&room, edit_of(&root, "forged edit by bob"))
        .await;
    let edit = alice
        .send_message(&room, edit_of(&root, "root, edited"))
        .await;
    let reference = bob
        .send_message(
            &room,
            json!({ "msgtype": "m.text", "body": "see above",
                "m.relates_to": { "rel_type": "m.reference", "event_id": root } }),
        )
        .await;

    let event = alice
        .get(&format!("/rooms/{}/event/{}", enc(&room), enc(&root)))
        .await
        .ok();
    let relations = &event["unsigned"]["m.relations"];
    let thread = &relations["m.thread"];
    assert_eq!(thread["count"], 2, "{relations}");
    assert_eq!(thread["latest_event"]["event_id"], second.as_str());
    assert_eq!(thread["latest_event"]["content"]["body"], "second reply");
    assert_eq!(
        thread["current_user_participated"], true,
        "alice started it"
    );
    assert_eq!(
        relations["m.replace"]["event_id"],
        edit.as_str(),
        "only alice's own edit counts: {relations}"
    );
    assert_eq!(
        event["content"]["body"], "root",
        "the content stays as sent (v1.7)"
    );
    assert_eq!(
        relations["m.reference"],
        json!({ "chunk": [{ "event_id": reference }] })
    );

    // bob took part by replying; a third user who did not sees the thread without that.
    let carol = server.register("carol").await;
    carol.join(&room).await.ok();
    let as_carol = carol
        .get(&format!("/rooms/{}/event/{}", enc(&room), enc(&root)))
        .await
        .ok();
    assert_eq!(
        as_carol["unsigned"]["m.relations"]["m.thread"]["current_user_participated"],
        false
    );

    // The same in /sync's timeline and in /messages.
    let sync = bob.sync(None, 0).await;
    let served = timeline(&sync, &room)
        .into_iter()
        .find(|e| e["event_id"] == root.as_str())
        .expect("the root in bob's timeline");
    assert_eq!(
        served["unsigned"]["m.relations"]["m.thread"]["current_user_participated"],
        true
    );
    let page = bob
        .get(&format!("/rooms/{}/messages?dir=b&limit=50", enc(&room)))
        .await
        .ok();
    let in_page = page["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_id"] == root.as_str())
        .unwrap();
    assert_eq!(in_page["unsigned"]["m.relations"]["m.thread"]["count"], 2);

    // A redacted reply no longer counts, and the thread's latest is the one before it.
    bob.put(
        &format!("/rooms/{}/redact/{}/r1", enc(&room), enc(&second)),
        json!({}),
    )
    .await
    .ok();
    let event = alice
        .get(&format!("/rooms/{}/event/{}", enc(&room), enc(&root)))
        .await
        .ok();
    let thread = &event["unsigned"]["m.relations"]["m.thread"];
    assert_eq!(thread["count"], 1, "{thread}");
    assert_eq!(thread["latest_event"]["content"]["body"], "first reply");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relations_filter_by_type_page_in_both_directions_and_recurse() {
    let server = TestServer::start().await;
    let (alice, bob, room) = room_of_two(&server).await;
    let root = alice.send_text(&room, "root").await;
    let mut replies = Vec::new();
    for i in 0..5 {
        replies.push(
            bob.send_message(&room, in_thread(&root, &format!("reply {i}")))
                .await,
        );
    }
    let edit = alice
        .send_message(&room, edit_of(&root, "root, edited"))
        .await;
    let edit_of_reply = bob
        .send_message(&room, edit_of(&replies[0], "reply 0, edited"))
        .await;

    let all = alice.get(&relations_path(&room, &root, "")).await.ok();
    let mut newest_first: Vec<String> = replies.iter().rev().cloned().collect();
    newest_first.insert(0, edit.clone());
    assert_eq!(ids(&all["chunk"]), newest_first);
    assert!(all.get("next_batch").is_none(), "{all}");

    let threads_only = alice
        .get(&relations_path(&room, &root, "/m.thread?dir=f"))
        .await
        .ok();
    assert_eq!(ids(&threads_only["chunk"]), replies);
    let edits = alice
        .get(&relations_path(&room, &root, "/m.replace/m.room.message"))
        .await
        .ok();
    assert_eq!(ids(&edits["chunk"]), [edit.as_str()]);
    let none = alice
        .get(&relations_path(&room, &root, "/m.replace/m.reaction"))
        .await
        .ok();
    assert_eq!(ids(&none["chunk"]), Vec::<String>::new());

    // Pages of two, each from the last one's next_batch: every reply once, in order.
    let mut seen = Vec::new();
    let mut from: Option<String> = None;
    for _ in 0..10 {
        let mut path = relations_path(&room, &root, "/m.thread?limit=2");
        if let Some(f) = &from {
            path.push_str(&format!("&from={}", enc(f)));
        }
        let page = alice.get(&path).await.ok();
        seen.extend(ids(&page["chunk"]));
        match page["next_batch"].as_str() {
            Some(next) => from = Some(next.to_string()),
            None => break,
        }
    }
    let newest_replies: Vec<String> = replies.iter().rev().cloned().collect();
    assert_eq!(seen, newest_replies);

    // recurse reaches the edit of a reply, which relates to the root only through it.
    let flat = alice
        .get(&relations_path(&room, &root, "?dir=f"))
        .await
        .ok();
    assert!(!ids(&flat["chunk"]).contains(&edit_of_reply));
    let deep = alice
        .get(&relations_path(&room, &root, "?dir=f&recurse=true"))
        .await
        .ok();
    assert!(ids(&deep["chunk"]).contains(&edit_of_reply), "{deep}");
    assert_eq!(deep["recursion_depth"], 3);

    // The errors: an unknown event, a bad direction, a room one is not in.
    alice
        .get(&relations_path(&room, "$nope:localhost", ""))
        .await
        .err(404, "M_NOT_FOUND");
    alice
        .get(&relations_path(&room, &root, "?dir=sideways"))
        .await
        .err(400, "M_INVALID_PARAM");
    let private = alice.create_room(json!({})).await;
    let secret = alice.send_text(&private, "secret").await;
    bob.get(&relations_path(&private, &secret, ""))
        .await
        .err(404, "M_NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_list_the_most_recently_active_first_and_who_took_part() {
    let server = TestServer::start().await;
    let (alice, bob, room) = room_of_two(&server).await;
    let older = alice.send_text(&room, "older root").await;
    let newer = bob.send_text(&room, "newer root").await;
    alice.send_message(&room, in_thread(&newer, "a")).await;
    bob.send_message(&room, in_thread(&older, "b")).await;
    let path = format!("/_matrix/client/v1/rooms/{}/threads", enc(&room));

    let all = alice.get(&path).await.ok();
    assert_eq!(ids(&all["chunk"]), [older.clone(), newer.clone()]);
    assert_eq!(
        all["chunk"][0]["unsigned"]["m.relations"]["m.thread"]["count"],
        1
    );

    let first = alice.get(&format!("{path}?limit=1")).await.ok();
    assert_eq!(ids(&first["chunk"]), [older.as_str()]);
    let next = first["next_batch"].as_str().expect("a next page");
    let second = alice
        .get(&format!("{path}?limit=1&from={}", enc(next)))
        .await
        .ok();
    assert_eq!(ids(&second["chunk"]), [newer.as_str()]);

    let carol = server.register("carol").await;
    carol.join(&room).await.ok();
    let mine = carol
        .get(&format!("{path}?include=participated"))
        .await
        .ok();
    assert_eq!(ids(&mine["chunk"]), Vec::<String>::new());
    let alices = alice
        .get(&format!("{path}?include=participated"))
        .await
        .ok();
    assert_eq!(ids(&alices["chunk"]), [older, newer]);
    alice
        .get(&format!("{path}?include=mine"))
        .await
        .err(400, "M_INVALID_PARAM");
    let private = alice.create_room(json!({})).await;
    bob.get(&format!(
        "/_matrix/client/v1/rooms/{}/threads",
        enc(&private)
    ))
    .await
    .err(403, "M_FORBIDDEN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_gives_the_events_around_an_event_with_tokens_that_page_on() {
    let server = TestServer::start().await;
    let (alice, bob, room) = room_of_two(&server).await;
    let mut sent = Vec::new();
    for i in 0..9 {
        sent.push(alice.send_text(&room, &format!("m{i}")).await);
    }
    let path =
        |event: &str, query: &str| format!("/rooms/{}/context/{}{query}", enc(&room), enc(event));
    let ctx = bob.get(&path(&sent[4], "?limit=4")).await.ok();
    assert_eq!(ctx["event"]["event_id"], sent[4].as_str());
    assert_eq!(
        ids(&ctx["events_before"]),
        [sent[3].clone(), sent[2].clone()]
    );
    assert_eq!(
        ids(&ctx["events_after"]),
        [sent[5].clone(), sent[6].clone()]
    );
    let state_types: Vec<&str> = ctx["state"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert!(state_types.contains(&"m.room.create"), "{state_types:?}");
    assert!(state_types.contains(&"m.room.member"), "{state_types:?}");

    // The tokens continue where each side stopped.
    let start = ctx["start"].as_str().unwrap();
    let before = bob
        .get(&format!(
            "/rooms/{}/messages?dir=b&limit=2&from={}",
            enc(&room),
            enc(start)
        ))
        .await
        .ok();
    assert_eq!(ids(&before["chunk"]), [sent[1].clone(), sent[0].clone()]);
    let end = ctx["end"].as_str().unwrap();
    let after = bob
        .get(&format!(
            "/rooms/{}/messages?dir=f&limit=5&from={}",
            enc(&room),
            enc(end)
        ))
        .await
        .ok();
    assert_eq!(ids(&after["chunk"]), [sent[7].clone(), sent[8].clone()]);

    // The filter applies to both sides; an outsider and an unknown event get 404.
    let only_members = bob
        .get(&path(
            &sent[0],
            &format!(
                "?limit=20&filter={}",
                enc(&json!({"types": ["m.room.member"]}).to_string())
            ),
        ))
        .await
        .ok();
    assert!(ids(&only_members["events_after"]).is_empty());
    let types: Vec<&str> = only_members["events_before"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(
        !types.is_empty() && types.iter().all(|t| *t == "m.room.member"),
        "{types:?}"
    );
    let outsider = server.register("carol").await;
    let private = alice.create_room(json!({})).await;
    let secret = alice.send_text(&private, "secret").await;
    outsider
        .get(&format!(
            "/rooms/{}/context/{}",
            enc(&private),
            enc(&secret)
        ))
        .await
        .err(404, "M_NOT_FOUND");
    bob.get(&path("$nope:localhost", ""))
        .await
        .err(404, "M_NOT_FOUND");
}
