//! WASM plugins end to end: a real server on 127.0.0.1:0 with a real built component (the
//! test probe, `tests/plugins/probe`, and the echo bot), talked to over HTTP as clients, an
//! admin and an HTTP appservice would.

use std::time::Duration;

use plugboard_tests::appservice::Recorder;
use plugboard_tests::plugins::{
    self, admin, install, quick_retry_server, room_with_bot, said_by, seen_by, show, wait_for_seen,
    wait_for_words,
};
use plugboard_tests::{Client, TestServer};
use serde_json::{json, Value};

/// A user in a fresh room with the probe's sender joined.
async fn room_with_probe(server: &TestServer, name: &str) -> (Client, String) {
    let alice = server.register(name).await;
    let room = room_with_bot(&alice, "@probe:localhost").await;
    (alice, room)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_echo_bot_joins_when_invited_and_answers() {
    let server = quick_retry_server().await;
    let admin = admin(&server.base, server.data_dir.path());
    let view = install(&admin, &plugins::echo_bot()).await;
    assert_eq!(view["state"], "running");
    let alice = server.register("alice").await;
    let room = room_with_bot(&alice, "@echo:localhost").await;
    alice.send_text(&room, "!echo hello wasm").await;
    let said = wait_for_words(&alice, &room, "@echo:localhost", |s| !s.is_empty()).await;
    assert_eq!(said, ["hello wasm"]);
    let view = show(&admin, "echo-bot").await;
    assert!(view["transactions"].as_u64().unwrap() >= 2, "{view}");
    assert!(view["memory_bytes"].as_u64().unwrap() > 0, "{view}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_gets_exactly_what_an_http_appservice_with_the_same_namespaces_gets() {
    let recorder = Recorder::new("hs_twin");
    let url = recorder.start().await;
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("twin.yaml");
    // The probe's namespaces, but not exclusive (the probe holds them exclusively), and its
    // sender's room memberships: the rooms below all have a namespaced member or none.
    std::fs::write(
        &reg,
        format!(
            "id: twin\nurl: {url}\nas_token: as_twin\nhs_token: hs_twin\nsender_localpart: twin\n\
             namespaces:\n  users:\n    - regex: '@probe.*'\n      exclusive: false\n    \
             - regex: '@watched_.*'\n      exclusive: false\n  aliases:\n    - regex: '#probe_.*'\n      \
             exclusive: false\n"
        ),
    )
    .unwrap();
    let server = TestServer::start_with(|c| {
        c.appservice_config_files = vec![reg.clone()];
        c.appservice_delivery.retry_base_ms = 20;
    })
    .await;
    let admin = admin(&server.base, server.data_dir.path());
    install(&admin, &plugins::probe(false)).await;

    let watched = server.register("watched_bob").await;
    let carol = server.register("carol").await;
    let with_watched = watched.create_room(json!({"preset": "public_chat"})).await;
    let without = carol.create_room(json!({"preset": "public_chat"})).await;
    carol.join(&with_watched).await.ok();
    let mut sent = Vec::new();
    for i in 0..20 {
        sent.push(carol.send_text(&with_watched, &format!("wanted {i}")).await);
        carol.send_text(&without, &format!("unwanted {i}")).await;
        if i % 5 == 0 {
            sent.push(
                watched
                    .send_text(&with_watched, &format!("from watched {i}"))
                    .await,
            );
        }
    }
    let probe_saw = wait_for_seen(&server.base, "probe", &sent).await;
    recorder
        .wait_for("the twin's events", |r| {
            let ids = r.accepted_ids();
            sent.iter().all(|s| ids.contains(s))
        })
        .await;
    // Both have caught up to the last event; what each holds must be the same list.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, probe_saw_all) = seen_by(&server.base, "probe").await;
    assert_eq!(
        probe_saw_all,
        recorder.accepted_ids(),
        "same events, same order"
    );
    assert!(probe_saw.iter().all(|id| !id.is_empty()));
    let unwanted_room_events: Vec<String> = said_by(&carol, &without, "@carol:localhost").await;
    assert_eq!(unwanted_room_events.len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_makes_a_virtual_user_and_a_room_that_clients_and_appservices_see() {
    let recorder = Recorder::new("hs_obs");
    let url = recorder.start().await;
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("obs.yaml");
    std::fs::write(
        &reg,
        format!(
            "id: obs\nurl: {url}\nas_token: as_obs\nhs_token: hs_obs\nsender_localpart: obs\n\
             namespaces:\n  users:\n    - regex: '@probe_.*'\n      exclusive: false\n"
        ),
    )
    .unwrap();
    let server = TestServer::start_with(|c| {
        c.appservice_config_files = vec![reg.clone()];
    })
    .await;
    let admin = admin(&server.base, server.data_dir.path());
    install(&admin, &plugins::probe(false)).await;
    let (alice, room) = room_with_probe(&server, "alice").await;
    alice.send_text(&room, "!room probe_maker").await;
    let said = wait_for_words(&alice, &room, "@probe:localhost", |s| !s.is_empty()).await;
    assert!(said[0].starts_with("ok \"!"), "{said:?}");
    let made = said[0]
        .trim_start_matches("ok \"")
        .trim_end_matches('"')
        .to_string();
    // Alice was invited: /sync shows it; she joins and reads the virtual user's message.
    let sync = alice.sync(None, 0).await;
    assert!(sync["rooms"]["invite"].get(&made).is_some(), "{sync}");
    alice.join(&made).await.ok();
    let words = wait_for_words(&alice, &made, "@probe_maker:localhost", |s| !s.is_empty()).await;
    assert_eq!(words, ["hello from the probe"]);
    // The HTTP appservice that watches @probe_.* got the same message.
    recorder
        .wait_for("the virtual user's message", |r| {
            r.accepted_events().iter().any(|e| {
                e["sender"] == "@probe_maker:localhost"
                    && e["content"]["body"] == "hello from the probe"
            })
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acting_outside_the_namespace_quota_and_allow_list_are_refused_with_errcodes() {
    // A web server the probe may not reach, and one it may.
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let forbidden = {
        let hits = hits.clone();
        let app = axum::Router::new().fallback(move || {
            let hits = hits.clone();
            async move {
                hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                "hi"
            }
        });
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await });
        addr
    };
    let allowed = {
        let app = axum::Router::new().fallback(|| async { "allowed" });
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await });
        addr
    };
    let server = TestServer::start_with(|c| {
        c.plugins.settings.insert(
            "probe".into(),
            plugboard::config::PluginSettings {
                http_allow: Some(vec![allowed.to_string()]),
                ..Default::default()
            },
        );
    })
    .await;
    let admin = admin(&server.base, server.data_dir.path());
    install(&admin, &plugins::probe(false)).await;
    let (alice, room) = room_with_probe(&server, "alice").await;
    let ask = |text: &'static str| {
        let alice = alice.clone();
        let room = room.clone();
        async move { alice.send_text(&room, text).await }
    };
    ask("!as @alice:localhost impersonation").await;
    ask("!register alice_again").await;
    ask("!kv 100").await;
    ask("!kv 8").await;
    alice
        .send_text(&room, &format!("!http http://{forbidden}/secret"))
        .await;
    alice
        .send_text(&room, &format!("!http http://{allowed}/ok"))
        .await;
    let said = wait_for_words(&alice, &room, "@probe:localhost", |s| s.len() >= 6).await;
    assert_eq!(
        said,
        [
            "error M_FORBIDDEN",
            "error M_EXCLUSIVE",
            "error M_RESOURCE_LIMIT_EXCEEDED",
            "ok ()",
            "error M_FORBIDDEN",
            "ok 200",
        ]
    );
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "nothing reached the host off the list"
    );
    let messages = said_by(&alice, &room, "@alice:localhost").await;
    assert!(!messages.contains(&"impersonation".to_string()));
    let view = show(&admin, "probe").await;
    assert!(view["kv_bytes"].as_u64().unwrap() >= 8 * 1024, "{view}");
    assert!(view["kv_bytes"].as_u64().unwrap() <= 65536, "{view}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_replaced_after_a_restart_counts_once_against_the_quota() {
    let server = quick_retry_server().await;
    let admin_client = admin(&server.base, server.data_dir.path());
    install(&admin_client, &plugins::probe(false)).await;
    let (alice, room) = room_with_probe(&server, "alice").await;
    alice.send_text(&room, "!kv 40").await;
    wait_for_words(&alice, &room, "@probe:localhost", |s| !s.is_empty()).await;
    let data_dir = server.stop().await;
    let config = plugboard_tests::test_config(data_dir.path());
    let server = TestServer::start_in(data_dir, config).await;
    let mut alice = alice;
    alice.base = server.base.clone();
    // Nothing of the store is cached after the restart: the size of the value being
    // replaced comes from the database. Were it taken as absent, 40 + 40 KiB would pass the
    // 64 KiB quota and be refused.
    alice.send_text(&room, "!kv 40").await;
    alice.send_text(&room, "!kv 70").await;
    let said = wait_for_words(&alice, &room, "@probe:localhost", |s| s.len() >= 3).await;
    assert_eq!(said, ["ok ()", "ok ()", "error M_RESOURCE_LIMIT_EXCEEDED"]);
    let view = show(&admin(&server.base, server.data_dir.path()), "probe").await;
    let bytes = view["kv_bytes"].as_u64().unwrap();
    assert!((40 * 1024..41 * 1024).contains(&bytes), "{view}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_endpoints_reach_the_plugin_and_the_admin_can_turn_them_off() {
    let server = quick_retry_server().await;
    let admin = admin(&server.base, server.data_dir.path());
    install(&admin, &plugins::probe(false)).await;
    let alice = server.register("alice").await;
    let who = alice.get("/_plugboard/plugins/probe/whoami").await.ok();
    assert_eq!(who["user_id"], "@alice:localhost");
    let anonymous = server
        .client()
        .get("/_plugboard/plugins/probe/whoami")
        .await
        .ok();
    assert_eq!(anonymous["user_id"], Value::Null);
    let echoed = alice
        .http
        .post(format!("{}/_plugboard/plugins/probe/echo", server.base))
        .body("ping body")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.status().as_u16(), 201);
    assert_eq!(echoed.headers()["content-type"], "text/plain");
    assert_eq!(echoed.text().await.unwrap(), "ping body");
    server
        .client()
        .get("/_plugboard/plugins/probe/nowhere")
        .await
        .err(404, "M_NOT_FOUND");
    server
        .client()
        .get("/_plugboard/plugins/nobody/x")
        .await
        .err(404, "M_NOT_FOUND");
    admin
        .put(
            "/_plugboard/admin/v1/plugins/probe/endpoints",
            json!({"enabled": false}),
        )
        .await
        .ok();
    alice
        .get("/_plugboard/plugins/probe/whoami")
        .await
        .err(404, "M_NOT_FOUND");
    // One byte over the limit: the server reads it nearly all before it answers, so the
    // client is not cut off mid-body (a 2 MiB body sometimes met a reset instead of the 413).
    let big = vec![b'x'; 1024 * 1024 + 1];
    admin
        .put(
            "/_plugboard/admin/v1/plugins/probe/endpoints",
            json!({"enabled": true}),
        )
        .await
        .ok();
    let too_big = alice
        .http
        .post(format!("{}/_plugboard/plugins/probe/echo", server.base))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(too_big.status().as_u16(), 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lazy_users_and_rooms_come_from_the_plugin_queries() {
    let server = quick_retry_server().await;
    let admin = admin(&server.base, server.data_dir.path());
    install(&admin, &plugins::probe(false)).await;
    let alice = server.register("alice").await;
    let profile = alice.get("/profile/@probe_lazy_one:localhost").await;
    assert_eq!(profile.status, 200, "{}", profile.body);
    let joined = alice.join("#probe_lazy_room:localhost").await.ok();
    assert!(joined["room_id"].as_str().unwrap().starts_with('!'));
    alice
        .get("/profile/@probe_nobody:localhost")
        .await
        .err(404, "M_NOT_FOUND");
    let view = show(&admin, "probe").await;
    assert!(view["queries"].as_u64().unwrap() >= 3, "{view}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_fires_through_on_timer() {
    let server = quick_retry_server().await;
    let admin = admin(&server.base, server.data_dir.path());
    install(&admin, &plugins::probe(false)).await;
    let (alice, room) = room_with_probe(&server, "alice").await;
    alice.send_text(&room, "!timer 300 stand up").await;
    let said = wait_for_words(&alice, &room, "@probe:localhost", |s| s.len() >= 2).await;
    assert_eq!(said, ["ok ()", "timer stand up"]);
    // The timer's message is out before its call ends and is counted.
    plugins::wait_until("the firing counted", async || {
        show(&admin, "probe").await["timers_fired"] == 1
    })
    .await;
}
