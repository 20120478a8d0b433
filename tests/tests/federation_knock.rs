//! Knocking across servers: a Plugboard user knocks on a room of the peer (Synapse, or a
//! second Plugboard) with `join_rule: knock`, sees it in their sync's `knock` section with the
//! room's stripped state, and is let in (invited, then joined); another withdraws a knock first.

use plugboard_tests::federation::Peer;
use plugboard_tests::reading::{wait_in_sync, wait_membership};
use plugboard_tests::{against_both, enc, wait_until, Client, TestServer};
use serde_json::json;

against_both!(our_user_knocks_on_the_peers_room_is_let_in_and_another_withdraws);

async fn knock(user: &Client, room_id: &str, via: &str) {
    let knocked = user
        .post(
            &format!("/knock/{}?via={}", enc(room_id), enc(via)),
            json!({"reason": "let me in"}),
        )
        .await;
    assert_eq!(knocked.status, 200, "{}", knocked.body);
    assert_eq!(knocked.body["room_id"], room_id);
}

async fn our_user_knocks_on_the_peers_room_is_let_in_and_another_withdraws(peer: Peer) {
    let plugboard = TestServer::start_federating().await;
    let bob = peer.user("bob").await;
    let room_id = bob
        .create_room(json!({
            "preset": "private_chat",
            "name": "Knock here",
            "room_version": "10",
            "initial_state": [{
                "type": "m.room.join_rules", "state_key": "",
                "content": {"join_rule": "knock"},
            }],
        }))
        .await;
    let alice = plugboard.register("alice").await;
    let carol = plugboard.register("carol").await;

    // A room of no server but this one, which does not have it: nowhere to knock.
    let nowhere = format!("!nowhere:{}", plugboard.server_name);
    let refused = alice
        .post(&format!("/knock/{}", enc(&nowhere)), json!({}))
        .await;
    assert_eq!(refused.status, 404, "{}", refused.body);
    assert_eq!(refused.body["errcode"], "M_NOT_FOUND");

    // Carol knocks and thinks better of it: her leave goes through the server she
    // knocked at, as this server is not in the room.
    knock(&carol, &room_id, peer.server_name()).await;
    wait_membership(&bob, &room_id, &carol.user_id, "knock").await;
    wait_in_sync(&carol, "knock", &room_id).await;
    let before = carol.sync(None, 0).await["next_batch"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let left = carol
        .post(&format!("/rooms/{}/leave", enc(&room_id)), json!({}))
        .await;
    assert_eq!(left.status, 200, "{}\n{}", left.body, peer.log_tail());
    wait_membership(&bob, &room_id, &carol.user_id, "leave").await;
    // An incremental sync tells her the knock is over (an initial one leaves left rooms out).
    wait_until("carol's sync to show the withdrawn knock", async || {
        let sync = carol.sync(Some(&before), 0).await;
        sync["rooms"]["leave"][&room_id].is_object()
    })
    .await;

    knock(&alice, &room_id, peer.server_name()).await;
    let knocked = wait_in_sync(&alice, "knock", &room_id).await;
    let events = knocked["knock_state"]["events"].as_array().cloned();
    let events = events.unwrap_or_default();
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "Knock here"),
        "{knocked}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "m.room.member" && e["state_key"] == alice.user_id.as_str()),
        "{knocked}"
    );
    wait_membership(&bob, &room_id, &alice.user_id, "knock").await;

    // Bob lets her in: an invite over federation, then her join through his server.
    let invited = bob.invite(&room_id, &alice.user_id).await;
    assert_eq!(invited.status, 200, "{}\n{}", invited.body, peer.log_tail());
    wait_in_sync(&alice, "invite", &room_id).await;
    let joined = alice
        .post(&format!("/rooms/{}/join", enc(&room_id)), json!({}))
        .await;
    assert_eq!(joined.status, 200, "{}\n{}", joined.body, peer.log_tail());
    wait_membership(&bob, &room_id, &alice.user_id, "join").await;
}
