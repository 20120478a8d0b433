//! Knocking end to end: a user knocks on a room whose join rule is `knock` (by id or alias,
//! with a reason), sees it from outside in /sync's `rooms.knock`, the members see the knock
//! in their timeline and answer it (invite, kick) or the knocker takes it back; rooms that do
//! not take knocks, the banned and the joined get the spec's errors.

use plugboard_tests::{enc, timeline, Client, TestServer};
use serde_json::{json, Value};

fn knock_path(target: &str) -> String {
    format!("/knock/{}", enc(target))
}

async fn knock_room(alice: &Client, alias: &str) -> String {
    alice
        .create_room(json!({
            "name": "Door",
            "room_alias_name": alias,
            "initial_state": [{"type": "m.room.join_rules", "state_key": "",
                               "content": {"join_rule": "knock"}}],
        }))
        .await
}

fn member_event<'a>(events: &[&'a Value], user: &str) -> Option<&'a Value> {
    events
        .iter()
        .rev()
        .find(|e| e["type"] == "m.room.member" && e["state_key"] == user)
        .copied()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_knock_is_seen_by_the_knocker_from_outside_and_by_the_members_and_an_invite_lets_in() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = knock_room(&alice, "door").await;
    let since = alice.sync(None, 0).await["next_batch"]
        .as_str()
        .unwrap()
        .to_string();

    let answer = bob
        .post(
            &knock_path("#door:localhost"),
            json!({"reason": "let me in"}),
        )
        .await
        .ok();
    assert_eq!(answer["room_id"], room.as_str());

    let seen = bob.sync(None, 0).await;
    let knock = &seen["rooms"]["knock"][room.as_str()];
    let stripped = knock["knock_state"]["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no knock_state: {seen}"));
    assert!(stripped
        .iter()
        .any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "Door"));
    let own: Vec<&Value> = stripped
        .iter()
        .filter(|e| e["type"] == "m.room.member" && e["state_key"] == bob.user_id.as_str())
        .collect();
    assert_eq!(own.len(), 1, "{stripped:?}");
    assert_eq!(own[0]["content"]["membership"], "knock");
    assert!(stripped.iter().all(|e| e.get("event_id").is_none()));
    assert!(seen["rooms"]["join"].get(room.as_str()).is_none());

    let members = alice.sync(Some(&since), 0).await;
    let events = timeline(&members, &room);
    let knocked = member_event(&events, &bob.user_id).unwrap_or_else(|| panic!("{members}"));
    assert_eq!(knocked["content"]["membership"], "knock");
    assert_eq!(knocked["content"]["reason"], "let me in");

    bob.join(&room).await.err(403, "M_FORBIDDEN");
    alice.invite(&room, &bob.user_id).await.ok();
    bob.join(&room).await.ok();
    let joined = bob.sync(None, 0).await;
    assert!(joined["rooms"]["join"].get(room.as_str()).is_some());
    assert!(joined["rooms"]["knock"].get(room.as_str()).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_knock_is_refused_by_a_kick_or_taken_back_by_leaving() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = knock_room(&alice, "door").await;

    bob.post(&knock_path(&room), json!({})).await.ok();
    bob.post(&format!("/rooms/{}/leave", enc(&room)), json!({}))
        .await
        .ok();
    let since = bob.sync(None, 0).await["next_batch"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(bob.sync(None, 0).await["rooms"]["knock"]
        .get(room.as_str())
        .is_none());

    bob.post(&knock_path(&room), json!({})).await.ok();
    let after = bob.sync(Some(&since), 0).await;
    assert!(
        after["rooms"]["knock"].get(room.as_str()).is_some(),
        "{after}"
    );
    alice
        .post(
            &format!("/rooms/{}/kick", enc(&room)),
            json!({"user_id": bob.user_id, "reason": "no"}),
        )
        .await
        .ok();
    let members = alice
        .get(&format!("/rooms/{}/members", enc(&room)))
        .await
        .ok();
    let bob_member = members["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["state_key"] == bob.user_id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(bob_member["content"]["membership"], "leave");
    // Refused, one may knock again.
    bob.post(&knock_path(&room), json!({})).await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knocking_where_it_is_not_allowed_gets_the_specs_errors() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let public = alice.create_room(json!({"preset": "public_chat"})).await;
    let private = alice.create_room(json!({"preset": "private_chat"})).await;
    for room in [&public, &private] {
        bob.post(&knock_path(room), json!({}))
            .await
            .err(403, "M_FORBIDDEN");
    }

    let room = knock_room(&alice, "door").await;
    alice
        .post(&knock_path(&room), json!({}))
        .await
        .err(403, "M_FORBIDDEN");
    alice
        .post(
            &format!("/rooms/{}/ban", enc(&room)),
            json!({"user_id": bob.user_id}),
        )
        .await
        .ok();
    bob.post(&knock_path(&room), json!({}))
        .await
        .err(403, "M_FORBIDDEN");

    bob.post(&knock_path("!nowhere:localhost"), json!({}))
        .await
        .err(404, "M_NOT_FOUND");
    bob.post(&knock_path("#nowhere:localhost"), json!({}))
        .await
        .err(404, "M_NOT_FOUND");
    bob.post(&knock_path("not a room"), json!({}))
        .await
        .err(400, "M_INVALID_PARAM");
}
