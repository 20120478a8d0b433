//! A plugin's life while the server runs: install refusals with their messages, history
//! replay without a gap or a duplicate at the seam, upgrade and disable / enable under a
//! steady send load, SIGKILL during delivery, timers across a restart, the plugins directory
//! at start-up, and the `plugboard plugin` commands.

use std::time::Duration;

use plugboard_tests::plugins::{
    self, admin, install, install_with, room_with_bot, seen_by, show, upgrade, wait_for_seen,
    wait_for_words, wait_until,
};
use plugboard_tests::{
    joined_users, plugboard_command, send_until_gone, Client, ServerProcess, TestServer,
};
use serde_json::json;

const BINARY: &str = env!("CARGO_BIN_EXE_plugboard-test-server");

/// Sends `n` messages as `c` in `room`, one at a time; answers their ids.
async fn send_n(c: &Client, room: &str, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        ids.push(c.send_text(room, &format!("{prefix} {i}")).await);
    }
    ids
}

/// A room that interests the probe: `@watched_…` is in its (non-exclusive) users namespace.
async fn watched_room(server_base: &str) -> (Client, String) {
    let watched = Client::new(server_base)
        .register(&format!("watched_{}", rand_name()), "password")
        .await;
    let room = watched.create_room(json!({"preset": "public_chat"})).await;
    (watched, room)
}

fn rand_name() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_refuses_what_cannot_be_a_plugin_naming_why() {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("bridge.yaml");
    std::fs::write(
        &reg,
        "id: bridge\nurl: null\nas_token: as_b\nhs_token: hs_b\nsender_localpart: bridge\n\
         namespaces:\n  users:\n    - regex: '@probe_.*'\n      exclusive: true\n",
    )
    .unwrap();
    let server = TestServer::start_with(|c| c.appservice_config_files = vec![reg.clone()]).await;
    let admin = admin(&server.base, server.data_dir.path());
    let probe = plugins::probe(false);
    let manifest = probe.manifest_text();
    let refused = |wasm: Vec<u8>, manifest: String| {
        let admin = admin.clone();
        async move {
            let r = install_with(&admin, &wasm, &manifest, None, json!("live")).await;
            r.err(400, "M_INVALID_PARAM");
            r.body["error"].as_str().unwrap().to_string()
        }
    };
    let e = refused(b"not wasm at all".to_vec(), manifest.clone()).await;
    assert!(e.contains("not WebAssembly"), "{e}");
    let e = refused(wat::parse_str("(module)").unwrap(), manifest.clone()).await;
    assert!(
        e.contains("core WebAssembly module, not a component"),
        "{e}"
    );
    let foreign = wat::parse_str(
        r#"(component (import "evil:net/raw-socket@1.0.0" (instance (export "open" (func)))))"#,
    )
    .unwrap();
    let e = refused(foreign, manifest.clone()).await;
    assert!(e.contains("evil:net/raw-socket"), "{e}");
    let e = refused(probe.bytes(), manifest.replace("@probe_.*", "@probe_(")).await;
    assert!(e.contains("namespaces.users[0].regex"), "{e}");
    let e = refused(
        probe.bytes(),
        manifest.replace("memory_mb = 32", "memory_mb = \"lots\""),
    )
    .await;
    assert!(e.contains("capabilities.memory_mb"), "{e}");
    // The exclusive @probe_.* of the HTTP appservice `bridge` collides.
    let e = refused(probe.bytes(), manifest.clone()).await;
    assert!(
        e.contains("bridge") && e.contains("namespaces.users"),
        "{e}"
    );
    let list = admin.get("/_plugboard/admin/v1/plugins").await.ok();
    assert_eq!(list["plugins"], json!([]));
    let plugins_dir = server.data_dir.path().join("plugins");
    let left: Vec<_> = std::fs::read_dir(&plugins_dir)
        .map(|d| d.filter_map(Result::ok).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "nothing was written: {left:?}");
    // Installing twice is refused too.
    let ok_manifest = manifest.replace("exclusive = true", "exclusive = false");
    install_with(&admin, &probe.bytes(), &ok_manifest, None, json!("live"))
        .await
        .ok();
    let again = install_with(&admin, &probe.bytes(), &ok_manifest, None, json!("live")).await;
    again.err(400, "M_INVALID_PARAM");
    assert!(again.body["error"]
        .as_str()
        .unwrap()
        .contains("installed already"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_from_the_beginning_delivers_history_once_then_live_without_a_gap() {
    let server = TestServer::start().await;
    let admin = admin(&server.base, server.data_dir.path());
    let (watched, room) = watched_room(&server.base).await;
    let carol = server.register("carol").await;
    carol.join(&room).await.ok();
    let other = carol.create_room(json!({})).await;
    let mut history = Vec::new();
    for i in 0..600 {
        history.push(carol.send_text(&room, &format!("old {i}")).await);
        if i % 10 == 0 {
            carol.send_text(&other, "not for the probe").await;
        }
    }
    let probe = plugins::probe(false);
    let view = install_with(
        &admin,
        &probe.bytes(),
        &probe.manifest_text(),
        None,
        json!("beginning"),
    )
    .await
    .ok();
    // Live sends right away, while the history is still being replayed.
    let live = send_n(&watched, &room, "live", 50).await;
    let everything = wait_for_seen(&server.base, "probe", &live).await;
    let mine: Vec<String> = everything
        .iter()
        .filter(|id| history.contains(id) || live.contains(id))
        .cloned()
        .collect();
    let expected: Vec<String> = history.iter().chain(&live).cloned().collect();
    assert_eq!(mine, expected, "history then live, each once, in order");
    let mut unique = everything.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), everything.len(), "no event twice");
    let done = show(&admin, "probe").await;
    assert_eq!(done["replay"], json!(null), "{done}");
    assert_eq!(done["state"], "running");
    assert!(
        view["state"] == "replaying" || view["state"] == "running",
        "{view}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_from_an_event_starts_there() {
    let server = TestServer::start().await;
    let admin = admin(&server.base, server.data_dir.path());
    let (watched, room) = watched_room(&server.base).await;
    let sent = send_n(&watched, &room, "m", 20).await;
    let probe = plugins::probe(false);
    install_with(
        &admin,
        &probe.bytes(),
        &probe.manifest_text(),
        None,
        json!({"from": sent[12]}),
    )
    .await
    .ok();
    let seen = wait_for_seen(&server.base, "probe", &sent[12..]).await;
    assert_eq!(seen, sent[12..].to_vec());
    install_with(
        &admin,
        &probe.bytes(),
        &probe
            .manifest_text()
            .replace("id = \"probe\"", "id = \"probe-b\""),
        None,
        json!({"from": "$nosuchevent"}),
    )
    .await
    .err(400, "M_INVALID_PARAM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_disable_and_enable_under_a_steady_send_load_lose_nothing() {
    let server = TestServer::start().await;
    let admin = admin(&server.base, server.data_dir.path());
    let probe = plugins::probe(false);
    install(&admin, &probe).await;
    let (watched, room) = watched_room(&server.base).await;
    let sender = {
        let watched = watched.clone();
        let room = room.clone();
        tokio::spawn(async move { send_n(&watched, &room, "steady", 400).await })
    };
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        upgrade(&admin, "probe", &probe).await.ok();
        tokio::time::sleep(Duration::from_millis(150)).await;
        let off = admin
            .post("/_plugboard/admin/v1/plugins/probe/disable", json!({}))
            .await
            .ok();
        assert_eq!(off["state"], "disabled");
        tokio::time::sleep(Duration::from_millis(150)).await;
        admin
            .post("/_plugboard/admin/v1/plugins/probe/enable", json!({}))
            .await
            .ok();
    }
    let sent = sender.await.unwrap();
    let seen = wait_for_seen(&server.base, "probe", &sent).await;
    let seen: Vec<String> = seen.into_iter().filter(|id| sent.contains(id)).collect();
    assert_eq!(
        seen, sent,
        "every event once, in order, across upgrades and a pause"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_plugin_delivery_loses_nothing_and_keeps_order() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = ServerProcess::spawn(BINARY, &data).await;
    let admin = admin(&server.base, &data);
    install(&admin, &plugins::probe(false)).await;
    let (watched, room) = watched_room(&server.base).await;
    let senders = joined_users(&server, &room, "k", 3).await;
    let tasks: Vec<_> = senders
        .iter()
        .enumerate()
        .map(|(i, c)| send_until_gone(c, &room, &format!("k{i}")))
        .collect();
    wait_until("deliveries under way", async || {
        seen_by(&server.base, "probe").await.1.len() > 100
    })
    .await;
    server.kill();
    let mut acked = Vec::new();
    for t in tasks {
        acked.push(t.await.unwrap());
    }
    let server = ServerProcess::spawn(BINARY, &data).await;
    let mut again = server.client();
    again.token = watched.token.clone();
    let after = send_n(&again, &room, "after", 5).await;
    let all: Vec<String> = acked.iter().flatten().chain(&after).cloned().collect();
    let seen = wait_for_seen(&server.base, "probe", &all).await;
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no event under two txn ids");
    assert_eq!(
        plugins::repeats_of(&server.base, "probe").await,
        Vec::<String>::new(),
        "a transaction came back after its writes were stored"
    );
    for sent in &acked {
        let arrived: Vec<&String> = seen.iter().filter(|id| sent.contains(id)).collect();
        assert_eq!(
            arrived,
            sent.iter().collect::<Vec<_>>(),
            "one sender's order"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_a_plugin_catches_up_on_a_backlog_loses_nothing_and_repeats_nothing() {
    // A backlog goes out in whole transactions, each recorded with the acknowledgement of the
    // one before it and built while that one is handled: the kill lands between those steps.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = ServerProcess::spawn(BINARY, &data).await;
    let admin = admin(&server.base, &data);
    install(&admin, &plugins::probe(false)).await;
    let (watched, _) = watched_room(&server.base).await;
    let room = room_with_bot(&watched, "@probe:localhost").await;
    let off = admin
        .post("/_plugboard/admin/v1/plugins/probe/disable", json!({}))
        .await
        .ok();
    assert_eq!(off["state"], "disabled");
    let mut sent = Vec::new();
    for part in 0..6 {
        sent.extend(send_n(&watched, &room, &format!("backlog {part}"), 200).await);
        // Slows the catch-up down (150 ms in one of every few transactions) so that the
        // kill finds it half done.
        sent.push(watched.send_text(&room, "!sleep 150").await);
    }
    admin
        .post("/_plugboard/admin/v1/plugins/probe/enable", json!({}))
        .await
        .ok();
    wait_until("the catch-up under way", async || {
        seen_by(&server.base, "probe").await.1.len() > 150
    })
    .await;
    let seen_before = seen_by(&server.base, "probe").await.1.len();
    server.kill();
    let server = ServerProcess::spawn(BINARY, &data).await;
    let seen = wait_for_seen(&server.base, "probe", &sent).await;
    assert!(
        seen_before < sent.len(),
        "the kill came after the catch-up: {seen_before} of {}",
        sent.len()
    );
    let in_order: Vec<&String> = seen.iter().filter(|id| sent.contains(id)).collect();
    assert_eq!(
        in_order,
        sent.iter().collect::<Vec<_>>(),
        "every event once, in order"
    );
    assert_eq!(
        plugins::repeats_of(&server.base, "probe").await,
        Vec::<String>::new(),
        "a transaction came back after its writes were stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_delivery_never_hands_a_plugin_its_own_writes_again() {
    let server = TestServer::start().await;
    let admin = admin(&server.base, server.data_dir.path());
    install(&admin, &plugins::probe(false)).await;
    let (watched, room) = watched_room(&server.base).await;
    let mut senders = Vec::new();
    for i in 0..3 {
        let c = server.register(&format!("r{i}")).await;
        c.join(&room).await.ok();
        senders.push(c);
    }
    let tasks: Vec<_> = senders
        .iter()
        .enumerate()
        .map(|(i, c)| send_until_gone(c, &room, &format!("r{i}")))
        .collect();
    wait_until("deliveries under way", async || {
        seen_by(&server.base, "probe").await.1.len() > 100
    })
    .await;
    let data_dir = server.stop().await;
    let mut acked = Vec::new();
    for t in tasks {
        acked.push(t.await.unwrap());
    }
    let config = plugboard_tests::test_config(data_dir.path());
    let server = TestServer::start_in(data_dir, config).await;
    let mut again = server.client();
    again.token = watched.token.clone();
    let after = send_n(&again, &room, "after", 5).await;
    let all: Vec<String> = acked.iter().flatten().chain(&after).cloned().collect();
    wait_for_seen(&server.base, "probe", &all).await;
    assert_eq!(
        plugins::repeats_of(&server.base, "probe").await,
        Vec::<String>::new(),
        "a transaction came back after its writes were stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = ServerProcess::spawn(BINARY, &data).await;
    let admin = admin(&server.base, &data);
    install(&admin, &plugins::probe(false)).await;
    let alice = server.client().register("alice", "password").await;
    let room = room_with_bot(&alice, "@probe:localhost").await;
    alice
        .send_text(&room, "!timer 1500 after the restart")
        .await;
    wait_for_words(&alice, &room, "@probe:localhost", |s| s == ["ok ()"]).await;
    server.kill();
    let server = ServerProcess::spawn(BINARY, &data).await;
    let mut alice_again = server.client();
    alice_again.token = alice.token.clone();
    let said = wait_for_words(&alice_again, &room, "@probe:localhost", |s| s.len() >= 2).await;
    assert_eq!(said, ["ok ()", "timer after the restart"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugins_directory_loads_at_start_up_and_a_broken_plugin_is_listed_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let plugins_dir = dir.path().join("plugins");
    let probe = plugins::probe(false);
    std::fs::create_dir_all(plugins_dir.join("probe")).unwrap();
    std::fs::copy(&probe.wasm, plugins_dir.join("probe").join("plugin.wasm")).unwrap();
    std::fs::copy(
        &probe.manifest,
        plugins_dir.join("probe").join("plugin.toml"),
    )
    .unwrap();
    std::fs::create_dir_all(plugins_dir.join("bad")).unwrap();
    std::fs::write(plugins_dir.join("bad").join("plugin.wasm"), b"junk").unwrap();
    std::fs::write(
        plugins_dir.join("bad").join("plugin.toml"),
        "id = \"bad\"\nversion = \"1\"\nsender_localpart = \"bad\"\n",
    )
    .unwrap();
    let server = TestServer::start_with(|c| c.plugins.dir = plugins_dir.clone()).await;
    let admin = admin(&server.base, server.data_dir.path());
    let list = admin.get("/_plugboard/admin/v1/plugins").await.ok();
    assert_eq!(list["plugins"][0]["id"], "probe", "{list}");
    assert_eq!(list["not_loaded"][0]["id"], "bad", "{list}");
    assert!(list["not_loaded"][0]["error"]
        .as_str()
        .unwrap()
        .contains("not WebAssembly"));
    // A broken one can be removed; the loaded one works.
    admin
        .delete("/_plugboard/admin/v1/plugins/bad", json!({}))
        .await
        .ok();
    assert!(!plugins_dir.join("bad").exists());
    let (watched, room) = watched_room(&server.base).await;
    let sent = send_n(&watched, &room, "x", 3).await;
    wait_for_seen(&server.base, "probe", &sent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugin_commands_install_list_show_disable_and_remove() {
    let server = TestServer::start().await;
    let data = server.data_dir.path().to_path_buf();
    let probe = plugins::probe(false);
    let run = |args: &[&str]| {
        let out = plugboard_command(BINARY)
            .arg("plugin")
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let wasm = probe.wasm.to_str().unwrap();
    let manifest = probe.manifest.to_str().unwrap();
    let (ok, out, err) = run(&["install", wasm, "--manifest", manifest, "--from-beginning"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("installed probe"), "{out}");
    assert!(out.contains("state:") && out.contains("running"), "{out}");
    assert!(err.contains("replay done"), "{err}");
    let (ok, out, _) = run(&["list"]);
    assert!(
        ok && out.starts_with("ID ") && out.contains("probe"),
        "{out}"
    );
    let (ok, out, _) = run(&["disable", "probe"]);
    assert!(ok && out.contains("disabled"), "{out}");
    let (ok, out, _) = run(&["show", "probe"]);
    assert!(
        ok && out.contains("disabled") && out.contains("500 ms"),
        "{out}"
    );
    assert!(out.contains("sender:        @probe:localhost"), "{out}");
    let (ok, _, err) = run(&["install", "/nonexistent.wasm"]);
    assert!(!ok && err.contains("/nonexistent.wasm"), "{err}");
    let (ok, _, err) = run(&["skip", "probe", "99"]);
    assert!(!ok && err.contains("not the one"), "{err}");
    let (ok, out, _) = run(&["remove", "probe"]);
    assert!(ok && out.contains("removed probe"), "{out}");
    let (ok, out, _) = run(&["list"]);
    assert!(ok && out.contains("no plugins are installed"), "{out}");
}
