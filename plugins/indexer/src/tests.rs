//! The plugin through the SDK's native harness: commands, edits, redactions, the web
//! endpoint, bad input, failed calls and what a fresh instance finds in the store.

use plugboard_sdk::prelude::*;
use plugboard_sdk::testing::{EventBuilder, Harness, START_MS};
use serde_json::{json, Value};

use crate::index::Index;
use crate::query;
use crate::search::Reach;
use crate::Indexer;

/// What the host's `visible-events` answers when the searcher sees everything.
fn all_seen(ids: &[String]) -> Result<Vec<String>, Error> {
    Ok(ids.to_vec())
}

const ALICE: &str = "@alice:test";
const BOB: &str = "@bob:test";
const BOT: &str = "@bot:test";

/// The indexer in a room with alice (a server admin, who may see its counts) and bob.
fn harness() -> (Harness<Indexer>, String) {
    let h = Harness::<Indexer>::new(json!({})).unwrap();
    h.set_server_admin(ALICE, true);
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
        .search(&q, &[(room.clone(), Reach::Whole)], 5, &mut all_seen)
        .unwrap();
    assert_eq!(found.total, (0..n).filter(|i| i % 7 == 3).count());
    let q = query::parse("\"message 2000\"", START_MS).unwrap();
    let found = Index::default()
        .search(&q, &[(room.clone(), Reach::Whole)], 5, &mut all_seen)
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
fn a_message_replayed_redacted_is_passed_over_not_counted_malformed() {
    let (mut h, room) = harness();
    let redacted = h.at_now(
        EventBuilder::new(
            "m.room.message",
            json!({"msgtype": "m.text", "body": "gone"}),
        )
        .room(&room)
        .sender(BOB)
        .redacted_by("$redaction"),
    );
    h.event(redacted).unwrap();
    send(
        &mut h,
        &room,
        BOB,
        json!({"msgtype": "m.text", "body": ["no"]}),
    );
    h.message(&room, ALICE, "!index").unwrap();
    let status = last_answer(&h);
    assert!(status.contains("The index holds 0 messages"), "{status}");
    assert!(status.contains("malformed 1"), "{status}");
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
        .search(&q, &[(room.clone(), Reach::Whole)], 5, &mut all_seen)
        .unwrap();
    assert_eq!(found.total, 1);
    assert_eq!(found.hits[0].doc.text, "persistent note 299");
    let q = query::parse("persistent", START_MS).unwrap();
    assert_eq!(
        Index::default()
            .search(&q, &[(room.clone(), Reach::Whole)], 5, &mut all_seen)
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
        index
            .search(&q, &[(room.clone(), Reach::Whole)], 10, &mut all_seen)
            .unwrap();
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

/// An edit of `original` by `sender` to `text`, stamped now, delivered.
fn edit(h: &mut Harness<Indexer>, room: &str, sender: &str, original: &str, text: &str) -> Event {
    let e = h.at_now(edit_of(room, sender, original, text));
    h.event(e.clone()).unwrap();
    e
}

fn edit_of(room: &str, sender: &str, original: &str, text: &str) -> EventBuilder {
    EventBuilder::new(
        "m.room.message",
        json!({
            "msgtype": "m.text", "body": format!("* {text}"),
            "m.new_content": {"msgtype": "m.text", "body": text},
            "m.relates_to": {"rel_type": "m.replace", "event_id": original},
        }),
    )
    .room(room)
    .sender(sender)
}

fn redaction_of(room: &str, sender: &str, target: &str) -> EventBuilder {
    EventBuilder::new("m.room.redaction", json!({"redacts": target}))
        .room(room)
        .sender(sender)
}

fn redact(h: &mut Harness<Indexer>, room: &str, sender: &str, target: &str) {
    let e = h.at_now(redaction_of(room, sender, target));
    h.event(e).unwrap();
}

/// The texts (and event ids) of the hits for `word`, as alice finds them.
fn hits(h: &mut Harness<Indexer>, word: &str) -> Vec<(String, String)> {
    let (status, body) = web(h, Some(ALICE), &format!("q={word}"));
    assert_eq!(status, 200, "{body}");
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["snippet"].as_str().unwrap().replace("**", ""),
                r["event_id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The one hit for `word`: its text and event id.
fn only_hit(h: &mut Harness<Indexer>, word: &str) -> (String, String) {
    let found = hits(h, word);
    assert_eq!(found.len(), 1, "{word}: {found:?}");
    found.into_iter().next().unwrap()
}

fn edit_keys(h: &Harness<Indexer>) -> Vec<String> {
    h.kv_keys()
        .into_iter()
        .filter(|k| k.starts_with("edits/"))
        .collect()
}

#[test]
fn redacting_the_newest_edit_shows_the_edit_before_it_then_the_original() {
    let (mut h, room) = harness();
    let original = h.message(&room, BOB, "see you at the station").unwrap();
    h.advance(1_000).unwrap();
    let first = edit(
        &mut h,
        &room,
        BOB,
        &original.event_id,
        "see you at the harbour",
    );
    h.advance(1_000).unwrap();
    let second = edit(
        &mut h,
        &room,
        BOB,
        &original.event_id,
        "see you at the airport",
    );
    assert_eq!(
        only_hit(&mut h, "airport"),
        ("see you at the airport".into(), original.event_id.clone())
    );
    assert!(hits(&mut h, "harbour").is_empty() && hits(&mut h, "station").is_empty());

    redact(&mut h, &room, BOB, &second.event_id);
    assert!(hits(&mut h, "airport").is_empty());
    assert_eq!(
        only_hit(&mut h, "harbour"),
        ("see you at the harbour".into(), original.event_id.clone())
    );

    redact(&mut h, &room, BOB, &first.event_id);
    assert!(hits(&mut h, "harbour").is_empty());
    assert_eq!(
        only_hit(&mut h, "station"),
        ("see you at the station".into(), original.event_id.clone())
    );
    let (_, body) = web(&mut h, Some(ALICE), "q=station");
    assert_eq!(
        body["results"][0]["origin_server_ts"], original.origin_server_ts,
        "the original's time throughout"
    );
    assert_eq!(Index::default().status().unwrap().docs, 1);
}

#[test]
fn redacting_an_older_edit_leaves_the_newest_shown_and_out_of_later_fallbacks() {
    let (mut h, room) = harness();
    let original = h.message(&room, BOB, "see you at the station").unwrap();
    let first = edit(
        &mut h,
        &room,
        BOB,
        &original.event_id,
        "see you at the harbour",
    );
    h.advance(1_000).unwrap();
    let second = edit(
        &mut h,
        &room,
        BOB,
        &original.event_id,
        "see you at the airport",
    );
    redact(&mut h, &room, BOB, &first.event_id);
    assert_eq!(only_hit(&mut h, "airport").0, "see you at the airport");
    redact(&mut h, &room, BOB, &second.event_id);
    assert!(
        hits(&mut h, "harbour").is_empty(),
        "the older edit is gone too"
    );
    assert_eq!(only_hit(&mut h, "station").0, "see you at the station");
    assert!(
        edit_keys(&h).iter().all(|k| !k.contains(&first.event_id)),
        "{:?}",
        edit_keys(&h)
    );
}

#[test]
fn edits_out_of_order_show_the_newest_by_time_then_by_event_id() {
    let (mut h, room) = harness();
    let original = h.message(&room, BOB, "meet at noon").unwrap();
    let t = original.origin_server_ts;
    let at = |h: &mut Harness<Indexer>, id: &str, ts: u64, text: &str| {
        let e = edit_of(&room, BOB, &original.event_id, text)
            .id(id)
            .ts(ts)
            .build();
        h.event(e).unwrap();
    };
    at(&mut h, "$edit-b", t + 2_000, "meet at two");
    at(&mut h, "$edit-z", t + 1_000, "meet at one");
    assert_eq!(
        only_hit(&mut h, "meet").0,
        "meet at two",
        "an older edit came late"
    );
    at(&mut h, "$edit-a", t + 2_000, "meet at three");
    assert_eq!(
        only_hit(&mut h, "meet").0,
        "meet at two",
        "same time, smaller id"
    );
    at(&mut h, "$edit-c", t + 2_000, "meet at four");
    assert_eq!(
        only_hit(&mut h, "meet").0,
        "meet at four",
        "same time, larger id"
    );
    redact(&mut h, &room, BOB, "$edit-c");
    assert_eq!(only_hit(&mut h, "meet").0, "meet at two");
    redact(&mut h, &room, BOB, "$edit-b");
    assert_eq!(only_hit(&mut h, "meet").0, "meet at three");
}

#[test]
fn the_texts_of_edits_too_old_to_keep_are_erased_with_the_rest() {
    let (mut h, room) = harness();
    let original = h.message(&room, BOB, "see you at the station").unwrap();
    let places = ["harbour", "airport", "pier", "bridge", "tower", "castle"];
    assert!(places.len() > crate::edits::KEEP);
    for (i, place) in places.into_iter().enumerate() {
        h.advance(1_000).unwrap();
        edit(
            &mut h,
            &room,
            BOB,
            &original.event_id,
            &format!("see you at the {place}"),
        );
        if i == 0 {
            // The harbour's text goes on to a stored block; the later ones stay in the log.
            let filler = (0..300)
                .map(|n| {
                    h.at_now(
                        EventBuilder::new(
                            "m.room.message",
                            json!({"msgtype": "m.text", "body": format!("filler {n}")}),
                        )
                        .room(&room)
                        .sender(ALICE),
                    )
                })
                .collect();
            h.transaction(filler).unwrap();
        }
    }
    assert_eq!(only_hit(&mut h, "castle").0, "see you at the castle");
    redact(&mut h, &room, BOB, &original.event_id);
    for key in h.kv_keys() {
        if key.starts_with("doc/") || key.starts_with("wal/") {
            let value = String::from_utf8_lossy(&h.kv(&key).unwrap()).to_string();
            for word in places.iter().chain(&["station"]) {
                assert!(!value.contains(word), "{word} in {key}");
            }
        }
    }
}

#[test]
fn redacting_the_original_removes_it_its_edits_and_their_stored_texts() {
    let (mut h, room) = harness();
    let original = h.message(&room, BOB, "see you at the station").unwrap();
    // Enough messages to flush the original into a stored block before it is edited.
    for chunk in 0..3 {
        let events = (0..100)
            .map(|i| {
                h.at_now(
                    EventBuilder::new(
                        "m.room.message",
                        json!({"msgtype": "m.text", "body": format!("filler {chunk} {i}")}),
                    )
                    .room(&room)
                    .sender(ALICE),
                )
            })
            .collect();
        h.transaction(events).unwrap();
    }
    let first = edit(
        &mut h,
        &room,
        BOB,
        &original.event_id,
        "see you at the harbour",
    );
    h.advance(1_000).unwrap();
    let second = edit(
        &mut h,
        &room,
        BOB,
        &original.event_id,
        "see you at the airport",
    );
    h.advance(1_000).unwrap();
    let third = edit(
        &mut h,
        &room,
        BOB,
        &original.event_id,
        "see you at the pier",
    );
    redact(&mut h, &room, BOB, &third.event_id);
    assert_eq!(only_hit(&mut h, "airport").0, "see you at the airport");
    redact(&mut h, &room, BOB, &original.event_id);
    for word in ["station", "harbour", "airport", "pier"] {
        assert!(hits(&mut h, word).is_empty(), "{word}");
    }
    assert_eq!(edit_keys(&h), Vec::<String>::new());
    // The words stay in the postings until a merge; the texts a hit would show are gone.
    for key in h.kv_keys() {
        if key.starts_with("doc/") || key.starts_with("wal/") {
            let value = String::from_utf8_lossy(&h.kv(&key).unwrap()).to_string();
            for word in ["station", "harbour", "airport", "pier"] {
                assert!(!value.contains(word), "{word} in {key}");
            }
        }
    }
    assert_eq!(Index::default().status().unwrap().docs, 300);

    // Neither a redaction of an edit nor a new edit brings anything back.
    redact(&mut h, &room, BOB, &second.event_id);
    redact(&mut h, &room, BOB, &first.event_id);
    edit(
        &mut h,
        &room,
        BOB,
        &original.event_id,
        "see you at the port",
    );
    for word in ["station", "harbour", "airport", "port"] {
        assert!(hits(&mut h, word).is_empty(), "{word}");
    }
    assert_eq!(Index::default().status().unwrap().docs, 300);
}

#[test]
fn a_redaction_that_comes_before_its_event_keeps_the_event_and_its_edits_out() {
    let (mut h, room) = harness();
    let t = h.now_ms();
    let message = |id: &str, room: &str, body: &str| {
        EventBuilder::new("m.room.message", json!({"msgtype": "m.text", "body": body}))
            .id(id)
            .room(room)
            .sender(BOB)
            .ts(t)
            .build()
    };
    // A replay that hands the redaction over first.
    redact(&mut h, &room, BOB, "$late");
    h.event(message("$late", &room, "the secret plan")).unwrap();
    assert!(hits(&mut h, "secret").is_empty());
    edit(&mut h, &room, BOB, "$late", "the secret plan, edited");
    assert!(hits(&mut h, "secret").is_empty(), "nor does an edit of it");

    // An edit redacted before it comes.
    let original = h.message(&room, BOB, "lunch at noon").unwrap();
    redact(&mut h, &room, BOB, "$late-edit");
    let e = edit_of(&room, BOB, &original.event_id, "lunch at one")
        .id("$late-edit")
        .ts(t + 1)
        .build();
    h.event(e).unwrap();
    assert_eq!(only_hit(&mut h, "lunch").0, "lunch at noon");

    // A redaction in another room does not name this room's events.
    let other = h.room(&[BOB, BOT]);
    redact(&mut h, &other, BOB, "$elsewhere");
    h.event(message("$elsewhere", &room, "dinner at eight"))
        .unwrap();
    assert_eq!(only_hit(&mut h, "dinner").1, "$elsewhere");
    assert_eq!(Index::default().status().unwrap().docs, 2);
}

#[test]
fn edits_by_someone_else_are_ignored_also_when_they_come_before_the_original() {
    let (mut h, room) = harness();
    let t = h.now_ms();
    let message = |id: &str, body: &str, ts: u64| {
        EventBuilder::new("m.room.message", json!({"msgtype": "m.text", "body": body}))
            .id(id)
            .room(&room)
            .sender(BOB)
            .ts(ts)
            .build()
    };
    h.advance(5_000).unwrap();
    edit(&mut h, &room, ALICE, "$bobs", "hijacked words");
    h.event(message("$bobs", "bob's own words", t)).unwrap();
    assert!(hits(&mut h, "hijacked").is_empty());
    assert_eq!(only_hit(&mut h, "words").0, "bob's own words");
    edit(&mut h, &room, ALICE, "$bobs", "hijacked again");
    assert!(hits(&mut h, "hijacked").is_empty());

    // The sender's own edit that came first counts, once, at the original's time.
    let own = edit(&mut h, &room, BOB, "$early", "fixed typo");
    h.event(message("$early", "fixde tpyo", t)).unwrap();
    assert_eq!(only_hit(&mut h, "fixed").1, "$early");
    assert!(hits(&mut h, "fixde").is_empty());
    let (_, body) = web(&mut h, Some(ALICE), "q=fixed");
    assert_eq!(body["results"][0]["origin_server_ts"], t);
    redact(&mut h, &room, BOB, &own.event_id);
    assert_eq!(only_hit(&mut h, "fixde").0, "fixde tpyo");
    assert!(hits(&mut h, "fixed").is_empty());
    assert_eq!(Index::default().status().unwrap().docs, 2);
}

#[test]
fn an_edit_of_an_edit_is_refused() {
    let (mut h, room) = harness();
    let original = h.message(&room, BOB, "first draft").unwrap();
    let e1 = edit(&mut h, &room, BOB, &original.event_id, "second draft");
    edit(&mut h, &room, BOB, &e1.event_id, "third draft");
    assert_eq!(only_hit(&mut h, "draft").0, "second draft");
    let status = h.http(HttpRequest {
        method: "GET".into(),
        path: "/status".into(),
        query: String::new(),
        headers: vec![],
        body: vec![],
        user_id: Some(ALICE.into()),
    });
    let status: Value = serde_json::from_slice(&status.body).unwrap();
    assert_eq!(status["rejected"]["bad_edit"], 1, "{status}");
}

#[test]
fn a_message_edited_often_keeps_its_original_and_its_newest_edits_only() {
    let (mut h, room) = harness();
    h.message(&room, ALICE, "never edited").unwrap();
    let original = h.message(&room, BOB, "count 0").unwrap();
    let mut edits = Vec::new();
    for i in 1..=10 {
        h.advance(1_000).unwrap();
        edits.push(edit(
            &mut h,
            &room,
            BOB,
            &original.event_id,
            &format!("count {i}"),
        ));
    }
    let keep = crate::edits::KEEP;
    // The original's entry and one per kept edit; nothing for the message never edited.
    assert_eq!(edit_keys(&h).len(), 1 + keep, "{:?}", edit_keys(&h));
    assert_eq!(only_hit(&mut h, "count").0, "count 10");
    redact(&mut h, &room, BOB, &edits[9].event_id);
    assert_eq!(only_hit(&mut h, "count").0, "count 9");
    // An edit forgotten is older than those kept: its redaction changes nothing shown.
    redact(&mut h, &room, BOB, &edits[0].event_id);
    assert_eq!(only_hit(&mut h, "count").0, "count 9");
    for e in &edits[10 - keep..9] {
        redact(&mut h, &room, BOB, &e.event_id);
    }
    assert_eq!(
        only_hit(&mut h, "count").0,
        "count 0",
        "with every kept edit redacted, the original's text (not a forgotten edit's)"
    );
    assert_eq!(edit_keys(&h).len(), 1, "{:?}", edit_keys(&h));
}

#[test]
fn edits_and_redactions_delivered_again_or_failing_half_way_change_nothing() {
    let (mut h, room) = harness();
    let original = h.at_now(
        EventBuilder::new(
            "m.room.message",
            json!({"msgtype": "m.text", "body": "see you at the station"}),
        )
        .room(&room)
        .sender(BOB),
    );
    h.advance(1_000).unwrap();
    let first = h.at_now(edit_of(
        &room,
        BOB,
        &original.event_id,
        "see you at the harbour",
    ));
    h.advance(1_000).unwrap();
    let second = h.at_now(edit_of(
        &room,
        BOB,
        &original.event_id,
        "see you at the airport",
    ));
    let gone = h.at_now(redaction_of(&room, BOB, &second.event_id));
    let events = vec![original.clone(), first, second, gone];
    h.transaction(events.clone()).unwrap();
    h.transaction(events).unwrap();
    assert_eq!(only_hit(&mut h, "harbour").1, original.event_id);
    assert!(hits(&mut h, "airport").is_empty());

    let undo = h.at_now(redaction_of(&room, BOB, &original.event_id));
    h.fail_next("kv_delete", Error::unknown("the store is busy"));
    assert!(h.event(undo.clone()).is_err());
    assert_eq!(only_hit(&mut h, "harbour").1, original.event_id);
    h.event(undo).unwrap();
    assert!(hits(&mut h, "harbour").is_empty() && hits(&mut h, "station").is_empty());
    assert_eq!(edit_keys(&h), Vec::<String>::new());
}

/// `user`'s membership in `room` becomes `membership`, by an event delivered now.
fn becomes(h: &mut Harness<Indexer>, room: &str, user: &str, membership: &str) {
    let e = h.at_now(
        EventBuilder::new("m.room.member", json!({ "membership": membership }))
            .room(room)
            .sender(user)
            .state_key(user),
    );
    h.event(e).unwrap();
}

fn in_room(room: &str) -> String {
    format!("room={}", room.replace('!', "%21"))
}

#[test]
fn a_user_kicked_after_the_indexer_left_finds_nothing_from_the_room() {
    let (mut h, room) = harness();
    let mallory = "@mallory:test";
    becomes(&mut h, &room, mallory, "join");
    h.message(&room, ALICE, "launch plans are ready").unwrap();
    becomes(&mut h, &room, BOT, "leave");
    becomes(&mut h, &room, mallory, "leave");
    h.message(&room, ALICE, "launch code is 0000").unwrap();
    let (status, body) = web(
        &mut h,
        Some(mallory),
        &format!("q=launch&{}", in_room(&room)),
    );
    assert_eq!(
        (status, body["errcode"].as_str()),
        (403, Some("M_FORBIDDEN"))
    );
    let (status, body) = web(&mut h, Some(mallory), "q=launch");
    assert_eq!((status, body["count"].clone()), (200, json!(0)), "{body}");
    // The index keeps the room's messages, but the indexer left: it answers nothing from
    // the room, not even to a member.
    let (status, _) = web(&mut h, Some(ALICE), &format!("q=launch&{}", in_room(&room)));
    assert_eq!(status, 403);
    assert_eq!(found(&mut h, ALICE, "q=launch"), Vec::<String>::new());
}

#[test]
fn each_message_is_found_by_the_visibility_in_force_when_it_was_sent() {
    let (mut h, room) = harness();
    let carol = "@carol:test";
    h.message(&room, ALICE, "walrus one").unwrap();
    h.set_state(
        &room,
        "m.room.history_visibility",
        "",
        json!({"history_visibility": "joined"}),
    );
    h.message(&room, ALICE, "walrus two").unwrap();
    becomes(&mut h, &room, carol, "join");
    h.message(&room, ALICE, "walrus three").unwrap();
    let mut seen = found(&mut h, carol, "q=walrus");
    seen.sort();
    assert_eq!(
        seen,
        ["walrus one", "walrus three"],
        "two was sent joined-only"
    );
    assert_eq!(web(&mut h, Some(carol), "q=walrus").1["count"], 2);

    // Away and back: what was said meanwhile stays hidden, the rest is found again.
    becomes(&mut h, &room, carol, "leave");
    h.message(&room, ALICE, "walrus four").unwrap();
    let (status, _) = web(&mut h, Some(carol), &format!("q=walrus&{}", in_room(&room)));
    assert_eq!(status, 403, "gone: nothing from the room");
    becomes(&mut h, &room, carol, "join");
    h.message(&room, ALICE, "walrus five").unwrap();
    let mut seen = found(&mut h, carol, "q=walrus");
    seen.sort();
    assert_eq!(seen, ["walrus five", "walrus one", "walrus three"]);
    assert_eq!(found(&mut h, ALICE, "q=walrus").len(), 5, "alice was there");
    // The same in the room, for `!search`.
    h.message(&room, carol, "!search walrus").unwrap();
    let answer = last_answer(&h);
    assert!(answer.starts_with("3 messages match"), "{answer}");
    assert!(
        !answer.contains("four") && !answer.contains("two"),
        "{answer}"
    );
}

#[test]
fn a_world_readable_room_is_searched_by_anyone_naming_it_and_an_invitee_finds_nothing() {
    let (mut h, room) = harness();
    let open = h.room(&[ALICE, BOT]);
    h.set_state(
        &open,
        "m.room.history_visibility",
        "",
        json!({"history_visibility": "world_readable"}),
    );
    h.message(&open, ALICE, "otters everywhere").unwrap();
    h.message(&room, ALICE, "otters here too").unwrap();
    let eve = "@eve:test";
    assert_eq!(
        found(&mut h, eve, &format!("q=otters&{}", in_room(&open))),
        ["otters everywhere"]
    );
    assert!(
        found(&mut h, eve, "q=otters").is_empty(),
        "only rooms she joined"
    );
    becomes(&mut h, &room, "@dave:test", "invite");
    let (status, _) = web(
        &mut h,
        Some("@dave:test"),
        &format!("q=otters&{}", in_room(&room)),
    );
    assert_eq!(status, 403, "an invite is no membership");
}

#[test]
fn the_counts_of_the_index_are_for_server_admins() {
    let (mut h, room) = harness();
    h.message(&room, BOB, "counted").unwrap();
    let status = |h: &mut Harness<Indexer>, user: &str| {
        let r = h.http(HttpRequest {
            method: "GET".into(),
            path: "/status".into(),
            query: String::new(),
            headers: vec![],
            body: vec![],
            user_id: Some(user.into()),
        });
        (r.status, serde_json::from_slice::<Value>(&r.body).unwrap())
    };
    let (code, body) = status(&mut h, BOB);
    assert_eq!((code, body["errcode"].as_str()), (403, Some("M_FORBIDDEN")));
    let (code, body) = status(&mut h, ALICE);
    assert_eq!((code, body["docs"].clone()), (200, json!(1)), "{body}");
    h.message(&room, BOB, "!index").unwrap();
    assert_eq!(last_answer(&h), "The index's counts are for server admins.");
    h.message(&room, ALICE, "!index").unwrap();
    assert!(last_answer(&h).starts_with("The index holds 1 messages"));
}

#[test]
fn past_the_matches_checked_where_history_is_hidden_in_part_the_count_says_it_is_a_floor() {
    let (mut h, room) = harness();
    let carol = "@carol:test";
    h.set_state(
        &room,
        "m.room.history_visibility",
        "",
        json!({"history_visibility": "joined"}),
    );
    h.message(&room, ALICE, "walrus hidden").unwrap();
    becomes(&mut h, &room, carol, "join");
    let checked = crate::search::MAX_UNSURE;
    for i in 0..checked + 100 {
        h.message(&room, ALICE, &format!("walrus {i}")).unwrap();
    }
    let (_, body) = web(&mut h, Some(carol), "q=walrus&limit=5");
    assert_eq!(body["count"], checked, "the best checked, all of them seen");
    assert_eq!(body["count_exact"], false);
    let (_, body) = web(&mut h, Some(ALICE), "q=walrus&limit=5");
    assert_eq!(
        body["count"],
        checked + 101,
        "alice sees it whole: every match counted"
    );
    assert!(body.get("count_exact").is_none(), "{body}");
    h.message(&room, carol, "!search walrus").unwrap();
    assert!(last_answer(&h).starts_with(&format!("At least {checked} messages match")));
}
