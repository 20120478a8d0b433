//! The indexer end to end: a real server, the built component installed with a history
//! replay, messages in two rooms, `!search` with AND, phrases and filters, an edit, a
//! redaction of the original and one of an edit (the original's text comes back), the web
//! endpoint for members, non-members and no token, its counts for a server admin only, bad
//! input, and a
//! server restart in the middle of indexing with nothing lost or doubled.

use plugboard_tests::plugins::{self, admin, install_with, wait_for_member, wait_until};
use plugboard_tests::{enc, test_config, Client, TestServer};
use serde_json::{json, Value};

const BOT: &str = "@indexer:localhost";
const BINARY: &str = env!("CARGO_BIN_EXE_plugboard-test-server");

fn indexer() -> plugins::Built {
    plugins::build("plugboard-plugin-indexer", "plugins/indexer", &[])
}

/// Installs the indexer, replaying the stored history from the beginning.
async fn install_replaying(server: &TestServer) {
    let admin = admin(&server.base, server.data_dir.path());
    let built = indexer();
    install_with(
        &admin,
        &built.bytes(),
        &built.manifest_text(),
        None,
        json!("beginning"),
    )
    .await
    .ok();
}

/// What the indexer's `/status` says, as `c` (a server admin) asks.
async fn status(c: &Client) -> Value {
    c.get("/_plugboard/plugins/indexer/status").await.ok()
}

/// Waits until the index holds `n` messages, as `c` (a server admin) sees.
async fn wait_for_docs(c: &Client, n: u64) {
    wait_until(&format!("{n} messages indexed"), async || {
        let s = c.get("/_plugboard/plugins/indexer/status").await;
        s.status == 200 && s.body["docs"].as_u64() == Some(n)
    })
    .await;
}

/// The bodies of the indexer's answers in `room`, oldest first.
async fn answers(c: &Client, room: &str) -> Vec<String> {
    plugins::said_by(c, room, BOT).await
}

/// Sends `!search QUERY` as `c` and waits for the indexer's answer to it.
async fn ask(c: &Client, room: &str, query: &str) -> String {
    let before = answers(c, room).await.len();
    c.send_text(room, &format!("!search {query}")).await;
    let said = plugins::wait_for_words(c, room, BOT, |s| s.len() > before).await;
    said[before].clone()
}

fn rand_tag() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

async fn web(c: &Client, query: &str) -> plugboard_tests::Reply {
    c.get(&format!("/_plugboard/plugins/indexer/search?{query}"))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_indexer_answers_members_about_their_rooms_and_follows_edits_and_redactions() {
    let server = TestServer::start_with(|c| {
        c.appservice_delivery.retry_base_ms = 20;
        c.appservice_delivery.retry_max_ms = 200;
    })
    .await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let eve = server.register("eve").await;
    let root = server.server_admin(BINARY, "root").await;
    let room = alice.create_room(json!({"preset": "public_chat"})).await;
    bob.join(&room).await.ok();
    // History from before the indexer exists.
    let old = alice
        .send_text(&room, "The old lighthouse keeper retired")
        .await;
    install_replaying(&server).await;
    alice.invite(&room, BOT).await.ok();
    wait_for_member(&alice, &room, BOT).await;
    let other = bob.create_room(json!({"invite": [BOT]})).await;
    wait_for_member(&bob, &other, BOT).await;

    let mut harbour = Vec::new();
    for i in 0..6 {
        harbour.push(
            alice
                .send_text(&room, &format!("harbour note {i}: the tide is high"))
                .await,
        );
    }
    harbour.push(bob.send_text(&room, "a red boat in the harbour").await);
    bob.send_text(&other, "harbour plans for bob only").await;
    bob.send_message(&room, json!({"msgtype": "m.text", "body": 42}))
        .await;
    wait_for_docs(&root, 9).await;

    let replayed = ask(&alice, &room, "lighthouse").await;
    assert!(
        replayed.starts_with("1 message matches") && replayed.contains(&old),
        "{replayed}"
    );
    let top = ask(&alice, &room, "harbour").await;
    assert!(
        top.starts_with("7 messages match `harbour`; the best 5:"),
        "{top}"
    );
    assert_eq!(top.lines().count(), 6, "{top}");
    assert!(top.contains("**harbour**"), "{top}");
    assert!(
        top.contains(&format!("https://matrix.to/#/{room}/")),
        "{top}"
    );
    assert!(
        top.contains("@alice:localhost, 20"),
        "sender and time: {top}"
    );
    assert!(!top.contains("bob only"), "another room's message: {top}");
    let and = ask(&alice, &room, "harbour boat").await;
    assert!(and.starts_with("1 message matches"), "{and}");
    let phrase = ask(&alice, &room, "\"red boat\"").await;
    assert!(phrase.starts_with("1 message matches"), "{phrase}");
    let wrong_order = ask(&alice, &room, "\"boat red\"").await;
    assert!(wrong_order.starts_with("No messages"), "{wrong_order}");
    let from = ask(&alice, &room, "harbour from:@bob").await;
    assert!(
        from.starts_with("1 message matches") && from.contains(&harbour[6]),
        "{from}"
    );
    let before = ask(&alice, &room, "harbour before:2000-01-01").await;
    assert!(before.starts_with("No messages"), "{before}");
    let after = ask(&alice, &room, "tide after:2000-01-01 before:1d").await;
    assert!(after.starts_with("No messages"), "{after}");
    let recent = ask(&alice, &room, "tide after:1h").await;
    assert!(recent.starts_with("6 messages match"), "{recent}");
    let bad = ask(&alice, &room, "tide before:someday").await;
    assert!(bad.contains("cannot read the time"), "{bad}");

    // An edit replaces the text; the hit points at the original.
    alice
        .send_message(
            &room,
            json!({
                "msgtype": "m.text", "body": "* harbour note 0: the water is calm",
                "m.new_content": {"msgtype": "m.text", "body": "harbour note 0: the water is calm"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": harbour[0]},
            }),
        )
        .await;
    wait_until("the edit to be indexed", async || {
        web(&alice, "q=calm").await.body["count"] == 1
    })
    .await;
    let edited = ask(&alice, &room, "calm water").await;
    assert!(edited.contains(&harbour[0]), "{edited}");
    let tide = ask(&alice, &room, "tide").await;
    assert!(tide.starts_with("5 messages match"), "{tide}");
    // A redaction removes it.
    alice
        .put(
            &format!(
                "/rooms/{}/redact/{}/r{}",
                enc(&room),
                enc(&harbour[0]),
                rand_tag()
            ),
            json!({}),
        )
        .await
        .ok();
    wait_until("the redaction to be indexed", async || {
        web(&alice, "q=calm").await.body["count"] == 0
    })
    .await;
    assert!(ask(&alice, &room, "calm").await.starts_with("No messages"));

    // Redacting an edit brings back the text before it.
    let rough = alice
        .send_message(
            &room,
            json!({
                "msgtype": "m.text", "body": "* harbour note 1: the sea is rough",
                "m.new_content": {"msgtype": "m.text", "body": "harbour note 1: the sea is rough"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": harbour[1]},
            }),
        )
        .await;
    wait_until("the second edit to be indexed", async || {
        web(&alice, "q=rough").await.body["count"] == 1
    })
    .await;
    assert_eq!(web(&alice, "q=tide").await.ok()["count"], 4);
    alice
        .put(
            &format!(
                "/rooms/{}/redact/{}/r{}",
                enc(&room),
                enc(&rough),
                rand_tag()
            ),
            json!({}),
        )
        .await
        .ok();
    wait_until("the edit's redaction to be indexed", async || {
        web(&alice, "q=rough").await.body["count"] == 0
    })
    .await;
    let back = web(&alice, "q=tide").await.ok();
    assert_eq!(back["count"], 5, "{back}");
    let restored = ask(&alice, &room, "\"note 1\" tide").await;
    assert!(
        restored.starts_with("1 message matches") && restored.contains(&harbour[1]),
        "{restored}"
    );

    // The web endpoint: members only, by token.
    let anonymous = Client::new(&server.base);
    web(&anonymous, "q=harbour")
        .await
        .err(401, "M_MISSING_TOKEN");
    let mine = web(&alice, "q=harbour&limit=3").await.ok();
    assert_eq!(mine["count"], 6, "{mine}");
    assert_eq!(mine["results"].as_array().unwrap().len(), 3, "{mine}");
    let hit = &mine["results"][0];
    assert_eq!(hit["room_id"], room.as_str());
    assert!(
        hit["snippet"].as_str().unwrap().contains("**harbour**"),
        "{hit}"
    );
    assert!(hit["score"].as_f64().unwrap() > 0.0);
    assert!(hit["origin_server_ts"].as_u64().unwrap() > 0);
    web(&alice, &format!("q=harbour&room={}", enc(&other)))
        .await
        .err(403, "M_FORBIDDEN");
    let bobs = web(&bob, "q=harbour").await.ok();
    assert_eq!(bobs["count"], 7, "both of bob's rooms: {bobs}");
    let only_other = web(&bob, &format!("q=harbour&room={}", enc(&other)))
        .await
        .ok();
    assert_eq!(only_other["count"], 1, "{only_other}");
    assert_eq!(web(&eve, "q=harbour").await.ok()["count"], 0);
    web(&eve, &format!("q=harbour&room={}", enc(&room)))
        .await
        .err(403, "M_FORBIDDEN");
    web(&eve, "q=%22%22").await.err(400, "M_INVALID_PARAM");
    web(&eve, "q=x&limit=100000")
        .await
        .err(400, "M_INVALID_PARAM");
    alice
        .get("/_plugboard/plugins/indexer/status")
        .await
        .err(403, "M_FORBIDDEN");
    let counts = status(&root).await;
    assert_eq!(counts["rejected"]["malformed"], 1, "{counts}");
    assert!(
        counts["rejected"]["query"].as_u64().unwrap() >= 2,
        "{counts}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_of_indexing_loses_nothing_and_doubles_nothing() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let root = server.server_admin(BINARY, "root").await;
    let room = alice.create_room(json!({"preset": "public_chat"})).await;
    let history = 1500u64;
    let senders: Vec<_> = (0..3u64)
        .map(|k| {
            let (alice, room) = (alice.clone(), room.clone());
            tokio::spawn(async move {
                for i in (k * history / 3)..((k + 1) * history / 3) {
                    alice
                        .send_text(&room, &format!("before {i} marker{i}"))
                        .await;
                }
            })
        })
        .collect();
    for s in senders {
        s.await.unwrap();
    }
    install_replaying(&server).await;
    alice.invite(&room, BOT).await.ok();
    let mut seen = 0;
    wait_until("the replay to be under way", async || {
        let s = root.get("/_plugboard/plugins/indexer/status").await;
        seen = s.body["docs"].as_u64().unwrap_or(0);
        seen > 0
    })
    .await;
    let dir = server.stop().await;
    assert!(
        seen < history,
        "the restart came in the middle: {seen} of {history}"
    );
    let config = test_config(dir.path());
    let server = TestServer::start_in(dir, config).await;
    let alice = Client {
        base: server.base.clone(),
        ..alice
    };
    let root = Client {
        base: server.base.clone(),
        ..root
    };
    let total = history + 10;
    for i in history..total {
        alice
            .send_text(&room, &format!("after {i} marker{i}"))
            .await;
    }
    wait_for_docs(&root, total).await;
    wait_for_member(&alice, &room, BOT).await;
    for i in [0, history / 2, history - 1, history, total - 1] {
        let one = web(&alice, &format!("q=marker{i}")).await.ok();
        assert_eq!(one["count"], 1, "marker{i}: {one}");
    }
    let every = web(&alice, "q=from:@alice&limit=1").await.ok();
    assert_eq!(every["count"], total, "each message once: {every}");
    assert_eq!(
        every["results"][0]["snippet"].as_str().unwrap(),
        format!("after {} marker{}", total - 1, total - 1),
        "the newest first"
    );
}
