//! A test application service on 127.0.0.1: it answers `PUT /_matrix/app/v1/transactions/
//! {txnId}` and `POST /_matrix/app/v1/ping` as a real one would (checking the hs_token),
//! records what it sees and accepts, and can be made to fail or be down, so tests can watch
//! delivery, retries, probes and backlogs.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{post, put};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::{enc, Client, WAIT};

/// Registers `@{localpart}:…` as a user of the service whose as_token `service` carries,
/// without a login, as a bridge makes its users.
pub async fn register_user(service: &Client, localpart: &str) {
    service
        .post(
            "/register",
            json!({"type": "m.login.application_service", "username": localpart,
                   "inhibit_login": true}),
        )
        .await
        .ok();
}

/// Makes device `device` of the service's user `user_id` with its as_token (MSC4190),
/// asserting that it was made (201).
pub async fn make_device(service: &Client, user_id: &str, device: &str, name: &str) {
    let made = service
        .put(
            &format!("/devices/{device}?user_id={}", enc(user_id)),
            json!({"display_name": name}),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
}

/// A push as the service saw it: its txn id and the ids of its events.
pub type Push = (String, Vec<String>);

#[derive(Clone)]
pub struct Recorder {
    hs_token: Arc<Mutex<String>>,
    accepted: Arc<Mutex<Vec<(String, Value)>>>,
    seen: Arc<Mutex<Vec<Push>>>,
    fail_next: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
    ping_down: Arc<AtomicBool>,
    pings: Arc<AtomicUsize>,
}

impl Recorder {
    pub fn new(hs_token: &str) -> Recorder {
        Recorder {
            hs_token: Arc::new(Mutex::new(hs_token.to_string())),
            accepted: Arc::default(),
            seen: Arc::default(),
            fail_next: Arc::default(),
            down: Arc::default(),
            ping_down: Arc::default(),
            pings: Arc::default(),
        }
    }

    /// Serves on a free loopback port; answers the service's URL.
    pub async fn start(&self) -> String {
        let app = Router::new()
            .route("/_matrix/app/v1/transactions/{txn_id}", put(transaction))
            .route("/_matrix/app/v1/ping", post(ping))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the test appservice");
        let addr = listener.local_addr().expect("its address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}")
    }

    /// The token pushes must carry from now on (for a service whose hs_token the server
    /// made up, as the talk's register endpoint does).
    pub fn set_hs_token(&self, hs_token: &str) {
        *self.hs_token.lock().unwrap() = hs_token.to_string();
    }

    /// Whether an accepted transaction carried this event.
    pub fn has(&self, event_id: &str) -> bool {
        self.accepted_ids().iter().any(|id| id == event_id)
    }

    /// While down, every push and every ping gets 503 (as from a proxy whose service is
    /// down).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
        self.ping_down.store(down, Ordering::SeqCst);
    }

    /// Pings alone get 503 (`true`) or 200 (`false`), whatever pushes get.
    pub fn set_ping_down(&self, down: bool) {
        self.ping_down.store(down, Ordering::SeqCst);
    }

    /// Pings received, answered or not.
    pub fn pings(&self) -> usize {
        self.pings.load(Ordering::SeqCst)
    }

    /// The next `n` pushes get 500.
    pub fn fail_next(&self, n: usize) {
        self.fail_next.store(n, Ordering::SeqCst);
    }

    /// Every accepted push, `(txn_id, body)`, in order (a retried txn id may come twice).
    pub fn accepted(&self) -> Vec<(String, Value)> {
        self.accepted.lock().unwrap().clone()
    }

    /// Every push seen, accepted or not.
    pub fn seen(&self) -> Vec<Push> {
        self.seen.lock().unwrap().clone()
    }

    /// The events of the accepted transactions, each transaction once (as the spec asks a
    /// service to treat a retried txn id).
    pub fn accepted_events(&self) -> Vec<Value> {
        let mut txns: Vec<String> = Vec::new();
        let mut events = Vec::new();
        for (txn, body) in self.accepted() {
            if txns.contains(&txn) {
                continue;
            }
            txns.push(txn);
            events.extend(body["events"].as_array().cloned().unwrap_or_default());
        }
        events
    }

    /// The ids of [`Recorder::accepted_events`].
    pub fn accepted_ids(&self) -> Vec<String> {
        self.accepted_events()
            .iter()
            .map(|e| e["event_id"].as_str().unwrap_or("").to_string())
            .collect()
    }

    /// Waits until `done` holds, at most [`WAIT`].
    pub async fn wait_for(&self, what: &str, done: impl Fn(&Recorder) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !done(self) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn ping(State(r): State<Recorder>, headers: HeaderMap) -> (StatusCode, Json<Value>) {
    let expected = format!("Bearer {}", r.hs_token.lock().unwrap());
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"errcode": "M_FORBIDDEN", "error": "wrong hs_token"})),
        );
    }
    r.pings.fetch_add(1, Ordering::SeqCst);
    if r.ping_down.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({})));
    }
    (StatusCode::OK, Json(json!({})))
}

async fn transaction(
    State(r): State<Recorder>,
    Path(txn_id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let expected = format!("Bearer {}", r.hs_token.lock().unwrap());
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"errcode": "M_FORBIDDEN", "error": "wrong hs_token"})),
        );
    }
    let ids = body["events"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["event_id"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default();
    r.seen.lock().unwrap().push((txn_id.clone(), ids));
    if r.down.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({})));
    }
    if r.fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({})));
    }
    r.accepted.lock().unwrap().push((txn_id, body));
    (StatusCode::OK, Json(json!({})))
}
