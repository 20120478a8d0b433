//! Catching up after an outage: during a long pause after failed pushes an HTTP service is
//! pinged at the probe interval, and pushed at once when a ping finds it back after it could
//! not be reached; a service that answers pushes with errors, or answers pings but not
//! pushes, is not pushed on every ping.
//!
//! The backoff here is a minute, longer than every wait of these tests: a delivery within the
//! test can only come from a probe.

use std::time::Duration;

use plugboard_tests::appservice::Recorder;
use plugboard_tests::{Client, TestServer};
use serde_json::{json, Value};

const HS_TOKEN: &str = "hs_catchup_tests";
const PROBE_MS: u64 = 100;

/// A server with service `bridge` at `url` (users `@bridge_…`, not exclusive), whose failed
/// pushes wait a minute and which is probed every [`PROBE_MS`].
async fn server_with_bridge(url: &str) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bridge.yaml");
    std::fs::write(
        &path,
        format!(
            "id: bridge\nurl: {url}\nas_token: as_catchup\nhs_token: {HS_TOKEN}\n\
             sender_localpart: bridgebot\nnamespaces:\n  users:\n    - regex: '@bridge_.*'\n      \
             exclusive: false\n"
        ),
    )
    .unwrap();
    let server = TestServer::start_with(|c| {
        c.appservice_config_files = vec![path.clone()];
        c.appservice_delivery.retry_base_ms = 60_000;
        c.appservice_delivery.retry_max_ms = 60_000;
        c.appservice_delivery.probe_interval_ms = PROBE_MS;
    })
    .await;
    (server, dir)
}

fn admin(server: &TestServer) -> Client {
    let mut c = server.client();
    let token = std::fs::read_to_string(server.data_dir.path().join("admin.token")).unwrap();
    c.token = Some(token.trim().to_string());
    c
}

async fn view(server: &TestServer) -> Value {
    admin(server)
        .get("/_plugboard/admin/v1/appservices/bridge")
        .await
        .ok()
}

/// With the bridge up, a room of `@bridge_bob`'s whose events it has all taken; then
/// `outage` starts, and a message the bridge wants is sent. Waits until the message's first
/// push has been seen; answers its id.
async fn message_pushed_once(
    server: &TestServer,
    recorder: &Recorder,
    outage: impl FnOnce(&Recorder),
) -> String {
    let bob = server.register("bridge_bob").await;
    let room = bob.create_room(json!({})).await;
    let before = bob.send_text(&room, "before the outage").await;
    recorder
        .wait_for("the room's events", |r| r.has(&before))
        .await;
    outage(recorder);
    let msg = bob.send_text(&room, "during the outage").await;
    recorder
        .wait_for("the first push", |r| {
            r.seen().iter().any(|(_, ids)| ids.contains(&msg))
        })
        .await;
    msg
}

/// Pushes of a transaction carrying `msg` seen so far.
fn pushes_of(recorder: &Recorder, msg: &str) -> usize {
    recorder
        .seen()
        .iter()
        .filter(|(_, ids)| ids.iter().any(|id| id == msg))
        .count()
}

/// Waits until `n` pings have come.
async fn wait_for_pings(recorder: &Recorder, n: usize) {
    recorder
        .wait_for(&format!("{n} pings"), |r| r.pings() >= n)
        .await;
}

#[tokio::test]
async fn a_service_that_comes_back_is_pushed_at_once_not_after_its_backoff() {
    let recorder = Recorder::new(HS_TOKEN);
    let url = recorder.start().await;
    let (server, _dir) = server_with_bridge(&url).await;
    let msg = message_pushed_once(&server, &recorder, |r| r.set_down(true)).await;

    // Down: the pings find it down, and nothing more is pushed.
    wait_for_pings(&recorder, 3).await;
    assert_eq!(pushes_of(&recorder, &msg), 1, "only pings during the pause");
    assert_eq!(view(&server).await["up"], false);

    // Within the test's wait, far less than the minute of its backoff.
    recorder.set_down(false);
    recorder.wait_for("the message", |r| r.has(&msg)).await;
    let shown = view(&server).await;
    assert!(shown["probes"].as_u64() >= Some(3), "{shown}");
    assert_eq!(pushes_of(&recorder, &msg), 2, "the push the probe set off");
}

#[tokio::test]
async fn a_service_that_answers_pushes_with_errors_is_not_pushed_on_each_ping() {
    let recorder = Recorder::new(HS_TOKEN);
    let url = recorder.start().await;
    let (server, _dir) = server_with_bridge(&url).await;
    // Up (its pings answer) but failing every push with 500.
    let msg = message_pushed_once(&server, &recorder, |r| r.fail_next(usize::MAX)).await;
    wait_for_pings(&recorder, 10).await;
    assert_eq!(
        pushes_of(&recorder, &msg),
        1,
        "a ping's answer says nothing new about a service that answered"
    );
}

#[tokio::test]
async fn a_service_that_answers_pings_but_not_pushes_gets_one_extra_push_per_change() {
    let recorder = Recorder::new(HS_TOKEN);
    let url = recorder.start().await;
    let (server, _dir) = server_with_bridge(&url).await;
    // Pushes get 503 (nothing behind the proxy), pings are answered (another route).
    let msg = message_pushed_once(&server, &recorder, |r| {
        r.set_down(true);
        r.set_ping_down(false);
    })
    .await;
    wait_for_pings(&recorder, 10).await;
    assert_eq!(
        pushes_of(&recorder, &msg),
        2,
        "the first answered ping sets off one push; its failure makes pings wait for a change"
    );

    // A change: pings find it down, then back.
    recorder.set_ping_down(true);
    let pings = recorder.pings();
    wait_for_pings(&recorder, pings + 2).await;
    recorder.set_down(false);
    recorder.wait_for("the message", |r| r.has(&msg)).await;
    assert_eq!(pushes_of(&recorder, &msg), 3);
}

#[tokio::test]
async fn probing_can_be_turned_off() {
    let recorder = Recorder::new(HS_TOKEN);
    let url = recorder.start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bridge.yaml");
    std::fs::write(
        &path,
        format!(
            "id: bridge\nurl: {url}\nas_token: as_catchup\nhs_token: {HS_TOKEN}\n\
             sender_localpart: bridgebot\nnamespaces:\n  users:\n    - regex: '@bridge_.*'\n      \
             exclusive: false\n"
        ),
    )
    .unwrap();
    let server = TestServer::start_with(|c| {
        c.appservice_config_files = vec![path.clone()];
        c.appservice_delivery.retry_base_ms = 60_000;
        c.appservice_delivery.retry_max_ms = 60_000;
        c.appservice_delivery.probe_interval_ms = 0;
    })
    .await;
    let msg = message_pushed_once(&server, &recorder, |r| r.set_down(true)).await;
    tokio::time::sleep(Duration::from_millis(10 * PROBE_MS)).await;
    assert_eq!(recorder.pings(), 0);
    assert_eq!(pushes_of(&recorder, &msg), 1);
}
