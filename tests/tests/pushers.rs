//! Pushers end to end: set, listed, replaced, moved to another user without `append`, kept
//! beside it with `append`, deleted with `kind: null`; the spec's errors; and pushers set at
//! once all kept.

use plugboard_tests::TestServer;
use serde_json::{json, Value};

fn pusher(pushkey: &str) -> Value {
    json!({
        "app_id": "org.example.app.android", "pushkey": pushkey, "kind": "http",
        "app_display_name": "Example", "device_display_name": "Phone", "lang": "en",
        "profile_tag": "tag1",
        "data": {"url": "http://127.0.0.1:9/_matrix/push/v1/notify", "format": "event_id_only"}
    })
}

fn keys(list: &Value) -> Vec<&str> {
    list["pushers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pushkey"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushers_are_set_listed_moved_and_deleted() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    assert_eq!(alice.get("/pushers").await.ok(), json!({"pushers": []}));

    alice.post("/pushers/set", pusher("k1")).await.ok();
    let listed = alice.get("/pushers").await.ok();
    let mut expected = pusher("k1");
    expected.as_object_mut().unwrap().remove("append");
    assert_eq!(listed, json!({"pushers": [expected]}));
    // The same app and pushkey again replaces it.
    let mut renamed = pusher("k1");
    renamed["device_display_name"] = json!("Old phone");
    alice.post("/pushers/set", renamed).await.ok();
    let listed = alice.get("/pushers").await.ok();
    assert_eq!(listed["pushers"][0]["device_display_name"], "Old phone");
    assert_eq!(keys(&listed), ["k1"]);

    // Bob takes the pushkey with append: both keep it. Without append: it moves to him.
    let mut appended = pusher("k1");
    appended["append"] = json!(true);
    bob.post("/pushers/set", appended).await.ok();
    assert_eq!(keys(&alice.get("/pushers").await.ok()), ["k1"]);
    bob.post("/pushers/set", pusher("k1")).await.ok();
    assert!(keys(&alice.get("/pushers").await.ok()).is_empty());
    assert_eq!(keys(&bob.get("/pushers").await.ok()), ["k1"]);

    let mut delete = pusher("k1");
    delete["kind"] = Value::Null;
    bob.post("/pushers/set", delete.clone()).await.ok();
    assert!(keys(&bob.get("/pushers").await.ok()).is_empty());
    // Deleting one that is not there is no error.
    bob.post("/pushers/set", delete).await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pushers_get_the_specs_errors() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let without = |key: &str| {
        let mut p = pusher("k");
        p.as_object_mut().unwrap().remove(key);
        p
    };
    for (body, errcode) in [
        (without("app_id"), "M_MISSING_PARAM"),
        (without("pushkey"), "M_MISSING_PARAM"),
        (without("kind"), "M_MISSING_PARAM"),
        (without("lang"), "M_MISSING_PARAM"),
        (without("data"), "M_MISSING_PARAM"),
        (
            {
                let mut p = pusher("k");
                p["kind"] = json!("email");
                p
            },
            "M_INVALID_PARAM",
        ),
        (
            {
                let mut p = pusher("k");
                p["data"]["url"] = json!("https://push.example.org/elsewhere");
                p
            },
            "M_INVALID_PARAM",
        ),
        (
            {
                let mut p = pusher("k");
                p["app_id"] = json!("x".repeat(65));
                p
            },
            "M_INVALID_PARAM",
        ),
    ] {
        alice.post("/pushers/set", body).await.err(400, errcode);
    }
    assert_eq!(alice.get("/pushers").await.ok(), json!({"pushers": []}));
    server
        .client()
        .get("/pushers")
        .await
        .err(401, "M_MISSING_TOKEN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushers_set_at_once_are_all_kept_up_to_the_limit() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let mut sets = tokio::task::JoinSet::new();
    for i in 0..20 {
        let alice = alice.clone();
        sets.spawn(async move {
            alice
                .post("/pushers/set", pusher(&format!("k{i}")))
                .await
                .ok();
        });
    }
    while let Some(done) = sets.join_next().await {
        done.expect("a set");
    }
    assert_eq!(keys(&alice.get("/pushers").await.ok()).len(), 20);
    for i in 20..100 {
        alice
            .post("/pushers/set", pusher(&format!("k{i}")))
            .await
            .ok();
    }
    alice
        .post("/pushers/set", pusher("one-too-many"))
        .await
        .err(403, "M_FORBIDDEN");
    // Replacing one of the hundred is still allowed.
    alice.post("/pushers/set", pusher("k5")).await.ok();
}
