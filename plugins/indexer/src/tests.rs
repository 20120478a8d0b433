//! The plugin through the SDK's native harness: commands, edits, redactions, the web
//! endpoint, bad input, failed calls and what a fresh instance finds in the store.

use plugboard_sdk::prelude::*;
use plugboard_sdk::testing::{EventBuilder, Harness, START_MS};
use serde_json::{json, Value};

use crate::index::Index;
use crate::query;
use crate::Indexer;

const ALICE: &str = "@alice:test";
const BOB: &str = "@bob:test";
const BOT: &str = "@bot:test";

fn harness() -> (Harness<Indexer>, String) {
    let h = Harness::<Indexer>::new(json!({})).unwrap();
    let room = h.room(&[ALICE, BOB, BOT]);
    (h, room)
}

/// The body of the last notice the bot sent.
fn last_answer(h: &Harness<Indexer>) -> String {
    let sent = h.sent();
    let last = sent.iter().rev().find(|s| s.event_type == "m.room.message");
    last.map(|s| s.content["body"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

fn ask(h: &mut Harness<Indexer>, room: &str, query: &str) -> String {
    h.message(room, ALICE, &format!("!search {query}")).unwrap();
    last_answer(h)
}

fn send(h: &mut Harness<Indexer>, room: &str, sender: &str, content: Value) -> Event {
    let e = h.at_now(
        EventBuilder::new("m.room.message", content)
            .room(room)
            .sender(sender),
    );
    h.event(e.clone()).unwrap();
    e
}

fn web(h: &mut Harness<Indexer>, user: Option<&str>, query: &str) -> (u16, Value) {
    let r = h.http(HttpRequest {
        method: "GET".into(),
        path: "/search".into(),
        query: query.into(),
        headers: vec![],
        body: vec![],
        user_id: user.map(str::to_string),
    });
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

#[test]
fn search_answers_the_best_five_with_sender_time_snippet_and_link() {
    let (mut h, room) = harness();
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(
            h.message(&room, BOB, &format!("the fox number {i} ran off"))
                .unwrap(),
        );
    }
    h.message(&room, BOB, "fox fox fox, all foxes and a fox")
        .unwrap();
    let answer = ask(&mut h, &room, "fox");
    assert!(
        answer.starts_with("9 messages match `fox`; the best 5:"),
        "{answer}"
    );
    assert_eq!(answer.lines().count(), 6, "{answer}");
    let first = answer.lines().nth(1).unwrap();
    assert!(
        first.starts_with("1. @bob:test, 2023-11-14 22:13 UTC: **fox** **fox** **fox**"),
        "{first}"
    );
    assert!(
        answer.contains(&format!("https://matrix.to/#/{room}/{}", ids[7].event_id))
            || answer.contains("https://matrix.to/#/"),
        "{answer}"
    );
    let sent = h.sent();
    let reply = sent.last().unwrap();
    assert_eq!(reply.content["msgtype"], "m.notice");
    assert!(reply.content["formatted_body"]
        .as_str()
        .unwrap()
        .contains("<strong>fox</strong>"));
    assert!(reply.content["m.relates_to"]["m.in_reply_to"]["event_id"].is_string());
}

#[test]
fn words_are_all_needed_phrases_keep_their_order_and_filters_narrow() {
    let (mut h, room) = harness();
    h.message(&room, ALICE, "The quick brown fox").unwrap();
    h.advance(2 * 86_400_000).unwrap();
    h.message(&room, BOB, "a brown and quick dog").unwrap();
    assert!(ask(&mut h, &room, "quick brown").starts_with("2 messages"));
    assert!(ask(&mut h, &room, "quick cat").starts_with("No messages here match"));
    let phrase = ask(&mut h, &room, "\"quick brown\"");
    assert!(
        phrase.starts_with("1 message matches") && phrase.contains("**quick** **brown**"),
        "{phrase}"
    );
    let from = ask(&mut h, &room, "brown from:@bob");
    assert!(
        from.starts_with("1 message") && from.contains("@bob:test"),
        "{from}"
    );
    let before = ask(&mut h, &room, "brown before:2023-11-15");
    assert!(
        before.starts_with("1 message") && before.contains("fox"),
        "{before}"
    );
    let after = ask(&mut h, &room, "brown after:2023-11-15");
    assert!(
        after.starts_with("1 message") && after.contains("dog"),
        "{after}"
    );
    let recent = ask(&mut h, &room, "after:1d");
    assert!(
        recent.contains("dog") && !recent.contains("fox"),
        "{recent}"
    );
}

#[test]
fn a_room_is_answered_only_with_its_own_messages() {
    let (mut h, room) = harness();
    let other = h.room(&[BOB, BOT]);
    h.message(&other, BOB, "secret plans").unwrap();
    h.message(&room, BOB, "public plans").unwrap();
    let answer = ask(&mut h, &room, "plans");
    assert!(
        answer.contains("public") && !answer.contains("secret"),
        "{answer}"
    );
}

#[test]
fn an_edit_replaces_the_text_and_a_redaction_removes_it() {
    let (mut h, room) = harness();
    let original = h.message(&room, BOB, "see you at the station").unwrap();
    send(
        &mut h,
        &room,
        BOB,
        json!({
            "msgtype": "m.text", "body": "* see you at the harbour",
            "m.new_content": {"msgtype": "m.text", "body": "see you at the harbour"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": original.event_id},
        }),
    );
    assert!(ask(&mut h, &room, "station").starts_with("No messages"));
    let edited = ask(&mut h, &room, "harbour");
    assert!(
        edited.starts_with("1 message") && edited.contains(&original.event_id),
        "{edited}"
    );
    // Someone else's "edit" changes nothing.
    send(
        &mut h,
        &room,
        ALICE,
        json!({
            "msgtype": "m.text", "body": "* hijacked",
            "m.new_content": {"msgtype": "m.text", "body": "hijacked"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": original.event_id},
        }),
    );
    assert!(ask(&mut h, &room, "hijacked").starts_with("No messages"));
    assert!(ask(&mut h, &room, "harbour").starts_with("1 message"));
    let redaction = h.at_now(
        EventBuilder::new("m.room.redaction", json!({"redacts": original.event_id}))
            .room(&room)
            .sender(BOB),
    );
    h.event(redaction).unwrap();
    assert!(ask(&mut h, &room, "harbour").starts_with("No messages"));
    // An edit after the redaction does not bring the text back.
    send(
        &mut h,
        &room,
        BOB,
        json!({
            "msgtype": "m.text", "body": "* back again",
            "m.new_content": {"msgtype": "m.text", "body": "back again"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": original.event_id},
        }),
    );
    assert!(ask(&mut h, &room, "back").starts_with("No messages"));
    let status = h.http(HttpRequest {
        method: "GET".into(),
        path: "/status".into(),
        query: String::new(),
        headers: vec![],
        body: vec![],
        user_id: Some(ALICE.into()),
    });
    let status: Value = serde_json::from_slice(&status.body).unwrap();
    assert_eq!(status["rejected"]["foreign_edit"], 1, "{status}");
}

#[test]
fn a_transaction_delivered_again_is_not_indexed_twice() {
    let (mut h, room) = harness();
    let events: Vec<Event> = (0..3)
        .map(|i| {
            h.at_now(
                EventBuilder::new(
                    "m.room.message",
                    json!({"msgtype": "m.text", "body": format!("again {i}")}),
                )
                .room(&room)
                .sender(BOB),
            )
        })
        .collect();
    h.transaction(events.clone()).unwrap();
    h.transaction(events).unwrap();
    assert!(ask(&mut h, &room, "again").starts_with("3 messages"));
}

#[test]
fn a_failed_call_leaves_nothing_behind_and_its_retry_indexes_everything() {
    let (mut h, room) = harness();
    h.message(&room, BOB, "before the failure").unwrap();
    let mut events: Vec<Event> = (0..2)
        .map(|i| {
            h.at_now(
                EventBuilder::new(
                    "m.room.message",
                    json!({"msgtype": "m.text", "body": format!("during {i}")}),
                )
                .room(&room)
                .sender(BOB),
            )
        })
        .collect();
    events.push(
        h.at_now(
            EventBuilder::new(
                "m.room.message",
                json!({"msgtype": "m.text", "body": "!index"}),
            )
            .room(&room)
            .sender(ALICE),
        ),
    );
    // The third event fails after two messages went into the log: the transaction is
    // rolled back, and the plugin's in-memory log with it.
    h.fail_next("joined_rooms", Error::unknown("the server is busy"));
    assert!(h.transaction(events.clone()).is_err());
    h.transaction(events).unwrap();
    assert!(
        ask(&mut h, &room, "during").starts_with("2 messages"),
        "{}",
        last_answer(&h)
    );
    assert!(ask(&mut h, &room, "before").starts_with("1 message"));
}

#[test]
fn thousands_of_messages_flush_into_segments_merge_and_stay_found() {
    let (mut h, room) = harness();
    let n = 256 * 9 + 17;
    for chunk in 0..(n / 100 + 1) {
        let events: Vec<Event> = (chunk * 100..((chunk + 1) * 100).min(n))
            .map(|i| {
                h.at_now(EventBuilder::new(
                "m.room.message",
                json!({"msgtype": "m.text", "body": format!("message {i} word{} common", i % 7)}),
            ).room(&room).sender(BOB))
            })
            .collect();
        h.transaction(events).unwrap();
    }
    let before = Index::default().status().unwrap();
    assert_eq!(before.docs, n as u64);
    assert!(before.segments >= 9, "{before:?}");
    assert!(h.timers().iter().any(|t| t.0 == "compact"));
    // What the compaction timer runs (the harness's `advance` cannot fire timers: see the
    // report on the SDK).
    while Index::default().compact().unwrap() {}
    let after = Index::default().status().unwrap();
    assert!(after.segments < before.segments, "{before:?} {after:?}");
    assert_eq!(after.docs, n as u64);
    assert_eq!(after.in_log, 17);
    let q = query::parse("word3 common", START_MS).unwrap();
    let found = Index::default()
        .search(&q, &[(room.clone(), 0)], 5)
        .unwrap();
    assert_eq!(found.total, (0..n).filter(|i| i % 7 == 3).count());
    let q = query::parse("\"message 2000\"", START_MS).unwrap();
    let found = Index::default()
        .search(&q, &[(room.clone(), 0)], 5)
        .unwrap();
    assert_eq!(found.total, 1);
    assert_eq!(found.hits[0].doc.text, "message 2000 word5 common");
}

#[test]
fn the_web_endpoint_answers_members_only() {
    let (mut h, room) = harness();
    let elsewhere = h.room(&["@carol:test", BOT]);
    h.message(&room, BOB, "lunch at noon").unwrap();
    h.message(&elsewhere, "@carol:test", "lunch is cancelled")
        .unwrap();
    let (status, body) = web(&mut h, None, "q=lunch");
    assert_eq!(
        (status, body["errcode"].as_str()),
        (401, Some("M_MISSING_TOKEN"))
    );
    let (status, body) = web(&mut h, Some(ALICE), "q=lunch");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["count"], 1);
    let hit = &body["results"][0];
    assert_eq!(hit["room_id"], room.as_str());
    assert_eq!(hit["sender"], BOB);
    assert_eq!(hit["snippet"], "**lunch** at noon");
    assert!(hit["score"].as_f64().unwrap() > 0.0);
    assert!(hit["event_id"].as_str().unwrap().starts_with('$'));
    let (status, _) = web(
        &mut h,
        Some(ALICE),
        &format!("q=lunch&room={}", elsewhere.replace('!', "%21")),
    );
    assert_eq!(status, 403);
    let (status, body) = web(&mut h, Some("@carol:test"), "q=lunch&limit=1");
    assert_eq!((status, body["count"].clone()), (200, json!(1)));
    assert_eq!(body["results"][0]["room_id"], elsewhere.as_str());
    for bad in [
        "q=",
        "q=lunch&limit=0",
        "q=lunch&limit=x",
        "q=lunch&room=nope",
        "room=x",
    ] {
        let (status, body) = web(&mut h, Some(ALICE), bad);
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

#[test]
fn bad_input_is_counted_and_answered_never_fatal() {
    let (mut h, room) = harness();
    send(&mut h, &room, BOB, json!({"msgtype": "m.text", "body": 42}));
    send(
        &mut h,
        &room,
        BOB,
        json!({"msgtype": "m.text", "body": "* x",
        "m.relates_to": {"rel_type": "m.replace", "event_id": "$whatever"}}),
    );
    send(
        &mut h,
        &room,
        BOB,
        json!({"msgtype": "m.text", "body": "* x",
        "m.new_content": {"body": ["no"]},
        "m.relates_to": {"rel_type": "m.replace", "event_id": "$whatever"}}),
    );
    let huge = format!("needle {}", "hay ".repeat(10_000));
    h.message(&room, BOB, &huge).unwrap();
    assert!(ask(&mut h, &room, "needle").starts_with("1 message"));
    assert!(ask(&mut h, &room, "x before:someday")
        .contains("Cannot search for that: cannot read the time"));
    assert!(ask(&mut h, &room, "").starts_with("Usage: !search"));
    assert!(ask(&mut h, &room, "???").contains("nothing to search for"));
    h.message(&room, ALICE, "!index").unwrap();
    let status = last_answer(&h);
    assert!(status.contains("The index holds 1 messages"), "{status}");
    assert!(
        status.contains("malformed 1")
            && status.contains("bad_edit 2")
            && status.contains("truncated 1")
            && status.contains("query 2"),
        "{status}"
    );
}

#[test]
fn commands_are_answered_only_in_rooms_the_bot_is_in() {
    let (mut h, _) = harness();
    let outside = h.room(&[ALICE, BOB]);
    h.message(&outside, BOB, "words here").unwrap();
    h.message(&outside, ALICE, "!search words").unwrap();
    h.message(&outside, ALICE, "!help").unwrap();
    assert!(h.sent().is_empty());
    let inside = h.room(&[ALICE, BOT]);
    h.message(&inside, ALICE, "!help").unwrap();
    assert!(last_answer(&h).contains("!search WORDS"));
}

#[test]
fn a_fresh_instance_finds_what_the_store_holds() {
    let (mut h, room) = harness();
    for i in 0..300 {
        h.message(&room, BOB, &format!("persistent note {i}"))
            .unwrap();
    }
    let q = query::parse("\"persistent note 299\"", START_MS).unwrap();
    let found = Index::default()
        .search(&q, &[(room.clone(), 0)], 5)
        .unwrap();
    assert_eq!(found.total, 1);
    assert_eq!(found.hits[0].doc.text, "persistent note 299");
    let q = query::parse("persistent", START_MS).unwrap();
    assert_eq!(
        Index::default()
            .search(&q, &[(room.clone(), 0)], 5)
            .unwrap()
            .total,
        300
    );
}

/// Not a check but a measurement (`cargo test -- --ignored --nocapture measure`): the
/// plugin's own cost of indexing 100,000 varied messages and of a few hundred queries,
/// natively against the harness's store (no wasm, no SQLite).
#[test]
#[ignore]
fn measure_indexing_and_queries_natively() {
    use crate::index::NewDoc;
    use std::time::Instant;
    let (h, room) = harness();
    let n: usize = std::env::var("MEASURE_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    // A Zipf-like vocabulary: word k is picked with weight about 1/k.
    let vocab: Vec<String> = (0..5000).map(|k| format!("w{k}x")).collect();
    let pick = move |r: u64| {
        let u = (r % 1_000_000) as f64 / 1_000_000.0;
        (5000f64.powf(u) as usize).saturating_sub(1).min(4999)
    };
    let texts: Vec<String> = (0..n)
        .map(|_| {
            let len = 5 + (next() % 15) as usize;
            (0..len)
                .map(|_| vocab[pick(next())].as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let mut index = Index::default();
    let started = Instant::now();
    let mut merge_time = std::time::Duration::ZERO;
    for (i, text) in texts.iter().enumerate() {
        let id = format!("$m{i}");
        index
            .add(&NewDoc {
                event_id: &id,
                room: &room,
                sender: if i % 3 == 0 { ALICE } else { BOB },
                ts: START_MS + i as u64 * 1000,
                text,
                source: &id,
            })
            .unwrap();
        if i % 100 == 99 && h.timers().iter().any(|t| t.0 == "compact") {
            let m = Instant::now();
            while index.compact().unwrap() {}
            merge_time += m.elapsed();
        }
    }
    let took = started.elapsed();
    let bytes: usize = h
        .kv_keys()
        .iter()
        .map(|k| k.len() + h.kv(k).map_or(0, |v| v.len()))
        .sum();
    let status = index.status().unwrap();
    let mut samples = Vec::new();
    for _ in 0..300 {
        let words = 1 + (next() % 3) as usize;
        let q: Vec<&str> = (0..words)
            .map(|_| vocab[pick(next()) % 500].as_str())
            .collect();
        let q = query::parse(&q.join(" "), START_MS).unwrap();
        let t = Instant::now();
        index.search(&q, &[(room.clone(), 0)], 10).unwrap();
        samples.push(t.elapsed());
    }
    samples.sort();
    println!(
        "indexed {n} messages in {:.2} s ({:.0}/s, merges {:.2} s); store {:.1} MB ({:.0} B/message); {status:?}; query p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        merge_time.as_secs_f64(),
        bytes as f64 / 1e6,
        bytes as f64 / n as f64,
        samples[samples.len() / 2].as_secs_f64() * 1000.0,
        samples[samples.len() * 99 / 100].as_secs_f64() * 1000.0,
        samples[samples.len() - 1].as_secs_f64() * 1000.0,
    );
}

/// `user` joining `room` now, after `before` (the event's `unsigned.prev_content`).
fn joins(h: &mut Harness<Indexer>, room: &str, user: &str, before: &str) {
    let content = json!({"membership": "join"});
    let raw = json!({"event_id": format!("$join-{user}"), "room_id": room, "sender": user,
        "type": "m.room.member", "state_key": user, "content": content,
        "origin_server_ts": h.now_ms(),
        "unsigned": {"prev_content": {"membership": before}}});
    let e = Event::new(
        format!("$join-{user}"),
        room.into(),
        user.into(),
        "m.room.member".into(),
        Some(user.into()),
        h.now_ms(),
        content,
        raw.to_string(),
        false,
    );
    h.event(e).unwrap();
}

fn found(h: &mut Harness<Indexer>, user: &str, query: &str) -> Vec<String> {
    let (status, body) = web(h, Some(user), query);
    assert_eq!(status, 200, "{body}");
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["snippet"].as_str().unwrap_or_default().replace("**", ""))
        .collect()
}

#[test]
fn where_members_see_history_from_their_join_a_later_member_finds_nothing_earlier() {
    let (mut h, room) = harness();
    h.set_state(
        &room,
        "m.room.history_visibility",
        "",
        json!({"history_visibility": "joined"}),
    );
    send(
        &mut h,
        &room,
        ALICE,
        json!({"msgtype": "m.text", "body": "walrus before"}),
    );
    h.advance(1_000).unwrap();
    joins(&mut h, &room, "@carol:test", "leave");
    h.advance(1_000).unwrap();
    send(
        &mut h,
        &room,
        ALICE,
        json!({"msgtype": "m.text", "body": "walrus after"}),
    );

    let carol = found(&mut h, "@carol:test", "q=walrus");
    assert_eq!(carol.len(), 1, "{carol:?}");
    assert!(carol[0].contains("walrus after"));
    assert_eq!(
        found(&mut h, ALICE, "q=walrus").len(),
        2,
        "alice was there all along"
    );

    // A new display name is no new join.
    h.advance(1_000).unwrap();
    joins(&mut h, &room, "@carol:test", "join");
    assert_eq!(found(&mut h, "@carol:test", "q=walrus").len(), 1);
}

#[test]
fn where_history_is_shared_a_later_member_finds_it_all() {
    let (mut h, room) = harness();
    send(
        &mut h,
        &room,
        ALICE,
        json!({"msgtype": "m.text", "body": "walrus before"}),
    );
    h.advance(1_000).unwrap();
    joins(&mut h, &room, "@carol:test", "invite");
    assert_eq!(found(&mut h, "@carol:test", "q=walrus").len(), 1);
}
