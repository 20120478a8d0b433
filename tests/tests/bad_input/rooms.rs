//! Room creation and aliases: a taken alias or an unsupported room version.

use super::*;

#[tokio::test]
async fn refuses_create_room_with_a_taken_alias_or_an_unsupported_version() {
    let w = world().await;
    let rooms_before = w.alice.get("/joined_rooms").await.ok()["joined_rooms"].clone();
    let reply = w
        .alice
        .post("/createRoom", json!({"room_alias_name": "lobby"}))
        .await;
    expect_error(&reply, 400, "M_ROOM_IN_USE", "a taken alias");
    let reply = w
        .bob
        .post(
            "/createRoom",
            json!({"room_alias_name": "lobby", "name": "mine"}),
        )
        .await;
    expect_error(&reply, 400, "M_ROOM_IN_USE", "a taken alias, by bob");
    for version in ["1", "13", "", "banana", "10 ", "\u{1F600}"] {
        let reply = w
            .alice
            .post("/createRoom", json!({"room_version": version}))
            .await;
        expect_error(
            &reply,
            400,
            "M_UNSUPPORTED_ROOM_VERSION",
            &format!("room version {version:?}"),
        );
    }
    for (body, errcode) in [
        (json!({"preset": "nope"}), "M_INVALID_PARAM"),
        (json!({"visibility": "secret"}), "M_INVALID_PARAM"),
        (
            json!({"initial_state": [{"type": "m.room.member", "state_key": "@alice:localhost", "content": {"membership": "join"}}]}),
            "M_INVALID_PARAM",
        ),
        (
            json!({"initial_state": [{"type": "m.room.create", "content": {}}]}),
            "M_INVALID_PARAM",
        ),
        (
            json!({"initial_state": [{"type": "", "content": {}}]}),
            "M_INVALID_PARAM",
        ),
        (
            json!({"initial_state": [{"type": "m.room.topic", "content": "x"}]}),
            "M_BAD_JSON",
        ),
    ] {
        let reply = w.alice.post("/createRoom", body.clone()).await;
        expect_error(&reply, 400, errcode, &format!("createRoom {body}"));
    }
    let rooms_after = w.alice.get("/joined_rooms").await.ok()["joined_rooms"].clone();
    assert_eq!(
        rooms_before, rooms_after,
        "a refused createRoom made a room"
    );
    // The alias still names the first room.
    let a = w
        .server
        .client()
        .get(&format!("/directory/room/{}", enc(&w.alias)))
        .await
        .ok();
    assert_eq!(a["room_id"], w.room.as_str());
    // Putting a taken alias through the directory is a conflict.
    let other = w.alice.create_room(json!({})).await;
    let reply = w
        .alice
        .put(
            &format!("/directory/room/{}", enc(&w.alias)),
            json!({"room_id": other}),
        )
        .await;
    expect_error(
        &reply,
        409,
        "M_UNKNOWN",
        "a taken alias through the directory",
    );
    assert_alive(&w.server, &w.alice).await;
}
