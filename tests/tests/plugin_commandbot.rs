//! The command bot against a real server: it joins when invited, answers its commands and
//! bad input, greets arrivals where a moderator turned greetings on, keeps a reminder across
//! a SIGKILL, and leaves a room once it is alone there.

use plugboard_tests::plugins::{self, admin, install, room_with_bot, wait_for_words, wait_until};
use plugboard_tests::{enc, ServerProcess};
use serde_json::json;

const BINARY: &str = env!("CARGO_BIN_EXE_plugboard-test-server");
const BOT: &str = "@bot:localhost";

fn commandbot() -> plugins::Built {
    plugins::build("plugboard-plugin-commandbot", "plugins/commandbot", &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_its_commands_and_explains_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = ServerProcess::spawn(BINARY, &data).await;
    install(&admin(&server.base, &data), &commandbot()).await;
    let alice = server.client().register("alice", "password").await;
    let room = room_with_bot(&alice, BOT).await;

    for asked in [
        "!help",
        "!echo hello there",
        "!ping",
        "!roll 2d6+3",
        "!roll 500d6",
        "!remind whenever tea",
        // Another bot's command: left to it.
        "!frobnicate",
        "!echo after the other bot's command",
    ] {
        alice.send_text(&room, asked).await;
    }
    let said = wait_for_words(&alice, &room, BOT, |s| s.len() >= 7).await;
    assert!(said[0].contains("!roll NdM[+K]") && said[0].contains("!remind IN TEXT"));
    assert!(said[1].ends_with("hello there"), "{}", said[1]);
    let ms: u64 = said[2]
        .rsplit_once("pong (")
        .and_then(|(_, r)| r.strip_suffix(" ms)"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a pong with a time: {}", said[2]));
    assert!(ms < 60_000, "{ms} ms");
    let (_, roll) = said[3].split_once("2d6+3: ").expect("a roll");
    let (terms, total) = roll.split_once(" = ").unwrap();
    let terms: Vec<i64> = terms.split(" + ").map(|t| t.parse().unwrap()).collect();
    assert!(terms[..2].iter().all(|d| (1..=6).contains(d)));
    assert_eq!(terms.iter().sum::<i64>(), total.parse::<i64>().unwrap());
    assert!(
        said[4].contains("roll between 1 and 100 dice"),
        "{}",
        said[4]
    );
    assert!(said[5].contains("is not a duration"), "{}", said[5]);
    assert!(
        said[6].ends_with("after the other bot's command"),
        "{}",
        said[6]
    );

    // Replies are notices in reply to the command.
    let page = alice
        .get(&format!("/rooms/{}/messages?dir=b&limit=20", enc(&room)))
        .await
        .ok();
    let echo = page["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["sender"] == BOT
                && e["content"]["body"]
                    .as_str()
                    .unwrap()
                    .ends_with("hello there")
        })
        .unwrap()
        .clone();
    assert_eq!(echo["content"]["msgtype"], "m.notice");
    assert!(echo["content"]["m.relates_to"]["m.in_reply_to"]["event_id"].is_string());

    // Content that is not what the spec says is passed over, not answered.
    alice
        .put(
            &format!("/rooms/{}/send/m.room.message/bad1", enc(&room)),
            json!({"msgtype": "m.text", "body": {"not": "text"}}),
        )
        .await
        .ok();
    alice.send_text(&room, "!echo after the bad one").await;
    let said = wait_for_words(&alice, &room, BOT, |s| s.len() >= 8).await;
    assert!(said[7].ends_with("after the bad one"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greets_arrivals_once_a_moderator_sets_a_greeting() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = ServerProcess::spawn(BINARY, &data).await;
    install(&admin(&server.base, &data), &commandbot()).await;
    let alice = server.client().register("alice", "password").await;
    let bob = server.client().register("bob", "password").await;
    let carol = server.client().register("carol", "password").await;
    let room = alice
        .create_room(json!({"preset": "public_chat", "invite": [BOT]}))
        .await;
    plugins::wait_for_member(&alice, &room, BOT).await;
    bob.join(&room).await.ok();

    bob.send_text(&room, "!welcome on Hello {name}").await;
    let said = wait_for_words(&alice, &room, BOT, |s| !s.is_empty()).await;
    assert!(
        said[0].starts_with("Only someone who may change"),
        "{}",
        said[0]
    );

    alice
        .send_text(&room, "!welcome on Hello {name}, read the topic")
        .await;
    wait_for_words(&alice, &room, BOT, |s| s.len() >= 2).await;
    carol
        .put(
            &format!("/profile/{}/displayname", enc("@carol:localhost")),
            json!({"displayname": "Carol"}),
        )
        .await
        .ok();
    carol.join(&room).await.ok();
    let said = wait_for_words(&alice, &room, BOT, |s| s.len() >= 3).await;
    assert_eq!(said[2], "@carol:localhost: Hello Carol, read the topic");

    // A new display name is not an arrival.
    carol
        .put(
            &format!("/profile/{}/displayname", enc("@carol:localhost")),
            json!({"displayname": "Carol C."}),
        )
        .await
        .ok();
    alice.send_text(&room, "!echo marker").await;
    let said = wait_for_words(&alice, &room, BOT, |s| s.len() >= 4).await;
    assert!(said[3].ends_with("marker"), "a second greeting: {said:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reminder_survives_a_sigkill_and_the_bot_leaves_when_alone() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = ServerProcess::spawn(BINARY, &data).await;
    install(&admin(&server.base, &data), &commandbot()).await;
    let alice = server.client().register("alice", "password").await;
    // World readable, so that alice can still read its state once she has left.
    let room = alice
        .create_room(json!({"invite": [BOT], "initial_state": [{
            "type": "m.room.history_visibility", "state_key": "",
            "content": {"history_visibility": "world_readable"}}]}))
        .await;
    plugins::wait_for_member(&alice, &room, BOT).await;
    alice.send_text(&room, "!remind 3s stretch").await;
    wait_for_words(&alice, &room, BOT, |s| s == ["I will remind you in 3s."]).await;
    server.kill();

    let server = ServerProcess::spawn(BINARY, &data).await;
    let mut alice = alice.clone();
    alice.base = server.base.clone();
    let said = wait_for_words(&alice, &room, BOT, |s| s.len() >= 2).await;
    assert_eq!(said[1], "@alice:localhost: ⏰ Reminder: stretch");
    // Posted once, not again after the restart's catch-up.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        plugins::said_by(&alice, &room, BOT).await.len(),
        2,
        "the reminder came twice"
    );

    alice
        .post(&format!("/rooms/{}/leave", enc(&room)), json!({}))
        .await
        .ok();
    wait_until("the bot to leave the empty room", async || {
        let bot = alice
            .get(&format!(
                "/rooms/{}/state/m.room.member/{}",
                enc(&room),
                enc(BOT)
            ))
            .await;
        bot.status == 200 && bot.ok()["membership"] == "leave"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn its_configuration_sets_the_prefix_and_who_may_invite_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = ServerProcess::spawn(BINARY, &data).await;
    let built = commandbot();
    plugins::install_with(
        &admin(&server.base, &data),
        &built.bytes(),
        &built.manifest_text(),
        Some("prefix = \"?\"\ninvite_from = [\"@alice:*\"]\n"),
        json!("live"),
    )
    .await
    .ok();
    let alice = server.client().register("alice", "password").await;
    let mallory = server.client().register("mallory", "password").await;

    // Mallory's invite is left alone: the bot stays invited, never joined.
    let theirs = mallory.create_room(json!({"invite": [BOT]})).await;
    let ours = room_with_bot(&alice, BOT).await;
    let members = mallory
        .get(&format!("/rooms/{}/members", enc(&theirs)))
        .await
        .ok();
    let bot = members["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["state_key"] == BOT)
        .unwrap()
        .clone();
    assert_eq!(bot["content"]["membership"], "invite");

    alice.send_text(&ours, "!ping").await;
    alice
        .send_text(&ours, "?echo with the configured prefix")
        .await;
    let said = wait_for_words(&alice, &ours, BOT, |s| !s.is_empty()).await;
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(said[0].ends_with("with the configured prefix"), "{said:?}");
}
