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

/// Three bundled bots invited at once to a room of another server: the first joins through
/// the inviter's server, which makes this server a member; each of the others must join too.
/// Known bug (issue 16, still open): the later ones are refused locally ("not invited": this
/// server's state of the room lacks their invites yet) and never join. Ignored until fixed,
/// so that CI stays green; run with `-- --ignored federation_plugins::bots_invited`.
async fn bots_invited_together_to_another_servers_room_all_join_and_answer(peer: Peer) {
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
    let bots: Vec<String> = ["bot", "midi", "echo"]
        .iter()
        .map(|b| format!("@{b}:{}", server.server_name))
        .collect();
    for bot in &bots {
        let invited = bob.invite(&room, bot).await;
        assert_eq!(invited.status, 200, "{}\n{}", invited.body, peer.log_tail());
    }
    for bot in &bots {
        wait_member(&bob, &room, bot).await;
    }
    bob.send_text(&room, "!echo all here").await;
    let said = wait_for_words(&bob, &room, &bots[2], |s| !s.is_empty()).await;
    assert_eq!(said, ["all here"], "{}", peer.log_tail());
}

mod bots_invited_together_to_another_servers_room_all_join_and_answer {
    use plugboard_tests::federation::Peer;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "known bug, issue 16: later bots invited at once are refused locally"]
    async fn with_synapse() {
        super::bots_invited_together_to_another_servers_room_all_join_and_answer(
            Peer::synapse().await,
        )
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "known bug, issue 16: later bots invited at once are refused locally"]
    async fn with_plugboard() {
        super::bots_invited_together_to_another_servers_room_all_join_and_answer(
            Peer::plugboard().await,
        )
        .await
    }
}
