//! The outgoing federation queue against Synapse 1.163 and against a second Plugboard: what
//! Plugboard's users send reaches the peer's users in order, in a Plugboard room and in the
//! peer's room, and nothing a client was answered for is lost when the peer is down for a
//! while or Plugboard is killed mid-stream. (The queue's rules, its transactions' sizes and txn ids are tested against a
//! recording peer in the host crate: `service::federation::sender::tests`.)

use std::path::Path;
use std::time::{Duration, Instant};

use plugboard_tests::federation::{room_joined_by_alias, Peer};
use plugboard_tests::reading::{paged_bodies, wait_member};
use plugboard_tests::synapse::Synapse;
use plugboard_tests::{against_both, send_until_gone, Client, ServerProcess, TestServer};
use serde_json::json;

against_both!(
    the_peers_user_reads_what_ours_sends_in_order_in_either_servers_room,
    plugboard_killed_mid_stream_sends_the_peer_every_acknowledged_message_after_a_restart
);

const BINARY: &str = env!("CARGO_BIN_EXE_plugboard-test-server");

/// How long a message may take to reach the other side (Synapse backs off a little too).
const PATIENCE: Duration = Duration::from_secs(60);

/// The `m.room.message` bodies `reader` can read in `room_id`, oldest first, paging back as
/// a client does: past 100 events queued for a room, Synapse keeps the newest and fetches the
/// rest from us with `/backfill` when its user pages back to them.
async fn bodies(reader: &Client, room_id: &str) -> Vec<String> {
    paged_bodies(reader, room_id, 100).await
}

/// A Plugboard server as the waits see it: where it answers and its data dir (for the admin
/// token that reads its queues' figures).
#[derive(Clone, Copy)]
struct Sender<'a> {
    base: &'a str,
    data_dir: &'a Path,
}

impl Sender<'_> {
    /// The `plugboard_federation_*` lines of its `/metrics`.
    async fn queue_figures(&self) -> String {
        let token = std::fs::read_to_string(self.data_dir.join("admin.token")).unwrap_or_default();
        let answer = reqwest::Client::new()
            .get(format!("{}/metrics", self.base))
            .bearer_auth(token.trim())
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        let text = match answer {
            Ok(a) if a.status().is_success() => a.text().await.unwrap_or_default(),
            Ok(a) => return format!("/metrics answered {}", a.status()),
            Err(e) => return format!("no /metrics: {e}"),
        };
        text.lines()
            .filter(|l| l.starts_with("plugboard_federation_"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Waits until `reader` reads exactly `expected` (in that order, each once) among the
/// messages of `room_id` that start with `tag`.
async fn wait_for(
    reader: &Client,
    room_id: &str,
    tag: &str,
    expected: &[String],
    (sender, log): (Sender<'_>, impl Fn() -> String),
) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let read: Vec<String> = bodies(reader, room_id)
            .await
            .into_iter()
            .filter(|b| b.starts_with(tag))
            .collect();
        if read.len() >= expected.len() {
            assert_eq!(read, expected, "out of order, missing or twice");
            return;
        }
        if Instant::now() >= deadline {
            panic!(
                "{} of {} messages arrived: {read:?}\n{}\n{}",
                read.len(),
                expected.len(),
                sender.queue_figures().await,
                log()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn numbered(tag: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{tag} {i}")).collect()
}

async fn the_peers_user_reads_what_ours_sends_in_order_in_either_servers_room(peer: Peer) {
    let plugboard = TestServer::start_federating().await;
    let alice = plugboard.register("alice").await;
    let bob = peer.user("bob").await;
    let log = || peer.log_tail();
    let sender = Sender {
        base: &plugboard.base,
        data_dir: plugboard.data_dir.path(),
    };

    let ours = room_joined_by_alias(&alice, &plugboard.server_name, "queue", &bob, log).await;
    let sent = numbered("here ✓", 30);
    for text in &sent {
        alice.send_text(&ours, text).await;
    }
    wait_for(&bob, &ours, "here", &sent, (sender, log)).await;

    let theirs = bob.create_room(json!({"preset": "public_chat"})).await;
    let joined = alice.join_via(&theirs, peer.server_name()).await;
    assert_eq!(joined.status, 200, "{}\n{}", joined.body, log());
    wait_member(&bob, &theirs, &alice.user_id).await;
    let sent = numbered("there", 20);
    for text in &sent {
        alice.send_text(&theirs, text).await;
    }
    wait_for(&bob, &theirs, "there", &sent, (sender, log)).await;
}

/// The peer of the outage test, which it stops and starts again on the same data and server
/// name: a Synapse of the test's own, or a second Plugboard run as a process.
enum Stoppable {
    Synapse(Synapse),
    Plugboard {
        dir: tempfile::TempDir,
        port: u16,
        process: Option<ServerProcess>,
    },
}

impl Stoppable {
    async fn synapse() -> Stoppable {
        Stoppable::Synapse(tokio::task::spawn_blocking(Synapse::start).await.unwrap())
    }

    async fn plugboard() -> Stoppable {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let process = Some(federating_process(dir.path(), port).await);
        Stoppable::Plugboard { dir, port, process }
    }

    fn client_base(&self) -> String {
        match self {
            Stoppable::Synapse(s) => s.client_base.clone(),
            Stoppable::Plugboard { process, .. } => process.as_ref().expect("running").base.clone(),
        }
    }

    async fn user(&self, name: &str) -> Client {
        match self {
            Stoppable::Synapse(s) => s.user(name).await,
            Stoppable::Plugboard { .. } => {
                Client::new(&self.client_base())
                    .register(name, "password")
                    .await
            }
        }
    }

    fn stop(&mut self) {
        match self {
            Stoppable::Synapse(s) => s.stop(),
            Stoppable::Plugboard { process, .. } => {
                if let Some(p) = process.take() {
                    p.kill()
                }
            }
        }
    }

    /// Started again; it answers when this returns.
    async fn resumed(self) -> Stoppable {
        match self {
            Stoppable::Synapse(mut s) => tokio::task::spawn_blocking(move || {
                s.resume();
                Stoppable::Synapse(s)
            })
            .await
            .unwrap(),
            Stoppable::Plugboard { dir, port, .. } => {
                let process = Some(federating_process(dir.path(), port).await);
                Stoppable::Plugboard { dir, port, process }
            }
        }
    }

    fn log_tail(&self) -> String {
        match self {
            Stoppable::Synapse(s) => s.log_tail(),
            Stoppable::Plugboard { port, .. } => {
                format!("(the peer is Plugboard 127.0.0.1:{port})")
            }
        }
    }
}

mod what_is_sent_while_the_peer_is_down_reaches_it_in_order_once_it_is_back {
    use super::Stoppable;

    #[tokio::test]
    async fn with_synapse() {
        super::what_is_sent_while_the_peer_is_down_reaches_it_in_order_once_it_is_back(
            Stoppable::synapse().await,
        )
        .await
    }

    #[tokio::test]
    async fn with_plugboard() {
        super::what_is_sent_while_the_peer_is_down_reaches_it_in_order_once_it_is_back(
            Stoppable::plugboard().await,
        )
        .await
    }
}

async fn what_is_sent_while_the_peer_is_down_reaches_it_in_order_once_it_is_back(
    mut peer: Stoppable,
) {
    let plugboard = TestServer::start_federating_with(|c| {
        c.appservice_delivery.retry_base_ms = 200;
        c.appservice_delivery.retry_max_ms = 2_000;
    })
    .await;
    let alice = plugboard.register("alice").await;
    let mut bob = peer.user("bob").await;
    let sender = Sender {
        base: &plugboard.base,
        data_dir: plugboard.data_dir.path(),
    };
    let room_id = room_joined_by_alias(&alice, &plugboard.server_name, "queue", &bob, || {
        peer.log_tail()
    })
    .await;
    alice.send_text(&room_id, "m before").await;
    let before = ["m before".to_string()];
    wait_for(
        &bob,
        &room_id,
        "m before",
        &before,
        (sender, || peer.log_tail()),
    )
    .await;

    peer.stop();
    let sent = numbered("m", 200);
    for text in &sent {
        alice.send_text(&room_id, text).await;
    }
    let peer = peer.resumed().await;
    bob.base = peer.client_base();
    let mut want = vec!["m before".to_string()];
    want.extend(sent);
    wait_for(&bob, &room_id, "m ", &want, (sender, || peer.log_tail())).await;
}

/// A free port on 127.0.0.1, for a federation listener that must keep its port (and so its
/// server name) across a restart.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn federating_process(data_dir: &Path, port: u16) -> ServerProcess {
    let name = format!("127.0.0.1:{port}");
    ServerProcess::spawn_with_env(
        BINARY,
        data_dir,
        &[
            ("PLUGBOARD_SERVER_NAME", &name),
            ("PLUGBOARD_FEDERATION__ENABLED", "true"),
            ("PLUGBOARD_FEDERATION__LISTEN", &name),
            ("PLUGBOARD_FEDERATION__VERIFY_TLS", "false"),
            ("PLUGBOARD_FEDERATION__IP_RANGE_ALLOWLIST", "127.0.0.1"),
            ("PLUGBOARD_APPSERVICE_DELIVERY__RETRY_BASE_MS", "200"),
            ("PLUGBOARD_APPSERVICE_DELIVERY__RETRY_MAX_MS", "2000"),
        ],
    )
    .await
}

async fn plugboard_killed_mid_stream_sends_the_peer_every_acknowledged_message_after_a_restart(
    peer: Peer,
) {
    let data_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = federating_process(data_dir.path(), port).await;
    let alice = server.client().register("alice", "password").await;
    let bob = peer.user("bob").await;
    let log = || peer.log_tail();
    let room_id =
        room_joined_by_alias(&alice, &format!("127.0.0.1:{port}"), "queue", &bob, log).await;

    let sending = send_until_gone(&alice, &room_id, "k");
    tokio::time::sleep(Duration::from_millis(400)).await;
    server.kill();
    let acked = sending.await.unwrap();
    assert!(
        acked.len() >= 5,
        "only {} sends before the kill",
        acked.len()
    );

    let server = federating_process(data_dir.path(), port).await;
    let alice = Client {
        base: server.base.clone(),
        ..alice
    };
    alice.send_text(&room_id, "k after").await;
    let mut want = numbered("k", acked.len());
    want.push("k after".into());
    // A send cut off by the kill may have been stored without its answer: it may show too,
    // right after the acknowledged ones.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let read: Vec<String> = bodies(&bob, &room_id)
            .await
            .into_iter()
            .filter(|b| b.starts_with("k "))
            .collect();
        if read.last().is_some_and(|b| b == "k after") {
            let mut expected = want.clone();
            if read.len() == want.len() + 1 {
                expected.insert(acked.len(), format!("k {}", acked.len()));
            }
            assert_eq!(read, expected, "out of order, missing or twice");
            break;
        }
        if Instant::now() >= deadline {
            let sender = Sender {
                base: &server.base,
                data_dir: data_dir.path(),
            };
            panic!(
                "{} of {} messages arrived: {read:?}\n{}\n{}",
                read.len(),
                want.len(),
                sender.queue_figures().await,
                log()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    drop(server);
}
