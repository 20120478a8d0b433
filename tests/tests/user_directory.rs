//! The user directory end to end: a user finds, by id or display name and in any case, those
//! who share a room with them and those in public rooms, and no one else; `limit` and
//! `limited`; a term's `%` and `_` are plain characters.

use plugboard_tests::{enc, Client, TestServer};
use serde_json::{json, Value};

async fn search(c: &Client, term: &str, limit: Option<u64>) -> Value {
    let mut body = json!({ "search_term": term });
    if let Some(l) = limit {
        body["limit"] = json!(l);
    }
    c.post("/user_directory/search", body).await.ok()
}

fn found(result: &Value) -> Vec<String> {
    result["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results: {result}"))
        .iter()
        .map(|r| r["user_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_sharing_a_room_or_in_a_public_room_are_found_and_no_one_else() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let bobby = server.register("bobby").await;
    let carol = server.register("carol").await;
    let dave = server.register("dave").await;
    let shared = alice.create_room(json!({})).await;
    alice.invite(&shared, &bob.user_id).await.ok();
    bob.join(&shared).await.ok();
    carol.create_room(json!({"preset": "public_chat"})).await;
    dave.create_room(json!({})).await;
    bobby.create_room(json!({})).await;
    bob.put(
        &format!("/profile/{}/displayname", enc(&bob.user_id)),
        json!({"displayname": "Robert Tables"}),
    )
    .await
    .ok();

    assert_eq!(
        found(&search(&alice, "bob", None).await),
        [bob.user_id.as_str()]
    );
    let by_name = search(&alice, "TABLES", None).await;
    assert_eq!(found(&by_name), [bob.user_id.as_str()]);
    assert_eq!(by_name["results"][0]["display_name"], "Robert Tables");
    assert_eq!(
        found(&search(&alice, "car", None).await),
        [carol.user_id.as_str()]
    );
    assert!(found(&search(&alice, "dave", None).await).is_empty());
    assert!(found(&search(&alice, "%", None).await).is_empty());
    assert!(found(&search(&alice, "_", None).await).is_empty());
    assert!(found(&search(&alice, "  ", None).await).is_empty());

    // Two match "localhost"; a limit of one says there were more.
    let one = search(&alice, "localhost", Some(1)).await;
    assert_eq!(found(&one).len(), 1);
    assert_eq!(one["limited"], true);
    let all = search(&alice, "localhost", None).await;
    assert_eq!(all["limited"], false);
    let mut expected = vec![
        alice.user_id.clone(),
        bob.user_id.clone(),
        carol.user_id.clone(),
    ];
    expected.sort();
    assert_eq!(found(&all), expected);

    alice
        .post("/user_directory/search", json!({"limit": 3}))
        .await
        .err(400, "M_BAD_JSON");
    server
        .client()
        .post("/user_directory/search", json!({"search_term": "bob"}))
        .await
        .err(401, "M_MISSING_TOKEN");
}
