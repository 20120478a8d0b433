//! The outgoing queue against a fake peer: a TLS listener on 127.0.0.1 that records every
//! `PUT /send` it gets and answers 500 while the test says so. The server is built from its
//! configuration on a temporary data dir (the same services `plugboard serve` runs), and a
//! remote member joins a room by a member event committed on the write path, as the joins
//! over federation will commit theirs.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::watch;

use crate::config::{Config, Overrides};
use crate::service::federation::notary::own_key_response;
use crate::service::federation::xmatrix::SignedRequest;
use crate::service::keys::ServerKey;
use crate::service::rooms::create::CreateRoom;
use crate::service::rooms::timeline::Draft;
use crate::service::users::Session;
use crate::service::Services;
use crate::storage::e2ee_keys::KeysWrite;
use crate::storage::presence::PresenceWrite;
use crate::storage::writer::WriteOp;

const ALICE: &str = "@alice:plugboard.test";
const WAIT: Duration = Duration::from_secs(20);

/// One `PUT /send` as the peer got it.
#[derive(Debug, Clone)]
struct Attempt {
    txn_id: String,
    body: Value,
    /// What the peer answered.
    status: u16,
}

#[derive(Clone, Default)]
struct PeerState {
    attempts: Arc<Mutex<Vec<Attempt>>>,
    /// Answer 500 to every send while set.
    failing: Arc<AtomicBool>,
}

/// The fake peer, served until dropped.
struct Peer {
    name: String,
    /// Its signing key, published at `/_matrix/key/v2/server`.
    key: Arc<ServerKey>,
    state: PeerState,
    _stop: watch::Sender<bool>,
    _dir: TempDir,
}

impl Peer {
    async fn start() -> Peer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut config = base_config(dir.path());
        config.federation.listen = addr;
        let acceptor = crate::net::tls::acceptor(&config).unwrap();
        let state = PeerState::default();
        let name = addr.to_string();
        let key =
            Arc::new(ServerKey::load_or_create(&dir.path().join("signing.key"), &name).unwrap());
        let keys = own_key_response(&key, &name);
        let router = Router::new()
            .route(
                "/_matrix/key/v2/server",
                get(move || async move { Json(keys) }),
            )
            .route("/_matrix/federation/v1/send/{txn}", put(send))
            .route(
                "/_matrix/federation/v1/version",
                get(|| async { Json(json!({"server": {"name": "peer"}})) }),
            )
            .with_state(state.clone());
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(crate::net::tls::serve(
            listener,
            acceptor,
            router,
            Duration::from_secs(10),
            stopped,
        ));
        Peer {
            name,
            key,
            state,
            _stop: stop,
            _dir: dir,
        }
    }

    fn fail(&self, failing: bool) {
        self.state.failing.store(failing, Ordering::SeqCst);
    }

    fn attempts(&self) -> Vec<Attempt> {
        self.state.attempts.lock().unwrap().clone()
    }

    /// The transactions it acknowledged, in the order it got them.
    fn acknowledged(&self) -> Vec<Attempt> {
        self.attempts()
            .into_iter()
            .filter(|a| a.status == 200)
            .collect()
    }

    /// The bodies of the `m.room.message` PDUs it acknowledged, in order.
    fn messages(&self) -> Vec<String> {
        self.acknowledged()
            .iter()
            .flat_map(|a| a.body["pdus"].as_array().cloned().unwrap_or_default())
            .filter(|p| p["type"] == "m.room.message")
            .map(|p| {
                p["content"]["body"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    }

    /// The EDUs it acknowledged, in order.
    fn edus(&self) -> Vec<Value> {
        self.acknowledged()
            .iter()
            .flat_map(|a| a.body["edus"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    fn user(&self) -> String {
        format!("@u:{}", self.name)
    }
}

/// `PUT /_matrix/federation/v1/send/{txnId}` of the peer.
async fn send(
    State(state): State<PeerState>,
    UrlPath(txn_id): UrlPath<String>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let status = if state.failing.load(Ordering::SeqCst) {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    state.attempts.lock().unwrap().push(Attempt {
        txn_id,
        body,
        status: status.as_u16(),
    });
    if status == StatusCode::OK {
        (status, Json(json!({"pdus": {}})))
    } else {
        (
            status,
            Json(json!({"errcode": "M_UNKNOWN", "error": "down"})),
        )
    }
}

fn base_config(dir: &Path) -> Config {
    let mut c = Config::load_from(None, Vec::new(), &Overrides::default()).unwrap();
    c.data_dir = dir.to_path_buf();
    c.rate_limits.enabled = false;
    c.plugins.bundled = false;
    c
}

/// The services of a federating server on `dir`, its outgoing queues started; `retry_base`
/// is the first pause after a failed send.
async fn server(dir: &Path, retry_base: Duration) -> Arc<Services> {
    let mut c = base_config(dir);
    c.server_name = "plugboard.test".into();
    c.federation.enabled = true;
    c.federation.verify_tls = false;
    c.federation.ip_range_allowlist = vec!["127.0.0.1".into()];
    c.appservice_delivery.retry_base_ms = retry_base.as_millis() as u64;
    c.appservice_delivery.retry_max_ms = (retry_base * 4).as_millis() as u64;
    let services = crate::server::build_services(c).await.unwrap();
    services.start_federation_sender().await.unwrap();
    services
}

/// A public room of Alice's that the peer's user has joined.
async fn room_with(services: &Services, peer: &Peer) -> String {
    let create = CreateRoom {
        preset: Some("public_chat".into()),
        ..CreateRoom::default()
    };
    let room = services.rooms.create_room(ALICE, create).await.unwrap();
    let user = peer.user();
    let join = Draft::new(
        &user,
        "m.room.member",
        Some(&user),
        json!({"membership": "join"}),
    );
    services.rooms.append(&room, join).await.unwrap();
    room
}

async fn say(services: &Services, room: &str, sender: &str, body: &str) -> String {
    let draft = Draft::new(
        sender,
        "m.room.message",
        None,
        json!({"msgtype": "m.text", "body": body}),
    );
    services.rooms.append(room, draft).await.unwrap().event_id
}

/// Waits until `done` holds, at most [`WAIT`].
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn numbered(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("m{i}")).collect()
}

#[tokio::test]
async fn a_peer_that_answers_500_gets_the_same_txn_again_then_everything_in_order_by_fifty() {
    let peer = Peer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let services = server(dir.path(), Duration::from_millis(50)).await;
    let room = room_with(&services, &peer).await;
    peer.fail(true);
    for i in 0..120 {
        say(&services, &room, ALICE, &format!("m{i}")).await;
    }
    until("three refused sends", || peer.attempts().len() >= 3).await;
    peer.fail(false);
    until("120 messages", || peer.messages().len() >= 120).await;

    assert_eq!(peer.messages(), numbered(0..120), "in order, each once");
    let attempts = peer.attempts();
    let refused: Vec<&Attempt> = attempts.iter().filter(|a| a.status == 500).collect();
    let first_ok = attempts.iter().find(|a| a.status == 200).unwrap();
    for r in &refused {
        assert_eq!(r.txn_id, first_ok.txn_id, "the same txn id until a 200");
        assert_eq!(r.body["pdus"], first_ok.body["pdus"], "and the same PDUs");
    }
    let acknowledged = peer.acknowledged();
    let sizes: Vec<usize> = acknowledged
        .iter()
        .map(|a| a.body["pdus"].as_array().unwrap().len())
        .collect();
    assert!(sizes.iter().all(|n| *n <= 50), "{sizes:?}");
    assert!(
        sizes.contains(&50),
        "the backlog goes in full transactions: {sizes:?}"
    );
    let mut ids: Vec<&str> = acknowledged.iter().map(|a| a.txn_id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), acknowledged.len(), "a new txn id after each 200");
    for a in &acknowledged {
        assert_eq!(a.body["origin"], "plugboard.test");
        assert!(a.body["origin_server_ts"].is_i64());
        for pdu in a.body["pdus"].as_array().unwrap() {
            assert!(pdu.get("event_id").is_none() && pdu.get("unsigned").is_none());
            assert!(pdu["signatures"]["plugboard.test"].is_object(), "{pdu}");
        }
    }
}

#[tokio::test]
async fn a_restarted_server_resumes_its_stored_transaction_and_position() {
    let peer = Peer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let services = server(dir.path(), Duration::from_millis(50)).await;
    let room = room_with(&services, &peer).await;
    peer.fail(true);
    for i in 0..60 {
        say(&services, &room, ALICE, &format!("m{i}")).await;
    }
    until("a refused send", || !peer.attempts().is_empty()).await;
    services.stop_federation_sender().await;
    let refused = peer.attempts().last().cloned().unwrap();
    drop(services);

    let services = server(dir.path(), Duration::from_millis(50)).await;
    peer.fail(false);
    for i in 60..65 {
        say(&services, &room, ALICE, &format!("m{i}")).await;
    }
    until("65 messages", || peer.messages().len() >= 65).await;
    assert_eq!(peer.messages(), numbered(0..65), "in order, each once");
    let first_ok = peer.acknowledged()[0].clone();
    assert_eq!(first_ok.txn_id, refused.txn_id, "the stored transaction");
    assert_eq!(first_ok.body, refused.body, "with its contents");
    services.stop_federation_sender().await;
}

#[tokio::test]
async fn a_peer_seen_again_is_sent_its_transaction_at_once_not_after_the_backoff() {
    let peer = Peer::start().await;
    let dir = tempfile::tempdir().unwrap();
    // A pause far longer than the test: only a sign of life ends it.
    let services = server(dir.path(), Duration::from_secs(600)).await;
    let room = room_with(&services, &peer).await;
    peer.fail(true);
    say(&services, &room, ALICE, "m0").await;
    until("a refused send", || !peer.attempts().is_empty()).await;
    peer.fail(false);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(peer.attempts().len(), 1, "the backoff holds");
    services.federation_seen(&peer.name);
    until("the message", || peer.messages() == ["m0"]).await;
    services.stop_federation_sender().await;
}

#[tokio::test]
async fn a_request_the_peer_signs_ends_the_backoff_of_its_queue() {
    let peer = Peer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = base_config(dir.path());
    c.server_name = "plugboard.test".into();
    c.federation.enabled = true;
    c.federation.verify_tls = false;
    c.federation.ip_range_allowlist = vec!["127.0.0.1".into()];
    c.appservice_delivery.retry_base_ms = 600_000;
    let services = crate::server::build_services(c).await.unwrap();
    let listener = crate::server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let federation = crate::server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let ours = format!("https://{}", federation.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(crate::server::serve(
        listener,
        Some(federation),
        services.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    let room = room_with(&services, &peer).await;
    peer.fail(true);
    say(&services, &room, ALICE, "m0").await;
    until("a refused send", || !peer.attempts().is_empty()).await;
    peer.fail(false);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(peer.attempts().len(), 1, "the backoff holds");

    // Any request of the peer's that passes X-Matrix authentication.
    let uri = format!(
        "/_matrix/federation/v1/query/profile?user_id={}",
        "%40alice%3Aplugboard.test"
    );
    let auth = SignedRequest {
        method: "GET",
        uri: &uri,
        origin: &peer.name,
        destination: "plugboard.test",
        content: None,
    }
    .authorization(&peer.key);
    let answer = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap()
        .get(format!("{ours}{uri}"))
        .header("authorization", auth)
        .timeout(WAIT)
        .send()
        .await
        .unwrap();
    assert_ne!(
        answer.status().as_u16(),
        401,
        "the request is authenticated"
    );
    until("the message", || peer.messages() == ["m0"]).await;
    let _ = stop.send(());
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn only_local_events_and_edus_of_rooms_the_peer_is_in_are_sent() {
    let peer = Peer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let services = server(dir.path(), Duration::from_millis(50)).await;
    let elsewhere = services
        .rooms
        .create_room(ALICE, CreateRoom::default())
        .await
        .unwrap();
    say(&services, &elsewhere, ALICE, "not for the peer").await;
    let room = room_with(&services, &peer).await;
    say(&services, &room, &peer.user(), "the peer's own").await;
    let seen = say(&services, &room, ALICE, "m0").await;
    services
        .send_receipt(
            &ALICE.try_into().unwrap(),
            &room.as_str().try_into().unwrap(),
            "m.read",
            &seen.as_str().try_into().unwrap(),
            None,
        )
        .await
        .unwrap();
    services
        .send_receipt(
            &ALICE.try_into().unwrap(),
            &room.as_str().try_into().unwrap(),
            "m.read.private",
            &seen.as_str().try_into().unwrap(),
            None,
        )
        .await
        .unwrap();
    let session = Session {
        user_id: ALICE.try_into().unwrap(),
        device_id: "ADEVICE".into(),
        appservice: None,
    };
    let mut to_peer = serde_json::Map::new();
    to_peer.insert("*".into(), json!({"secret": 1}));
    let mut to_local = serde_json::Map::new();
    to_local.insert("*".into(), json!({"secret": 2}));
    let messages = std::collections::BTreeMap::from([
        (peer.user(), to_peer),
        ("@bob:plugboard.test".to_string(), to_local),
    ]);
    services
        .send_to_device(&session, "m.test", "t1", messages)
        .await
        .unwrap();
    if let Some(serial) = services
        .typing
        .set(&room, ALICE, Some(Duration::from_secs(30)))
    {
        services.notifier.typing_changed(serial);
    }
    say(&services, &room, ALICE, "m1").await;
    until("the typing notice", || {
        peer.edus().iter().any(|e| e["edu_type"] == "m.typing")
    })
    .await;
    until("both messages", || peer.messages().len() >= 2).await;

    assert_eq!(peer.messages()[..2], ["m0", "m1"]);
    let edus = peer.edus();
    let receipts: Vec<&Value> = edus
        .iter()
        .filter(|e| e["edu_type"] == "m.receipt")
        .collect();
    assert_eq!(
        receipts.len(),
        1,
        "the private receipt stays here: {edus:?}"
    );
    assert_eq!(
        receipts[0]["content"][room.as_str()]["m.read"][ALICE]["event_ids"],
        json!([seen])
    );
    let to_device: Vec<&Value> = edus
        .iter()
        .filter(|e| e["edu_type"] == "m.direct_to_device")
        .collect();
    assert_eq!(to_device.len(), 1, "{edus:?}");
    assert_eq!(to_device[0]["content"]["sender"], ALICE);
    assert_eq!(to_device[0]["content"]["type"], "m.test");
    assert_eq!(
        to_device[0]["content"]["messages"],
        json!({ peer.user(): {"*": {"secret": 1}} }),
        "only the peer's users' messages"
    );
    let typing = edus.iter().find(|e| e["edu_type"] == "m.typing").unwrap();
    assert_eq!(
        typing["content"],
        json!({"room_id": room, "user_id": ALICE, "typing": true})
    );
    // Once acknowledged, the messages for the peer's users are not kept.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let kept: Vec<String> = services
            .storage
            .to_device_range(0, i64::MAX, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.user_id)
            .collect();
        if !kept.contains(&peer.user()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still kept: {kept:?}"
        );
        say(&services, &room, ALICE, "nudge").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    services.stop_federation_sender().await;
}

#[tokio::test]
async fn presence_and_key_changes_go_to_servers_sharing_a_room_with_the_user() {
    let peer = Peer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let services = server(dir.path(), Duration::from_millis(50)).await;
    let room = room_with(&services, &peer).await;
    let carol = "@carol:plugboard.test";
    for user in [carol, ALICE] {
        let presence = PresenceWrite {
            user_id: user.into(),
            presence: "online".into(),
            status_msg: Some(format!("{user} here")),
            last_active_ts: crate::service::now_ms(),
        };
        services
            .writer
            .write(WriteOp::Presence(presence))
            .await
            .unwrap();
    }
    let master = json!({"user_id": ALICE, "usage": ["master"], "keys": {"ed25519:M": "M"}});
    let keys = KeysWrite::CrossSigning {
        user_id: ALICE.into(),
        keys: vec![("master".into(), master.to_string())],
    };
    services
        .writer
        .write(WriteOp::Keys(Box::new(keys)))
        .await
        .unwrap();
    say(&services, &room, ALICE, "m0").await;
    until("the message", || peer.messages() == ["m0"]).await;

    let edus = peer.edus();
    let presence: Vec<&Value> = edus
        .iter()
        .filter(|e| e["edu_type"] == "m.presence")
        .collect();
    assert_eq!(
        presence.len(),
        1,
        "carol shares no room with the peer: {edus:?}"
    );
    assert_eq!(presence[0]["content"]["push"][0]["user_id"], ALICE);
    assert_eq!(presence[0]["content"]["push"][0]["presence"], "online");
    let signing: Vec<&Value> = edus
        .iter()
        .filter(|e| e["edu_type"] == "m.signing_key_update")
        .collect();
    assert_eq!(signing.len(), 1, "{edus:?}");
    assert_eq!(signing[0]["content"]["master_key"], master);
    services.stop_federation_sender().await;
}

#[tokio::test]
async fn nothing_is_sent_with_federation_off() {
    let peer = Peer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = base_config(dir.path());
    c.server_name = "plugboard.test".into();
    c.federation.enabled = false;
    c.federation.ip_range_allowlist = vec!["127.0.0.1".into()];
    let services = crate::server::build_services(c).await.unwrap();
    services.start_federation_sender().await.unwrap();
    let room = room_with(&services, &peer).await;
    say(&services, &room, ALICE, "m0").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(peer.attempts().is_empty());
    assert!(services.federation_destinations().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_queue_made_after_someone_started_typing_tells_the_server_who_is_typing() {
    let peer = Peer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let services = server(dir.path(), Duration::from_millis(50)).await;
    let room = room_with(&services, &peer).await;
    if let Some(serial) = services
        .typing
        .set(&room, ALICE, Some(Duration::from_secs(30)))
    {
        services.notifier.typing_changed(serial);
    }
    // The queue is made from the memberships, by a task of its own: here, after the typing.
    let queue = super::txns::ServerTxns::new(services.clone(), peer.name.clone());
    let from = crate::service::appservice::delivery::Cursor {
        position: services.notifier.position().stream,
        next_txn_id: 1,
        lone: false,
    };
    use crate::service::appservice::delivery::Destination;
    let built = queue.build(from).await.unwrap();
    let body = built
        .txn
        .expect("a transaction with the typing notice")
        .body;
    let typing: Vec<&Value> = body["edus"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["edu_type"] == "m.typing")
        .collect();
    assert_eq!(typing.len(), 1, "{body}");
    assert_eq!(typing[0]["content"]["user_id"], ALICE);
    assert_eq!(typing[0]["content"]["typing"], true);
    assert_eq!(typing[0]["content"]["room_id"], room.as_str());
}
