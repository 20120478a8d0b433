//! What a client got a 200 for survives SIGKILL: a burst of concurrent sends, the server
//! killed in the middle, restarted on the same data dir; every acknowledged event is there, and
//! the search index has them all.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use plugboard_tests::{enc, ServerProcess};
use serde_json::json;

const BINARY: &str = env!("CARGO_BIN_EXE_plugboard-test-server");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_sends_survive_sigkill() {
    let data_dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::spawn(BINARY, data_dir.path()).await;
    let alice = server.client().register("alice", "password").await;
    let room = alice.create_room(json!({"name": "durable"})).await;

    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut senders = Vec::new();
    for worker in 0..8 {
        let client = alice.clone();
        let room = room.clone();
        let acked = acked.clone();
        senders.push(tokio::spawn(async move {
            for i in 0.. {
                let path = format!("/rooms/{}/send/m.room.message/w{worker}-{i}", enc(&room));
                let url = client.url(&path);
                let resp = client
                    .http
                    .put(url)
                    .bearer_auth(client.token.as_deref().unwrap())
                    .json(&json!({"msgtype": "m.text", "body": format!("{worker}-{i}")}))
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
                let Ok(resp) = resp else { break };
                if !resp.status().is_success() {
                    break;
                }
                let Ok(body) = resp.json::<serde_json::Value>().await else {
                    break;
                };
                if let Some(id) = body["event_id"].as_str() {
                    acked.lock().unwrap().push(id.to_string());
                }
            }
        }));
    }
    // Let the burst run, then kill the server under load.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while acked.lock().unwrap().len() < 2000 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "sends did not get going"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill();
    for s in senders {
        let _ = tokio::time::timeout(Duration::from_secs(10), s).await;
    }
    let acked: Vec<String> = acked.lock().unwrap().clone();
    assert!(acked.len() >= 2000);
    eprintln!("{} sends acknowledged before SIGKILL", acked.len());

    let server = ServerProcess::spawn(BINARY, data_dir.path()).await;
    let mut reader = server.client();
    reader.token = alice.token.clone();
    let mut stored = HashSet::new();
    let mut bodies = Vec::new();
    let mut from: Option<String> = None;
    loop {
        let mut path = format!("/rooms/{}/messages?dir=b&limit=500", enc(&room));
        if let Some(f) = &from {
            path.push_str(&format!("&from={f}"));
        }
        let page = reader.get(&path).await.ok();
        for e in page["chunk"].as_array().unwrap() {
            assert!(
                stored.insert(e["event_id"].as_str().unwrap().to_string()),
                "an event came twice: {e}"
            );
            if let Some(body) = e["content"]["body"].as_str() {
                bodies.push(body.to_string());
            }
        }
        match page["end"].as_str() {
            Some(end) => from = Some(end.to_string()),
            None => break,
        }
    }
    let missing: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged events were lost, e.g. {:?}",
        missing.len(),
        acked.len(),
        missing.first()
    );
    // The search index follows the timeline behind the send path: what was stored before the
    // kill is found all the same. Bodies are "{worker}-{i}"; the term matches a word's start.
    let expected = bodies
        .iter()
        .filter(|b| b.split('-').any(|w| w.starts_with('7')))
        .count();
    let found = reader
        .post(
            "/search",
            json!({"search_categories": {"room_events": {"search_term": "7"}}}),
        )
        .await
        .ok();
    assert_eq!(
        found["search_categories"]["room_events"]["count"],
        json!(expected),
        "{} messages stored",
        bodies.len()
    );
    // The restarted server goes on where it stopped.
    let after = reader.send_text(&room, "after the restart").await;
    assert!(after.starts_with('$'));
}
