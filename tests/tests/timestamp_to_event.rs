//! `/timestamp_to_event` end to end: the nearest event the user may see after or before a
//! time, 404 when there is none, and the errors for bad parameters and outsiders.

use std::time::Duration;

use plugboard_tests::{enc, TestServer};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nearest_visible_event_after_or_before_a_time_is_found() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({})).await;
    let ts_of = |event: &str| {
        let alice = alice.clone();
        let path = format!("/rooms/{}/event/{}", enc(&room), enc(event));
        async move {
            alice.get(&path).await.ok()["origin_server_ts"]
                .as_i64()
                .unwrap()
        }
    };
    let first = alice.send_text(&room, "first").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = alice.send_text(&room, "second").await;
    let (t1, t2) = (ts_of(&first).await, ts_of(&second).await);
    assert!(t2 > t1 + 1, "{t1} {t2}");
    let between = (t1 + t2) / 2;
    let path = |ts: i64, dir: &str| {
        format!(
            "/_matrix/client/v1/rooms/{}/timestamp_to_event?ts={ts}&dir={dir}",
            enc(&room)
        )
    };

    let after = alice.get(&path(between, "f")).await.ok();
    assert_eq!(after, json!({"event_id": second, "origin_server_ts": t2}));
    let before = alice.get(&path(between, "b")).await.ok();
    assert_eq!(before, json!({"event_id": first, "origin_server_ts": t1}));
    alice
        .get(&path(t2 + 60_000, "f"))
        .await
        .err(404, "M_NOT_FOUND");
    alice
        .get(&path(between, "up"))
        .await
        .err(400, "M_INVALID_PARAM");

    let outsider = server.register("mallory").await;
    outsider
        .get(&path(between, "b"))
        .await
        .err(404, "M_NOT_FOUND");
}
