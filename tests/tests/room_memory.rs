//! What rooms keep in memory, end to end. With the room state cache and the recent events cut
//! down to almost nothing, rooms keep their authorization state and one unbroken event chain
//! each, and incremental syncs still see every event; a sync too large to hold is streamed,
//! and says the same as the same rooms synced a few at a time.

use std::collections::BTreeMap;
use std::path::Path;

use plugboard::storage::Storage;
use plugboard_tests::{enc, timeline, Client, TestServer, WAIT};
use serde_json::{json, Value};

/// Each room's events in stream order, as `(event_id, prev_events, depth)`.
async fn chains(data_dir: &Path) -> BTreeMap<String, Vec<(String, Vec<String>, i64)>> {
    let url = format!("sqlite://{}", data_dir.join("plugboard.sqlite").display());
    let storage = Storage::open(&url).await.expect("the database opens");
    let upto = storage.max_stream().await.expect("max stream");
    let mut rooms: BTreeMap<String, Vec<(String, Vec<String>, i64)>> = BTreeMap::new();
    for row in storage
        .events_range(0, upto, i64::MAX)
        .await
        .expect("the events")
    {
        let pdu: Value = serde_json::from_str(&row.json).expect("stored JSON");
        let prev = pdu["prev_events"]
            .as_array()
            .expect("prev_events")
            .iter()
            .map(|p| p.as_str().expect("an event id").to_string())
            .collect();
        let depth = pdu["depth"].as_i64().expect("depth");
        rooms
            .entry(row.room_id)
            .or_default()
            .push((row.event_id, prev, depth));
    }
    rooms
}

/// Asserts that every event of the room builds on the one stored before it: one chain, no
/// fork (two events on one parent would mean two writers held the room at once).
fn assert_one_chain(room: &str, events: &[(String, Vec<String>, i64)]) {
    for (i, (id, prev, depth)) in events.iter().enumerate() {
        match i.checked_sub(1).map(|p| &events[p]) {
            None => assert!(prev.is_empty(), "{room}: the create event {id} has parents"),
            Some((parent, _, parent_depth)) => {
                assert_eq!(
                    prev.as_slice(),
                    std::slice::from_ref(parent),
                    "{room}: {id} does not follow {parent}"
                );
                assert_eq!(*depth, parent_depth + 1, "{room}: depth of {id}");
            }
        }
    }
}

async fn send(c: &Client, room: &str, body: &str) -> u16 {
    c.put(
        &format!("/rooms/{}/send/m.room.message/{body}", enc(room)),
        json!({"msgtype": "m.text", "body": body}),
    )
    .await
    .status
    .as_u16()
}

#[tokio::test]
async fn rooms_written_in_turn_through_a_one_room_state_cache_keep_their_rules_and_one_chain_each()
{
    let server = TestServer::start_with(|c| c.rooms.state_cache_rooms = 1).await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let a = alice
        .create_room(json!({"preset": "private_chat", "name": "A"}))
        .await;
    let b = alice
        .create_room(json!({"preset": "private_chat", "name": "B"}))
        .await;

    alice.invite(&a, &bob.user_id).await.ok();
    // Each write to the other room pushes this one's state out of the cache.
    assert_eq!(send(&alice, &b, "b1").await, 200);
    bob.join(&a).await.ok();
    bob.join(&b).await.err(403, "M_FORBIDDEN");
    assert_eq!(send(&alice, &b, "b2").await, 200);
    assert_eq!(send(&bob, &a, "a1").await, 200);
    alice
        .put(
            &format!("/rooms/{}/state/m.room.topic", enc(&a)),
            json!({"topic": "reloaded"}),
        )
        .await
        .ok();
    assert_eq!(send(&alice, &b, "b3").await, 200);
    bob.put(
        &format!("/rooms/{}/state/m.room.topic", enc(&a)),
        json!({"topic": "not allowed"}),
    )
    .await
    .err(403, "M_FORBIDDEN");
    alice
        .post(
            &format!("/rooms/{}/ban", enc(&a)),
            json!({"user_id": bob.user_id}),
        )
        .await
        .ok();
    assert_eq!(send(&alice, &b, "b4").await, 200);
    assert_eq!(
        send(&bob, &a, "a2").await,
        403,
        "banned in the reloaded state"
    );
    let topic = alice
        .get(&format!("/rooms/{}/state/m.room.topic", enc(&a)))
        .await
        .ok();
    assert_eq!(topic["topic"], "reloaded");

    let dir = server.stop().await;
    let rooms = chains(dir.path()).await;
    assert_eq!(rooms.len(), 2);
    for (room, events) in &rooms {
        assert_one_chain(room, events);
    }
    assert_eq!(rooms[&a].last().map(|e| e.2), Some(rooms[&a].len() as i64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_in_many_rooms_through_a_one_room_state_cache_never_fork_a_room() {
    concurrent_writers_never_fork_a_room(|c| c.rooms.state_cache_rooms = 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_in_many_rooms_through_a_one_byte_state_cache_never_fork_a_room() {
    concurrent_writers_never_fork_a_room(|c| c.rooms.state_cache_bytes = 1).await;
}

/// 24 writers in 8 rooms, 50 messages each, with the head cache configured by `configure`:
/// each room's events stay one chain.
async fn concurrent_writers_never_fork_a_room(
    configure: impl FnOnce(&mut plugboard::config::Config),
) {
    let server = TestServer::start_with(configure).await;
    let alice = server.register("alice").await;
    let mut rooms = Vec::new();
    for i in 0..8 {
        rooms.push(
            alice
                .create_room(json!({"preset": "public_chat", "name": format!("r{i}")}))
                .await,
        );
    }
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..24 {
        let (alice, room) = (alice.clone(), rooms[w % rooms.len()].clone());
        writers.spawn(async move {
            for n in 0..50 {
                assert_eq!(send(&alice, &room, &format!("w{w}n{n}")).await, 200);
            }
        });
    }
    tokio::time::timeout(WAIT * 3, async {
        while let Some(done) = writers.join_next().await {
            done.expect("a writer");
        }
    })
    .await
    .expect("the writers finish");

    let dir = server.stop().await;
    let stored = chains(dir.path()).await;
    assert_eq!(stored.len(), rooms.len());
    for (room, events) in &stored {
        assert_one_chain(room, events);
        assert!(events.len() >= 50, "{room}: {} events", events.len());
    }
}

#[tokio::test]
async fn with_one_recent_event_kept_incremental_syncs_still_see_every_event_of_every_room() {
    let server = TestServer::start_with(|c| c.rooms.recent_events = 1).await;
    let alice = server.register("alice").await;
    let mut rooms = Vec::new();
    for i in 0..3 {
        rooms.push(
            alice
                .create_room(json!({"preset": "public_chat", "name": format!("r{i}")}))
                .await,
        );
    }
    let mut since = alice.sync(None, 0).await["next_batch"]
        .as_str()
        .expect("next_batch")
        .to_string();
    for round in 0..3 {
        let mut sent: BTreeMap<String, Vec<String>> = BTreeMap::new();
        // The rooms in turn, a different number of events each: each send drops the rings of
        // the rooms before it.
        for (i, room) in rooms.iter().enumerate() {
            for n in 0..=((i + round) % 3) {
                sent.entry(room.clone())
                    .or_default()
                    .push(alice.send_text(room, &format!("r{round} {i} {n}")).await);
            }
        }
        let sync = alice.sync(Some(&since), 0).await;
        for (room, ids) in &sent {
            let got: Vec<&str> = timeline(&sync, room)
                .iter()
                .map(|e| e["event_id"].as_str().expect("event_id"))
                .collect();
            assert_eq!(&got, ids, "round {round}, room {room}");
        }
        since = sync["next_batch"].as_str().expect("next_batch").to_string();
    }
}

/// The `join` parts of a sync, without what differs from one response to the next (`age`).
fn joined_without_age(sync: &Value) -> BTreeMap<String, Value> {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                if let Some(Value::Object(u)) = m.get_mut("unsigned") {
                    u.remove("age");
                }
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut join = sync["rooms"]["join"].clone();
    strip(&mut join);
    serde_json::from_value(join).expect("rooms.join is an object")
}

#[tokio::test]
async fn an_initial_sync_too_large_to_hold_is_streamed_and_says_what_the_rooms_say_one_by_one() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let mut rooms = Vec::new();
    // 4 rooms × 7 state events of 60 KB: the 1 MiB past which a response is streamed is
    // reached with a room still to write.
    for i in 0..4 {
        let room = alice
            .create_room(json!({"preset": "public_chat", "name": format!("big {i}")}))
            .await;
        for k in 0..7 {
            alice
                .put(
                    &format!("/rooms/{}/state/org.example.bulk/k{k}", enc(&room)),
                    json!({"data": format!("{i}{k}").repeat(30_000)}),
                )
                .await
                .ok();
        }
        rooms.push(room);
    }

    let resp = alice
        .http
        .get(alice.url("/sync"))
        .bearer_auth(alice.token.as_deref().expect("token"))
        .timeout(WAIT)
        .send()
        .await
        .expect("the sync answers");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert!(
        resp.headers().get("content-length").is_none(),
        "streamed, not sized up front: {:?}",
        resp.headers()
    );
    let bytes = resp.bytes().await.expect("the whole body");
    assert!(bytes.len() > 3 << 20 >> 1, "{} bytes", bytes.len());
    let whole: Value = serde_json::from_slice(&bytes).expect("the streamed body is one JSON value");
    let streamed = joined_without_age(&whole);
    assert_eq!(streamed.keys().collect::<Vec<_>>(), {
        let mut r: Vec<&String> = rooms.iter().collect();
        r.sort();
        r
    });

    for room in &rooms {
        let filter = json!({"room": {"rooms": [room]}}).to_string();
        let one = alice
            .get(&format!("/sync?filter={}", enc(&filter)))
            .await
            .ok();
        assert_eq!(one["next_batch"], whole["next_batch"]);
        let alone = joined_without_age(&one);
        assert_eq!(alone.len(), 1);
        assert_eq!(alone[room], streamed[room], "{room}");
        let parts = &streamed[room];
        let bulk = parts["state"]["events"]
            .as_array()
            .into_iter()
            .chain(parts["timeline"]["events"].as_array())
            .flatten()
            .filter(|e| e["type"] == "org.example.bulk")
            .count();
        assert_eq!(bulk, 7, "{room}");
    }

    let since = whole["next_batch"].as_str().expect("next_batch");
    let later = alice.send_text(&rooms[1], "after the big one").await;
    let next = alice.sync(Some(since), 0).await;
    let ids: Vec<&Value> = timeline(&next, &rooms[1]);
    assert_eq!(ids.len(), 1);
    assert_eq!(ids[0]["event_id"], later.as_str());
}
