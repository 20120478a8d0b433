//! Application services registered, updated and removed while the server runs: the admin API
//! (`/_plugboard/admin/v1/appservices`), the talk's `POST /_matrix/appservice/v1/register`,
//! `plugboard appservice add | list | show | remove`, the figures the admin sees and
//! `/metrics`, runtime registrations across a restart, and registrations refused (through the
//! API, and as files at start-up).

use std::path::{Path, PathBuf};
use std::time::Duration;

use plugboard::config::Config;
use plugboard_tests::appservice::Recorder;
use plugboard_tests::{
    enc, plugboard_command, test_config, Client, Reply, ServerProcess, TestServer, WAIT,
};
use reqwest::Method;
use serde_json::{json, Value};

const BINARY: &str = env!("CARGO_BIN_EXE_plugboard-test-server");
const HS_TOKEN: &str = "hs_admin_tests";
const API: &str = "/_plugboard/admin/v1/appservices";

/// A fresh test appservice expecting the tests' hs_token.
fn recorder() -> Recorder {
    Recorder::new(HS_TOKEN)
}

/// One that answers 503 until it is set up.
fn recorder_down() -> Recorder {
    let r = recorder();
    r.set_down(true);
    r
}

/// A registration whose users namespace is `users` (non-exclusive unless `exclusive`).
fn registration(id: &str, url: &str, users: &str, exclusive: bool) -> String {
    format!(
        "id: {id}\nurl: {url}\nas_token: as_{id}\nhs_token: {HS_TOKEN}_{id}\n\
         sender_localpart: {id}_bot\nnamespaces:\n  users:\n    - regex: '{users}'\n      \
         exclusive: {exclusive}\n"
    )
}

/// The configuration of these tests: quick retries.
fn config(data_dir: &Path) -> Config {
    let mut c = test_config(data_dir);
    c.appservice_delivery.retry_base_ms = 20;
    c.appservice_delivery.retry_max_ms = 200;
    c
}

async fn server() -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path());
    TestServer::start_in(dir, c).await
}

/// A client that holds the admin token of the server with `data_dir`.
fn admin_of(base: &str, data_dir: &Path) -> Client {
    let mut c = Client::new(base);
    let token = std::fs::read_to_string(data_dir.join("admin.token")).unwrap();
    c.token = Some(token.trim().to_string());
    c
}

fn admin(server: &TestServer) -> Client {
    admin_of(&server.base, server.data_dir.path())
}

/// Posts a registration as YAML text.
async fn add(admin: &Client, yaml: &str) -> Reply {
    admin
        .raw(
            Method::POST,
            API,
            "application/yaml",
            yaml.as_bytes().to_vec(),
        )
        .await
}

async fn update(admin: &Client, id: &str, yaml: &str) -> Reply {
    admin
        .raw(
            Method::PUT,
            &format!("{API}/{id}"),
            "application/yaml",
            yaml.as_bytes().to_vec(),
        )
        .await
}

async fn show(admin: &Client, id: &str) -> Value {
    admin.get(&format!("{API}/{id}")).await.ok()
}

/// Waits until service `id`'s view satisfies `done`; answers that view.
async fn wait_for_view(
    admin: &Client,
    id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let view = show(admin, id).await;
        if done(&view) {
            return view;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {view}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn send_numbered(user: &Client, room: &str, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = user
            .put(
                &format!("/rooms/{}/send/m.room.message/{prefix}{i}", enc(room)),
                json!({"msgtype": "m.text", "body": format!("{prefix} {i}")}),
            )
            .await
            .ok()["event_id"]
            .as_str()
            .unwrap()
            .to_string();
        ids.push(id);
    }
    ids
}

/// `GET /metrics` with the client's token, if any; the body is `Null` unless it is an error.
async fn metrics(client: &Client) -> Reply {
    let mut req = client.http.get(format!("{}/metrics", client.base));
    if let Some(token) = &client.token {
        req = req.bearer_auth(token);
    }
    let resp = req.timeout(WAIT).send().await.unwrap();
    let status = resp.status();
    let body = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap_or(Value::Null);
    Reply { status, body }
}

#[tokio::test]
async fn a_service_added_through_the_admin_api_receives_events_and_shows_its_figures() {
    let recorder = recorder();
    let url = recorder.start().await;
    let server = server().await;
    let admin = admin(&server);
    // Registered before the namespace became exclusive: the admin means the bridge to act
    // as bob, and says so.
    let bob = server.register("bridge_bob").await;
    let added = admin
        .raw(
            Method::POST,
            &format!("{API}?allow_takeover=true"),
            "application/yaml",
            registration("bridge", &url, "@bridge_.*", true).into_bytes(),
        )
        .await
        .ok();
    assert_eq!(added["id"], "bridge");
    assert_eq!(added["origin"], "runtime");
    assert_eq!(added["url"], url.as_str());
    assert_eq!(added["sender"], "@bridge_bot:localhost");
    assert_eq!(
        added["namespaces"]["users"],
        json!([{"regex": "@bridge_.*", "exclusive": true}])
    );

    recorder.set_hs_token(&format!("{HS_TOKEN}_bridge"));
    let room = bob.create_room(json!({})).await;
    let msg = bob.send_text(&room, "to the bridge").await;
    recorder.wait_for("the message", |r| r.has(&msg)).await;

    let view = wait_for_view(&admin, "bridge", "the acknowledgement", |v| {
        v["events_behind"] == 0 && v["transactions_sent"].as_u64() >= Some(1)
    })
    .await;
    assert_eq!(view["up"], true, "{view}");
    assert!(view["last_success_ms"].as_i64().is_some(), "{view}");
    assert!(view["events_sent"].as_u64() >= Some(1), "{view}");
    assert!(view["delivery_ms"]["p50"].as_f64().is_some(), "{view}");
    assert!(view["delivery_ms"]["p99"].as_f64().is_some(), "{view}");
    assert_eq!(view["last_error"], Value::Null, "{view}");
    assert_eq!(view["in_flight"], Value::Null, "{view}");

    let list = admin.get(API).await.ok();
    let ids: Vec<&str> = list["appservices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["bridge"]);

    // The exclusive namespace is enforced at once: nobody else may register in it.
    let taken = server
        .client()
        .post(
            "/register",
            json!({"username": "bridge_eve", "password": "pw", "auth": {"type": "m.login.dummy"}}),
        )
        .await;
    taken.err(400, "M_EXCLUSIVE");
}

#[tokio::test]
async fn a_registration_can_be_sent_as_json_with_a_yaml_field() {
    let server = server().await;
    let admin = admin(&server);
    let yaml = registration("jsonned", "http://127.0.0.1:9", "@jsonned_.*", false);
    let added = admin.post(API, json!({ "yaml": yaml })).await.ok();
    assert_eq!(added["id"], "jsonned");
    admin
        .post(API, json!({ "yaml": 5 }))
        .await
        .err(400, "M_BAD_JSON");
}

#[tokio::test]
async fn an_update_moves_the_queue_with_its_transaction_to_the_new_url() {
    let old = recorder_down();
    let old_url = old.start().await;
    let new = recorder();
    let new_url = new.start().await;
    for r in [&old, &new] {
        r.set_hs_token(&format!("{HS_TOKEN}_bridge"));
    }
    let server = server().await;
    let admin = admin(&server);
    add(
        &admin,
        &registration("bridge", &old_url, "@bridge_.*", false),
    )
    .await
    .ok();
    let bob = server.register("bridge_bob").await;
    let room = bob.create_room(json!({})).await;
    let first = bob.send_text(&room, "while the old url is down").await;
    old.wait_for("a failed push", |r| !r.seen().is_empty())
        .await;
    let down = wait_for_view(&admin, "bridge", "the service marked down", |v| {
        v["up"] == false && v["in_flight"].is_object()
    })
    .await;
    let txn_id = down["in_flight"]["txn_id"].as_str().unwrap().to_string();
    assert!(down["last_error"]["error"].is_string(), "{down}");
    assert!(down["retries"].as_u64() >= Some(1), "{down}");

    let updated = update(
        &admin,
        "bridge",
        &registration("bridge", &new_url, "@bridge_.*", false),
    )
    .await
    .ok();
    assert_eq!(updated["url"], new_url.as_str());
    new.wait_for("the first message at the new url", |r| r.has(&first))
        .await;
    let second = bob.send_text(&room, "after the update").await;
    new.wait_for("the second message", |r| r.has(&second)).await;

    let accepted = new.accepted();
    assert_eq!(
        accepted[0].0, txn_id,
        "the transaction in flight keeps its txnId at the new url"
    );
    assert!(old.accepted().is_empty());
    let view = wait_for_view(&admin, "bridge", "the service up", |v| v["up"] == true).await;
    assert!(
        view["retries"].as_u64() >= Some(1),
        "the counters survive the update: {view}"
    );

    // An update cannot rename, nor touch a service that does not exist.
    let renamed = update(
        &admin,
        "bridge",
        &registration("other", &new_url, "@bridge_.*", false),
    )
    .await;
    renamed.err(400, "M_INVALID_PARAM");
    assert!(
        renamed.body["error"]
            .as_str()
            .unwrap()
            .contains("field `id`"),
        "{}",
        renamed.body
    );
    update(
        &admin,
        "ghost",
        &registration("ghost", &new_url, "@g_.*", false),
    )
    .await
    .err(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn a_removed_service_is_sent_nothing_more() {
    let gone = recorder();
    let gone_url = gone.start().await;
    let stays = recorder();
    let stays_url = stays.start().await;
    gone.set_hs_token(&format!("{HS_TOKEN}_gone"));
    stays.set_hs_token(&format!("{HS_TOKEN}_stays"));
    let server = server().await;
    let admin = admin(&server);
    add(
        &admin,
        &registration("gone", &gone_url, "@bridge_.*", false),
    )
    .await
    .ok();
    add(
        &admin,
        &registration("stays", &stays_url, "@bridge_.*", false),
    )
    .await
    .ok();
    let bob = server.register("bridge_bob").await;
    let room = bob.create_room(json!({})).await;
    let before = bob.send_text(&room, "before").await;
    gone.wait_for("the first message", |r| r.has(&before)).await;

    assert_eq!(
        admin.delete(&format!("{API}/gone"), json!({})).await.ok(),
        json!({})
    );
    admin
        .get(&format!("{API}/gone"))
        .await
        .err(404, "M_NOT_FOUND");
    admin
        .delete(&format!("{API}/gone"), json!({}))
        .await
        .err(404, "M_NOT_FOUND");
    let seen_before = gone.seen().len();
    let after = bob.send_text(&room, "after").await;
    // The other service, as interested, has it: a live worker for `gone` would have pushed too.
    stays
        .wait_for("the second message", |r| r.has(&after))
        .await;
    assert_eq!(gone.seen().len(), seen_before);
    assert!(!gone.has(&after));

    // Removed for good: not back after a restart, and the id may be used again.
    let dir = server.stop().await;
    let c = config(dir.path());
    let server = TestServer::start_in(dir, c).await;
    let admin = self::admin(&server);
    let list = admin.get(API).await.ok();
    assert_eq!(list["appservices"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["appservices"][0]["id"], "stays");
    add(
        &admin,
        &registration("gone", &gone_url, "@bridge_.*", false),
    )
    .await
    .ok();
}

#[tokio::test]
async fn a_runtime_service_and_its_queue_survive_a_restart() {
    let recorder = recorder_down();
    let url = recorder.start().await;
    recorder.set_hs_token(&format!("{HS_TOKEN}_bridge"));
    let server = server().await;
    let admin = self::admin(&server);
    add(&admin, &registration("bridge", &url, "@bridge_.*", false))
        .await
        .ok();
    let bob = server.register("bridge_bob").await;
    let room = bob.create_room(json!({})).await;
    let sent = send_numbered(&bob, &room, "queued", 30).await;
    wait_for_view(&admin, "bridge", "a backlog", |v| {
        v["events_behind"].as_i64() >= Some(30) && v["in_flight"].is_object()
    })
    .await;
    let first_txn = recorder.seen()[0].0.clone();

    let dir = server.stop().await;
    let c = config(dir.path());
    let server = TestServer::start_in(dir, c).await;
    let admin = self::admin(&server);
    let view = show(&admin, "bridge").await;
    assert_eq!(view["origin"], "runtime", "{view}");
    assert_eq!(view["url"], url.as_str(), "{view}");
    assert!(view["events_behind"].as_i64() >= Some(30), "{view}");

    recorder.set_down(false);
    recorder
        .wait_for("the backlog", |r| r.has(sent.last().unwrap()))
        .await;
    let accepted = recorder.accepted();
    assert_eq!(accepted[0].0, first_txn, "the same txnId after the restart");
    let messages: Vec<String> = accepted
        .iter()
        .flat_map(|(_, b)| b["events"].as_array().cloned().unwrap())
        .filter(|e| e["type"] == "m.room.message")
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(messages, sent, "every event once, in order");
    wait_for_view(&admin, "bridge", "an empty queue", |v| {
        v["events_behind"] == 0
    })
    .await;
}

#[tokio::test]
async fn invalid_registrations_are_refused_through_the_admin_api_with_their_message() {
    let server = server().await;
    let admin = admin(&server);
    add(
        &admin,
        &registration("first", "http://127.0.0.1:9", "@first_.*", true),
    )
    .await
    .ok();
    let refused = |yaml: String, expected: &'static str| {
        let admin = admin.clone();
        async move {
            let reply = add(&admin, &yaml).await;
            reply.err(400, "M_INVALID_PARAM");
            let message = reply.body["error"].as_str().unwrap().to_string();
            assert!(
                message.contains(expected),
                "{message} should say {expected}"
            );
            message
        }
    };
    let bad_regex = refused(
        registration("second", "http://127.0.0.1:9", "@second_(.*", false),
        "registration: field `namespaces.users[0].regex`: invalid regex",
    )
    .await;
    assert!(!bad_regex.contains("first"), "{bad_regex}");
    refused(
        registration("first", "http://127.0.0.1:9", "@other_.*", false)
            .replace("as_first", "as_another")
            .replace("hs_admin_tests_first", "hs_another")
            .replace("first_bot", "another_bot"),
        "registration: field `id`: `first` is already the id of appservice `first` (runtime \
         registration `first`)",
    )
    .await;
    refused(
        registration("second", "http://127.0.0.1:9", "@second_.*", false)
            .replace("as_second", "as_first"),
        "registration: field `as_token`: the same as_token is already used by appservice `first`",
    )
    .await;
    refused(
        registration("second", "http://127.0.0.1:9", "@second_.*", false)
            .lines()
            .filter(|l| !l.starts_with("hs_token"))
            .collect::<Vec<_>>()
            .join("\n"),
        "registration: missing field `hs_token`",
    )
    .await;
    refused(
        registration("second", "http://127.0.0.1:9", "@first_x.*", true),
        "registration: field `namespaces.users[0].regex`: exclusive namespace `@first_x.*` \
         overlaps exclusive namespace `@first_.*` of appservice `first`",
    )
    .await;
    refused(
        "id: [unclosed\n".into(),
        "registration: not a valid YAML registration",
    )
    .await;
    refused(
        registration("second", "ftp://x", "@second_.*", false),
        "field `url`: must be an http:// or https:// URL",
    )
    .await;

    // Nothing refused was stored or half-applied.
    let list = admin.get(API).await.ok();
    assert_eq!(list["appservices"].as_array().unwrap().len(), 1, "{list}");
}

#[tokio::test]
async fn the_admin_api_answers_only_an_admin() {
    let server = server().await;
    add(
        &admin(&server),
        &registration("bridge", "http://127.0.0.1:9", "@bridge_.*", false),
    )
    .await
    .ok();
    let nobody = server.client();
    nobody.get(API).await.err(401, "M_MISSING_TOKEN");
    let mut stranger = server.client();
    stranger.token = Some("not-a-token".into());
    stranger.get(API).await.err(401, "M_UNKNOWN_TOKEN");
    let user = server.register("alice").await;
    user.get(API).await.err(403, "M_FORBIDDEN");
    add(
        &user,
        &registration("evil", "http://127.0.0.1:9", ".*", false),
    )
    .await
    .err(403, "M_FORBIDDEN");
    metrics(&user).await.err(403, "M_FORBIDDEN");
    let mut service = server.client();
    service.token = Some("as_bridge".into());
    service.get(API).await.err(403, "M_FORBIDDEN");

    // A server admin's own access token will do.
    let out = plugboard_command(BINARY)
        .args([
            "user",
            "add",
            "root",
            "--password",
            "pw",
            "--admin",
            "--data-dir",
        ])
        .arg(server.data_dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let login = server
        .client()
        .post(
            "/login",
            json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "root"}, "password": "pw"}),
        )
        .await
        .ok();
    let mut root = server.client();
    root.token = Some(login["access_token"].as_str().unwrap().to_string());
    let list = root.get(API).await.ok();
    assert_eq!(list["appservices"][0]["id"], "bridge");
}

#[tokio::test]
async fn services_from_files_are_not_changed_at_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("filed.yaml");
    std::fs::write(
        &file,
        registration("filed", "http://127.0.0.1:9", "@filed_.*", true),
    )
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut c = config(data.path());
    c.appservice_config_files = vec![file.clone()];
    let server = TestServer::start_in(data, c).await;
    let admin = admin(&server);
    let view = show(&admin, "filed").await;
    assert_eq!(view["origin"], "file");
    assert_eq!(view["file"], file.display().to_string());

    let removed = admin.delete(&format!("{API}/filed"), json!({})).await;
    removed.err(403, "M_FORBIDDEN");
    let message = removed.body["error"].as_str().unwrap();
    assert!(message.contains(&file.display().to_string()), "{message}");
    assert!(message.contains("appservice_config_files"), "{message}");
    update(
        &admin,
        "filed",
        &registration("filed", "http://127.0.0.1:8", "@filed_.*", true),
    )
    .await
    .err(403, "M_FORBIDDEN");
    assert_eq!(show(&admin, "filed").await["url"], "http://127.0.0.1:9");
}

#[tokio::test]
async fn the_talks_register_endpoint_serves_only_an_admin() {
    let recorder = recorder();
    let url = recorder.start().await;
    let server = server().await;
    let talker = server.register("talk_alice").await;
    let body = json!({
        "as_token": "talk_as_token",
        "url": url,
        "namespaces": {"users": [{"regex": "@talk_.*", "exclusive": true}], "aliases": [], "rooms": []},
    });
    const REGISTER: &str = "/_matrix/appservice/v1/register";
    server
        .client()
        .post(REGISTER, body.clone())
        .await
        .err(401, "M_MISSING_TOKEN");
    let user = server.register("alice").await;
    user.post(REGISTER, body.clone())
        .await
        .err(403, "M_FORBIDDEN");

    let admin = admin(&server);
    // talk_alice was there before the namespace: refused, unless the admin means it.
    admin
        .post(REGISTER, body.clone())
        .await
        .err(400, "M_EXCLUSIVE");
    let answer = admin
        .post(&format!("{REGISTER}?allow_takeover=true"), body.clone())
        .await
        .ok();
    let hs_token = answer["hs_token"].as_str().unwrap().to_string();
    let id = answer["id"].as_str().unwrap().to_string();
    assert!(hs_token.len() >= 32, "{answer}");
    let view = show(&admin, &id).await;
    assert_eq!(view["origin"], "runtime");
    assert_eq!(view["namespaces"]["users"][0]["regex"], "@talk_.*");

    recorder.set_hs_token(&hs_token);
    let room = talker.create_room(json!({})).await;
    let msg = talker.send_text(&room, "pushed with the hs_token").await;
    recorder.wait_for("the message", |r| r.has(&msg)).await;

    // The same as_token again is refused, as in a file.
    let again = admin.post(REGISTER, body).await;
    again.err(400, "M_INVALID_PARAM");
    assert!(
        again.body["error"]
            .as_str()
            .unwrap()
            .contains("field `as_token`"),
        "{}",
        again.body
    );
    admin
        .post(REGISTER, json!({"url": null}))
        .await
        .err(400, "M_INVALID_PARAM");
}

#[tokio::test]
async fn metrics_carry_each_delivered_service() {
    let recorder = recorder();
    let url = recorder.start().await;
    recorder.set_hs_token(&format!("{HS_TOKEN}_bridge"));
    let server = server().await;
    let admin = admin(&server);
    add(&admin, &registration("bridge", &url, "@bridge_.*", false))
        .await
        .ok();
    let bob = server.register("bridge_bob").await;
    let room = bob.create_room(json!({})).await;
    let msg = bob.send_text(&room, "counted").await;
    recorder.wait_for("the message", |r| r.has(&msg)).await;
    // The recorder has the message as soon as it is pushed; the acknowledgement that moves
    // the service's position is written after.
    wait_for_view(&admin, "bridge", "the acknowledgement", |v| {
        v["events_behind"] == 0 && v["transactions_sent"].as_u64() >= Some(1)
    })
    .await;

    metrics(&server.client()).await.err(401, "M_MISSING_TOKEN");
    let resp = admin
        .http
        .get(format!("{}/metrics", server.base))
        .bearer_auth(admin.token.as_ref().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = resp.text().await.unwrap();
    let value = |prefix: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in:\n{text}"))
            .trim()
            .parse()
            .unwrap()
    };
    let label = "{appservice=\"bridge\"}";
    assert_eq!(value(&format!("plugboard_appservice_up{label}")), 1.0);
    assert_eq!(
        value(&format!("plugboard_appservice_events_behind{label}")),
        0.0
    );
    assert!(
        value(&format!(
            "plugboard_appservice_transactions_sent_total{label}"
        )) >= 1.0
    );
    assert!(value(&format!("plugboard_appservice_events_sent_total{label}")) >= 1.0);
    assert_eq!(
        value(&format!("plugboard_appservice_retries_total{label}")),
        0.0
    );
    for q in ["0.5", "0.99"] {
        let seconds = value(&format!(
            "plugboard_appservice_delivery_seconds{{appservice=\"bridge\",quantile=\"{q}\"}}"
        ));
        assert!(seconds > 0.0 && seconds < 10.0, "{seconds}");
    }
    let last = value(&format!(
        "plugboard_appservice_last_success_timestamp_seconds{label}"
    ));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - last).abs() < 60.0, "{last} vs {now}");
    assert!(text.contains("# TYPE plugboard_appservice_delivery_seconds summary"));
}

/// Runs `appservice …` of the CLI with `data_dir`; answers (success, stdout, stderr).
fn cli(data_dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = plugboard_command(BINARY)
        .arg("appservice")
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
async fn the_cli_adds_lists_shows_and_removes_services_of_a_running_server() {
    let recorder = recorder();
    let url = recorder.start().await;
    recorder.set_hs_token(&format!("{HS_TOKEN}_bridge"));
    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("bridge.yaml");
    std::fs::write(&file, registration("bridge", &url, "@bridge_.*", true)).unwrap();
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::spawn(BINARY, data.path()).await;
    let file_arg = file.to_str().unwrap();
    let bob = server.client().register("bridge_bob", "pw").await;

    // bob registered before the bridge holds `@bridge_…` exclusively: the admin means it.
    let (ok, out, err) = cli(data.path(), &["add", file_arg, "--allow-takeover"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("added bridge\n"), "{out}");
    assert!(
        out.contains("sender:            @bridge_bot:localhost"),
        "{out}"
    );

    let room = bob.create_room(json!({})).await;
    let msg = bob.send_text(&room, "via the cli").await;
    recorder.wait_for("the message", |r| r.has(&msg)).await;
    let admin = admin_of(&server.base, data.path());
    wait_for_view(&admin, "bridge", "the acknowledgement", |v| {
        v["transactions_sent"].as_u64() >= Some(1)
    })
    .await;

    let (ok, out, err) = cli(data.path(), &["list"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    for column in [
        "ID",
        "STATE",
        "BEHIND",
        "LAST SUCCESS",
        "LAST ERROR",
        "TXNS",
        "RETRIES",
        "P50",
        "P99",
    ] {
        assert!(lines[0].contains(column), "{out}");
    }
    assert!(lines[1].starts_with("bridge  up"), "{out}");
    assert!(lines[1].contains(&url), "{out}");

    let (ok, out, err) = cli(data.path(), &["show", "bridge"]);
    assert!(ok, "{err}");
    for expected in [
        "id:                bridge",
        "origin:            runtime",
        "state:             up",
        "events behind:     0 events after stream position",
        "last error:        none",
        "  users:           @bridge_.* (exclusive)",
    ] {
        assert!(out.contains(expected), "{expected} in:\n{out}");
    }
    assert!(out.contains("last success:      20"), "{out}");

    // A registration the server refuses: the file and the field are named.
    let bad = files.path().join("bad.yaml");
    std::fs::write(&bad, registration("bad", &url, "@bad_(", false)).unwrap();
    let (ok, _, err) = cli(data.path(), &["add", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("bad.yaml was not added"), "{err}");
    assert!(
        err.contains("field `namespaces.users[0].regex`: invalid regex"),
        "{err}"
    );
    assert!(err.contains("M_INVALID_PARAM"), "{err}");
    let (ok, _, err) = cli(data.path(), &["show", "nope"]);
    assert!(!ok);
    assert!(
        err.contains("there is no application service `nope`"),
        "{err}"
    );

    let (ok, out, err) = cli(data.path(), &["remove", "bridge"]);
    assert!(ok, "{err}");
    assert_eq!(out, "removed bridge\n");
    let (ok, out, _) = cli(data.path(), &["list"]);
    assert!(ok);
    assert_eq!(out, "no application services are registered\n");

    server.kill();
    let (ok, _, err) = cli(data.path(), &["list"]);
    assert!(!ok);
    assert!(
        err.contains("cannot reach the server at http://127.0.0.1:"),
        "{err}"
    );
    assert!(err.contains("is `plugboard serve` running"), "{err}");
}

/// Starts the server process with the registration `files`; it must refuse to start.
/// Answers what it printed.
fn refused_start(data_dir: &Path, files: &[PathBuf]) -> String {
    let list: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let list = list.join(",");
    plugboard_tests::refused_start(
        BINARY,
        data_dir,
        &[("PLUGBOARD_APPSERVICE_CONFIG_FILES", list.as_str())],
    )
}

#[test]
fn invalid_registration_files_stop_start_up_naming_the_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let a = write(
        "a.yaml",
        registration("a", "http://127.0.0.1:9", "@a_.*", true),
    );
    let cases: Vec<(Vec<PathBuf>, PathBuf, &str)> = vec![
        (
            vec![write(
                "bad_regex.yaml",
                registration("b", "http://127.0.0.1:9", "@b_[", false),
            )],
            dir.path().join("bad_regex.yaml"),
            "field `namespaces.users[0].regex`: invalid regex",
        ),
        (
            vec![
                a.clone(),
                write(
                    "same_id.yaml",
                    registration("a", "http://127.0.0.1:9", "@c_.*", false)
                        .replace("as_a", "as_c")
                        .replace("hs_admin_tests_a", "hs_c")
                        .replace("a_bot", "c_bot"),
                ),
            ],
            dir.path().join("same_id.yaml"),
            "field `id`: `a` is already the id of appservice `a`",
        ),
        (
            vec![
                a.clone(),
                write(
                    "same_as_token.yaml",
                    registration("d", "http://127.0.0.1:9", "@d_.*", false).replace("as_d", "as_a"),
                ),
            ],
            dir.path().join("same_as_token.yaml"),
            "field `as_token`: the same as_token is already used by appservice `a`",
        ),
        (
            vec![write(
                "missing.yaml",
                registration("e", "http://127.0.0.1:9", "@e_.*", false)
                    .replace("sender_localpart: e_bot\n", ""),
            )],
            dir.path().join("missing.yaml"),
            "missing field `sender_localpart`",
        ),
        (
            vec![
                a.clone(),
                write(
                    "overlap.yaml",
                    registration("f", "http://127.0.0.1:9", "@a_f.*", true),
                ),
            ],
            dir.path().join("overlap.yaml"),
            "field `namespaces.users[0].regex`: exclusive namespace `@a_f.*` overlaps exclusive \
             namespace `@a_.*` of appservice `a`",
        ),
    ];
    for (files, culprit, field) in cases {
        let data = tempfile::tempdir().unwrap();
        let err = refused_start(data.path(), &files);
        let expected = format!("{}: {field}", culprit.display());
        assert!(err.contains(&expected), "{expected} in:\n{err}");
    }
}

#[tokio::test]
async fn a_runtime_registration_that_clashes_with_a_file_stops_start_up_until_removed_offline() {
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let runtime = files.path().join("runtime.yaml");
    std::fs::write(
        &runtime,
        registration("bridge", "http://127.0.0.1:9", "@bridge_.*", true),
    )
    .unwrap();
    let server = ServerProcess::spawn(BINARY, data.path()).await;
    let (ok, _, err) = cli(data.path(), &["add", runtime.to_str().unwrap()]);
    assert!(ok, "{err}");
    server.kill();

    // A file that claims the same users: the server cannot start, and says how to recover.
    let file = files.path().join("file.yaml");
    std::fs::write(
        &file,
        registration("filed", "http://127.0.0.1:9", "@bridge_x.*", true),
    )
    .unwrap();
    let err = refused_start(data.path(), std::slice::from_ref(&file));
    assert!(
        err.contains("runtime registration `bridge`: field `namespaces.users[0].regex`"),
        "{err}"
    );
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(
        err.contains("plugboard appservice remove ID --offline"),
        "{err}"
    );

    let (ok, out, err) = cli(data.path(), &["remove", "bridge", "--offline"]);
    assert!(ok, "{err}");
    assert!(out.contains("removed bridge"), "{out}");
    let (ok, _, err) = cli(data.path(), &["remove", "bridge", "--offline"]);
    assert!(!ok);
    assert!(err.contains("no runtime registration `bridge`"), "{err}");

    let file_list = file.display().to_string();
    let server = ServerProcess::spawn_with_env(
        BINARY,
        data.path(),
        &[("PLUGBOARD_APPSERVICE_CONFIG_FILES", file_list.as_str())],
    )
    .await;
    let admin = admin_of(&server.base, data.path());
    let list = admin.get(API).await.ok();
    let ids: Vec<&str> = list["appservices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["filed"]);
}

#[tokio::test]
async fn a_service_marked_down_is_retried_at_once_when_the_admin_asks() {
    let recorder = recorder_down();
    let url = recorder.start().await;
    recorder.set_hs_token(&format!("{HS_TOKEN}_bridge"));
    // The first pause after a failure outlasts every wait of the test, and no probe ends it.
    let dir = tempfile::tempdir().unwrap();
    let mut c = test_config(dir.path());
    c.appservice_delivery.retry_base_ms = 600_000;
    c.appservice_delivery.retry_max_ms = 600_000;
    c.appservice_delivery.probe_interval_ms = 0;
    let server = TestServer::start_in(dir, c).await;
    let admin = admin(&server);
    add(&admin, &registration("bridge", &url, "@bridge_.*", false))
        .await
        .ok();
    add(&admin, &registration("nourl", "null", "@nourl_.*", false))
        .await
        .ok();
    let bob = server.register("bridge_bob").await;
    let room = bob.create_room(json!({})).await;
    let msg = bob.send_text(&room, "retried on request").await;
    wait_for_view(&admin, "bridge", "the service marked down", |v| {
        v["up"] == false
    })
    .await;

    recorder.set_down(false);
    assert_eq!(
        admin
            .post(&format!("{API}/bridge/retry"), json!({}))
            .await
            .ok(),
        json!({})
    );
    recorder.wait_for("the message", |r| r.has(&msg)).await;
    wait_for_view(&admin, "bridge", "the service up", |v| v["up"] == true).await;

    admin
        .post(&format!("{API}/nourl/retry"), json!({}))
        .await
        .err(400, "M_URL_NOT_SET");
    admin
        .post(&format!("{API}/ghost/retry"), json!({}))
        .await
        .err(404, "M_NOT_FOUND");
    let quiet = show(&admin, "nourl").await;
    assert_eq!(quiet["up"], Value::Null, "{quiet}");
    assert_eq!(quiet["events_behind"], Value::Null, "{quiet}");
}
