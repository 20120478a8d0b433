//! Rooms shared between Plugboard and Synapse 1.163: joins both ways (by alias, by id with
//! `via`), messages both ways arriving in order and byte-exact, state changes applied on both
//! sides. Each case runs against Synapse (one serves the binary) and against a second
//! Plugboard; each test has its own Plugboard and users.

use plugboard_tests::federation::{room_joined_by_alias, Peer};
use plugboard_tests::reading::{
    paged_bodies, wait_event, wait_in_sync, wait_joined_members, wait_membership, ACROSS,
};
use plugboard_tests::{against_both, enc, eventually, Client, TestServer};
use serde_json::{json, Value};

against_both!(
    the_peers_user_joins_our_room_by_alias_and_its_messages_arrive_in_order,
    our_user_joins_the_peers_room_by_id_with_via_and_reads_what_is_sent_there,
    the_peers_user_invites_ours_who_sees_the_invite_and_joins,
    our_user_refuses_an_invite_to_the_peers_room,
    our_user_invites_the_peers_user_who_joins_our_room,
    our_late_joiner_back_paginates_thirty_earlier_messages_from_the_peer,
    names_and_power_levels_changed_on_either_side_apply_on_both,
    midi_and_call_events_cross_byte_exact_both_ways_then_a_leave_and_a_kick,
    a_burst_of_150_from_our_user_is_all_read_in_order_on_the_peer,
    presence_crosses_both_ways_between_users_sharing_a_room,
);

/// The `m.room.message` bodies `reader` can read in `room_id`, oldest first (one page of 200).
async fn bodies(reader: &Client, room_id: &str) -> Vec<String> {
    let reply = reader
        .get(&format!("/rooms/{}/messages?dir=b&limit=200", enc(room_id)))
        .await;
    let mut out: Vec<String> = reply.body["chunk"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["type"] == "m.room.message")
        .filter_map(|e| e["content"]["body"].as_str().map(str::to_string))
        .collect();
    out.reverse();
    out
}

/// Waits until `reader` reads every body of `expected`, in that order, in `room_id`; fails
/// with what it read and the peer's log.
async fn wait_for_bodies(reader: &Client, room_id: &str, expected: &[String], peer: &Peer) {
    let mut read = Vec::new();
    let all = eventually(ACROSS, async || {
        read = bodies(reader, room_id).await;
        read.iter().filter(|b| expected.contains(b)).count() == expected.len()
    })
    .await;
    let got: Vec<&String> = read.iter().filter(|b| expected.contains(b)).collect();
    assert!(
        all,
        "{} of {} messages arrived: {read:?}\n{}",
        got.len(),
        expected.len(),
        peer.log_tail()
    );
    let want: Vec<&String> = expected.iter().collect();
    assert_eq!(got, want, "the messages arrived out of order");
}

/// Waits until `user`'s server lists them joined to `room_id`.
async fn wait_joined(user: &Client, room_id: &str) {
    let joined = eventually(ACROSS, async || {
        let rooms = user.get("/joined_rooms").await.body;
        rooms["joined_rooms"]
            .as_array()
            .is_some_and(|r| r.iter().any(|id| id == room_id))
    })
    .await;
    assert!(joined, "{} never joined {room_id}", user.user_id);
}

async fn the_peers_user_joins_our_room_by_alias_and_its_messages_arrive_in_order(peer: Peer) {
    let synapse = &peer;
    let plugboard = TestServer::start_federating().await;
    let alice = plugboard.register("alice").await;
    let room_id = alice
        .create_room(json!({"preset": "public_chat", "room_alias_name": "lobby", "name": "Lobby"}))
        .await;
    let alias = format!("#lobby:{}", plugboard.server_name);
    let bob = synapse.user("bob").await;

    let joined = bob.join(&alias).await;
    assert_eq!(
        joined.status,
        200,
        "{}\n{}",
        joined.body,
        synapse.log_tail()
    );
    assert_eq!(joined.body["room_id"], room_id.as_str());

    // Plugboard took Synapse's signed join into the room.
    wait_joined_members(&alice, &room_id, &[&alice.user_id, &bob.user_id]).await;
    // Synapse has the room's state from send_join: the name Plugboard set.
    let name = bob
        .get(&format!("/rooms/{}/state/m.room.name/", enc(&room_id)))
        .await;
    assert_eq!(name.body["name"], "Lobby", "{}", name.body);

    let sent: Vec<String> = (0..20).map(|i| format!("from synapse #{i} ✓")).collect();
    for text in &sent {
        bob.send_text(&room_id, text).await;
    }
    wait_for_bodies(&alice, &room_id, &sent, synapse).await;
}

async fn our_user_joins_the_peers_room_by_id_with_via_and_reads_what_is_sent_there(peer: Peer) {
    let synapse = &peer;
    let plugboard = TestServer::start_federating().await;
    let bob = synapse.user("bob").await;
    let room_id = bob
        .create_room(json!({"preset": "public_chat", "name": "Synapse side"}))
        .await;
    let alice = plugboard.register("alice").await;

    // A version 12 room id names no server: the join needs `via`.
    let joined = alice.join_via(&room_id, synapse.server_name()).await;
    assert_eq!(
        joined.status,
        200,
        "{}\n{}",
        joined.body,
        synapse.log_tail()
    );
    wait_joined(&alice, &room_id).await;
    let name = alice
        .get(&format!("/rooms/{}/state/m.room.name/", enc(&room_id)))
        .await;
    assert_eq!(name.body["name"], "Synapse side", "{}", name.body);

    // Synapse sees Plugboard's join.
    wait_joined_members(&bob, &room_id, &[&alice.user_id, &bob.user_id]).await;

    let sent: Vec<String> = (0..20).map(|i| format!("to plugboard #{i}")).collect();
    for text in &sent {
        bob.send_text(&room_id, text).await;
    }
    wait_for_bodies(&alice, &room_id, &sent, synapse).await;
}

#[tokio::test]
async fn a_join_without_a_server_to_join_through_is_a_clear_404() {
    let plugboard = TestServer::start_federating().await;
    let alice = plugboard.register("alice").await;
    let unknown = "!AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let reply = alice
        .post(&format!("/join/{}", enc(unknown)), json!({}))
        .await;
    assert_eq!(reply.status, 404, "{}", reply.body);
    assert_eq!(reply.body["errcode"], "M_NOT_FOUND");
    let _: Value = reply.body;
}

async fn the_peers_user_invites_ours_who_sees_the_invite_and_joins(peer: Peer) {
    let synapse = &peer;
    let plugboard = TestServer::start_federating().await;
    let bob = synapse.user("bob").await;
    let room_id = bob
        .create_room(json!({"preset": "private_chat", "name": "Invite only"}))
        .await;
    let alice = plugboard.register("alice").await;

    let invited = bob.invite(&room_id, &alice.user_id).await;
    assert_eq!(
        invited.status,
        200,
        "{}\n{}",
        invited.body,
        synapse.log_tail()
    );
    // Plugboard signed the invite and shows it with the room's stripped state.
    let invite = wait_in_sync(&alice, "invite", &room_id).await;
    let events = invite["invite_state"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "Invite only"),
        "{invite}"
    );
    assert!(events.iter().any(|e| e["type"] == "m.room.member"
        && e["state_key"] == alice.user_id.as_str()
        && e["content"]["membership"] == "invite"));

    // Joining needs no `via`: the inviting server is in the room.
    let joined = alice.join(&room_id).await;
    assert_eq!(
        joined.status,
        200,
        "{}\n{}",
        joined.body,
        synapse.log_tail()
    );
    wait_in_sync(&alice, "join", &room_id).await;
    wait_membership(&bob, &room_id, &alice.user_id, "join").await;
}

async fn our_user_refuses_an_invite_to_the_peers_room(peer: Peer) {
    let synapse = &peer;
    let plugboard = TestServer::start_federating().await;
    let bob = synapse.user("bob").await;
    let room_id = bob.create_room(json!({"preset": "private_chat"})).await;
    let alice = plugboard.register("alice").await;
    bob.invite(&room_id, &alice.user_id).await.ok();
    wait_in_sync(&alice, "invite", &room_id).await;
    let since = alice.sync(None, 0).await["next_batch"]
        .as_str()
        .expect("next_batch")
        .to_string();

    let left = alice
        .post(&format!("/rooms/{}/leave", enc(&room_id)), json!({}))
        .await;
    assert_eq!(left.status, 200, "{}\n{}", left.body, synapse.log_tail());
    wait_membership(&bob, &room_id, &alice.user_id, "leave").await;
    // The refusal reaches alice's next sync, and the invite is gone from a fresh one.
    let news = alice.sync(Some(&since), 0).await;
    assert!(news["rooms"]["leave"].get(&room_id).is_some(), "{news}");
    let fresh = alice.sync(None, 0).await;
    assert!(fresh["rooms"]["invite"].get(&room_id).is_none(), "{fresh}");
}

async fn our_user_invites_the_peers_user_who_joins_our_room(peer: Peer) {
    let synapse = &peer;
    let plugboard = TestServer::start_federating().await;
    let alice = plugboard.register("alice").await;
    let room_id = alice.create_room(json!({"preset": "private_chat"})).await;
    let bob = synapse.user("bob").await;

    let invited = alice.invite(&room_id, &bob.user_id).await;
    assert_eq!(
        invited.status,
        200,
        "{}\n{}",
        invited.body,
        synapse.log_tail()
    );
    // The invite in the room carries Synapse's signature as well as ours.
    let invite = alice
        .get(&format!(
            "/rooms/{}/state/m.room.member/{}",
            enc(&room_id),
            enc(&bob.user_id)
        ))
        .await;
    assert_eq!(invite.body["membership"], "invite", "{}", invite.body);

    wait_in_sync(&bob, "invite", &room_id).await;
    let joined = bob.join(&room_id).await;
    assert_eq!(
        joined.status,
        200,
        "{}\n{}",
        joined.body,
        synapse.log_tail()
    );
    wait_membership(&alice, &room_id, &bob.user_id, "join").await;
}

async fn our_late_joiner_back_paginates_thirty_earlier_messages_from_the_peer(peer: Peer) {
    let synapse = &peer;
    let plugboard = TestServer::start_federating().await;
    let bob = synapse.user("bob").await;
    let room_id = bob
        .create_room(json!({"preset": "public_chat", "name": "History"}))
        .await;
    let earlier: Vec<String> = (0..30).map(|i| format!("before the join #{i}")).collect();
    for text in &earlier {
        bob.send_text(&room_id, text).await;
    }
    let alice = plugboard.register("alice").await;
    let joined = alice.join_via(&room_id, synapse.server_name()).await;
    assert_eq!(
        joined.status,
        200,
        "{}\n{}",
        joined.body,
        synapse.log_tail()
    );

    let read = paged_bodies(&alice, &room_id, 10).await;
    assert_eq!(read, earlier, "{}", synapse.log_tail());
}

/// A burst faster than the peer takes it in: Synapse prunes its inbound queue of a room past
/// 100 events, keeping the newest, and fetches the rest from us with `/backfill` when its user
/// pages back. Nothing is lost and the order holds.
async fn a_burst_of_150_from_our_user_is_all_read_in_order_on_the_peer(peer: Peer) {
    let plugboard = TestServer::start_federating().await;
    let alice = plugboard.register("alice").await;
    let room_id = alice
        .create_room(json!({"preset": "public_chat", "name": "Burst"}))
        .await;
    let bob = peer.user("bob").await;
    let joined = bob.join_via(&room_id, &plugboard.server_name).await;
    assert_eq!(joined.status, 200, "{}\n{}", joined.body, peer.log_tail());
    let sent: Vec<String> = (0..150).map(|i| format!("burst #{i}")).collect();
    for text in &sent {
        alice.send_text(&room_id, text).await;
    }
    // The last one arriving live says the burst is over; the rest may need paging back.
    let last = sent.last().cloned().unwrap_or_default();
    let arrived = eventually(ACROSS * 2, async || {
        bodies(&bob, &room_id).await.contains(&last)
    })
    .await;
    assert!(
        arrived,
        "the burst's last message never arrived\n{}",
        peer.log_tail()
    );
    let read = paged_bodies(&bob, &room_id, 50).await;
    assert_eq!(read, sent, "{}", peer.log_tail());
}

/// The content of the state event `(kind, key)` of `room_id` as `reader`'s server has it.
async fn state_content(reader: &Client, room_id: &str, kind: &str, key: &str) -> Value {
    reader
        .get(&format!(
            "/rooms/{}/state/{kind}/{}",
            enc(room_id),
            enc(key)
        ))
        .await
        .body
}

/// Waits until `check` holds of the state event `(kind, key)` as `reader`'s server has it.
async fn wait_state(reader: &Client, room_id: &str, kind: &str, check: impl Fn(&Value) -> bool) {
    let mut content = Value::Null;
    let changed = eventually(ACROSS, async || {
        content = state_content(reader, room_id, kind, "").await;
        check(&content)
    })
    .await;
    assert!(
        changed,
        "{kind} never changed as expected for {}: {content}",
        reader.user_id
    );
}

async fn names_and_power_levels_changed_on_either_side_apply_on_both(peer: Peer) {
    let plugboard = TestServer::start_federating().await;
    let alice = plugboard.register("alice").await;
    let bob = peer.user("bob").await;
    // Bob's room on the peer, where alice (of this server) may change the name.
    let room_id = bob
        .create_room(json!({
            "preset": "public_chat",
            "name": "first",
            // Bob created the room: from version 12 creators are above every level and
            // are not listed.
            "power_level_content_override": {
                "users": { &alice.user_id: 50 },
                "state_default": 50,
            },
        }))
        .await;
    let joined = alice.join_via(&room_id, peer.server_name()).await;
    assert_eq!(joined.status, 200, "{}\n{}", joined.body, peer.log_tail());
    wait_membership(&bob, &room_id, &alice.user_id, "join").await;

    // Alice renames the room here; the peer applies it.
    let renamed = alice
        .put(
            &format!("/rooms/{}/state/m.room.name/", enc(&room_id)),
            json!({"name": "by alice"}),
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    wait_state(&bob, &room_id, "m.room.name", |c| c["name"] == "by alice").await;

    // Bob demotes alice on the peer; this server enforces it.
    let mut levels = state_content(&bob, &room_id, "m.room.power_levels", "").await;
    levels["users"][&alice.user_id] = json!(0);
    let demoted = bob
        .put(
            &format!("/rooms/{}/state/m.room.power_levels/", enc(&room_id)),
            levels,
        )
        .await;
    assert_eq!(demoted.status, 200, "{}", demoted.body);
    wait_state(&alice, &room_id, "m.room.power_levels", |c| {
        c["users"][&alice.user_id] == json!(0)
    })
    .await;
    let refused = alice
        .put(
            &format!("/rooms/{}/state/m.room.name/", enc(&room_id)),
            json!({"name": "after the demotion"}),
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(refused.body["errcode"], "M_FORBIDDEN");

    // Bob's rename reaches alice.
    let renamed = bob
        .put(
            &format!("/rooms/{}/state/m.room.name/", enc(&room_id)),
            json!({"name": "by bob"}),
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    wait_state(&alice, &room_id, "m.room.name", |c| c["name"] == "by bob").await;
}

/// Sends an event of any type as `c`; answers its id.
async fn send_event(c: &Client, room_id: &str, kind: &str, content: &Value) -> String {
    let txn = format!(
        "x{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("time")
            .as_nanos()
    );
    let reply = c
        .put(
            &format!("/rooms/{}/send/{kind}/{txn}", enc(room_id)),
            content.clone(),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body["event_id"]
        .as_str()
        .expect("event_id")
        .to_string()
}

async fn midi_and_call_events_cross_byte_exact_both_ways_then_a_leave_and_a_kick(peer: Peer) {
    let plugboard = TestServer::start_federating().await;
    let alice = plugboard.register("alice").await;
    let bob = peer.user("bob").await;
    let room_id = room_joined_by_alias(&alice, &plugboard.server_name, "jam", &bob, || {
        peer.log_tail()
    })
    .await;
    // Synapse hides call invites in public rooms (they would ring everyone): a room of two.
    let closed = alice
        .put(
            &format!("/rooms/{}/state/m.room.join_rules/", enc(&room_id)),
            json!({"join_rule": "invite"}),
        )
        .await;
    assert_eq!(closed.status, 200, "{}", closed.body);
    wait_state(&bob, &room_id, "m.room.join_rules", |c| {
        c["join_rule"] == "invite"
    })
    .await;

    // The talk's MIDI payload and a call whose SDP keeps its CRLFs, each way.
    let midi = json!({"note": 60, "velocity": 100, "state": "on", "channel": 1,
                      "midi_ts": 1_234_567, "body": "🎹 C4 ✓"});
    let sdp = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
               a=group:BUNDLE 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n";
    let call = json!({"call_id": "c1", "party_id": "p1", "version": "1", "lifetime": 60000,
                      "offer": {"type": "offer", "sdp": sdp}});
    for (sender, reader) in [(&alice, &bob), (&bob, &alice)] {
        let midi_id = send_event(sender, &room_id, "org.matrix.midi", &midi).await;
        let call_id = send_event(sender, &room_id, "m.call.invite", &call).await;
        let log = || peer.log_tail();
        assert_eq!(
            wait_event(reader, &room_id, &midi_id, log).await["content"],
            midi
        );
        let got = wait_event(reader, &room_id, &call_id, log).await["content"].clone();
        assert_eq!(got, call);
        assert_eq!(
            got["offer"]["sdp"].as_str(),
            Some(sdp),
            "the CRLFs survived"
        );
    }

    // Bob leaves on his server; alice's sees it. He comes back and alice kicks him.
    let left = bob
        .post(&format!("/rooms/{}/leave", enc(&room_id)), json!({}))
        .await;
    assert_eq!(left.status, 200, "{}", left.body);
    wait_membership(&alice, &room_id, &bob.user_id, "leave").await;
    let invited = alice.invite(&room_id, &bob.user_id).await;
    assert_eq!(invited.status, 200, "{}\n{}", invited.body, peer.log_tail());
    wait_in_sync(&bob, "invite", &room_id).await;
    let back = bob.join(&room_id).await;
    assert_eq!(back.status, 200, "{}\n{}", back.body, peer.log_tail());
    wait_membership(&alice, &room_id, &bob.user_id, "join").await;
    let kicked = alice
        .post(
            &format!("/rooms/{}/kick", enc(&room_id)),
            json!({"user_id": bob.user_id, "reason": "test"}),
        )
        .await;
    assert_eq!(kicked.status, 200, "{}", kicked.body);
    wait_membership(&bob, &room_id, &bob.user_id, "leave").await;
}

/// Waits until `reader` reads `user`'s presence as online with `status`.
async fn wait_presence(reader: &Client, user: &str, status: &str, peer: &Peer) {
    let mut seen = Value::Null;
    let reached = eventually(ACROSS, async || {
        seen = reader
            .get(&format!("/presence/{}/status", enc(user)))
            .await
            .body;
        seen["presence"] == "online" && seen["status_msg"] == status
    })
    .await;
    assert!(
        reached,
        "{user}'s presence never reached {}: {seen}\n{}",
        reader.user_id,
        peer.log_tail()
    );
}

async fn presence_crosses_both_ways_between_users_sharing_a_room(peer: Peer) {
    let plugboard = TestServer::start_federating().await;
    let alice = plugboard.register("alice").await;
    let bob = peer.user("bob").await;
    // Presence goes to the servers a user shares a room with.
    room_joined_by_alias(&alice, &plugboard.server_name, "here", &bob, || {
        peer.log_tail()
    })
    .await;

    for (setter, reader, status) in [(&bob, &alice, "jamming"), (&alice, &bob, "tuning")] {
        let set = setter
            .put(
                &format!("/presence/{}/status", enc(&setter.user_id)),
                json!({"presence": "online", "status_msg": status}),
            )
            .await;
        assert_eq!(set.status, 200, "{}", set.body);
        wait_presence(reader, &setter.user_id, status, &peer).await;
    }
}
