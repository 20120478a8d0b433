//! Plugins see only what the person asking may see (issue 13): the indexer's answers to a
//! user kicked from a room (the sequence) and to members under each history
//! visibility, its counts for server admins only, the MIDI logger's export to a member from
//! whom part of the history is hidden and to one kicked, the host calls `access-to-rooms`, `visible-events` and
//! `is-server-admin` through the probe, the caller's credentials kept from web endpoints, and
//! a plugin kicked from a room getting no more of its events, as an HTTP appservice.

use plugboard_tests::appservice::Recorder;
use plugboard_tests::plugins::{
    self, admin, install, said_by, wait_for_member, wait_for_seen, wait_for_words, wait_until,
    Built,
};
use plugboard_tests::{enc, Client, Reply, TestServer};
use serde_json::{json, Value};

const INDEXER: &str = "@indexer:localhost";
const PROBE: &str = "@probe:localhost";
const BINARY: &str = env!("CARGO_BIN_EXE_plugboard-test-server");

fn indexer() -> Built {
    plugins::build("plugboard-plugin-indexer", "plugins/indexer", &[])
}

/// Waits until the plugin `id` has been handed every event stored so far.
async fn caught_up(admin: &Client, id: &str) {
    wait_until(&format!("{id} to catch up"), async || {
        let v = plugins::show(admin, id).await;
        v["events_behind"] == 0 && v["in_flight"].is_null()
    })
    .await;
}

async fn kick(by: &Client, room: &str, user: &str) {
    by.post(
        &format!("/rooms/{}/kick", enc(room)),
        json!({ "user_id": user }),
    )
    .await
    .ok();
}

async fn set_visibility(by: &Client, room: &str, visibility: &str) {
    by.put(
        &format!("/rooms/{}/state/m.room.history_visibility/", enc(room)),
        json!({ "history_visibility": visibility }),
    )
    .await
    .ok();
}

async fn search(c: &Client, query: &str) -> Reply {
    c.get(&format!("/_plugboard/plugins/indexer/search?{query}"))
        .await
}

/// The hits' texts (snippets without their marks), sorted.
fn texts(answer: &Value) -> Vec<String> {
    let mut t: Vec<String> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["snippet"].as_str().unwrap().replace("**", ""))
        .collect();
    t.sort();
    t
}

/// The bodies of the messages containing `word` that `c` reads in `room` through
/// `/messages`, sorted.
async fn read_with_messages(c: &Client, room: &str, word: &str) -> Vec<String> {
    let page = c
        .get(&format!("/rooms/{}/messages?dir=b&limit=100", enc(room)))
        .await
        .ok();
    let mut bodies: Vec<String> = page["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["content"]["body"].as_str())
        .filter(|b| b.contains(word))
        .map(str::to_string)
        .collect();
    bodies.sort();
    bodies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_kicked_from_a_room_finds_nothing_said_there_after_the_kick() {
    let server = TestServer::start().await;
    let admin = admin(&server.base, server.data_dir.path());
    install(&admin, &indexer()).await;
    let alice = server.register("alice").await;
    let mallory = server.register("mallory").await;
    let room = alice
        .create_room(json!({"preset": "private_chat", "invite": [INDEXER, mallory.user_id]}))
        .await;
    mallory.join(&room).await.ok();
    wait_for_member(&alice, &room, INDEXER).await;
    alice.send_text(&room, "launch plans are ready").await;
    kick(&alice, &room, INDEXER).await;
    kick(&alice, &room, &mallory.user_id).await;
    alice.send_text(&room, "launch code is 0000").await;

    // Mallory's /messages rightly hides it, and shows what came before the kick.
    assert_eq!(
        read_with_messages(&mallory, &room, "launch").await,
        ["launch plans are ready"]
    );
    // The indexer (every room is in its namespace) has been handed the secret too.
    caught_up(&admin, "indexer").await;
    let asked = search(&mallory, &format!("q=launch&room={}", enc(&room))).await;
    assert!(!asked.body.to_string().contains("0000"), "{}", asked.body);
    asked.err(403, "M_FORBIDDEN");
    let anywhere = search(&mallory, "q=launch").await.ok();
    assert_eq!(anywhere["count"], 0, "{anywhere}");
    // The indexer left: the room's messages stay in the index, answered to nobody.
    search(&alice, &format!("q=launch&room={}", enc(&room)))
        .await
        .err(403, "M_FORBIDDEN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_hits_follow_the_history_visibility_in_force_at_each_message() {
    let server = TestServer::start().await;
    let admin = admin(&server.base, server.data_dir.path());
    install(&admin, &indexer()).await;
    let alice = server.register("alice").await;
    let carol = server.register("carol").await;
    let eve = server.register("eve").await;
    let dave = server.register("dave").await;
    let room = alice
        .create_room(json!({"preset": "private_chat", "invite": [INDEXER]}))
        .await;
    wait_for_member(&alice, &room, INDEXER).await;
    alice.send_text(&room, "walrus one").await;
    set_visibility(&alice, &room, "joined").await;
    alice.send_text(&room, "walrus two").await;
    alice.invite(&room, &carol.user_id).await.ok();
    carol.join(&room).await.ok();
    alice.send_text(&room, "walrus three").await;
    caught_up(&admin, "indexer").await;
    let found = search(&carol, "q=walrus").await.ok();
    assert_eq!(texts(&found), ["walrus one", "walrus three"], "{found}");
    assert_eq!(found["count"], 2);
    assert_eq!(
        texts(&found),
        read_with_messages(&carol, &room, "walrus").await,
        "the same as /messages"
    );

    // Away and back: what was said meanwhile stays hidden.
    carol
        .post(&format!("/rooms/{}/leave", enc(&room)), json!({}))
        .await
        .ok();
    alice.send_text(&room, "walrus four").await;
    caught_up(&admin, "indexer").await;
    search(&carol, &format!("q=walrus&room={}", enc(&room)))
        .await
        .err(403, "M_FORBIDDEN");
    alice.invite(&room, &carol.user_id).await.ok();
    carol.join(&room).await.ok();
    alice.send_text(&room, "walrus five").await;
    caught_up(&admin, "indexer").await;
    let found = search(&carol, &format!("q=walrus&room={}", enc(&room)))
        .await
        .ok();
    assert_eq!(
        texts(&found),
        ["walrus five", "walrus one", "walrus three"],
        "{found}"
    );
    assert_eq!(
        texts(&found),
        read_with_messages(&carol, &room, "walrus").await
    );
    assert_eq!(search(&alice, "q=walrus").await.ok()["count"], 5);

    // Invited is not joined.
    alice.invite(&room, &dave.user_id).await.ok();
    search(&dave, &format!("q=walrus&room={}", enc(&room)))
        .await
        .err(403, "M_FORBIDDEN");

    // A world-readable room: anyone who names it finds what was said under that visibility.
    let open = alice
        .create_room(
            json!({"preset": "public_chat", "invite": [INDEXER], "initial_state": [
            {"type": "m.room.history_visibility", "state_key": "",
             "content": {"history_visibility": "world_readable"}}]}),
        )
        .await;
    wait_for_member(&alice, &open, INDEXER).await;
    alice.send_text(&open, "walrus in the open").await;
    caught_up(&admin, "indexer").await;
    let peeked = search(&eve, &format!("q=walrus&room={}", enc(&open)))
        .await
        .ok();
    assert_eq!(texts(&peeked), ["walrus in the open"], "{peeked}");
    assert_eq!(
        search(&eve, "q=walrus").await.ok()["count"],
        0,
        "without `room`, the rooms she joined"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_counts_are_for_server_admins() {
    let server = TestServer::start().await;
    let admin = admin(&server.base, server.data_dir.path());
    install(&admin, &indexer()).await;
    let alice = server.register("alice").await;
    let room = alice
        .create_room(json!({"preset": "private_chat", "invite": [INDEXER]}))
        .await;
    wait_for_member(&alice, &room, INDEXER).await;
    alice.send_text(&room, "counted").await;
    alice
        .get("/_plugboard/plugins/indexer/status")
        .await
        .err(403, "M_FORBIDDEN");
    let root = server.server_admin(BINARY, "root").await;
    caught_up(&admin, "indexer").await;
    let counts = root.get("/_plugboard/plugins/indexer/status").await.ok();
    assert_eq!(counts["docs"], 1, "{counts}");
    // The same in a room.
    alice.send_text(&room, "!index").await;
    let said = wait_for_words(&alice, &room, INDEXER, |s| !s.is_empty()).await;
    assert_eq!(said, ["The index's counts are for server admins."]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_web_endpoint_never_sees_the_callers_credentials() {
    let server = TestServer::start().await;
    let admin = admin(&server.base, server.data_dir.path());
    install(&admin, &plugins::probe(false)).await;
    let alice = server.register("alice").await;
    let token = alice.token.clone().unwrap();
    let url = |query: &str| format!("{}/_plugboard/plugins/probe/request?{query}", server.base);

    let by_query = alice
        .http
        .post(url(&format!(
            "q=launch&access_token={token}&room=%21r%3Alocalhost"
        )))
        .header("cookie", format!("session={token}"))
        .header("x-trace", "kept")
        .send()
        .await
        .unwrap();
    assert_eq!(by_query.status().as_u16(), 200);
    let seen: Value = by_query.json().await.unwrap();
    assert!(!seen.to_string().contains(&token), "{seen}");
    assert_eq!(seen["query"], "q=launch&room=%21r%3Alocalhost");
    assert_eq!(seen["user_id"], "@alice:localhost");
    let names: Vec<&str> = seen["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h[0].as_str().unwrap())
        .collect();
    assert!(names.contains(&"x-trace"), "{names:?}");
    assert!(!names.contains(&"cookie"), "{names:?}");

    let by_header = alice
        .http
        .get(url("x=1"))
        .bearer_auth(&token)
        .header("proxy-authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    let seen: Value = by_header.json().await.unwrap();
    assert!(!seen.to_string().contains(&token), "{seen}");
    assert_eq!(
        (seen["query"].as_str(), seen["user_id"].as_str()),
        (Some("x=1"), Some("@alice:localhost"))
    );

    // A token the server does not know is refused before the plugin.
    let mut stranger = server.client();
    stranger.token = Some("not-a-token".into());
    stranger
        .get("/_plugboard/plugins/probe/request")
        .await
        .err(401, "M_UNKNOWN_TOKEN");
    server
        .client()
        .get("/_plugboard/plugins/probe/request?access_token=nope")
        .await
        .err(401, "M_UNKNOWN_TOKEN");
    let anonymous = server
        .client()
        .get("/_plugboard/plugins/probe/request?a=b")
        .await
        .ok();
    assert_eq!(
        (anonymous["query"].as_str(), &anonymous["user_id"]),
        (Some("a=b"), &Value::Null)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_midi_recording_goes_only_to_who_may_read_all_of_the_room() {
    let server = TestServer::start().await;
    let admin = admin(&server.base, server.data_dir.path());
    install(
        &admin,
        &plugins::build("plugboard-plugin-midi-logger", "plugins/midi-logger", &[]),
    )
    .await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let mallory = server.register("mallory").await;
    let logger = "@midi:localhost";
    let room = alice
        .create_room(json!({"preset": "private_chat", "invite": [logger, mallory.user_id]}))
        .await;
    mallory.join(&room).await.ok();
    wait_for_member(&alice, &room, logger).await;
    set_visibility(&alice, &room, "joined").await;
    for (i, state) in ["on", "off"].iter().enumerate() {
        alice
            .put(
                &format!("/rooms/{}/send/org.matrix.midi/m{i}", enc(&room)),
                json!({"note": 60, "velocity": 100, "state": state, "channel": 1, "midi_ts": i * 500}),
            )
            .await
            .ok();
    }
    alice.invite(&room, &bob.user_id).await.ok();
    bob.join(&room).await.ok();
    caught_up(&admin, "midi-logger").await;
    let path = format!("/_plugboard/plugins/midi-logger/rooms/{}.mid", enc(&room));
    let file = alice
        .http
        .get(alice.url(&path))
        .bearer_auth(alice.token.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(file.status().as_u16(), 200, "there all along");
    assert!(file.bytes().await.unwrap().starts_with(b"MThd"));
    let late = bob.get(&path).await;
    late.err(403, "M_FORBIDDEN");
    assert!(
        late.body["error"].as_str().unwrap().contains("hidden"),
        "{}",
        late.body
    );
    kick(&alice, &room, &mallory.user_id).await;
    mallory.get(&path).await.err(403, "M_FORBIDDEN");
    // A room the logger was kicked from keeps its recording, served to nobody.
    kick(&alice, &room, logger).await;
    caught_up(&admin, "midi-logger").await;
    alice.get(&path).await.err(404, "M_NOT_FOUND");
}

/// Says `command` in `room` as `c` and answers the probe's reply to it.
async fn probe_says(c: &Client, room: &str, command: &str) -> String {
    let before = said_by(c, room, PROBE).await.len();
    c.send_text(room, command).await;
    let said = wait_for_words(c, room, PROBE, |s| s.len() > before).await;
    said[before].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_says_who_may_read_a_room_and_see_its_events_by_the_servers_rules() {
    let server = TestServer::start().await;
    let admin = admin(&server.base, server.data_dir.path());
    install(&admin, &plugins::probe(false)).await;
    let alice = server.register("alice").await;
    let mallory = server.register("mallory").await;
    let bob = server.register("bob").await;
    let room = alice
        .create_room(json!({"preset": "private_chat", "invite": [PROBE, mallory.user_id]}))
        .await;
    mallory.join(&room).await.ok();
    wait_for_member(&alice, &room, PROBE).await;
    let before = alice.send_text(&room, "before").await;
    kick(&alice, &room, &mallory.user_id).await;
    let after = alice.send_text(&room, "after").await;
    let m = &mallory.user_id;

    assert_eq!(
        probe_says(&alice, &room, &format!("!access {m}")).await,
        "ok joined=false readable=false whole=false"
    );
    assert_eq!(
        probe_says(
            &alice,
            &room,
            &format!("!visible {m} {before} {after} $unknown")
        )
        .await,
        format!("ok [\"{before}\"]"),
        "what she saw before the kick, as /messages shows her"
    );
    assert_eq!(
        probe_says(&alice, &room, "!access @alice:localhost").await,
        "ok joined=true readable=true whole=true"
    );
    assert_eq!(
        probe_says(&alice, &room, "!access @nobody:localhost").await,
        "ok joined=false readable=false whole=false"
    );
    // Joined late under `joined`: readable, but not the whole history.
    set_visibility(&alice, &room, "joined").await;
    let hidden = alice.send_text(&room, "hidden").await;
    alice.invite(&room, &bob.user_id).await.ok();
    bob.join(&room).await.ok();
    let b = &bob.user_id;
    assert_eq!(
        probe_says(&alice, &room, &format!("!access {b}")).await,
        "ok joined=true readable=true whole=false"
    );
    assert_eq!(
        probe_says(&alice, &room, &format!("!visible {b} {before} {hidden}")).await,
        format!("ok [\"{before}\"]"),
        "shared before, joined-only after"
    );
    // A room the probe has no view of tells it nothing, though bob is in it.
    let elsewhere = bob.create_room(json!({"preset": "private_chat"})).await;
    let secret = bob.send_text(&elsewhere, "elsewhere").await;
    assert_eq!(
        probe_says(&alice, &room, &format!("!access {b} {elsewhere}")).await,
        "ok joined=false readable=false whole=false"
    );
    assert_eq!(
        probe_says(&alice, &room, &format!("!visible {b} {secret}")).await,
        "ok []"
    );
    // Admins, and bad input as the Matrix errors.
    assert_eq!(
        probe_says(&alice, &room, "!admin @alice:localhost").await,
        "ok false"
    );
    let root = server.server_admin(BINARY, "root").await;
    assert_eq!(
        probe_says(&alice, &room, &format!("!admin {}", root.user_id)).await,
        "ok true"
    );
    assert_eq!(
        probe_says(&alice, &room, "!access alice").await,
        "error M_INVALID_PARAM"
    );
    assert_eq!(
        probe_says(&alice, &room, "!access @alice:localhost not-a-room").await,
        "error M_INVALID_PARAM"
    );
    assert_eq!(
        probe_says(&alice, &room, "!visible @alice:localhost not-an-event").await,
        "error M_INVALID_PARAM"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_kicked_from_a_room_gets_no_more_of_it_as_an_http_appservice_does() {
    let recorder = Recorder::new("hs_left");
    let url = recorder.start().await;
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("left.yaml");
    std::fs::write(
        &reg,
        format!(
            "id: left\nurl: {url}\nas_token: as_left\nhs_token: hs_left\nsender_localpart: left\n\
             namespaces:\n  users:\n    - regex: '@left_.*'\n      exclusive: true\n"
        ),
    )
    .unwrap();
    let server = TestServer::start_with(|c| {
        c.appservice_config_files = vec![reg.clone()];
    })
    .await;
    let admin = admin(&server.base, server.data_dir.path());
    install(&admin, &plugins::probe(false)).await;
    let alice = server.register("alice").await;
    let mut service = server.client();
    service.token = Some("as_left".into());
    // The service's first request makes its sender's account.
    service.get("/account/whoami").await.ok();
    let room = alice
        .create_room(json!({"preset": "private_chat", "invite": [PROBE, "@left:localhost"]}))
        .await;
    service.join(&room).await.ok();
    wait_for_member(&alice, &room, PROBE).await;
    let while_in = alice.send_text(&room, "while in").await;
    // Both get it before the kicks: interest is judged when the event goes out, by the
    // memberships then (as Synapse does), so an event still queued at a kick is not sent.
    let probe_saw = wait_for_seen(&server.base, "probe", std::slice::from_ref(&while_in)).await;
    recorder
        .wait_for("the message while in", |r| r.has(&while_in))
        .await;
    kick(&alice, &room, PROBE).await;
    kick(&alice, &room, "@left:localhost").await;
    let gone = vec![
        alice.send_text(&room, "after the kick").await,
        alice.send_text(&room, "and more").await,
    ];
    // Something each is handed for its own sake (an invite of its user) marks where the
    // stream had come to.
    alice.invite(&room, "@left:localhost").await.ok();
    let invited = |r: &Recorder| {
        r.accepted_events()
            .iter()
            .filter(|e| {
                e["type"] == "m.room.member"
                    && e["state_key"] == "@left:localhost"
                    && e["content"]["membership"] == "invite"
            })
            .count()
    };
    recorder
        .wait_for("the invite after the kick", |r| invited(r) == 2)
        .await;
    alice.invite(&room, PROBE).await.ok();
    caught_up(&admin, "probe").await;
    let probe_saw_now = plugins::seen_by(&server.base, "probe").await.1;
    for id in &gone {
        assert!(
            recorder.accepted_ids().iter().all(|e| e != id),
            "the service got {id}"
        );
        assert!(!probe_saw_now.contains(id), "the probe got {id}");
    }
    assert!(recorder.has(&while_in) && probe_saw.contains(&while_in));
}
