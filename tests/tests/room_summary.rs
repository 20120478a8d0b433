//! Room summaries and space hierarchies end to end: what anyone may see of a public room
//! (also without a token), what members and invitees see of a private one and what others
//! do not; a space's tree depth first, with its child events, pages, depth and suggested
//! rooms, leaving out the rooms the asker may not see.

use plugboard_tests::{enc, Client, TestServer};
use serde_json::{json, Value};

fn summary_path(target: &str) -> String {
    format!("/_matrix/client/v1/room_summary/{}", enc(target))
}

async fn add_child(c: &Client, space: &str, child: &str, suggested: bool) {
    c.put(
        &format!("/rooms/{}/state/m.space.child/{}", enc(space), enc(child)),
        json!({"via": ["localhost"], "suggested": suggested}),
    )
    .await
    .ok();
    // Children are ordered by when they were added: keep each one's millisecond its own.
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
}

fn room_ids(body: &Value) -> Vec<String> {
    body["rooms"]
        .as_array()
        .unwrap_or_else(|| panic!("no rooms: {body}"))
        .iter()
        .map(|r| r["room_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_summary_shows_open_rooms_to_anyone_and_closed_ones_to_members_and_invitees() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let carol = server.register("carol").await;
    let open = alice
        .create_room(
            json!({"preset": "public_chat", "name": "Cheese", "topic": "Tasty",
                            "room_alias_name": "cheese"}),
        )
        .await;
    let anon = server
        .client()
        .get(&summary_path("#cheese:localhost"))
        .await
        .ok();
    assert_eq!(anon["room_id"], open.as_str());
    assert_eq!(anon["name"], "Cheese");
    assert_eq!(anon["topic"], "Tasty");
    assert_eq!(anon["join_rule"], "public");
    assert_eq!(anon["num_joined_members"], 1);
    assert_eq!(anon["world_readable"], false);
    assert!(anon["room_version"].is_string(), "{anon}");
    assert!(anon.get("membership").is_none(), "{anon}");
    assert_eq!(
        alice.get(&summary_path(&open)).await.ok()["membership"],
        "join"
    );

    let closed = alice
        .create_room(
            json!({"initial_state": [{"type": "m.room.encryption", "state_key": "",
                            "content": {"algorithm": "m.megolm.v1.aes-sha2"}}]}),
        )
        .await;
    carol
        .get(&summary_path(&closed))
        .await
        .err(404, "M_NOT_FOUND");
    server
        .client()
        .get(&summary_path(&closed))
        .await
        .err(404, "M_NOT_FOUND");
    alice.invite(&closed, &bob.user_id).await.ok();
    let invited = bob.get(&summary_path(&closed)).await.ok();
    assert_eq!(invited["membership"], "invite");
    assert_eq!(invited["encryption"], "m.megolm.v1.aes-sha2");
    bob.get(&summary_path("#nowhere:localhost"))
        .await
        .err(404, "M_NOT_FOUND");
    bob.get(&summary_path("cheese"))
        .await
        .err(400, "M_INVALID_PARAM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_space_hierarchy_goes_depth_first_pages_and_leaves_out_what_the_asker_may_not_see() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let space = alice
        .create_room(json!({"preset": "public_chat", "name": "Space",
                            "creation_content": {"type": "m.space"}}))
        .await;
    let a = alice
        .create_room(json!({"preset": "public_chat", "name": "A"}))
        .await;
    let hidden = alice.create_room(json!({"name": "Hidden"})).await;
    let deep = alice
        .create_room(json!({"preset": "public_chat", "name": "Deep"}))
        .await;
    add_child(&alice, &space, &a, true).await;
    add_child(&alice, &space, &hidden, false).await;
    add_child(&alice, &a, &deep, false).await;
    let path = format!("/_matrix/client/v1/rooms/{}/hierarchy", enc(&space));

    let as_alice = alice.get(&path).await.ok();
    let mut expected = vec![space.clone(), a.clone(), deep.clone(), hidden.clone()];
    // Children in the order they were added: `a` and its own child before `hidden`.
    assert_eq!(room_ids(&as_alice), expected);
    let root = &as_alice["rooms"][0];
    assert_eq!(root["room_type"], "m.space");
    let children = root["children_state"].as_array().unwrap();
    assert_eq!(children.len(), 2, "{root}");
    assert_eq!(children[0]["type"], "m.space.child");
    assert_eq!(children[0]["state_key"], a.as_str());
    assert!(children[0]["origin_server_ts"].is_i64(), "{root}");

    expected.retain(|r| *r != hidden);
    assert_eq!(room_ids(&bob.get(&path).await.ok()), expected);

    let first = alice.get(&format!("{path}?limit=2")).await.ok();
    assert_eq!(room_ids(&first), [space.clone(), a.clone()]);
    let next = first["next_batch"].as_str().expect("more to come");
    let rest = alice
        .get(&format!("{path}?limit=2&from={}", enc(next)))
        .await
        .ok();
    assert_eq!(room_ids(&rest), [deep.clone(), hidden.clone()]);
    assert!(rest.get("next_batch").is_none(), "{rest}");

    let shallow = alice.get(&format!("{path}?max_depth=1")).await.ok();
    assert_eq!(
        room_ids(&shallow),
        [space.clone(), a.clone(), hidden.clone()]
    );
    let suggested = alice.get(&format!("{path}?suggested_only=true")).await.ok();
    assert_eq!(room_ids(&suggested), [space.clone(), a.clone()]);

    let private_space = alice
        .create_room(json!({"creation_content": {"type": "m.space"}}))
        .await;
    bob.get(&format!(
        "/_matrix/client/v1/rooms/{}/hierarchy",
        enc(&private_space)
    ))
    .await
    .err(403, "M_FORBIDDEN");
    alice
        .get(&format!("{path}?limit=0"))
        .await
        .err(400, "M_INVALID_PARAM");
}
