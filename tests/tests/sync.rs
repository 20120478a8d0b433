//! /sync, filters, ephemeral data, account data, /messages pagination, transaction ids and the
//! 2015 `api/v1` send paths, all through HTTP against a real server.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use plugboard_tests::{enc, timeline, Client, TestServer, WAIT};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Logs `user` in again (password "password"), which makes a new device.
async fn login(server: &TestServer, user: &str) -> Client {
    let mut c = server.client();
    let body = c
        .post(
            "/login",
            json!({
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": user},
                "password": "password",
            }),
        )
        .await
        .ok();
    c.token = Some(body["access_token"].as_str().expect("token").to_string());
    c.user_id = body["user_id"].as_str().expect("user_id").to_string();
    c.device_id = body["device_id"].as_str().expect("device_id").to_string();
    c
}

/// GET /sync with a raw query string.
async fn sync_q(c: &Client, query: &str) -> Value {
    c.get(&format!("/sync?{query}")).await.ok()
}

/// GET /rooms/{room}/messages with a raw query string.
async fn messages(c: &Client, room: &str, query: &str) -> Value {
    c.get(&format!("/rooms/{}/messages?{query}", enc(room)))
        .await
        .ok()
}

fn next_batch(sync: &Value) -> String {
    sync["next_batch"]
        .as_str()
        .expect("next_batch is a string")
        .to_string()
}

fn ids(events: &[&Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["event_id"].as_str().expect("event_id").to_string())
        .collect()
}

fn bodies(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .map(|e| e["content"]["body"].as_str().expect("body").to_string())
        .collect()
}

async fn send(c: &Client, room: &str, kind: &str, txn: &str, content: Value) -> String {
    c.put(&format!("/rooms/{}/send/{kind}/{txn}", enc(room)), content)
        .await
        .ok()["event_id"]
        .as_str()
        .expect("event_id")
        .to_string()
}

/// Sends `n` messages "{prefix}{i}" one after the other; answers their event ids in order.
async fn send_many(c: &Client, room: &str, prefix: &str, n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(c.send_text(room, &format!("{prefix}{i}")).await);
    }
    out
}

/// Pages through /messages until `end` is gone; answers every event in the order served and
/// the number of pages. Checks each page's shape on the way.
async fn walk(
    c: &Client,
    room: &str,
    dir: &str,
    from: Option<&str>,
    limit: usize,
    extra: &str,
) -> (Vec<Value>, usize) {
    let mut from = from.map(str::to_string);
    let mut all = Vec::new();
    let mut pages = 0;
    loop {
        let mut q = format!("dir={dir}&limit={limit}{extra}");
        if let Some(f) = &from {
            q.push_str(&format!("&from={}", enc(f)));
        }
        let page = messages(c, room, &q).await;
        pages += 1;
        assert!(pages <= 200, "pagination did not end");
        if let Some(f) = &from {
            assert_eq!(page["start"], f.as_str(), "start echoes from");
        }
        let chunk = page["chunk"].as_array().expect("chunk").clone();
        assert!(chunk.len() <= limit, "page larger than the limit: {page}");
        match page.get("end").and_then(Value::as_str) {
            Some(end) => {
                assert!(
                    !chunk.is_empty(),
                    "an empty page must not carry an end token"
                );
                all.extend(chunk);
                from = Some(end.to_string());
            }
            None => {
                all.extend(chunk);
                return (all, pages);
            }
        }
    }
}

fn assert_unique(events: &[Value]) {
    let mut seen = HashSet::new();
    for e in events {
        let id = e["event_id"].as_str().expect("event_id");
        assert!(seen.insert(id.to_string()), "event {id} served twice");
    }
}

/// The ephemeral event of `kind` for `room` in a sync response.
fn ephemeral<'a>(sync: &'a Value, room: &str, kind: &str) -> Option<&'a Value> {
    sync["rooms"]["join"][room]["ephemeral"]["events"]
        .as_array()?
        .iter()
        .find(|e| e["type"] == kind)
}

/// Long-polls from `since` until `pred` holds for a response (or fails after `WAIT`);
/// answers that response.
async fn sync_until(c: &Client, since: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    let mut since = since.to_string();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "the awaited sync never came");
        let timeout = left.as_millis().min(5_000) as u64;
        let s = c.sync(Some(&since), timeout).await;
        if pred(&s) {
            return s;
        }
        since = next_batch(&s);
    }
}

fn room_is_empty(sync: &Value, section: &str) -> bool {
    sync["rooms"][section]
        .as_object()
        .expect("rooms section is an object")
        .is_empty()
}

// ---------------------------------------------------------------------------------------------
// Initial and incremental sync
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_incremental_sync_returns_only_the_events_sent_after_since() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({"name": "Inc"})).await;
    let first = alice.send_text(&room, "one").await;

    let initial = alice.sync(None, 0).await;
    let initial_ids = ids(&timeline(&initial, &room));
    assert!(
        initial_ids.contains(&first),
        "initial sync has the first message"
    );
    let since = next_batch(&initial);

    let second = alice.send_text(&room, "two").await;
    let third = alice.send_text(&room, "three").await;
    let inc = alice.sync(Some(&since), 0).await;
    assert_eq!(ids(&timeline(&inc, &room)), vec![second, third]);
    assert_eq!(inc["rooms"]["join"][&room]["timeline"]["limited"], false);
    let moved = next_batch(&inc);
    assert_ne!(moved, since, "next_batch moves when something happened");

    let quiet = alice.sync(Some(&moved), 0).await;
    for section in ["join", "invite", "leave"] {
        assert!(room_is_empty(&quiet, section), "{section}: {quiet}");
    }
    assert_eq!(quiet["account_data"]["events"], json!([]));
    assert_eq!(next_batch(&quiet), moved, "nothing new, the token stays");
}

#[tokio::test]
async fn a_long_poll_returns_soon_after_a_message_is_sent_and_contains_it() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice.create_room(json!({"preset": "public_chat"})).await;
    bob.join(&room).await.ok();
    let since = next_batch(&bob.sync(None, 0).await);

    let poller = bob.clone();
    let since2 = since.clone();
    let started = Instant::now();
    let poll = tokio::spawn(async move { poller.sync(Some(&since2), 10_000).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !poll.is_finished(),
        "the long-poll returned before anything happened"
    );
    let event_id = alice.send_text(&room, "wake up").await;
    let reply = tokio::time::timeout(WAIT, poll)
        .await
        .expect("the long-poll returned")
        .expect("the long-poll task");
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(5),
        "the long-poll took {elapsed:?}, it should wake on the send"
    );
    let events = timeline(&reply, &room);
    assert!(
        events.iter().any(|e| e["event_id"] == event_id.as_str()),
        "the woken sync carries the event: {reply}"
    );
}

#[tokio::test]
async fn a_long_poll_with_nothing_new_waits_for_its_timeout_and_returns_empty() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let carol = server.register("carol").await;
    alice.create_room(json!({})).await;
    let elsewhere = carol.create_room(json!({})).await;
    let since = next_batch(&alice.sync(None, 0).await);
    let started = Instant::now();
    let poll = {
        let alice = alice.clone();
        tokio::spawn(async move { alice.sync(Some(&since), 1_500).await })
    };
    // Activity alice cannot see wakes the poll, which must go on waiting.
    tokio::time::sleep(Duration::from_millis(200)).await;
    carol.send_text(&elsewhere, "not for alice").await;
    let reply = tokio::time::timeout(WAIT, poll)
        .await
        .expect("the long-poll returned")
        .expect("the long-poll task");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1_400),
        "returned after {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(5),
        "returned after {elapsed:?}"
    );
    assert!(room_is_empty(&reply, "join"), "{reply}");
}

#[tokio::test]
async fn a_limited_incremental_sync_carries_the_state_changed_in_the_gap() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({"name": "Old name"})).await;
    let since = next_batch(&alice.sync(None, 0).await);

    alice
        .put(
            &format!("/rooms/{}/state/m.room.name", enc(&room)),
            json!({"name": "New name"}),
        )
        .await
        .ok();
    let sent = send_many(&alice, &room, "g", 15).await;

    let s = alice.sync(Some(&since), 0).await;
    let r = &s["rooms"]["join"][&room];
    assert_eq!(ids(&timeline(&s, &room)), sent[5..].to_vec());
    assert_eq!(r["timeline"]["limited"], true);
    let state = r["state"]["events"].as_array().expect("state");
    assert!(
        state
            .iter()
            .any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "New name"),
        "the name change before the timeline is in state: {state:?}"
    );
    assert!(
        state.iter().all(|e| e["type"] != "m.room.create"),
        "unchanged state is not repeated: {state:?}"
    );
    // The gap is reachable from prev_batch.
    let prev = r["timeline"]["prev_batch"].as_str().expect("prev_batch");
    let page = messages(&alice, &room, &format!("dir=b&limit=6&from={}", enc(prev))).await;
    let got: Vec<&str> = page["chunk"]
        .as_array()
        .expect("chunk")
        .iter()
        .map(|e| e["event_id"].as_str().expect("id"))
        .collect();
    let want: Vec<&str> = sent[..5].iter().map(String::as_str).rev().collect();
    assert_eq!(&got[..5], &want[..]);
    assert_eq!(page["chunk"][5]["type"], "m.room.name");

    // Exactly `limit` new events is not limited.
    let since = next_batch(&s);
    let ten = send_many(&alice, &room, "x", 10).await;
    let s = alice.sync(Some(&since), 0).await;
    assert_eq!(ids(&timeline(&s, &room)), ten);
    assert_eq!(s["rooms"]["join"][&room]["timeline"]["limited"], false);

    alice
        .get("/sync?since=garbage")
        .await
        .err(400, "M_INVALID_PARAM");
}

#[tokio::test]
async fn full_state_returns_the_whole_state_but_only_new_timeline_events() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = alice
        .create_room(json!({"name": "Full", "topic": "all of it"}))
        .await;
    // Push the creation events out of the default timeline window.
    send_many(&alice, &room, "m", 12).await;
    let since = next_batch(&alice.sync(None, 0).await);
    let new = alice.send_text(&room, "after").await;

    let plain = alice.sync(Some(&since), 0).await;
    let plain_room = &plain["rooms"]["join"][&room];
    assert_eq!(plain_room["state"]["events"], json!([]), "{plain}");

    let full = sync_q(&alice, &format!("full_state=true&since={}", enc(&since))).await;
    let full_room = &full["rooms"]["join"][&room];
    let kinds: HashSet<&str> = full_room["state"]["events"]
        .as_array()
        .expect("state events")
        .iter()
        .map(|e| e["type"].as_str().expect("type"))
        .collect();
    for kind in [
        "m.room.create",
        "m.room.member",
        "m.room.power_levels",
        "m.room.join_rules",
        "m.room.history_visibility",
        "m.room.name",
        "m.room.topic",
    ] {
        assert!(kinds.contains(kind), "full state lacks {kind}: {kinds:?}");
    }
    assert_eq!(
        ids(&timeline(&full, &room)),
        vec![new],
        "the timeline of a full_state sync is still limited by since"
    );

    // With nothing new a full_state sync still answers every room, at once.
    let started = Instant::now();
    let again = sync_q(
        &alice,
        &format!(
            "full_state=true&timeout=10000&since={}",
            enc(&next_batch(&full))
        ),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(again["rooms"]["join"][&room]["state"]["events"]
        .as_array()
        .is_some_and(|a| !a.is_empty()));
}

// ---------------------------------------------------------------------------------------------
// Filters
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_inline_filter_with_a_timeline_limit_marks_the_timeline_limited_with_a_prev_batch() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({})).await;
    let sent = send_many(&alice, &room, "n", 5).await;

    let filter = json!({"room": {"timeline": {"limit": 2}}}).to_string();
    let s = sync_q(&alice, &format!("filter={}", enc(&filter))).await;
    let t = &s["rooms"]["join"][&room]["timeline"];
    assert_eq!(ids(&timeline(&s, &room)), sent[3..].to_vec());
    assert_eq!(t["limited"], true);
    let prev = t["prev_batch"].as_str().expect("prev_batch");

    // prev_batch continues exactly where the timeline starts.
    let page = messages(&alice, &room, &format!("dir=b&limit=1&from={}", enc(prev))).await;
    assert_eq!(page["chunk"][0]["event_id"], sent[2].as_str());

    // A limit larger than the history is not limited.
    let filter = json!({"room": {"timeline": {"limit": 100}}}).to_string();
    let s = sync_q(&alice, &format!("filter={}", enc(&filter))).await;
    assert_eq!(s["rooms"]["join"][&room]["timeline"]["limited"], false);
    assert_eq!(timeline(&s, &room)[0]["type"], "m.room.create");
}

#[tokio::test]
async fn an_uploaded_filter_reads_back_and_applies_by_id() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice.create_room(json!({})).await;
    let sent = send_many(&alice, &room, "u", 4).await;

    let filter = json!({
        "room": {"timeline": {"limit": 3, "types": ["m.room.message"]}},
        "account_data": {"not_types": ["*"]}
    });
    let uid = enc(&alice.user_id);
    let created = alice
        .post(&format!("/user/{uid}/filter"), filter.clone())
        .await
        .ok();
    let id = created["filter_id"]
        .as_str()
        .expect("filter_id")
        .to_string();
    let back = alice.get(&format!("/user/{uid}/filter/{id}")).await.ok();
    assert_eq!(back, filter);

    let s = sync_q(&alice, &format!("filter={}", enc(&id))).await;
    assert_eq!(ids(&timeline(&s, &room)), sent[1..].to_vec());
    assert_eq!(s["rooms"]["join"][&room]["timeline"]["limited"], true);

    alice
        .get(&format!("/user/{uid}/filter/999999"))
        .await
        .err(404, "M_NOT_FOUND");
    bob.get(&format!("/user/{uid}/filter/{id}"))
        .await
        .err(403, "M_FORBIDDEN");
    alice
        .post(
            &format!("/user/{uid}/filter"),
            json!({"room": {"rooms": [1]}}),
        )
        .await
        .err(400, "M_BAD_JSON");
}

#[tokio::test]
async fn types_and_not_types_filters_select_the_timeline_events() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({})).await;
    let ping1 = send(&alice, &room, "org.example.ping", "p1", json!({"n": 1})).await;
    let msg = alice.send_text(&room, "hello").await;
    let ping2 = send(&alice, &room, "org.example.ping", "p2", json!({"n": 2})).await;

    let only = json!({"room": {"timeline": {"types": ["org.example.*"]}}}).to_string();
    let s = sync_q(&alice, &format!("filter={}", enc(&only))).await;
    assert_eq!(
        ids(&timeline(&s, &room)),
        vec![ping1.clone(), ping2.clone()]
    );

    let not =
        json!({"room": {"timeline": {"not_types": ["org.example.ping", "m.room.*"]}}}).to_string();
    let s = sync_q(&alice, &format!("filter={}", enc(&not))).await;
    assert!(timeline(&s, &room).is_empty(), "{s}");

    let msgs = json!({"room": {"timeline": {"types": ["m.room.message"]}}}).to_string();
    let s = sync_q(&alice, &format!("filter={}", enc(&msgs))).await;
    assert_eq!(ids(&timeline(&s, &room)), vec![msg]);
}

#[tokio::test]
async fn a_rooms_filter_limits_the_sync_to_the_named_rooms() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let a = alice.create_room(json!({"name": "A"})).await;
    let b = alice.create_room(json!({"name": "B"})).await;

    let all = alice.sync(None, 0).await;
    assert!(all["rooms"]["join"].get(&a).is_some() && all["rooms"]["join"].get(&b).is_some());

    let only_a = json!({"room": {"rooms": [a]}}).to_string();
    let s = sync_q(&alice, &format!("filter={}", enc(&only_a))).await;
    let joined: Vec<&String> = s["rooms"]["join"]
        .as_object()
        .expect("join")
        .keys()
        .collect();
    assert_eq!(joined, vec![&a]);

    let not_a = json!({"room": {"not_rooms": [a]}}).to_string();
    let s = sync_q(&alice, &format!("filter={}", enc(&not_a))).await;
    let joined: Vec<&String> = s["rooms"]["join"]
        .as_object()
        .expect("join")
        .keys()
        .collect();
    assert_eq!(joined, vec![&b]);

    alice
        .get(&format!("/sync?filter={}", enc("{not json")))
        .await
        .err(400, "M_NOT_JSON");
}

#[tokio::test]
async fn an_ephemeral_types_filter_selects_typing_and_receipts() {
    let server = TestServer::start().await;
    let (alice, bob, room) = two_in_a_room(&server).await;
    let event = bob.send_text(&room, "seen").await;
    alice
        .put(
            &format!("/rooms/{}/typing/{}", enc(&room), enc(&alice.user_id)),
            json!({"typing": true, "timeout": 60_000}),
        )
        .await
        .ok();
    alice
        .post(
            &format!("/rooms/{}/receipt/m.read/{}", enc(&room), enc(&event)),
            json!({}),
        )
        .await
        .ok();

    let s = bob.sync(None, 0).await;
    assert!(ephemeral(&s, &room, "m.typing").is_some(), "{s}");
    assert!(ephemeral(&s, &room, "m.receipt").is_some(), "{s}");

    let no_typing = json!({"room": {"ephemeral": {"not_types": ["m.typing"]}}}).to_string();
    let s = sync_q(&bob, &format!("filter={}", enc(&no_typing))).await;
    assert!(ephemeral(&s, &room, "m.typing").is_none(), "{s}");
    assert!(ephemeral(&s, &room, "m.receipt").is_some(), "{s}");

    let only_typing = json!({"room": {"ephemeral": {"types": ["m.typing"]}}}).to_string();
    let s = sync_q(&bob, &format!("filter={}", enc(&only_typing))).await;
    assert!(ephemeral(&s, &room, "m.typing").is_some(), "{s}");
    assert!(ephemeral(&s, &room, "m.receipt").is_none(), "{s}");
}

// ---------------------------------------------------------------------------------------------
// Join, invite and leave sections
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_invite_shows_up_in_rooms_invite_with_its_invite_state() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice.create_room(json!({"name": "Secret plans"})).await;
    let since = next_batch(&bob.sync(None, 0).await);

    alice.invite(&room, &bob.user_id).await.ok();

    let check = |s: &Value| {
        let state = s["rooms"]["invite"][&room]["invite_state"]["events"]
            .as_array()
            .unwrap_or_else(|| panic!("no invite for {room}: {s}"))
            .clone();
        let find = |kind: &str, key: &str| {
            state
                .iter()
                .find(|e| e["type"] == kind && e["state_key"] == key)
                .cloned()
                .unwrap_or_else(|| panic!("invite_state lacks {kind}/{key}: {state:?}"))
        };
        assert_eq!(find("m.room.name", "")["content"]["name"], "Secret plans");
        assert_eq!(find("m.room.create", "")["sender"], "@alice:localhost");
        let invite = find("m.room.member", "@bob:localhost");
        assert_eq!(invite["content"]["membership"], "invite");
        assert_eq!(invite["sender"], "@alice:localhost");
        assert!(s["rooms"]["join"].get(&room).is_none());
    };
    let inc = bob.sync(Some(&since), 5_000).await;
    check(&inc);
    check(&bob.sync(None, 0).await);

    bob.join(&room).await.ok();
    let after = bob.sync(Some(&next_batch(&inc)), 0).await;
    assert!(after["rooms"]["invite"].get(&room).is_none(), "{after}");
    assert!(after["rooms"]["join"].get(&room).is_some(), "{after}");
}

#[tokio::test]
async fn after_leaving_the_room_shows_in_rooms_leave_with_the_leave_event() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice.create_room(json!({"preset": "public_chat"})).await;
    bob.join(&room).await.ok();
    let since = next_batch(&bob.sync(None, 0).await);

    let before = alice.send_text(&room, "before you go").await;
    bob.post(&format!("/rooms/{}/leave", enc(&room)), json!({}))
        .await
        .ok();
    let after = alice.send_text(&room, "after you left").await;

    let s = bob.sync(Some(&since), 0).await;
    assert!(s["rooms"]["join"].get(&room).is_none(), "{s}");
    let left = s["rooms"]["leave"][&room]["timeline"]["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no leave section: {s}"));
    let last = left.last().expect("leave timeline has events");
    assert_eq!(last["type"], "m.room.member");
    assert_eq!(last["state_key"], "@bob:localhost");
    assert_eq!(last["content"]["membership"], "leave");
    assert!(left.iter().any(|e| e["event_id"] == before.as_str()));
    assert!(
        left.iter().all(|e| e["event_id"] != after.as_str()),
        "events after the leave are not shown"
    );

    // The next sync no longer mentions the room; an initial one does only with include_leave.
    let later = bob.sync(Some(&next_batch(&s)), 0).await;
    assert!(room_is_empty(&later, "leave"), "{later}");
    let plain = bob.sync(None, 0).await;
    assert!(plain["rooms"]["leave"].get(&room).is_none());
    let f = json!({"room": {"include_leave": true}}).to_string();
    let with = sync_q(&bob, &format!("filter={}", enc(&f))).await;
    assert!(with["rooms"]["leave"].get(&room).is_some(), "{with}");
}

#[tokio::test]
async fn a_rejected_invite_shows_in_rooms_leave_without_the_room_history() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice.create_room(json!({"name": "Members only"})).await;
    alice.send_text(&room, "before the invite").await;
    let since = next_batch(&bob.sync(None, 0).await);
    alice.invite(&room, &bob.user_id).await.ok();
    alice.send_text(&room, "while bob is invited").await;
    bob.post(&format!("/rooms/{}/leave", enc(&room)), json!({}))
        .await
        .ok();

    let s = bob.sync(Some(&since), 0).await;
    let left = s["rooms"]["leave"][&room]["timeline"]["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no leave section: {s}"));
    assert!(
        bodies(left).is_empty(),
        "never joined, reads nothing: {left:?}"
    );
    let last = left.last().expect("the leave event");
    assert_eq!(last["state_key"], "@bob:localhost");
    assert_eq!(last["content"]["membership"], "leave");
    assert!(room_is_empty(&s, "invite"), "{s}");

    bob.get(&format!("/rooms/{}/messages?dir=b&limit=50", enc(&room)))
        .await
        .err(403, "M_FORBIDDEN");
}

// ---------------------------------------------------------------------------------------------
// Typing, receipts, account data
// ---------------------------------------------------------------------------------------------

async fn two_in_a_room(server: &TestServer) -> (Client, Client, String) {
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice.create_room(json!({"preset": "public_chat"})).await;
    bob.join(&room).await.ok();
    (alice, bob, room)
}

fn typing_users(sync: &Value, room: &str) -> Option<Vec<String>> {
    ephemeral(sync, room, "m.typing").map(|e| {
        e["content"]["user_ids"]
            .as_array()
            .expect("user_ids")
            .iter()
            .map(|u| u.as_str().expect("user id").to_string())
            .collect()
    })
}

#[tokio::test]
async fn typing_appears_for_the_other_member_and_disappears_when_stopped() {
    let server = TestServer::start().await;
    let (alice, bob, room) = two_in_a_room(&server).await;
    let since = next_batch(&bob.sync(None, 0).await);
    let path = format!("/rooms/{}/typing/{}", enc(&room), enc(&alice.user_id));

    alice
        .put(&path, json!({"typing": true, "timeout": 30_000}))
        .await
        .ok();
    let s = sync_until(&bob, &since, |s| typing_users(s, &room).is_some()).await;
    assert_eq!(typing_users(&s, &room), Some(vec![alice.user_id.clone()]));

    alice.put(&path, json!({"typing": false})).await.ok();
    let s = sync_until(&bob, &next_batch(&s), |s| typing_users(s, &room).is_some()).await;
    assert_eq!(typing_users(&s, &room), Some(vec![]));

    // Nobody may set another user's typing.
    bob.put(&path, json!({"typing": true}))
        .await
        .err(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn typing_disappears_by_itself_after_its_timeout() {
    let server = TestServer::start().await;
    let (alice, bob, room) = two_in_a_room(&server).await;
    let since = next_batch(&bob.sync(None, 0).await);
    let path = format!("/rooms/{}/typing/{}", enc(&room), enc(&alice.user_id));

    let set_at = Instant::now();
    alice
        .put(&path, json!({"typing": true, "timeout": 1_000}))
        .await
        .ok();
    let s = sync_until(&bob, &since, |s| typing_users(s, &room).is_some()).await;
    assert_eq!(typing_users(&s, &room), Some(vec![alice.user_id.clone()]));
    let s = sync_until(&bob, &next_batch(&s), |s| typing_users(s, &room).is_some()).await;
    assert_eq!(typing_users(&s, &room), Some(vec![]), "the notice expired");
    let took = set_at.elapsed();
    assert!(took >= Duration::from_millis(900), "expired after {took:?}");
    assert!(took < Duration::from_secs(5), "expired after {took:?}");
}

#[tokio::test]
async fn a_read_receipt_appears_as_m_receipt_for_the_other_member() {
    let server = TestServer::start().await;
    let (alice, bob, room) = two_in_a_room(&server).await;
    let event = bob.send_text(&room, "read me").await;
    let since = next_batch(&bob.sync(None, 0).await);

    alice
        .post(
            &format!("/rooms/{}/receipt/m.read/{}", enc(&room), enc(&event)),
            json!({}),
        )
        .await
        .ok();
    let s = sync_until(&bob, &since, |s| ephemeral(s, &room, "m.receipt").is_some()).await;
    let receipt = ephemeral(&s, &room, "m.receipt").expect("m.receipt");
    assert!(
        receipt["content"][&event]["m.read"][&alice.user_id]["ts"].is_i64(),
        "{receipt}"
    );

    // A private receipt is shown to its owner only.
    let since = next_batch(&s);
    let alice_since = next_batch(&alice.sync(None, 0).await);
    let private = alice.send_text(&room, "private").await;
    alice
        .post(
            &format!(
                "/rooms/{}/receipt/m.read.private/{}",
                enc(&room),
                enc(&private)
            ),
            json!({}),
        )
        .await
        .ok();
    let mine = sync_until(&alice, &alice_since, |s| {
        ephemeral(s, &room, "m.receipt").is_some()
    })
    .await;
    let r = ephemeral(&mine, &room, "m.receipt").expect("m.receipt");
    assert!(
        r["content"][&private]["m.read.private"][&alice.user_id]["ts"].is_i64(),
        "{r}"
    );
    let theirs = bob.sync(Some(&since), 0).await;
    if let Some(r) = ephemeral(&theirs, &room, "m.receipt") {
        assert!(r["content"].get(&private).is_none(), "{r}");
    }
    assert!(timeline(&theirs, &room)
        .iter()
        .any(|e| e["event_id"] == private.as_str()));

    // Unknown receipt types and events are refused.
    alice
        .post(
            &format!("/rooms/{}/receipt/m.bogus/{}", enc(&room), enc(&event)),
            json!({}),
        )
        .await
        .err(400, "M_INVALID_PARAM");
    alice
        .post(
            &format!("/rooms/{}/receipt/m.read/{}", enc(&room), enc("$nope")),
            json!({}),
        )
        .await
        .err(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn account_data_global_and_per_room_round_trips_and_shows_up_in_sync() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice.create_room(json!({})).await;
    let uid = enc(&alice.user_id);
    let global = format!("/user/{uid}/account_data/org.example.settings");
    let per_room = format!(
        "/user/{uid}/rooms/{}/account_data/org.example.pinned",
        enc(&room)
    );

    alice.get(&global).await.err(404, "M_NOT_FOUND");
    alice.put(&global, json!({"theme": "dark"})).await.ok();
    alice
        .put(&per_room, json!({"pinned": ["$a", "$b"]}))
        .await
        .ok();
    assert_eq!(alice.get(&global).await.ok(), json!({"theme": "dark"}));
    assert_eq!(
        alice.get(&per_room).await.ok(),
        json!({"pinned": ["$a", "$b"]})
    );
    bob.get(&global).await.err(403, "M_FORBIDDEN");

    let s = alice.sync(None, 0).await;
    assert!(
        s["account_data"]["events"]
            .as_array()
            .expect("account_data")
            .contains(&json!({"type": "org.example.settings", "content": {"theme": "dark"}})),
        "{s}"
    );
    assert!(
        s["rooms"]["join"][&room]["account_data"]["events"]
            .as_array()
            .expect("room account_data")
            .contains(&json!({"type": "org.example.pinned", "content": {"pinned": ["$a", "$b"]}})),
        "{s}"
    );

    let since = next_batch(&s);
    alice.put(&global, json!({"theme": "light"})).await.ok();
    let s = alice.sync(Some(&since), 5_000).await;
    assert_eq!(
        s["account_data"]["events"],
        json!([{"type": "org.example.settings", "content": {"theme": "light"}}])
    );
    assert!(
        s["rooms"]["join"].get(&room).is_none(),
        "room data did not change"
    );

    let since = next_batch(&s);
    alice.put(&per_room, json!({"pinned": []})).await.ok();
    let s = alice.sync(Some(&since), 5_000).await;
    assert_eq!(
        s["rooms"]["join"][&room]["account_data"]["events"],
        json!([{"type": "org.example.pinned", "content": {"pinned": []}}])
    );
    assert_eq!(s["account_data"]["events"], json!([]));
}

// ---------------------------------------------------------------------------------------------
// /messages
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn paging_back_from_prev_batch_walks_all_history_without_gaps_or_duplicates() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({"name": "History"})).await;
    let sent = send_many(&alice, &room, "m", 55).await;

    let s = alice.sync(None, 0).await;
    let t = &s["rooms"]["join"][&room]["timeline"];
    assert_eq!(t["limited"], true);
    let in_sync = ids(&timeline(&s, &room));
    assert_eq!(
        in_sync,
        sent[45..].to_vec(),
        "the sync shows the newest ten"
    );
    let prev = t["prev_batch"].as_str().expect("prev_batch");

    let (older, pages) = walk(&alice, &room, "b", Some(prev), 10, "").await;
    assert!(pages >= 5, "{pages} pages");
    assert_unique(&older);
    let got = bodies(&older);
    let want: Vec<String> = (0..45).rev().map(|i| format!("m{i}")).collect();
    assert_eq!(got, want);
    let older_ids: Vec<String> = older
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .map(|e| e["event_id"].as_str().expect("id").to_string())
        .collect();
    let want_ids: Vec<String> = sent[..45].iter().rev().cloned().collect();
    assert_eq!(older_ids, want_ids);
    for e in &older {
        assert!(!in_sync.contains(&e["event_id"].as_str().expect("id").to_string()));
    }
    assert_eq!(older.last().expect("events")["type"], "m.room.create");
    let ts: Vec<i64> = older
        .iter()
        .map(|e| e["origin_server_ts"].as_i64().expect("ts"))
        .collect();
    assert!(ts.windows(2).all(|w| w[0] >= w[1]), "newest first: {ts:?}");

    // Forwards from the same prev_batch is exactly the sync's timeline.
    let page = messages(&alice, &room, &format!("dir=f&limit=10&from={}", enc(prev))).await;
    let fwd: Vec<String> = page["chunk"]
        .as_array()
        .expect("chunk")
        .iter()
        .map(|e| e["event_id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(fwd, in_sync);

    // The initial sync's state has what its limited timeline lacks.
    let state = s["rooms"]["join"][&room]["state"]["events"]
        .as_array()
        .expect("state");
    assert!(
        state.iter().any(|e| e["type"] == "m.room.create"),
        "{state:?}"
    );
    assert!(
        state.iter().any(|e| e["type"] == "m.room.name"),
        "{state:?}"
    );
}

#[tokio::test]
async fn paging_forward_from_the_start_walks_all_history_in_order() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({})).await;
    let sent = send_many(&alice, &room, "f", 55).await;
    let next = next_batch(&alice.sync(None, 0).await);

    let (forward, pages) = walk(&alice, &room, "f", None, 10, "").await;
    assert!(pages >= 6, "{pages} pages");
    assert_unique(&forward);
    assert_eq!(forward[0]["type"], "m.room.create");
    let got: Vec<String> = forward
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .map(|e| e["event_id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(got, sent);
    assert_eq!(
        bodies(&forward),
        (0..55).map(|i| format!("f{i}")).collect::<Vec<_>>()
    );

    // The same walk backwards from next_batch is the exact reverse.
    let (backward, _) = walk(&alice, &room, "b", Some(&next), 10, "").await;
    let mut reversed: Vec<&str> = backward
        .iter()
        .map(|e| e["event_id"].as_str().expect("id"))
        .collect();
    reversed.reverse();
    let forward_ids: Vec<&str> = forward
        .iter()
        .map(|e| e["event_id"].as_str().expect("id"))
        .collect();
    assert_eq!(reversed, forward_ids);
}

#[tokio::test]
async fn the_to_token_bounds_pagination_in_both_directions() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({})).await;
    let sent = send_many(&alice, &room, "b", 10).await;
    let next = next_batch(&alice.sync(None, 0).await);

    let first = messages(&alice, &room, &format!("dir=b&limit=3&from={}", enc(&next))).await;
    let newest3: Vec<&str> = first["chunk"]
        .as_array()
        .expect("chunk")
        .iter()
        .map(|e| e["event_id"].as_str().expect("id"))
        .collect();
    assert_eq!(newest3, vec![&sent[9], &sent[8], &sent[7]]);
    let end = first["end"].as_str().expect("end");

    let bounded = messages(
        &alice,
        &room,
        &format!("dir=b&limit=50&from={}&to={}", enc(&next), enc(end)),
    )
    .await;
    let got: Vec<&str> = bounded["chunk"]
        .as_array()
        .expect("chunk")
        .iter()
        .map(|e| e["event_id"].as_str().expect("id"))
        .collect();
    assert_eq!(got, newest3, "dir=b stops at `to`");

    let forward = messages(
        &alice,
        &room,
        &format!("dir=f&limit=50&from={}&to={}", enc(end), enc(&next)),
    )
    .await;
    let got: Vec<&str> = forward["chunk"]
        .as_array()
        .expect("chunk")
        .iter()
        .map(|e| e["event_id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        got,
        vec![&sent[7], &sent[8], &sent[9]],
        "dir=f stops at `to`"
    );
}

#[tokio::test]
async fn a_types_filter_on_messages_returns_only_matching_events_across_pages() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({})).await;
    let mut pings = Vec::new();
    for i in 0..12 {
        alice.send_text(&room, &format!("chatter {i}")).await;
        pings.push(
            send(
                &alice,
                &room,
                "org.example.ping",
                &format!("ping{i}"),
                json!({"i": i}),
            )
            .await,
        );
    }
    let filter = json!({"types": ["org.example.ping"]}).to_string();
    let (got, pages) = walk(
        &alice,
        &room,
        "b",
        None,
        5,
        &format!("&filter={}", enc(&filter)),
    )
    .await;
    assert!(pages >= 3, "{pages} pages");
    assert!(
        got.iter().all(|e| e["type"] == "org.example.ping"),
        "{got:?}"
    );
    let got_ids: Vec<String> = got
        .iter()
        .map(|e| e["event_id"].as_str().expect("id").to_string())
        .collect();
    pings.reverse();
    assert_eq!(got_ids, pings);

    let not = json!({"not_types": ["m.room.message", "org.example.ping"]}).to_string();
    let (rest, _) = walk(
        &alice,
        &room,
        "b",
        None,
        50,
        &format!("&filter={}", enc(&not)),
    )
    .await;
    assert!(
        rest.iter()
            .all(|e| e["type"] != "m.room.message" && e["type"] != "org.example.ping"),
        "{rest:?}"
    );
    assert!(rest.iter().any(|e| e["type"] == "m.room.create"));
}

#[tokio::test]
async fn paging_back_from_next_batch_returns_the_newest_event_first() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({})).await;
    let since = next_batch(&alice.sync(None, 0).await);
    let a = alice.send_text(&room, "a").await;
    let b = alice.send_text(&room, "b").await;
    let s = alice.sync(Some(&since), 0).await;
    let next = next_batch(&s);

    let page = messages(&alice, &room, &format!("dir=b&limit=2&from={}", enc(&next))).await;
    assert_eq!(page["start"], next.as_str());
    assert_eq!(page["chunk"][0]["event_id"], b.as_str());
    assert_eq!(page["chunk"][1]["event_id"], a.as_str());
    assert_eq!(page["chunk"][0]["room_id"], room.as_str());

    // The incremental sync's prev_batch leads to what came before its timeline.
    let prev = s["rooms"]["join"][&room]["timeline"]["prev_batch"]
        .as_str()
        .expect("prev_batch");
    let before = messages(&alice, &room, &format!("dir=b&limit=1&from={}", enc(prev))).await;
    assert_ne!(before["chunk"][0]["event_id"], a.as_str());
    assert_ne!(before["chunk"][0]["event_id"], b.as_str());

    // Nothing newer than next_batch, forwards.
    let after = messages(&alice, &room, &format!("dir=f&limit=5&from={}", enc(&next))).await;
    assert_eq!(after["chunk"], json!([]));
    assert!(after.get("end").is_none(), "{after}");
    let c = alice.send_text(&room, "c").await;
    let after = messages(&alice, &room, &format!("dir=f&limit=5&from={}", enc(&next))).await;
    assert_eq!(after["chunk"][0]["event_id"], c.as_str());

    alice
        .get(&format!("/rooms/{}/messages?dir=x", enc(&room)))
        .await
        .err(400, "M_INVALID_PARAM");
    alice
        .get(&format!("/rooms/{}/messages?from=garbage", enc(&room)))
        .await
        .err(400, "M_INVALID_PARAM");
}

// ---------------------------------------------------------------------------------------------
// Transaction ids
// ---------------------------------------------------------------------------------------------

/// How many messages of the room carry `body`, over its whole history.
async fn count_body(c: &Client, room: &str, body: &str) -> usize {
    let (all, _) = walk(c, room, "b", None, 100, "").await;
    all.iter().filter(|e| e["content"]["body"] == body).count()
}

#[tokio::test]
async fn repeating_a_transaction_id_answers_the_same_event_and_stores_one() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({})).await;
    let content = json!({"msgtype": "m.text", "body": "once"});
    let first = send(&alice, &room, "m.room.message", "txn1", content.clone()).await;
    let second = send(&alice, &room, "m.room.message", "txn1", content.clone()).await;
    assert_eq!(first, second);
    assert_eq!(count_body(&alice, &room, "once").await, 1);

    // Another txn id is another event.
    let third = send(&alice, &room, "m.room.message", "txn2", content).await;
    assert_ne!(third, first);
    assert_eq!(count_body(&alice, &room, "once").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_concurrent_sends_with_one_transaction_id_store_one_event() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({})).await;
    let path = format!("/rooms/{}/send/m.room.message/racy", enc(&room));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let c = alice.clone();
        let p = path.clone();
        tasks.spawn(async move {
            c.put(&p, json!({"msgtype": "m.text", "body": "raced"}))
                .await
        });
    }
    let mut event_ids = HashSet::new();
    while let Some(r) = tokio::time::timeout(WAIT, tasks.join_next())
        .await
        .expect("the sends finished")
    {
        let body = r.expect("task").ok();
        event_ids.insert(body["event_id"].as_str().expect("event_id").to_string());
    }
    assert_eq!(event_ids.len(), 1, "{event_ids:?}");
    assert_eq!(count_body(&alice, &room, "raced").await, 1);
}

#[tokio::test]
async fn the_same_transaction_id_from_another_device_makes_a_new_event() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let phone = login(&server, "alice").await;
    assert_ne!(alice.device_id, phone.device_id);
    let room = alice.create_room(json!({})).await;
    let content = json!({"msgtype": "m.text", "body": "twice"});
    let a = send(&alice, &room, "m.room.message", "same", content.clone()).await;
    let b = send(&phone, &room, "m.room.message", "same", content).await;
    assert_ne!(a, b);
    assert_eq!(count_body(&alice, &room, "twice").await, 2);
}

#[tokio::test]
async fn the_transaction_id_is_shown_to_the_sending_device_only() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let phone = login(&server, "alice").await;
    let bob = server.register("bob").await;
    let room = alice.create_room(json!({"preset": "public_chat"})).await;
    bob.join(&room).await.ok();
    let event = send(
        &alice,
        &room,
        "m.room.message",
        "mine-42",
        json!({"msgtype": "m.text", "body": "whose txn"}),
    )
    .await;

    let txn_in_sync = |c: &Client| {
        let c = c.clone();
        let room = room.clone();
        let event = event.clone();
        async move {
            let s = c.sync(None, 0).await;
            let e = timeline(&s, &room)
                .into_iter()
                .find(|e| e["event_id"] == event.as_str())
                .cloned()
                .unwrap_or_else(|| panic!("event not in sync: {s}"));
            e["unsigned"].get("transaction_id").cloned()
        }
    };
    assert_eq!(txn_in_sync(&alice).await, Some(json!("mine-42")));
    assert_eq!(txn_in_sync(&phone).await, None);
    assert_eq!(txn_in_sync(&bob).await, None);

    let path = format!("/rooms/{}/event/{}", enc(&room), enc(&event));
    assert_eq!(
        alice.get(&path).await.ok()["unsigned"]["transaction_id"],
        "mine-42"
    );
    assert!(phone.get(&path).await.ok()["unsigned"]
        .get("transaction_id")
        .is_none());
    let page = messages(&alice, &room, "dir=b&limit=1").await;
    assert_eq!(page["chunk"][0]["unsigned"]["transaction_id"], "mine-42");
    let page = messages(&bob, &room, "dir=b&limit=1").await;
    assert_eq!(page["chunk"][0]["event_id"], event.as_str());
    assert!(page["chunk"][0]["unsigned"].get("transaction_id").is_none());
}

// ---------------------------------------------------------------------------------------------
// The 2015 api/v1 paths
// ---------------------------------------------------------------------------------------------

const SDP: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE audio video\r\n\
a=msid-semantic: WMS lgsCFqt9kN2fVKw5wg3NKqGdATQoltEwOdMS\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 103 104 9 0 8 106 105 13 110 112 113 126\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:EsAw\r\n\
a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y\r\n\
a=fingerprint:sha-256 DA:39:A3:EE:5E:6B:4B:0D:32:55:BF:EF:95:60:18:90:AF:D8:07:09:A1:2B:3C:4D:5E:6F:70:81:92:A3:B4:C5\r\n\
a=setup:actpass\r\n\
a=mid:audio\r\n\
a=sendrecv\r\n\
a=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 100 101 116 117 96\r\n\
c=IN IP4 0.0.0.0\r\n\
a=mid:video\r\n\
a=sendrecv\r\n\
a=rtpmap:100 VP8/90000\r\n\
a=rtcp-fb:100 nack pli\r\n";

/// The stickmen payload as raw text, so that the numbers' spelling is exactly what was sent.
const STICKMEN: &str = r#"{
  "frame": 1337,
  "players": [
    {"id": "stick-1", "name": "Zoë ☃", "pos": [0.5, -12.25, 3.125],
     "limbs": [[0.5, 1.75], [-0.25, 2.5]], "alive": true},
    {"id": "棒人間-2", "name": "Ωmega 🚀", "pos": [-0.5, 12.25, 0.125],
     "limbs": [], "alive": false, "hat": null}
  ],
  "world": {"gravity": -9.81, "scale": 1.0, "wind": {"dx": 0.0625, "dy": -0.001}},
  "tags": ["demo", "unity", "2015"]
}"#;

fn number_texts(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Number(n) => out.push(n.to_string()),
        Value::Array(a) => a.iter().for_each(|i| number_texts(i, out)),
        // Keys in sorted order, so both sides list numbers alike.
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for k in keys {
                number_texts(&m[k], out);
            }
        }
        _ => {}
    }
}

/// POSTs raw JSON text to the v1 send path with the token in the query; answers the reply.
async fn legacy_send(c: &Client, room: &str, kind: &str, body: &str) -> plugboard_tests::Reply {
    let url = format!(
        "{}/_matrix/client/api/v1/rooms/{}/send/{}?access_token={}",
        c.base,
        enc(room),
        enc(kind),
        enc(c.token.as_deref().expect("token"))
    );
    let resp = c
        .http
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .timeout(WAIT)
        .send()
        .await
        .expect("request sent");
    let status = resp.status();
    let bytes = resp.bytes().await.expect("body");
    plugboard_tests::Reply {
        status,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

#[tokio::test]
async fn the_2015_v1_send_path_answers_event_ids_and_keeps_every_payload_intact() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice.create_room(json!({"preset": "public_chat"})).await;
    bob.join(&room).await.ok();

    let payloads: Vec<(&str, String)> = vec![
        (
            "m.room.message",
            json!({"msgtype": "m.text", "body": "Hello from 2015"}).to_string(),
        ),
        (
            "m.call.invite",
            json!({
                "call_id": "c1431005477329",
                "version": 0,
                "lifetime": 60000,
                "offer": {"type": "offer", "sdp": SDP}
            })
            .to_string(),
        ),
        (
            "org.matrix.midi",
            json!({"note": 60, "velocity": 100, "state": "on", "channel": 9,
                   "midi_ts": 1431005482123_i64})
            .to_string(),
        ),
        ("org.matrix.demos.unity.stickmen", STICKMEN.to_string()),
    ];

    let mut sent = Vec::new();
    for (kind, body) in &payloads {
        let reply = legacy_send(&alice, &room, kind, body).await;
        let answer = reply.ok();
        let obj = answer.as_object().expect("an object");
        assert_eq!(obj.len(), 1, "only event_id: {answer}");
        let id = answer["event_id"].as_str().expect("event_id");
        assert!(id.starts_with('$'), "{id}");
        let content: Value = serde_json::from_str(body).expect("payload parses");
        sent.push((kind.to_string(), id.to_string(), content));
    }

    // The parse keeps the spelling of the stickmen numbers, so the comparison below means it.
    let mut want_numbers = Vec::new();
    number_texts(&sent[3].2, &mut want_numbers);
    for n in ["0.5", "-12.25", "3.125", "1.0", "-9.81", "0.0625", "-0.001"] {
        assert!(
            want_numbers.iter().any(|w| w == n),
            "{n} in {want_numbers:?}"
        );
    }

    let s = bob.sync(None, 0).await;
    let tl = timeline(&s, &room);
    let page = messages(&bob, &room, "dir=b&limit=10").await;
    let chunk = page["chunk"].as_array().expect("chunk");
    for (kind, id, content) in &sent {
        for (where_, events) in [("sync", tl.to_vec()), ("messages", chunk.iter().collect())] {
            let e = events
                .iter()
                .find(|e| e["event_id"] == id.as_str())
                .unwrap_or_else(|| panic!("{kind} {id} not in {where_}"));
            assert_eq!(e["type"], kind.as_str());
            assert_eq!(e["sender"], "@alice:localhost");
            assert_eq!(&e["content"], content, "{kind} content in {where_}");
            let (mut got, mut want) = (Vec::new(), Vec::new());
            number_texts(&e["content"], &mut got);
            number_texts(content, &mut want);
            assert_eq!(got, want, "{kind} number spelling in {where_}");
        }
    }

    // Without a token, or with content that is not an object, the path refuses.
    let url = format!(
        "{}/_matrix/client/api/v1/rooms/{}/send/m.room.message",
        alice.base,
        enc(&room)
    );
    let r = alice
        .http
        .post(url)
        .json(&json!({"body": "x"}))
        .timeout(WAIT)
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 401);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["errcode"], "M_MISSING_TOKEN");
    legacy_send(&alice, &room, "m.room.message", "[1, 2]")
        .await
        .err(400, "M_BAD_JSON");
    legacy_send(&alice, &room, "m.room.message", "{nope")
        .await
        .err(400, "M_NOT_JSON");
}

#[tokio::test]
async fn leaving_and_rejoining_does_not_reveal_the_gap_in_an_incremental_sync() {
    let server = TestServer::start().await;
    let owner = server.register("owner").await;
    let alice = server.register("alice").await;
    let room = owner
        .create_room(json!({
            "preset": "public_chat",
            "initial_state": [{"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}}],
        }))
        .await;
    alice.join(&room).await.ok();
    let since = next_batch(&alice.sync(None, 0).await);
    alice
        .post(&format!("/rooms/{}/leave", enc(&room)), json!({}))
        .await
        .ok();
    let secret = owner.send_text(&room, "while alice was away").await;
    alice.join(&room).await.ok();
    let after = owner.send_text(&room, "after alice is back").await;

    let sync = alice.sync(Some(&since), 0).await;
    let seen = ids(&timeline(&sync, &room));
    assert!(seen.contains(&after), "{sync}");
    assert!(!seen.contains(&secret), "the gap leaked: {sync}");
}

#[tokio::test]
async fn a_filter_with_many_wildcards_is_answered_at_once() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({})).await;
    alice.send_text(&room, "hello").await;
    let pattern = format!("{}x", "*".repeat(40));
    let filter = json!({"room": {"timeline": {"types": [pattern]}}}).to_string();
    let sync = alice
        .get(&format!("/sync?filter={}", enc(&filter)))
        .await
        .ok();
    assert!(timeline(&sync, &room).is_empty(), "{sync}");
}
