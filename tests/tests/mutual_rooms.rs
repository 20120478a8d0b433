//! `/mutual_rooms`: the rooms the asker and another user are both joined to, and the spec's
//! 400 for a missing, malformed or own user id.

use plugboard_tests::{enc, TestServer};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_rooms_are_those_both_users_are_joined_to() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let shared = alice.create_room(json!({"preset": "public_chat"})).await;
    let left = alice.create_room(json!({"preset": "public_chat"})).await;
    let _alone = alice.create_room(json!({})).await;
    bob.join(&shared).await.ok();
    bob.join(&left).await.ok();
    bob.post(&format!("/rooms/{}/leave", enc(&left)), json!({}))
        .await
        .ok();

    let path = "/_matrix/client/v1/mutual_rooms";
    let mutual = alice
        .get(&format!("{path}?user_id={}", enc(&bob.user_id)))
        .await
        .ok();
    assert_eq!(mutual, json!({"joined": [shared], "count": 1}));
    let nobody = alice
        .get(&format!("{path}?user_id={}", enc("@nobody:localhost")))
        .await
        .ok();
    assert_eq!(nobody, json!({"joined": [], "count": 0}));

    for query in [
        String::new(),
        format!("?user_id={}", enc(&alice.user_id)),
        "?user_id=bob".into(),
        format!("?user_id={}&from=x", enc(&bob.user_id)),
    ] {
        alice
            .get(&format!("{path}{query}"))
            .await
            .err(400, "M_INVALID_PARAM");
    }
}
