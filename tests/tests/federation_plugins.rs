//! Plugins meeting other servers' users: the bundled echo bot on Plugboard answers a Synapse
//! user in a room the two servers share, and joins a room of another server (Synapse, or a
//! second Plugboard) when a user there invites it.

use plugboard_tests::federation::Peer;
use plugboard_tests::plugins::{self, admin, install, room_with_bot, wait_for_words};
use plugboard_tests::reading::wait_member;
use plugboard_tests::{against_both, enc, TestServer};
use serde_json::json;

/// A federating server with the bundled echo bot installed as an admin would, and the bot.
async fn with_echo_bot() -> (TestServer, String) {
    let server = TestServer::start_federating_with(|c| {
        c.appservice_delivery.retry_base_ms = 20;
        c.appservice_delivery.retry_max_ms = 200;
    })
    .await;
    let admin = admin(&server.base, server.data_dir.path());
    let view = install(&admin, &plugins::echo_bot()).await;
    assert_eq!(view["state"], "running", "{view}");
    let bot = format!("@echo:{}", server.server_name);
    (server, bot)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_echo_bot_answers_a_synapse_user_in_a_shared_room() {
    let peer = Peer::synapse().await;
    let (server, bot) = with_echo_bot().await;

    let alice = server.register("alice").await;
    let room = room_with_bot(&alice, &bot).await;
    alice
        .put(
            &format!("/rooms/{}/state/m.room.join_rules/", enc(&room)),
            json!({"join_rule": "public"}),
        )
        .await
        .ok();
    let bob = peer.user("bob").await;
    let joined = bob.join_via(&room, &server.server_name).await;
    assert_eq!(joined.status, 200, "{}\n{}", joined.body, peer.log_tail());

    // Bob, on Synapse, asks; the bot's answer travels back to Synapse.
    bob.send_text(&room, "!echo hello from synapse").await;
    let said = wait_for_words(&bob, &room, &bot, |s| !s.is_empty()).await;
    assert_eq!(said, ["hello from synapse"], "{}", peer.log_tail());
}

/// The bot hears an invite from another server (stored outside any timeline here, as this
/// server is not in the room), joins through the inviter's server, and answers there.
async fn the_echo_bot_joins_a_room_of_another_server_it_is_invited_to(peer: Peer) {
    let (_server, bot) = with_echo_bot().await;

    let bob = peer.user("bob").await;
    let room = bob
        .create_room(json!({"preset": "private_chat", "name": "Far away"}))
        .await;
    let invited = bob.invite(&room, &bot).await;
    assert_eq!(invited.status, 200, "{}\n{}", invited.body, peer.log_tail());
    wait_member(&bob, &room, &bot).await;

    bob.send_text(&room, "!echo hello from afar").await;
    let said = wait_for_words(&bob, &room, &bot, |s| !s.is_empty()).await;
    assert_eq!(said, ["hello from afar"], "{}", peer.log_tail());
}

against_both!(the_echo_bot_joins_a_room_of_another_server_it_is_invited_to);

/// Five bundled bots invited at once to a room of another server: the first joins through
/// the inviter's server, which makes this server a member; the others join here, once the
/// room's state here has their invites (taken in from the inviter when the join that made
/// this server a member was built before them). Each joins once and answers.
async fn bots_invited_together_to_another_servers_room_all_join_once_and_answer(peer: Peer) {
    let server = TestServer::start_federating_with(|c| {
        c.plugins.bundled = true;
        c.appservice_delivery.retry_base_ms = 20;
        c.appservice_delivery.retry_max_ms = 200;
    })
    .await;
    let bob = peer.user("bob").await;
    let room = bob
        .create_room(json!({"preset": "private_chat", "name": "Crowded"}))
        .await;
    let bots = ["bot", "midi", "echo", "indexer", "translator"]
        .map(|b| format!("@{b}:{}", server.server_name));
    let [bot, midi, echo, indexer, translator] = &bots;
    // All at once, as a script would: the inviting server builds each invite on the last,
    // while the first bots already ask it to join.
    let invited = tokio::join!(
        bob.invite(&room, bot),
        bob.invite(&room, midi),
        bob.invite(&room, echo),
        bob.invite(&room, indexer),
        bob.invite(&room, translator),
    );
    for reply in [invited.0, invited.1, invited.2, invited.3, invited.4] {
        assert_eq!(reply.status, 200, "{}\n{}", reply.body, peer.log_tail());
    }
    for invitee in &bots {
        wait_member(&bob, &room, invitee).await;
    }

    bob.send_text(&room, "!echo all here").await;
    for echoer in [bot, echo] {
        let said = wait_for_words(&bob, &room, echoer, |s| !s.is_empty()).await;
        assert_eq!(said, ["all here"], "{echoer}\n{}", peer.log_tail());
    }
    bob.send_text(&room, "!midi stats").await;
    wait_for_words(&bob, &room, midi, |s| !s.is_empty()).await;

    // Each bot heard its invite twice (beside the room, then in it) and joined once.
    let page = bob
        .get(&format!("/rooms/{}/messages?dir=b&limit=100", enc(&room)))
        .await;
    for invitee in &bots {
        let joins = page.body["chunk"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| {
                e["type"] == "m.room.member"
                    && e["state_key"] == invitee.as_str()
                    && e["content"]["membership"] == "join"
            })
            .count();
        assert_eq!(joins, 1, "{invitee}'s joins: {}", page.body);
    }
}

against_both!(bots_invited_together_to_another_servers_room_all_join_once_and_answer);
