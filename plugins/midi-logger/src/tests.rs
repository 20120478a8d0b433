//! The plugin as a room sees it, on the SDK's native harness: recording, rejections, the
//! commands' answers, the exported file read back with midly, and the web endpoint.

use std::time::Instant;

use midly::Smf;
use plugboard_sdk::testing::{invite, EventBuilder, Harness, Sent};
use serde_json::{json, Value};

use super::*;

const ALICE: &str = "@alice:test";
const BOB: &str = "@bob:test";

/// A logger in a room with Alice, whose membership is in the room's state.
fn logger() -> (Harness<MidiLogger>, String) {
    let h = Harness::<MidiLogger>::new(json!({})).unwrap();
    let room = h.room(&[ALICE, "@bot:test"]);
    h.set_state(&room, "m.room.member", ALICE, json!({"membership": "join"}));
    (h, room)
}

/// Delivers an `org.matrix.midi` event with `content` from Alice, stamped now.
fn send(h: &mut Harness<MidiLogger>, room: &str, content: Value) {
    let e = h.at_now(
        EventBuilder::new("org.matrix.midi", content)
            .room(room)
            .sender(ALICE),
    );
    h.event(e).unwrap();
}

fn midi(note: i64, velocity: i64, state: &str, channel: i64, midi_ts: i64) -> Value {
    json!({"note": note, "velocity": velocity, "state": state, "channel": channel, "midi_ts": midi_ts})
}

/// The body of the one message the plugin sent since the last look.
fn answer(h: &Harness<MidiLogger>) -> Sent {
    let mut sent = h.take_sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    sent.remove(0)
}

/// Every note event of a file, in file order per track, the tracks one after the other.
fn notes_in(file: &[u8]) -> Vec<crate::export::tests::Heard> {
    crate::export::tests::events(file).concat()
}

/// The file the plugin posted in `sent`, checked as an `m.file` of `audio/midi`.
fn posted_file(h: &Harness<MidiLogger>, sent: &Sent) -> Vec<u8> {
    assert_eq!(sent.content["msgtype"], "m.file", "{:?}", sent.content);
    assert_eq!(sent.content["info"]["mimetype"], "audio/midi");
    let uri = sent.content["url"].as_str().unwrap();
    let media = h.media(uri).unwrap();
    assert_eq!(media.content_type, "audio/midi");
    assert_eq!(sent.content["info"]["size"], media.data.len());
    assert_eq!(media.filename.as_deref(), sent.content["filename"].as_str());
    media.data
}

fn request(path: &str, user: Option<&str>) -> HttpRequest {
    HttpRequest {
        method: "GET".into(),
        path: path.into(),
        query: String::new(),
        headers: Vec::new(),
        body: Vec::new(),
        user_id: user.map(str::to_string),
    }
}

#[test]
fn joins_when_invited_unless_invite_from_leaves_the_inviter_out() {
    let mut h = Harness::<MidiLogger>::new(json!({"invite_from": ["@admin:test"]})).unwrap();
    let room = h.room(&[ALICE, "@admin:test"]);
    h.event(invite(&room, ALICE, "@bot:test")).unwrap();
    assert_eq!(h.members(&room)["@bot:test"], "invite");
    h.event(invite(&room, "@admin:test", "@bot:test")).unwrap();
    assert_eq!(h.members(&room)["@bot:test"], "join");
}

#[test]
fn stats_count_notes_channels_and_duration() {
    let (mut h, room) = logger();
    h.message(&room, ALICE, "!midi stats").unwrap();
    assert_eq!(
        answer(&h).content["body"],
        "No notes recorded in this room yet."
    );
    perform(
        &mut h,
        &room,
        &[
            (0, ALICE, 60, 100, "on", 1, 1_000),
            (500, ALICE, 60, 0, "off", 1, 1_500),
            (500, ALICE, 36, 127, "on", 10, 2_000),
            (60_250, ALICE, 36, 0, "on", 10, 62_250),
        ],
    );
    let asked = h.message(&room, ALICE, "!midi stats").unwrap();
    let said = answer(&h);
    assert_eq!(
        said.content["body"],
        "2 notes on 2 channels (1, 10), lasting 1m 01.250s (4 events recorded)."
    );
    assert_eq!(said.content["msgtype"], "m.notice");
    assert_eq!(
        said.content["m.relates_to"]["m.in_reply_to"]["event_id"],
        asked.event_id.as_str()
    );
}

#[test]
fn out_of_range_and_malformed_events_are_counted_and_skipped() {
    let (mut h, room) = logger();
    send(&mut h, &room, midi(60, 100, "on", 1, 0));
    for bad in [
        midi(128, 1, "on", 1, 0),
        midi(-1, 1, "on", 1, 0),
        midi(60, 200, "on", 1, 0),
        midi(60, 1, "on", 0, 0),
        midi(60, 1, "on", 17, 0),
        midi(60, 1, "pressed", 1, 0),
        midi(60, 1, "on", 1, -5),
        json!({"note": "C4", "velocity": 1, "state": "on", "channel": 1, "midi_ts": 0}),
        json!({"note": 60.5, "velocity": 1, "state": "on", "channel": 1, "midi_ts": 0}),
        json!({"note": 1e300, "velocity": 1, "state": "on", "channel": 1, "midi_ts": 0}),
        json!({"velocity": 1, "state": "on", "channel": 1, "midi_ts": 0}),
        json!({"note": 60, "velocity": 1, "state": ["on"], "channel": 1, "midi_ts": 0}),
        json!({"note": 60, "velocity": 1, "state": "on", "channel": 1, "midi_ts": "soon"}),
        json!({"note": 99999999999999999999999999_u128.to_string(), "velocity": 1}),
    ] {
        send(&mut h, &room, bad);
    }
    assert!(
        h.sent().is_empty(),
        "bad input is not answered, only counted"
    );
    h.message(&room, ALICE, "!midi stats").unwrap();
    assert_eq!(
        answer(&h).content["body"],
        "1 note on 1 channel (1), lasting 0.000s (1 event recorded). Rejected 14 events \
         (note not in 0–127: 2, velocity not in 0–127: 1, channel not in 1–16: 2, state \
         neither on nor off: 1, midi_ts out of range: 1, malformed: 7)."
    );
    assert_eq!(h.kv_json("counts/rejected/malformed"), Some(json!(7)));
    assert_eq!(h.kv_json("counts/rejected/channel"), Some(json!(2)));
}

#[test]
fn other_malformed_events_are_not_counted_as_midi() {
    let (mut h, room) = logger();
    let e = h.at_now(
        EventBuilder::new("m.room.message", json!({"msgtype": 5}))
            .room(&room)
            .sender(ALICE),
    );
    h.event(e).unwrap();
    h.message(&room, ALICE, "!midi stats").unwrap();
    assert_eq!(
        answer(&h).content["body"],
        "No notes recorded in this room yet."
    );
}

#[test]
fn export_all_posts_a_midi_file_with_every_note() {
    let (mut h, room) = logger();
    let played = [
        (60, 100, "on", 1, 10_000),
        (64, 90, "on", 1, 10_100),
        (60, 30, "off", 1, 10_400),
        (38, 127, "on", 10, 10_500),
        (64, 0, "off", 1, 10_900),
        (38, 0, "on", 10, 10_600),
        (67, 80, "on", 3, 11_000),
    ];
    for (note, vel, state, ch, ts) in played {
        send(&mut h, &room, midi(note, vel, state, ch, ts));
        h.advance(20).unwrap();
    }
    let asked = h.message(&room, ALICE, "!midi export all").unwrap();
    let sent = answer(&h);
    assert_eq!(
        sent.content["m.relates_to"]["m.in_reply_to"]["event_id"],
        asked.event_id.as_str()
    );
    assert_eq!(sent.content["filename"], "midi-all.mid");
    assert_eq!(
        sent.content["body"],
        "midi-all.mid: 4 notes on 3 channels (1, 3, 10), 1.000s; 1 note still sounding \
         released at the end"
    );
    let file = posted_file(&h, &sent);
    let smf = Smf::parse(&file).unwrap();
    assert_eq!(smf.header.format, midly::Format::Parallel);
    assert_eq!(smf.tracks.len(), 4, "a conductor track and one per channel");
    assert_eq!(
        notes_in(&file),
        [
            (0, 1, 60, 100, true),
            (100, 1, 64, 90, true),
            (400, 1, 60, 30, false),
            (900, 1, 64, 0, false),
            (1000, 3, 67, 80, true),
            (1000, 3, 67, export::ADDED_RELEASE_VELOCITY, false),
            (500, 10, 38, 127, true),
            (600, 10, 38, export::ADDED_RELEASE_VELOCITY, false),
        ]
    );
}

#[test]
fn export_last_takes_only_what_the_server_stamped_in_the_window() {
    let (mut h, room) = logger();
    send(&mut h, &room, midi(60, 100, "on", 1, 0));
    send(&mut h, &room, midi(60, 0, "off", 1, 500));
    h.advance(11 * 60_000).unwrap();
    send(&mut h, &room, midi(62, 70, "on", 2, 700_000));
    h.advance(1_000).unwrap();
    send(&mut h, &room, midi(62, 10, "off", 2, 700_250));
    h.message(&room, ALICE, "!midi export last 10m").unwrap();
    let sent = answer(&h);
    assert_eq!(sent.content["filename"], "midi-last-10m.mid");
    assert_eq!(
        notes_in(&posted_file(&h, &sent)),
        [(0, 2, 62, 70, true), (250, 2, 62, 10, false)]
    );
    h.message(&room, ALICE, "!midi export").unwrap();
    let all = answer(&h);
    assert_eq!(notes_in(&posted_file(&h, &all)).len(), 4);
    h.advance(20 * 60_000).unwrap();
    h.message(&room, ALICE, "!midi export last 10m").unwrap();
    assert_eq!(
        answer(&h).content["body"],
        "No notes to export in the last 10m."
    );
}

#[test]
fn a_room_without_notes_and_bad_arguments_get_clear_answers() {
    let (mut h, room) = logger();
    h.message(&room, ALICE, "!midi export all").unwrap();
    assert_eq!(
        answer(&h).content["body"],
        "No notes to export: none recorded in this room yet."
    );
    h.message(&room, ALICE, "!midi export last week").unwrap();
    assert!(answer(&h).content["body"]
        .as_str()
        .unwrap()
        .starts_with("Export what?"));
    for bad in ["!midi", "!midi dance", "!midi stats now"] {
        h.message(&room, ALICE, bad).unwrap();
        assert_eq!(
            answer(&h).content["body"],
            "Usage: !midi stats | export [last 10m | all]",
            "{bad}"
        );
    }
    h.message(&room, ALICE, "!help").unwrap();
    assert!(answer(&h).content["body"]
        .as_str()
        .unwrap()
        .contains("!midi stats | export [last 10m | all]"));
}

#[test]
fn rooms_are_recorded_apart() {
    let (mut h, room) = logger();
    let other = h.room(&[BOB, "@bot:test"]);
    send(&mut h, &room, midi(60, 100, "on", 1, 0));
    send(&mut h, &other, midi(70, 100, "on", 5, 0));
    send(&mut h, &other, midi(71, 100, "on", 6, 0));
    h.message(&other, BOB, "!midi stats").unwrap();
    let body = answer(&h).content["body"].as_str().unwrap().to_string();
    assert!(body.starts_with("2 notes on 2 channels (5, 6)"), "{body}");
}

#[test]
fn a_failed_upload_is_answered_and_not_retried() {
    let (mut h, room) = logger();
    send(&mut h, &room, midi(60, 100, "on", 1, 0));
    h.fail_next("upload_media", Error::new("M_TOO_LARGE", "too big"));
    h.message(&room, ALICE, "!midi export").unwrap();
    assert_eq!(
        answer(&h).content["body"],
        "The MIDI file could not be uploaded: too big"
    );
}

#[test]
fn a_retried_transaction_records_its_notes_once() {
    let (mut h, room) = logger();
    let events: Vec<Event> = (0..3)
        .map(|i| {
            h.at_now(
                EventBuilder::new("org.matrix.midi", midi(60 + i, 90, "on", 1, i * 10))
                    .room(&room)
                    .sender(ALICE),
            )
        })
        .chain([h.at_now(
            EventBuilder::new(
                "m.room.message",
                json!({"msgtype": "m.text", "body": "!midi stats"}),
            )
            .room(&room)
            .sender(ALICE),
        )])
        .collect();
    h.fail_next("send_event", Error::unknown("the database is busy"));
    assert!(h.transaction(events.clone()).is_err());
    h.transaction(events).unwrap();
    assert!(answer(&h).content["body"]
        .as_str()
        .unwrap()
        .starts_with("3 notes on 1 channel (1)"));
}

#[test]
fn the_web_endpoint_serves_members_only() {
    let (mut h, room) = logger();
    send(&mut h, &room, midi(60, 100, "on", 4, 5_000));
    send(&mut h, &room, midi(60, 20, "off", 4, 5_750));
    let path = format!(
        "/rooms/{}.mid",
        room.replace('!', "%21").replace(':', "%3A")
    );

    let ok = h.http(request(&path, Some(ALICE)));
    assert_eq!(ok.status, 200);
    assert!(ok
        .headers
        .contains(&("content-type".into(), "audio/midi".into())));
    assert_eq!(
        notes_in(&ok.body),
        [(0, 4, 60, 100, true), (750, 4, 60, 20, false)]
    );
    // The id as it is, unescaped, works too.
    assert_eq!(
        h.http(request(&format!("/rooms/{room}.mid"), Some(ALICE)))
            .body,
        ok.body
    );

    let error = |r: HttpResponse| -> (u16, Value) {
        (
            r.status,
            serde_json::from_slice::<Value>(&r.body).unwrap()["errcode"].clone(),
        )
    };
    assert_eq!(
        error(h.http(request(&path, Some(BOB)))),
        (403, json!("M_FORBIDDEN"))
    );
    assert_eq!(
        error(h.http(request(&path, None))),
        (401, json!("M_MISSING_TOKEN"))
    );
    let mut post = request(&path, Some(ALICE));
    post.method = "POST".into();
    assert_eq!(error(h.http(post)), (405, json!("M_UNRECOGNIZED")));
    assert_eq!(
        error(h.http(request("/rooms/not-a-room.mid", Some(ALICE)))),
        (400, json!("M_INVALID_PARAM"))
    );
    assert_eq!(
        error(h.http(request("/rooms/%FF%FE.mid", Some(ALICE)))),
        (400, json!("M_INVALID_PARAM"))
    );
    assert_eq!(
        error(h.http(request("/elsewhere", Some(ALICE)))),
        (404, json!("M_UNRECOGNIZED"))
    );
    // A member who left is no member.
    let left = h.room(&[ALICE, BOB, "@bot:test"]);
    h.set_state(&left, "m.room.member", BOB, json!({"membership": "leave"}));
    let left_path = format!("/rooms/{left}.mid");
    assert_eq!(
        error(h.http(request(&left_path, Some(BOB)))),
        (403, json!("M_FORBIDDEN"))
    );
    // A room with nothing recorded.
    h.set_state(&left, "m.room.member", ALICE, json!({"membership": "join"}));
    assert_eq!(
        error(h.http(request(&left_path, Some(ALICE)))),
        (404, json!("M_NOT_FOUND"))
    );
    // A room the logger left keeps its recording unserved, to members too.
    h.set_state(
        &room,
        "m.room.member",
        "@bot:test",
        json!({"membership": "leave"}),
    );
    assert_eq!(
        error(h.http(request(&path, Some(ALICE)))),
        (404, json!("M_NOT_FOUND"))
    );
}

#[test]
fn a_member_from_whom_part_of_the_history_is_hidden_gets_no_file() {
    let (mut h, room) = logger();
    h.set_state(
        &room,
        "m.room.history_visibility",
        "",
        json!({"history_visibility": "joined"}),
    );
    send(&mut h, &room, midi(60, 100, "on", 1, 0));
    h.set_state(&room, "m.room.member", BOB, json!({"membership": "join"}));
    send(&mut h, &room, midi(60, 0, "off", 1, 500));
    let path = format!("/rooms/{room}.mid");
    let bob = h.http(request(&path, Some(BOB)));
    assert_eq!(bob.status, 403);
    let body: Value = serde_json::from_slice(&bob.body).unwrap();
    assert_eq!(body["errcode"], "M_FORBIDDEN");
    assert!(body["error"].as_str().unwrap().contains("hidden"), "{body}");
    assert_eq!(
        h.http(request(&path, Some(ALICE))).status,
        200,
        "there all along"
    );
    // A room made world readable after its first events: a non-member does not see those,
    // so the file is not theirs either.
    h.set_state(
        &room,
        "m.room.history_visibility",
        "",
        json!({"history_visibility": "world_readable"}),
    );
    assert_eq!(h.http(request(&path, Some("@eve:test"))).status, 403);
}

#[test]
fn a_bad_configuration_keeps_the_plugin_from_starting() {
    for bad in [
        json!({"max_events_per_room": 0}),
        json!({"max_events_per_room": "lots"}),
        json!({"max_events_per_room": MAX_EVENTS_PER_ROOM + 1}),
        json!({"max_gap_ms": -1}),
        json!({"max_events_total": 0}),
        json!({"max_events_total": 1.5}),
        json!({"prefix": ""}),
        json!({"prefix": 7}),
    ] {
        let e = Harness::<MidiLogger>::new(bad.clone()).err();
        assert!(e.is_some_and(|e| e.is("M_INVALID_PARAM")), "{bad}");
    }
}

#[test]
fn the_room_cap_from_the_config_counts_what_it_refuses() {
    let mut h =
        Harness::<MidiLogger>::new(json!({"max_events_per_room": 2, "prefix": "?"})).unwrap();
    let room = h.room(&[ALICE, "@bot:test"]);
    for i in 0..4 {
        send(
            &mut h,
            &room,
            midi(60, 100, if i % 2 == 0 { "on" } else { "off" }, 1, i * 100),
        );
    }
    h.message(&room, ALICE, "?midi stats").unwrap();
    assert_eq!(
        answer(&h).content["body"],
        "1 note on 1 channel (1), lasting 0.100s (2 events recorded). Rejected 2 events (room log full: 2)."
    );
}

#[test]
fn all_rooms_together_keep_at_most_the_total_and_each_room_is_told_once() {
    let mut h = Harness::<MidiLogger>::new(json!({"max_events_total": 3})).unwrap();
    let first = h.room(&[ALICE, "@bot:test"]);
    let second = h.room(&[BOB, "@bot:test"]);
    for i in 0..3 {
        send(&mut h, &first, midi(60 + i, 100, "on", 1, i * 100));
    }
    assert!(h.take_sent().is_empty());
    for i in 0..3 {
        send_as(&mut h, &second, BOB, midi(40 + i, 100, "on", 2, i * 100));
    }
    let told = h.take_sent();
    assert_eq!(told.len(), 1, "told once, not per event: {told:?}");
    assert_eq!(told[0].room, second);
    assert_eq!(told[0].content["msgtype"], "m.notice");
    assert_eq!(
        told[0].content["body"],
        "No more notes are recorded here: this server keeps at most 3 MIDI events in all rooms \
         together, and has them. The server admin can raise max_events_total; `!midi export` \
         still gives what was recorded."
    );
    h.message(&second, BOB, "!midi stats").unwrap();
    assert_eq!(
        answer(&h).content["body"],
        "No notes recorded in this room yet. Rejected 3 events (server's recordings full: 3)."
    );
    // The first room is full too now, and told so once.
    send(&mut h, &first, midi(70, 100, "on", 1, 400));
    send(&mut h, &first, midi(70, 0, "off", 1, 500));
    assert_eq!(answer(&h).room, first);
    h.message(&first, ALICE, "!midi stats").unwrap();
    assert_eq!(
        answer(&h).content["body"],
        "3 notes on 1 channel (1), lasting 0.200s (3 events recorded). Rejected 2 events \
         (server's recordings full: 2)."
    );
    assert_eq!(h.kv_json("counts/records"), Some(json!(3)));
    assert_eq!(h.kv_json("counts/rejected/server_full"), Some(json!(5)));
}

#[test]
fn a_notice_that_cannot_be_sent_does_not_fail_the_event() {
    let mut h = Harness::<MidiLogger>::new(json!({"max_events_total": 1})).unwrap();
    let room = h.room(&[ALICE, "@bot:test"]);
    send(&mut h, &room, midi(60, 100, "on", 1, 0));
    h.fail_next("send_event", Error::new("M_FORBIDDEN", "no power to speak"));
    // `send` unwraps: the event is handled, the refusal counted.
    send(&mut h, &room, midi(61, 100, "on", 1, 10));
    assert!(h.take_sent().is_empty());
    assert_eq!(h.kv_json("counts/rejected/server_full"), Some(json!(1)));
    // Refused for good: not tried again with every event.
    send(&mut h, &room, midi(62, 100, "on", 1, 20));
    assert!(h.take_sent().is_empty());
    let tries = h
        .logs()
        .iter()
        .filter(|l| l.message.contains("cannot tell"))
        .count();
    assert_eq!(tries, 1);
}

#[test]
fn a_notice_that_failed_for_now_is_sent_with_the_next_refused_event() {
    let mut h = Harness::<MidiLogger>::new(json!({"max_events_total": 1})).unwrap();
    let room = h.room(&[ALICE, "@bot:test"]);
    send(&mut h, &room, midi(60, 100, "on", 1, 0));
    h.fail_next("send_event", Error::unknown("the database is busy"));
    send(&mut h, &room, midi(61, 100, "on", 1, 10));
    assert!(h.take_sent().is_empty());
    send(&mut h, &room, midi(62, 100, "on", 1, 20));
    let told = h.take_sent();
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(told[0].content["body"]
        .as_str()
        .unwrap()
        .starts_with("No more notes are recorded here"));
    // Told now: not again.
    send(&mut h, &room, midi(63, 100, "on", 1, 30));
    assert!(h.take_sent().is_empty());
}

/// 50,000 notes (100,000 events) over an hour and a half, exported by the command and by
/// the web endpoint; prints how long each took. Run with `--ignored --nocapture`.
#[test]
#[ignore = "a measurement: run it on purpose"]
fn fifty_thousand_notes_export_in_one_call() {
    let (mut h, room) = logger();
    let started = Instant::now();
    let mut ts = 0i64;
    for batch in 0..1000 {
        let start = h.now_ms();
        let events: Vec<Event> = (0..100)
            .map(|i| {
                let n = batch * 100 + i;
                ts += 55;
                let content = midi(
                    36 + (n / 2) % 60,
                    1 + (n % 127),
                    if n % 2 == 0 { "on" } else { "off" },
                    1 + (n / 2) % 16,
                    ts,
                );
                // Stamped as a keyboard played them, 55 ms apart.
                EventBuilder::new("org.matrix.midi", content)
                    .id(&format!("$n{n}"))
                    .room(&room)
                    .sender(ALICE)
                    .ts(start + i as u64 * 55)
                    .build()
            })
            .collect();
        h.transaction(events).unwrap();
        h.advance(5_500).unwrap();
    }
    let recorded = started.elapsed();
    let stored: usize = h
        .kv_keys()
        .iter()
        .filter(|k| k.contains("/chunk2/"))
        .map(|k| h.kv(k).map_or(0, |v| v.len() + k.len()))
        .sum();
    let started = Instant::now();
    h.message(&room, ALICE, "!midi export all").unwrap();
    let command = started.elapsed();
    let sent = answer(&h);
    let file = posted_file(&h, &sent);
    let notes = notes_in(&file);
    assert_eq!(notes.iter().filter(|n| n.4).count(), 50_000);
    assert_eq!(notes.len(), 100_000);
    // One clock throughout: the last release lies where the keyboard's clock put it.
    assert_eq!(notes.iter().map(|n| n.0).max(), Some(ts as u64 - 55));
    let started = Instant::now();
    let served = h.http(request(&format!("/rooms/{room}.mid"), Some(ALICE)));
    let web = started.elapsed();
    assert_eq!(served.body, file);
    println!(
        "100000 events recorded in {recorded:?} ({stored} bytes of chunks and keys); \
         export command {command:?}, web endpoint {web:?}, file {} bytes",
        file.len()
    );
}

/// A logger in a room with Alice and Bob, each playing a keyboard of their own.
fn jam() -> (Harness<MidiLogger>, String) {
    let h = Harness::<MidiLogger>::new(json!({})).unwrap();
    let room = h.room(&[ALICE, BOB, "@bot:test"]);
    (h, room)
}

/// Delivers an `org.matrix.midi` event with `content` from `sender`, stamped now.
fn send_as(h: &mut Harness<MidiLogger>, room: &str, sender: &str, content: Value) {
    let e = h.at_now(
        EventBuilder::new("org.matrix.midi", content)
            .room(room)
            .sender(sender),
    );
    h.event(e).unwrap();
}

/// Plays `(after ms, sender, note, velocity, state, channel, midi_ts)` in order, the server's
/// clock moving on by `after` before each event.
fn perform(
    h: &mut Harness<MidiLogger>,
    room: &str,
    score: &[(u64, &str, i64, i64, &str, i64, i64)],
) {
    for &(after, sender, note, velocity, state, channel, midi_ts) in score {
        h.advance(after).unwrap();
        send_as(
            h,
            room,
            sender,
            midi(note, velocity, state, channel, midi_ts),
        );
    }
}

#[test]
fn two_senders_with_unrelated_clocks_are_placed_by_when_the_server_heard_them() {
    let (mut h, room) = jam();
    // Alice's keyboard counts from a million, Bob's from five thousand; each plays in time.
    perform(
        &mut h,
        &room,
        &[
            (0, ALICE, 60, 100, "on", 1, 1_000_000),
            (250, BOB, 64, 90, "on", 2, 5_000),
            (250, ALICE, 60, 30, "off", 1, 1_000_500),
            (250, BOB, 64, 20, "off", 2, 5_500),
            (250, BOB, 67, 80, "on", 2, 5_750),
            (500, BOB, 67, 10, "off", 2, 6_250),
        ],
    );
    h.message(&room, ALICE, "!midi export").unwrap();
    let sent = answer(&h);
    let file = posted_file(&h, &sent);
    assert_eq!(
        crate::export::tests::events(&file),
        [
            vec![],
            vec![(0, 1, 60, 100, true), (500, 1, 60, 30, false)],
            vec![
                (250, 2, 64, 90, true),
                (750, 2, 64, 20, false),
                (1000, 2, 67, 80, true),
                (1500, 2, 67, 10, false),
            ],
        ]
    );
    assert_eq!(
        sent.content["body"],
        "midi-all.mid: 3 notes on 2 channels (1, 2), 1.500s"
    );
    assert_eq!(
        h.http(request(&format!("/rooms/{room}.mid"), Some(ALICE)))
            .body,
        file
    );
    h.message(&room, ALICE, "!midi stats").unwrap();
    assert_eq!(
        answer(&h).content["body"],
        "3 notes on 2 channels (1, 2), lasting 1.500s (6 events recorded)."
    );
}

#[test]
fn a_senders_release_closes_only_their_own_note() {
    let (mut h, room) = jam();
    // Both hold middle C on channel 1, overlapping.
    perform(
        &mut h,
        &room,
        &[
            (0, ALICE, 60, 100, "on", 1, 1_000_000),
            (100, BOB, 60, 90, "on", 1, 5_000),
            (100, ALICE, 60, 30, "off", 1, 1_000_200),
            (100, BOB, 60, 20, "off", 1, 5_200),
            // Alice's second release has nothing of hers to close, though Bob's C sounded.
            (100, BOB, 60, 70, "on", 1, 5_300),
            (100, ALICE, 60, 5, "off", 1, 1_000_500),
            (100, BOB, 60, 0, "off", 1, 5_500),
        ],
    );
    h.message(&room, ALICE, "!midi export").unwrap();
    let sent = answer(&h);
    let file = posted_file(&h, &sent);
    assert_eq!(
        crate::export::tests::events(&file),
        [
            vec![],
            vec![(0, 1, 60, 100, true), (200, 1, 60, 30, false)],
            vec![
                (100, 1, 60, 90, true),
                (300, 1, 60, 20, false),
                (400, 1, 60, 70, true),
                (600, 1, 60, 0, false),
            ],
        ]
    );
    assert_eq!(
        crate::export::tests::track_names(&file)[1..],
        ["Channel 1 (@alice:test)", "Channel 1 (@bob:test)"]
    );
    assert_eq!(
        sent.content["body"],
        "midi-all.mid: 3 notes on 1 channel (1), 0.600s; 1 release without a sounding note \
         left out"
    );
}

#[test]
fn a_sender_whose_clock_restarts_keeps_their_place_on_the_timeline() {
    let (mut h, room) = jam();
    perform(
        &mut h,
        &room,
        &[
            (0, ALICE, 60, 100, "on", 1, 1_000_000),
            (0, BOB, 48, 90, "on", 2, 50_000),
            (100, BOB, 48, 0, "off", 2, 50_100),
            // Bob's keyboard restarts and counts from 0 again.
            (900, BOB, 50, 90, "on", 2, 0),
            (200, BOB, 50, 0, "off", 2, 200),
            (300, ALICE, 60, 0, "off", 1, 1_001_500),
        ],
    );
    h.message(&room, ALICE, "!midi export").unwrap();
    let file = posted_file(&h, &answer(&h));
    assert_eq!(
        crate::export::tests::events(&file),
        [
            vec![],
            vec![(0, 1, 60, 100, true), (1500, 1, 60, 0, false)],
            vec![
                (0, 2, 48, 90, true),
                (100, 2, 48, 0, false),
                (1000, 2, 50, 90, true),
                (1200, 2, 50, 0, false),
            ],
        ]
    );
    h.message(&room, ALICE, "!midi stats").unwrap();
    assert_eq!(
        answer(&h).content["body"],
        "3 notes on 2 channels (1, 2), lasting 1.500s (6 events recorded)."
    );
}
