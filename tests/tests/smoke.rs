//! The shortest tour: register, create a room, send, sync; the curl tour of the README.

use plugboard_tests::{timeline, TestServer};
use serde_json::json;

#[tokio::test]
async fn register_create_send_sync() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({"name": "Tour"})).await;
    let event_id = alice.send_text(&room, "hello").await;
    let sync = alice.sync(None, 0).await;
    let events = timeline(&sync, &room);
    let last = events.last().expect("timeline has events");
    assert_eq!(last["event_id"], event_id.as_str());
    assert_eq!(last["content"]["body"], "hello");
    assert_eq!(last["sender"], "@alice:localhost");
}
