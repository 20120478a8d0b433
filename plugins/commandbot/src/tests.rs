//! The bot's behaviour through the SDK's native harness.

use super::*;
use plugboard_sdk::testing::{invite, EventBuilder, Harness, START_MS};
use serde_json::{json, Value};

fn bot() -> Harness<CommandBot> {
    Harness::<CommandBot>::new(json!({})).unwrap()
}

fn bodies(h: &Harness<CommandBot>) -> Vec<String> {
    h.sent()
        .iter()
        .filter(|s| s.event_type == "m.room.message")
        .map(|s| s.content["body"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn member(room: &str, user: &str, content: Value, unsigned: Value) -> Event {
    // Each event its own id, as a server gives: the harness applies an id it has seen once.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let id = format!(
        "$m{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let raw = json!({"event_id": id, "room_id": room, "sender": user, "type": "m.room.member",
        "state_key": user, "content": content, "origin_server_ts": START_MS,
        "unsigned": unsigned});
    Event::new(
        id,
        room.into(),
        user.into(),
        "m.room.member".into(),
        Some(user.into()),
        START_MS,
        content,
        raw.to_string(),
        false,
    )
}

#[test]
fn help_lists_every_command_with_the_configured_prefix() {
    let mut h = Harness::<CommandBot>::new(json!({"prefix": "?"})).unwrap();
    let room = h.room(&["@alice:test", "@bot:test"]);
    h.message(&room, "@alice:test", "?help").unwrap();
    let help = &bodies(&h)[0];
    for line in [
        "?echo TEXT",
        "?ping",
        "?roll NdM[+K]",
        "?remind IN TEXT",
        "?welcome",
    ] {
        assert!(help.contains(line), "{line} missing from {help}");
    }
    h.message(&room, "@alice:test", "!help").unwrap();
    assert_eq!(
        bodies(&h).len(),
        1,
        "the default prefix is not the configured one"
    );
}

#[test]
fn a_blank_or_long_prefix_keeps_the_bot_from_starting() {
    assert!(Harness::<CommandBot>::new(json!({"prefix": " "})).is_err());
    assert!(Harness::<CommandBot>::new(json!({"prefix": "x".repeat(17)})).is_err());
}

#[test]
fn echo_answers_a_notice_in_reply_and_asks_when_empty() {
    let mut h = bot();
    let room = h.room(&["@alice:test", "@bot:test"]);
    let asked = h
        .message(&room, "@alice:test", "!echo hello  there")
        .unwrap();
    let sent = h.take_sent();
    assert_eq!(sent[0].content["msgtype"], "m.notice");
    assert_eq!(sent[0].content["body"], "hello  there");
    assert_eq!(
        sent[0].content["m.relates_to"]["m.in_reply_to"]["event_id"],
        asked.event_id.as_str()
    );
    h.message(&room, "@alice:test", "!echo").unwrap();
    assert!(bodies(&h)[0].contains("Write `!echo TEXT`"));
}

#[test]
fn ping_measures_from_the_message_to_the_reply() {
    let mut h = bot();
    let room = h.room(&["@alice:test", "@bot:test"]);
    let sent_at = h.now_ms() - 250;
    let ping = EventBuilder::new(
        "m.room.message",
        json!({"msgtype": "m.text", "body": "!ping"}),
    )
    .room(&room)
    .sender("@alice:test")
    .id("$ping")
    .ts(sent_at)
    .build();
    h.event(ping).unwrap();
    assert_eq!(bodies(&h), vec!["pong (250 ms)"]);
}

#[test]
fn roll_adds_up_dice_within_their_faces() {
    let mut h = bot();
    let room = h.room(&["@alice:test", "@bot:test"]);
    for _ in 0..50 {
        h.message(&room, "@alice:test", "!roll 3d6+2").unwrap();
        let body = h.take_sent()[0].content["body"]
            .as_str()
            .unwrap()
            .to_string();
        let (spec, sum) = body.split_once(": ").unwrap();
        assert_eq!(spec, "3d6+2");
        let (terms, total) = sum.split_once(" = ").unwrap();
        let terms: Vec<i64> = terms.split(" + ").map(|t| t.parse().unwrap()).collect();
        assert_eq!(terms.len(), 4);
        assert!(terms[..3].iter().all(|d| (1..=6).contains(d)), "{body}");
        assert_eq!(terms[3], 2);
        assert_eq!(terms.iter().sum::<i64>(), total.parse::<i64>().unwrap());
    }
}

#[test]
fn roll_explains_what_it_cannot_roll() {
    let mut h = bot();
    let room = h.room(&["@alice:test", "@bot:test"]);
    h.message(&room, "@alice:test", "!roll 1000d6").unwrap();
    h.message(&room, "@alice:test", "!roll banana").unwrap();
    let said = bodies(&h);
    assert!(said[0].starts_with("Cannot roll that: roll between 1 and 100 dice"));
    assert!(said[1].contains("is not dice"));
}

#[test]
fn a_reminder_fires_after_its_delay_as_a_mention_in_reply() {
    let mut h = bot();
    let room = h.room(&["@alice:test", "@bot:test"]);
    let asked = h
        .message(&room, "@alice:test", "!remind 10m stand up")
        .unwrap();
    assert_eq!(bodies(&h), vec!["I will remind you in 10m."]);
    assert_eq!(h.timers().len(), 1);
    h.take_sent();
    assert_eq!(h.advance(9 * 60 * 1000).unwrap(), 0);
    assert_eq!(h.advance(60 * 1000).unwrap(), 1);
    let sent = h.take_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].room, room);
    assert_eq!(
        sent[0].content["body"],
        "@alice:test: ⏰ Reminder: stand up"
    );
    assert_eq!(sent[0].content["m.mentions"]["user_ids"][0], "@alice:test");
    assert_eq!(
        sent[0].content["m.relates_to"]["m.in_reply_to"]["event_id"],
        asked.event_id.as_str()
    );
    assert!(h.timers().is_empty());
    assert!(h.kv(&remind::pending_key(&room)).is_none());
    assert!(h.kv(remind::PENDING_ALL).is_none());
}

#[test]
fn a_failed_reminder_stays_and_is_posted_once_it_can_be() {
    let mut h = bot();
    let room = h.room(&["@alice:test", "@bot:test"]);
    h.message(&room, "@alice:test", "!remind 1m tea").unwrap();
    h.take_sent();
    h.fail_next("send_event", Error::unknown("the database is away"));
    assert!(h.advance(60_000).is_err());
    assert_eq!(h.timers().len(), 1, "the timer stays for a retry");
    assert_eq!(h.kv_json(&remind::pending_key(&room)), Some(json!(1)));
    assert_eq!(h.advance(1).unwrap(), 1);
    assert_eq!(bodies(&h), vec!["@alice:test: ⏰ Reminder: tea"]);
}

#[test]
fn bad_reminders_are_answered_and_set_nothing() {
    let mut h = bot();
    let room = h.room(&["@alice:test", "@bot:test"]);
    for asked in [
        "!remind",
        "!remind 10m",
        "!remind soon tea",
        "!remind 2y tea",
        &format!("!remind 1m {}", "x".repeat(1001)),
    ] {
        h.message(&room, "@alice:test", asked).unwrap();
    }
    let said = bodies(&h);
    assert_eq!(said.len(), 5);
    assert!(said[0].starts_with("Write `!remind IN TEXT`"));
    assert!(said[1].starts_with("Write `!remind IN TEXT`"));
    assert!(said[2].contains("is not a duration"));
    assert!(said[3].contains("is not a duration"));
    assert!(said[4].contains("too long"));
    assert!(h.timers().is_empty());
}

#[test]
fn a_room_keeps_at_most_a_hundred_reminders_waiting() {
    let mut h = bot();
    let room = h.room(&["@alice:test", "@bot:test"]);
    for i in 0..=remind::MAX_PENDING_PER_ROOM {
        h.message(&room, "@alice:test", &format!("!remind 1h note {i}"))
            .unwrap();
    }
    assert_eq!(h.timers().len() as u64, remind::MAX_PENDING_PER_ROOM);
    assert!(bodies(&h).last().unwrap().contains("100 reminders waiting"));
    h.advance(3_600_000).unwrap();
    h.take_sent();
    h.message(&room, "@alice:test", "!remind 1h again").unwrap();
    assert_eq!(bodies(&h), vec!["I will remind you in 1h."]);
}

#[test]
fn a_malformed_reminder_payload_is_counted_and_dropped() {
    let mut h = bot();
    let room = h.room(&["@alice:test", "@bot:test"]);
    h.message(&room, "@alice:test", "!remind 1m x").unwrap();
    h.take_sent();
    timers::set_timer("remind/$forged", 0, "{not json").unwrap();
    h.advance(60_000).unwrap();
    assert_eq!(h.kv_json(MALFORMED), Some(json!(1)));
    assert_eq!(bodies(&h).len(), 1, "the good reminder still fires");
}

#[test]
fn welcome_is_set_by_those_who_may_change_state_and_greets_arrivals_once() {
    let mut h = bot();
    // The first member (alice) has power 100; bob has the default 0.
    let room = h.room(&["@alice:test", "@bob:test", "@bot:test"]);
    h.message(&room, "@bob:test", "!welcome on Hi {name}!")
        .unwrap();
    assert!(bodies(&h)[0].starts_with("Only someone who may change"));
    h.take_sent();
    h.message(&room, "@alice:test", "!welcome on Hi {name}!")
        .unwrap();
    h.take_sent();

    h.event(member(
        &room,
        "@carol:test",
        json!({"membership": "join", "displayname": "Carol"}),
        json!({"prev_content": {"membership": "invite"}}),
    ))
    .unwrap();
    let sent = h.take_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].content["body"], "@carol:test: Hi Carol!");
    assert_eq!(sent[0].content["msgtype"], "m.notice");
    assert_eq!(sent[0].content["m.mentions"]["user_ids"][0], "@carol:test");

    // A new display name is a join after a join: no second greeting.
    h.event(member(
        &room,
        "@carol:test",
        json!({"membership": "join", "displayname": "Caroline"}),
        json!({"prev_content": {"membership": "join", "displayname": "Carol"}}),
    ))
    .unwrap();
    assert!(h.take_sent().is_empty());

    h.message(&room, "@alice:test", "!welcome off").unwrap();
    h.take_sent();
    h.event(member(
        &room,
        "@dave:test",
        json!({"membership": "join"}),
        json!({}),
    ))
    .unwrap();
    assert!(h.take_sent().is_empty());
}

#[test]
fn joins_when_invited_unless_invite_from_says_otherwise() {
    let mut h = bot();
    let room = h.room(&["@alice:test"]);
    h.event(invite(&room, "@alice:test", "@bot:test")).unwrap();
    assert_eq!(h.members(&room)["@bot:test"], "join");

    let mut h = Harness::<CommandBot>::new(json!({"invite_from": ["@*:corp"]})).unwrap();
    let room = h.room(&["@alice:test"]);
    h.event(invite(&room, "@alice:test", "@bot:test")).unwrap();
    assert_eq!(h.members(&room)["@bot:test"], "invite");
}

#[test]
fn leaves_a_room_when_it_is_the_last_member() {
    let mut h = bot();
    let room = h.room(&["@alice:test", "@bob:test", "@bot:test"]);
    h.event(member(
        &room,
        "@alice:test",
        json!({"membership": "leave"}),
        json!({}),
    ))
    .unwrap();
    assert_eq!(h.members(&room)["@bot:test"], "join", "bob is still there");
    h.event(member(
        &room,
        "@bob:test",
        json!({"membership": "leave"}),
        json!({}),
    ))
    .unwrap();
    assert_eq!(h.members(&room)["@bot:test"], "leave");
}

#[test]
fn malformed_events_are_counted_and_never_answered() {
    let mut h = bot();
    let room = h.room(&["@alice:test", "@bot:test"]);
    for content in [
        json!({"msgtype": "m.text", "body": 42}),
        json!({"msgtype": "m.text"}),
        json!({"body": "!ping"}),
    ] {
        let e = h.at_now(
            EventBuilder::new("m.room.message", content)
                .room(&room)
                .sender("@alice:test"),
        );
        h.event(e).unwrap();
    }
    let huge = format!("!echo {}", "é".repeat(35_000));
    h.message(&room, "@alice:test", &huge).unwrap();
    assert_eq!(h.kv_json(MALFORMED), Some(json!(3)));
    let said = bodies(&h);
    assert_eq!(said.len(), 1, "only the long echo is answered");
    assert!(said[0].len() <= MAX_ECHO + "…".len() && said[0].ends_with("é…"));
}

#[test]
fn a_room_where_the_bot_may_not_speak_does_not_hold_up_the_others() {
    let mut h = bot();
    let muted = h.room(&["@alice:test", "@bot:test"]);
    let open = h.room(&["@alice:test", "@bot:test"]);
    h.fail_next(
        "send_event",
        Error::new("M_FORBIDDEN", "you may not send here"),
    );
    let first = h.at_now(
        EventBuilder::new(
            "m.room.message",
            json!({"msgtype": "m.text", "body": "!ping"}),
        )
        .room(&muted)
        .sender("@alice:test"),
    );
    let second = h.at_now(
        EventBuilder::new(
            "m.room.message",
            json!({"msgtype": "m.text", "body": "!echo hi"}),
        )
        .room(&open)
        .sender("@alice:test"),
    );
    h.transaction(vec![first, second])
        .expect("a refused send does not fail the transaction");
    assert_eq!(bodies(&h), vec!["hi"]);
}

#[test]
fn a_server_wide_cap_keeps_reminders_under_the_hosts_timer_limit() {
    let mut h = bot();
    let room = h.room(&["@alice:test", "@bot:test"]);
    kv::set_json(remind::PENDING_ALL, &remind::MAX_PENDING).unwrap();
    h.message(&room, "@alice:test", "!remind 1m tea").unwrap();
    assert!(bodies(&h)[0].contains("as many reminders as I can"));
    assert!(h.timers().is_empty());
}
