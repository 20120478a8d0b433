//! No account takeover through a registration: an application service or plugin whose sender
//! is, or whose exclusive users namespace covers, an account it did not create is refused
//! with `M_EXCLUSIVE` naming the accounts, on every path that registers one (the admin API,
//! the talk's register endpoint, the CLI, registration files at start-up, plugin install,
//! upgrade and the bundled plugins), unless the admin allows it explicitly.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use plugboard_tests::plugins::{self, Built};
use plugboard_tests::{enc, plugboard_command, Client, Reply, ServerProcess, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

const BINARY: &str = env!("CARGO_BIN_EXE_plugboard-test-server");
const API: &str = "/_plugboard/admin/v1/appservices";

/// A registration without a URL: `sender` as its sender, `users` its one users namespace.
fn registration(id: &str, sender: &str, users: &str, exclusive: bool) -> String {
    format!(
        "id: {id}\nurl: null\nas_token: as_{id}\nhs_token: hs_{id}\nsender_localpart: {sender}\n\
         namespaces:\n  users:\n    - regex: '{users}'\n      exclusive: {exclusive}\n"
    )
}

fn admin_of(base: &str, data_dir: &Path) -> Client {
    plugins::admin(base, data_dir)
}

fn admin(server: &TestServer) -> Client {
    admin_of(&server.base, server.data_dir.path())
}

async fn add(admin: &Client, yaml: &str, query: &str) -> Reply {
    admin
        .raw(
            Method::POST,
            &format!("{API}{query}"),
            "application/yaml",
            yaml.as_bytes().to_vec(),
        )
        .await
}

async fn update(admin: &Client, id: &str, yaml: &str, query: &str) -> Reply {
    admin
        .raw(
            Method::PUT,
            &format!("{API}/{id}{query}"),
            "application/yaml",
            yaml.as_bytes().to_vec(),
        )
        .await
}

/// The service's own client: its as_token.
fn service(server: &TestServer, as_token: &str) -> Client {
    let mut c = server.client();
    c.token = Some(as_token.to_string());
    c
}

/// Asserts an `M_EXCLUSIVE` refusal naming `users` (the first few) of `count`; answers the
/// message.
fn refused(reply: &Reply, users: &[&str], count: u64) -> String {
    reply.err(400, "M_EXCLUSIVE");
    assert_eq!(reply.body["users"], json!(users), "{}", reply.body);
    assert_eq!(reply.body["count"], json!(count), "{}", reply.body);
    let message = reply.body["error"].as_str().unwrap().to_string();
    for user in users {
        assert!(message.contains(user), "{message}");
    }
    message
}

#[tokio::test]
async fn a_registration_whose_sender_is_a_users_account_is_refused_naming_it() {
    let server = TestServer::start().await;
    let admin = admin(&server);
    let alice = server.register("alice").await;
    let private = alice.create_room(json!({"preset": "private_chat"})).await;
    let secret = alice.send_text(&private, "for my eyes only").await;

    let yaml = registration("thief", "alice", "@thief_.*", false);
    let message = refused(&add(&admin, &yaml, "").await, &["@alice:localhost"], 1);
    assert!(
        message.contains("`thief` would act as an existing account it did not create: @alice"),
        "{message}"
    );
    assert!(message.contains("--allow-takeover"), "{message}");
    assert!(message.contains("allow_takeover=true"), "{message}");
    // Nothing was stored, and its token is nobody's.
    admin
        .get(&format!("{API}/thief"))
        .await
        .err(404, "M_NOT_FOUND");
    service(&server, "as_thief")
        .get("/account/whoami")
        .await
        .err(401, "M_UNKNOWN_TOKEN");
    // The talk's register endpoint takes its sender from the id it makes up, but not its
    // namespaces.
    let talk = admin
        .post(
            "/_matrix/appservice/v1/register",
            json!({"as_token": "as_talk", "url": null,
                   "namespaces": {"users": [{"regex": "@ali.*", "exclusive": true}]}}),
        )
        .await;
    refused(&talk, &["@alice:localhost"], 1);

    // The admin who means it says so: the token then acts as alice, as asked.
    add(&admin, &yaml, "?allow_takeover=true").await.ok();
    let thief = service(&server, "as_thief");
    assert_eq!(
        thief.get("/account/whoami").await.ok()["user_id"],
        "@alice:localhost"
    );
    let event = thief
        .get(&format!("/rooms/{}/event/{}", enc(&private), enc(&secret)))
        .await
        .ok();
    assert_eq!(event["content"]["body"], "for my eyes only");
}

#[tokio::test]
async fn an_exclusive_namespace_over_users_is_refused_with_a_few_named_and_a_count() {
    let server = TestServer::start().await;
    let admin = admin(&server);
    for i in 0..7 {
        server.register(&format!("irc_{i}")).await;
    }
    server.register("ircfan").await;
    let reply = add(&admin, &registration("irc", "ircbot", "@irc_.*", true), "").await;
    let named = [
        "@irc_0:localhost",
        "@irc_1:localhost",
        "@irc_2:localhost",
        "@irc_3:localhost",
        "@irc_4:localhost",
    ];
    let message = refused(&reply, &named, 7);
    assert!(message.contains("and 2 more"), "{message}");
    assert!(!message.contains("ircfan"), "{message}");

    // Not exclusively, a namespace only shares them (as a double-puppeting bridge does).
    add(&admin, &registration("irc", "ircbot", "@irc_.*", false), "")
        .await
        .ok();
    // Made exclusive by an update: refused as well, and the service stays as it was.
    let reply = update(
        &admin,
        "irc",
        &registration("irc", "ircbot", "@irc_.*", true),
        "",
    )
    .await;
    refused(&reply, &named, 7);
    let shown = admin.get(&format!("{API}/irc")).await.ok();
    assert_eq!(shown["namespaces"]["users"][0]["exclusive"], false);
    update(
        &admin,
        "irc",
        &registration("irc", "ircbot", "@irc_.*", true),
        "?allow_takeover=true",
    )
    .await
    .ok();
}

#[tokio::test]
async fn accounts_the_service_made_itself_are_not_a_takeover_but_another_services_are() {
    let server = TestServer::start().await;
    let admin = admin(&server);
    add(
        &admin,
        &registration("bridge", "bridgebot", "@bridge_.*", true),
        "",
    )
    .await
    .ok();
    let bridge = service(&server, "as_bridge");
    bridge
        .post(
            "/register",
            json!({"type": "m.login.application_service", "username": "bridge_carol"}),
        )
        .await
        .ok();
    // Its sender's account is made for it when it first acts.
    assert_eq!(
        bridge.get("/account/whoami").await.ok()["user_id"],
        "@bridgebot:localhost"
    );
    // Its own accounts: an update that keeps them is accepted.
    let moved = registration("bridge", "bridgebot", "@bridge_.*", true)
        .replace("url: null", "url: http://127.0.0.1:9");
    update(&admin, "bridge", &moved, "").await.ok();

    // Another service taking them over is refused, naming who made them.
    admin.delete(&format!("{API}/bridge"), json!({})).await.ok();
    let reply = add(
        &admin,
        &registration("bridge2", "bridgebot", "@bridge_.*", true),
        "",
    )
    .await;
    let message = refused(
        &reply,
        &["@bridgebot:localhost", "@bridge_carol:localhost"],
        2,
    );
    assert!(
        message.contains("@bridge_carol:localhost (made by `bridge`)"),
        "{message}"
    );
}

/// `plugboard appservice …` with `data_dir`; answers (success, stdout, stderr).
fn cli(data_dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = plugboard_command(BINARY)
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_cli_refuses_a_takeover_unless_told_to_allow_it() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::spawn(BINARY, data.path()).await;
    server.client().register("alice", "pw").await;
    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("thief.yaml");
    std::fs::write(&file, registration("thief", "alice", "@thief_.*", false)).unwrap();
    let file = file.to_str().unwrap();

    let (ok, _, err) = cli(data.path(), &["appservice", "add", file]);
    assert!(!ok);
    assert!(err.contains("thief.yaml was not added"), "{err}");
    assert!(err.contains("@alice:localhost"), "{err}");
    assert!(err.contains("M_EXCLUSIVE, HTTP 400"), "{err}");
    assert!(err.contains("--allow-takeover"), "{err}");

    let (ok, out, err) = cli(
        data.path(),
        &["appservice", "add", file, "--allow-takeover"],
    );
    assert!(ok, "{err}");
    assert!(out.starts_with("added thief\n"), "{out}");
}

/// Starts the server process with `env`; it must refuse to start. Answers what it printed.
fn refused_start(data_dir: &Path, env: &[(&str, &str)]) -> String {
    let mut env = env.to_vec();
    env.push(("PLUGBOARD_PLUGINS__BUNDLED", "false"));
    plugboard_tests::refused_start(BINARY, data_dir, &env)
}

#[tokio::test]
async fn a_registration_file_that_would_take_over_stops_start_up_until_the_config_allows_it() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::spawn(BINARY, data.path()).await;
    server.client().register("alice", "pw").await;
    server.kill();
    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("thief.yaml");
    std::fs::write(&file, registration("thief", "alice", "@thief_.*", false)).unwrap();
    let list = file.display().to_string();
    let files_env = ("PLUGBOARD_APPSERVICE_CONFIG_FILES", list.as_str());

    let err = refused_start(data.path(), &[files_env]);
    assert!(
        err.contains(&format!("{list}: `thief` would act as")),
        "{err}"
    );
    assert!(err.contains("@alice:localhost"), "{err}");
    assert!(
        err.contains("add `thief` to `appservice_allow_takeover` in the configuration"),
        "{err}"
    );
    assert!(
        err.contains("PLUGBOARD_APPSERVICE_ALLOW_TAKEOVER=thief"),
        "{err}"
    );

    let server = ServerProcess::spawn_with_env(
        BINARY,
        data.path(),
        &[files_env, ("PLUGBOARD_APPSERVICE_ALLOW_TAKEOVER", "thief")],
    )
    .await;
    let mut thief = server.client();
    thief.token = Some("as_thief".into());
    assert_eq!(
        thief.get("/account/whoami").await.ok()["user_id"],
        "@alice:localhost"
    );
}

/// `POST /_plugboard/admin/v1/plugins{query}` installing `built` with `manifest`.
async fn install(admin: &Client, built: &Built, manifest: &str, query: &str) -> Reply {
    let body = json!({
        "component": base64::engine::general_purpose::STANDARD.encode(built.bytes()),
        "manifest": manifest,
        "start": "live",
    });
    let resp = admin
        .http
        .post(admin.url(&format!("/_plugboard/admin/v1/plugins{query}")))
        .bearer_auth(admin.token.as_deref().unwrap())
        .timeout(Duration::from_secs(300))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap_or(Value::Null);
    Reply { status, body }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_whose_manifest_would_take_over_is_not_installed_unless_allowed() {
    let server = TestServer::start().await;
    let admin = admin(&server);
    server.register("probe_dave").await;
    let probe = plugins::probe(false);
    let manifest = probe.manifest_text();

    // Its exclusive `@probe_.*` covers dave.
    let reply = install(&admin, &probe, &manifest, "").await;
    refused(&reply, &["@probe_dave:localhost"], 1);
    admin
        .get("/_plugboard/admin/v1/plugins/probe")
        .await
        .err(404, "M_NOT_FOUND");

    // Installed once allowed; an upgrade whose new sender is someone's account is refused.
    install(&admin, &probe, &manifest, "?allow_takeover=true")
        .await
        .ok();
    server.register("erin").await;
    let upgraded = manifest.replace(
        "sender_localpart = \"probe\"",
        "sender_localpart = \"erin\"",
    );
    assert_ne!(upgraded, manifest);
    let reply = plugins::upgrade_with(&admin, "probe", &probe.bytes(), Some(&upgraded), "").await;
    refused(&reply, &["@erin:localhost", "@probe_dave:localhost"], 2);
    let shown = admin.get("/_plugboard/admin/v1/plugins/probe").await.ok();
    assert_eq!(shown["sender"], "@probe:localhost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundled_plugin_whose_bot_is_someones_account_is_not_installed() {
    let data = tempfile::tempdir().unwrap();
    // The echo bot's user is someone's before the bundled plugins are installed.
    let server = ServerProcess::spawn(BINARY, data.path()).await;
    let echo = server.client().register("echo", "pw").await;
    server.kill();
    let server = ServerProcess::spawn_with_env(
        BINARY,
        data.path(),
        &[("PLUGBOARD_PLUGINS__BUNDLED", "true")],
    )
    .await;
    let admin = admin_of(&server.base, data.path());
    let list = admin.get("/_plugboard/admin/v1/plugins").await.ok();
    let ids: Vec<&str> = list["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert!(!ids.contains(&"echo-bot"), "{ids:?}");
    assert!(
        ids.contains(&"commandbot"),
        "the others are installed: {ids:?}"
    );
    // And echo is still echo's.
    let whoami = Client {
        token: echo.token.clone(),
        ..server.client()
    };
    assert_eq!(
        whoami.get("/account/whoami").await.ok()["user_id"],
        "@echo:localhost"
    );
}
