//! `POST /search` end to end: words found in the messages, names and topics of the rooms one
//! is joined to, ranked or newest first, paged, with the events around each result; nothing
//! from rooms one is not in or from before one could see; redacted messages gone.

use plugboard_tests::{enc, Client, TestServer};
use serde_json::{json, Value};

async fn search(c: &Client, criteria: Value, next: Option<&str>) -> Value {
    let path = match next {
        Some(n) => format!("/search?next_batch={}", enc(n)),
        None => "/search".to_string(),
    };
    c.post(
        &path,
        json!({"search_categories": {"room_events": criteria}}),
    )
    .await
    .ok()["search_categories"]["room_events"]
        .clone()
}

fn bodies(found: &Value) -> Vec<String> {
    found["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results: {found}"))
        .iter()
        .map(|r| {
            let c = &r["result"]["content"];
            c["body"]
                .as_str()
                .or(c["name"].as_str())
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn words_are_found_in_ones_rooms_ranked_or_recent_paged_and_with_context() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice
        .create_room(json!({"preset": "public_chat", "name": "Cheese club"}))
        .await;
    alice.send_text(&room, "I like cheese").await;
    alice.send_text(&room, "nothing to see").await;
    alice
        .send_text(&room, "cheese, cheese and more CHEESE")
        .await;
    let gone = alice.send_text(&room, "secret cheese recipe").await;
    alice
        .put(
            &format!("/rooms/{}/redact/{}/r1", enc(&room), enc(&gone)),
            json!({}),
        )
        .await
        .ok();
    let elsewhere = bob.create_room(json!({})).await;
    bob.send_text(&elsewhere, "bob's own cheese").await;

    let recent = search(
        &alice,
        json!({"search_term": "chee", "order_by": "recent"}),
        None,
    )
    .await;
    assert_eq!(
        bodies(&recent),
        [
            "cheese, cheese and more CHEESE",
            "I like cheese",
            "Cheese club"
        ]
    );
    assert_eq!(recent["count"], 3);
    assert_eq!(recent["highlights"], json!(["chee"]));
    let ranked = search(
        &alice,
        json!({"search_term": "cheese", "keys": ["content.body"]}),
        None,
    )
    .await;
    assert_eq!(bodies(&ranked)[0], "cheese, cheese and more CHEESE");
    assert!(ranked["results"][0]["rank"].as_f64().is_some(), "{ranked}");
    let both_words = search(&alice, json!({"search_term": "like CHEESE"}), None).await;
    assert_eq!(bodies(&both_words), ["I like cheese"]);

    // Pages of one, newest first, through next_batch.
    let criteria = json!({"search_term": "cheese", "order_by": "recent", "filter": {"limit": 1}});
    let first = search(&alice, criteria.clone(), None).await;
    assert_eq!(bodies(&first), ["cheese, cheese and more CHEESE"]);
    let next = first["next_batch"]
        .as_str()
        .expect("a next page")
        .to_string();
    let second = search(&alice, criteria, Some(&next)).await;
    assert_eq!(bodies(&second), ["I like cheese"]);

    // The events around a result, and who sent them.
    let with_context = search(
        &alice,
        json!({"search_term": "nothing", "event_context":
               {"before_limit": 1, "after_limit": 1, "include_profile": true}}),
        None,
    )
    .await;
    let context = &with_context["results"][0]["context"];
    assert_eq!(
        context["events_before"][0]["content"]["body"],
        "I like cheese"
    );
    assert_eq!(
        context["events_after"][0]["content"]["body"],
        "cheese, cheese and more CHEESE"
    );
    assert_eq!(
        context["profile_info"][&alice.user_id]["displayname"], "alice",
        "{context}"
    );

    // bob finds only his own room's message until he joins alice's room.
    assert_eq!(
        bodies(
            &search(
                &bob,
                json!({"search_term": "cheese", "order_by": "recent"}),
                None
            )
            .await
        ),
        ["bob's own cheese"]
    );
    let in_one = search(
        &alice,
        json!({"search_term": "cheese", "filter": {"rooms": [elsewhere]}}),
        None,
    )
    .await;
    assert!(bodies(&in_one).is_empty(), "{in_one}");

    alice
        .post(
            "/search",
            json!({"search_categories": {"room_events": {"keys": ["content.body"]}}}),
        )
        .await
        .err(400, "M_BAD_JSON");
    alice
        .post(
            "/search",
            json!({"search_categories": {"room_events": {"search_term": "x", "order_by": "old"}}}),
        )
        .await
        .err(400, "M_INVALID_PARAM");
    assert_eq!(
        alice
            .post("/search", json!({"search_categories": {}}))
            .await
            .ok(),
        json!({"search_categories": {}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_sent_all_at_once_are_found_the_moment_they_are_answered() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({})).await;
    let mut sends = tokio::task::JoinSet::new();
    for i in 0..40 {
        let alice = alice.clone();
        let room = room.clone();
        sends.spawn(async move { alice.send_text(&room, &format!("burst number{i}")).await });
    }
    sends.join_all().await;
    // No pause: the search catches the index up before it reads it.
    let found = search(&alice, json!({"search_term": "burst"}), None).await;
    assert_eq!(found["count"], json!(40), "{found}");
    let found = search(&alice, json!({"search_term": "number39"}), None).await;
    assert_eq!(bodies(&found), ["burst number39"]);
}
