//! `GET /rooms/{roomId}/initialSync` end to end: the latest events oldest first with a token
//! that pages back, the state, the membership, the room's account data and visibility; and
//! the refusal for a user who may not read the room.

use plugboard_tests::{enc, TestServer};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rooms_initial_sync_has_its_latest_events_state_and_account_data() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice.create_room(json!({"name": "Kitchen"})).await;
    for i in 0..3 {
        alice.send_text(&room, &format!("m{i}")).await;
    }
    alice
        .put(
            &format!(
                "/user/{}/rooms/{}/tags/u.food",
                enc(&alice.user_id),
                enc(&room)
            ),
            json!({}),
        )
        .await
        .ok();
    let path = format!("/rooms/{}/initialSync", enc(&room));
    let got = alice.get(&path).await.ok();
    assert_eq!(got["room_id"], room.as_str());
    assert_eq!(got["membership"], "join");
    assert_eq!(got["visibility"], "private");
    let bodies: Vec<&str> = got["messages"]["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["content"]["body"].as_str())
        .collect();
    assert_eq!(bodies, ["m0", "m1", "m2"]);
    let state_types: Vec<&str> = got["state"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert!(state_types.contains(&"m.room.name"), "{state_types:?}");
    assert_eq!(got["account_data"][0]["type"], "m.tag", "{got}");
    assert!(got["messages"]["start"].is_string() && got["messages"]["end"].is_string());

    bob.get(&path).await.err(403, "M_FORBIDDEN");
}
