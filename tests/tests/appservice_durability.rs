//! Appservice delivery across failures: a backlog for a down service survives SIGKILL of the
//! server and arrives whole and in order, and a dead service does not hold up a live one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::put;
use axum::{Json, Router};
use plugboard_tests::{enc, ServerProcess, TestServer, WAIT};
use serde_json::{json, Value};

const BINARY: &str = env!("CARGO_BIN_EXE_plugboard-test-server");

/// A transaction as accepted: its txn id and the ids of its events.
type Accepted = (String, Vec<String>);

/// Accepts transactions unless `down`; keeps what it accepted.
#[derive(Clone, Default)]
struct Receiver {
    accepted: Arc<Mutex<Vec<Accepted>>>,
    down: Arc<AtomicBool>,
}

impl Receiver {
    fn event_ids(&self) -> Vec<String> {
        self.accepted
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(_, ids)| ids.clone())
            .collect()
    }

    async fn wait_for_all(&self, wanted: &[String]) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let ids = self.event_ids();
            if wanted.iter().all(|w| ids.contains(w)) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} of {} events arrived",
                wanted.iter().filter(|w| ids.contains(w)).count(),
                wanted.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn transaction(
    State(r): State<Receiver>,
    Path(txn_id): Path<String>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if r.down.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({})));
    }
    let ids = body["events"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["event_id"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default();
    let mut accepted = r.accepted.lock().unwrap();
    // A retried txn id the receiver already took is acknowledged again, not recorded twice,
    // as the spec asks of appservices.
    if !accepted.iter().any(|(t, _)| t == &txn_id) {
        accepted.push((txn_id, ids));
    }
    (StatusCode::OK, Json(json!({})))
}

async fn start_receiver(r: Receiver) -> String {
    let app = Router::new()
        .route("/_matrix/app/v1/transactions/{txn_id}", put(transaction))
        .with_state(r);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

fn registration(dir: &std::path::Path, id: &str, url: &str, users: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{id}.yaml"));
    std::fs::write(
        &path,
        format!(
            "id: {id}\nurl: {url}\nas_token: as_{id}\nhs_token: hs_{id}\nsender_localpart: {id}bot\n\
             namespaces:\n  users:\n    - regex: '{users}'\n      exclusive: false\n"
        ),
    )
    .unwrap();
    path
}

async fn send_n(
    client: &plugboard_tests::Client,
    room: &str,
    prefix: &str,
    n: usize,
) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let body = client
            .put(
                &format!("/rooms/{}/send/m.room.message/{prefix}{i}", enc(room)),
                json!({"msgtype": "m.text", "body": format!("{prefix} {i}")}),
            )
            .await
            .ok();
        ids.push(body["event_id"].as_str().unwrap().to_string());
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_survives_sigkill_and_arrives_whole_and_in_order() {
    let receiver = Receiver::default();
    receiver.down.store(true, Ordering::SeqCst);
    let url = start_receiver(receiver.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let reg = registration(dir.path(), "bridge", &url, "@bridge_.*");
    let data = dir.path().join("data");
    let env = [
        ("PLUGBOARD_APPSERVICE_CONFIG_FILES", reg.to_str().unwrap()),
        ("PLUGBOARD_APPSERVICE_DELIVERY__RETRY_BASE_MS", "20"),
        ("PLUGBOARD_APPSERVICE_DELIVERY__RETRY_MAX_MS", "200"),
    ];
    let server = ServerProcess::spawn_with_env(BINARY, &data, &env).await;
    let bob = server.client().register("bridge_bob", "password").await;
    let room = bob.create_room(json!({})).await;
    let sent = send_n(&bob, &room, "before", 300).await;
    server.kill();

    let server = ServerProcess::spawn_with_env(BINARY, &data, &env).await;
    receiver.down.store(false, Ordering::SeqCst);
    let mut bob_again = server.client();
    bob_again.token = bob.token.clone();
    let after = send_n(&bob_again, &room, "after", 20).await;
    let all: Vec<String> = sent.iter().chain(after.iter()).cloned().collect();
    receiver.wait_for_all(&all).await;
    let got: Vec<String> = receiver
        .event_ids()
        .into_iter()
        .filter(|id| all.contains(id))
        .collect();
    assert_eq!(
        got, all,
        "each event once, in stream order, across the restart"
    );
}

#[tokio::test]
async fn a_dead_service_does_not_hold_up_a_live_one() {
    let live = Receiver::default();
    let live_url = start_receiver(live.clone()).await;
    // A port nobody listens on: every push to it fails.
    let dead_url = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let dir = tempfile::tempdir().unwrap();
    let live_reg = registration(dir.path(), "live", &live_url, "@bridge_.*");
    let dead_reg = registration(dir.path(), "dead", &dead_url, "@bridge_.*");
    let server = TestServer::start_with(|c| {
        c.appservice_config_files = vec![dead_reg.clone(), live_reg.clone()];
        c.appservice_delivery.retry_base_ms = 20;
        c.appservice_delivery.retry_max_ms = 200;
    })
    .await;
    let bob = server.register("bridge_bob").await;
    let room = bob.create_room(json!({})).await;
    let sent = send_n(&bob, &room, "m", 200).await;
    live.wait_for_all(&sent).await;
}
