//! The IVR against the SDK's native harness: calls answered and declined, menus walked by
//! key-press events and typed digits, transfers, voicemail, time-outs, several calls at
//! once, glare, renegotiation, and the bad input it must count rather than trap on.

use plugboard_sdk::testing::{EventBuilder, Harness, Sent};
use serde_json::{json, Value};

use crate::call::Call;
use crate::sdp::fixtures::{CHROME, FIREFOX, VIDEO_ONLY};
use crate::Ivr;

const ALICE: &str = "@alice:test";
const CAROL: &str = "@carol:test";
const IVR: &str = "@ivr:test";
/// The first room a fresh harness makes: the mailbox, made first by [`setup`].
const MAILBOX: &str = "!r1:test";

fn config() -> Value {
    json!({
        "timeout_ms": 5000,
        "repeats": 1,
        "voicemail_timeout_ms": 30000,
        "mailbox_room": MAILBOX,
        "menus": {
            "main": {"prompt": "Main menu: 1 hours, 2 sales, 3 message, 4 operator, 0 bye.",
                     "options": {"1": "say Open 9 to 5.", "2": "submenu sales", "3": "voicemail",
                                 "4": "transfer @bob", "0": "hangup"}},
            "sales": {"prompt": "Sales menu: 1 news, * back.", "prompt_audio": "mxc://test/prompt",
                      "timeout_ms": 2000, "repeats": 0,
                      "options": {"1": "say Sales are up.", "*": "submenu main"}}
        }
    })
}

/// A harness with the IVR as `@ivr:test`, the mailbox room and a direct room of `caller`.
fn setup_with(config: Value, caller: &str) -> (Harness<Ivr>, String) {
    let h = Harness::<Ivr>::with_sender(config, "ivr").unwrap();
    let mailbox = h.room(&["@staff:test", IVR]);
    assert_eq!(mailbox, MAILBOX, "the harness names its first room so");
    let room = h.room(&[caller, IVR]);
    (h, room)
}

fn setup() -> (Harness<Ivr>, String) {
    setup_with(config(), ALICE)
}

fn invite_content(call_id: &str, party: &str, sdp: &str, lifetime: u64) -> Value {
    json!({"call_id": call_id, "party_id": party, "version": "1", "lifetime": lifetime,
           "offer": {"type": "offer", "sdp": sdp}})
}

/// An invite stamped `age_ms` ago by the harness's clock, which expiry is judged by.
fn invite_at(
    h: &Harness<Ivr>,
    room: &str,
    sender: &str,
    content: Value,
    age_ms: u64,
) -> plugboard_sdk::Event {
    let e = h.at_now(
        EventBuilder::new("m.call.invite", content)
            .room(room)
            .sender(sender),
    );
    EventBuilder::new("m.call.invite", e.content)
        .room(room)
        .sender(sender)
        .id(&e.event_id)
        .ts(h.now_ms() - age_ms)
        .build()
}

fn call(h: &mut Harness<Ivr>, room: &str, call_id: &str) {
    let e = invite_at(
        h,
        room,
        ALICE,
        invite_content(call_id, "alicephone", CHROME, 60000),
        0,
    );
    h.event(e).unwrap();
}

fn send(h: &mut Harness<Ivr>, room: &str, sender: &str, event_type: &str, content: Value) {
    let e = h.at_now(
        EventBuilder::new(event_type, content)
            .room(room)
            .sender(sender),
    );
    h.event(e).unwrap();
}

fn dtmf(h: &mut Harness<Ivr>, room: &str, call_id: &str, digits: &str) {
    send(
        h,
        room,
        ALICE,
        "org.plugboard.call.dtmf",
        json!({"call_id": call_id, "party_id": "alicephone", "digits": digits, "version": "1"}),
    );
}

fn notices(sent: &[Sent]) -> Vec<String> {
    sent.iter()
        .filter(|s| s.event_type == "m.room.message")
        .filter_map(|s| s.content["body"].as_str().map(str::to_string))
        .collect()
}

fn of_type<'a>(sent: &'a [Sent], t: &str) -> Vec<&'a Sent> {
    sent.iter().filter(|s| s.event_type == t).collect()
}

fn count(h: &Harness<Ivr>, what: &str) -> u64 {
    h.kv_json(&format!("counts/{what}"))
        .and_then(|v| v.as_u64())
        .unwrap_or(0)
}

#[test]
fn a_fresh_invite_gets_an_audio_answer_that_firefoxs_parser_accepts_then_the_prompt() {
    let (mut h, room) = setup();
    call(&mut h, &room, "c1");
    let sent = h.take_sent();
    let answers = of_type(&sent, "m.call.answer");
    assert_eq!(answers.len(), 1);
    let a = &answers[0].content;
    assert_eq!(a["call_id"], "c1");
    assert_eq!(a["version"], "1");
    assert_eq!(a["answer"]["type"], "answer");
    let party = a["party_id"].as_str().unwrap();
    assert!(party.len() >= 8);
    let sdp = a["answer"]["sdp"].as_str().unwrap();
    let session = webrtc_sdp::parse_sdp(sdp, true).unwrap();
    assert_eq!(session.media[0].get_port(), 9);
    assert_eq!(session.media[1].get_port(), 0, "video is rejected");
    let candidates = of_type(&sent, "m.call.candidates");
    assert_eq!(candidates[0].content["candidates"][0]["candidate"], "");
    assert_eq!(candidates[0].content["party_id"], party);
    assert_eq!(
        notices(&sent),
        ["Main menu: 1 hours, 2 sales, 3 message, 4 operator, 0 bye."]
    );
    assert_eq!(sent.last().unwrap().content["org.plugboard.call_id"], "c1");
    assert!(h.kv("call/c1").is_some());
    assert_eq!(h.timers()[0].0, "timeout/c1");
}

#[test]
fn a_firefox_offer_is_answered_too() {
    let (mut h, room) = setup();
    h.event(invite_at(
        &h,
        &room,
        ALICE,
        invite_content("ff", "fox", FIREFOX, 60000),
        0,
    ))
    .unwrap();
    let sent = h.take_sent();
    let sdp = of_type(&sent, "m.call.answer")[0].content["answer"]["sdp"]
        .as_str()
        .unwrap()
        .to_string();
    webrtc_sdp::parse_sdp(&sdp, true).unwrap();
    assert!(sdp.contains("opus/48000/2"));
}

#[test]
fn an_expired_invite_is_not_answered() {
    let (mut h, room) = setup();
    h.event(invite_at(
        &h,
        &room,
        ALICE,
        invite_content("old", "p", CHROME, 30000),
        31000,
    ))
    .unwrap();
    h.event(invite_at(
        &h,
        &room,
        ALICE,
        invite_content("zero", "p", CHROME, 0),
        0,
    ))
    .unwrap();
    assert!(h.take_sent().is_empty());
    assert_eq!(count(&h, "expired"), 2);
    assert!(h.kv("call/old").is_none());
}

#[test]
fn a_duplicate_invite_is_answered_once_even_after_the_call_ended() {
    let (mut h, room) = setup();
    let e = invite_at(
        &h,
        &room,
        ALICE,
        invite_content("c1", "p", CHROME, 60000),
        0,
    );
    h.event(e.clone()).unwrap();
    h.event(e.clone()).unwrap();
    send(
        &mut h,
        &room,
        ALICE,
        "m.call.hangup",
        json!({"call_id": "c1", "party_id": "p", "version": "1", "reason": "user_hangup"}),
    );
    h.event(e).unwrap();
    assert_eq!(of_type(&h.sent(), "m.call.answer").len(), 1);
    assert_eq!(count(&h, "duplicate"), 2);
    assert!(h.kv("ended/c1").is_some());
    // The ended marker goes once the invite could not come round any more, at the next
    // sweep; the sweep stops when nothing is left to sweep.
    h.advance(10 * 60 * 1000).unwrap();
    assert!(h.kv("ended/c1").is_none());
    assert!(h.timers().is_empty(), "{:?}", h.timers());
}

#[test]
fn key_presses_and_typed_digits_walk_the_menu() {
    let (mut h, room) = setup();
    call(&mut h, &room, "c1");
    h.take_sent();
    dtmf(&mut h, &room, "c1", "1");
    assert_eq!(notices(&h.take_sent()), ["Open 9 to 5."]);
    h.message(&room, ALICE, "2").unwrap();
    let sent = h.take_sent();
    assert_eq!(
        notices(&sent),
        ["Sales menu: 1 news, * back.", "Sales menu: 1 news, * back."]
    );
    let audio = sent
        .iter()
        .find(|s| s.content["msgtype"] == "m.audio")
        .unwrap();
    assert_eq!(audio.content["url"], "mxc://test/prompt");
    dtmf(&mut h, &room, "c1", "9");
    assert_eq!(
        notices(&h.take_sent())[..2],
        [
            "Sorry, 9 is not an option.".to_string(),
            "Sales menu: 1 news, * back.".to_string()
        ]
    );
    // Several keys in one event run in order; talk in the room is not for the menu.
    dtmf(&mut h, &room, "c1", "1*");
    assert_eq!(
        notices(&h.take_sent()),
        [
            "Sales are up.",
            "Main menu: 1 hours, 2 sales, 3 message, 4 operator, 0 bye."
        ]
    );
    h.message(&room, ALICE, "hello there").unwrap();
    assert!(h.take_sent().is_empty());
    h.message(&room, ALICE, "0").unwrap();
    let sent = h.take_sent();
    assert_eq!(notices(&sent), ["Thank you for calling. Goodbye."]);
    let hangup = &of_type(&sent, "m.call.hangup")[0].content;
    assert_eq!(hangup["reason"], "user_hangup");
    assert!(h.kv("call/c1").is_none());
    assert!(h.timers().iter().all(|t| t.0 != "timeout/c1"));
}

#[test]
fn a_transfer_invites_the_target_and_ends_the_call_with_a_notice() {
    let (mut h, room) = setup();
    call(&mut h, &room, "c1");
    h.take_sent();
    dtmf(&mut h, &room, "c1", "4");
    assert_eq!(h.members(&room)["@bob:test"], "invite");
    let sent = h.take_sent();
    assert!(notices(&sent)[0].starts_with("Transferring you to @bob:test"));
    assert_eq!(of_type(&sent, "m.call.hangup").len(), 1);
    assert!(h.kv("call/c1").is_none());
}

#[test]
fn a_transfer_that_the_server_refuses_keeps_the_caller_in_the_menu() {
    let (mut h, room) = setup();
    call(&mut h, &room, "c1");
    h.take_sent();
    h.fail_next("invite", plugboard_sdk::Error::new("M_FORBIDDEN", "no"));
    dtmf(&mut h, &room, "c1", "4");
    let sent = h.take_sent();
    assert_eq!(
        notices(&sent),
        ["Sorry, the call cannot be transferred to @bob:test right now."]
    );
    assert!(of_type(&sent, "m.call.hangup").is_empty());
    assert!(h.kv("call/c1").is_some());
}

#[test]
fn voicemail_forwards_the_next_message_with_the_caller_and_time() {
    let (mut h, room) = setup();
    call(&mut h, &room, "c1");
    dtmf(&mut h, &room, "c1", "3");
    h.take_sent();
    let msg = h
        .message(&room, ALICE, "Please call me back about 123")
        .unwrap();
    let sent = h.take_sent();
    let forwarded = sent.iter().find(|s| s.room == MAILBOX).unwrap();
    let body = forwarded.content["body"].as_str().unwrap();
    assert!(body.starts_with(&format!(
        "Voicemail from {ALICE} at {}",
        crate::voicemail::format_time(msg.origin_server_ts)
    )));
    assert!(
        body.ends_with("Please call me back about 123"),
        "digits in a voicemail are words"
    );
    let meta = &forwarded.content["org.plugboard.voicemail"];
    assert_eq!(meta["caller"], ALICE);
    assert_eq!(meta["call_id"], "c1");
    assert_eq!(meta["ts"], msg.origin_server_ts);
    assert_eq!(
        notices(&sent).last().unwrap(),
        "Thank you, your message was recorded. Goodbye."
    );
    assert!(h.kv("call/c1").is_none());
}

#[test]
fn an_audio_voicemail_is_forwarded_as_audio() {
    let (mut h, room) = setup();
    call(&mut h, &room, "c1");
    dtmf(&mut h, &room, "c1", "3");
    h.take_sent();
    send(
        &mut h,
        &room,
        ALICE,
        "m.room.message",
        json!({"msgtype": "m.audio", "body": "vm.ogg",
        "url": "mxc://test/voice", "info": {"mimetype": "audio/ogg", "duration": 4000}}),
    );
    let sent = h.take_sent();
    let forwarded = sent.iter().find(|s| s.room == MAILBOX).unwrap();
    assert_eq!(forwarded.content["msgtype"], "m.audio");
    assert_eq!(forwarded.content["url"], "mxc://test/voice");
    assert_eq!(forwarded.content["info"]["duration"], 4000);
}

#[test]
fn voicemail_without_a_mailbox_says_what_to_set_and_stays_in_the_menu() {
    let mut c = config();
    c["mailbox_room"] = json!("");
    let (mut h, room) = setup_with(c, ALICE);
    call(&mut h, &room, "c1");
    h.take_sent();
    dtmf(&mut h, &room, "c1", "3");
    assert_eq!(
        notices(&h.take_sent()),
        ["Voicemail is not configured: set `mailbox_room` in the IVR's configuration."]
    );
    assert!(h.kv("call/c1").is_some());
}

#[test]
fn a_silent_caller_hears_the_prompt_again_then_is_hung_up() {
    let (mut h, room) = setup();
    call(&mut h, &room, "c1");
    h.take_sent();
    h.advance(4999).unwrap();
    assert!(h.take_sent().is_empty());
    h.advance(1).unwrap();
    assert_eq!(
        notices(&h.take_sent()),
        ["Main menu: 1 hours, 2 sales, 3 message, 4 operator, 0 bye."]
    );
    h.advance(5000).unwrap();
    let sent = h.take_sent();
    assert_eq!(notices(&sent), ["No input received. Goodbye."]);
    assert_eq!(
        of_type(&sent, "m.call.hangup")[0].content["reason"],
        "user_hangup"
    );
    assert!(h.kv("call/c1").is_none());
}

#[test]
fn a_key_resets_the_time_out() {
    let (mut h, room) = setup();
    call(&mut h, &room, "c1");
    h.advance(4000).unwrap();
    dtmf(&mut h, &room, "c1", "1");
    h.advance(4000).unwrap();
    h.take_sent();
    h.advance(1000).unwrap();
    assert_eq!(
        notices(&h.take_sent()).len(),
        1,
        "the prompt, once: the key reset the wait"
    );
}

#[test]
fn the_callers_hangup_clears_the_call_and_its_timer() {
    let (mut h, room) = setup();
    call(&mut h, &room, "c1");
    h.take_sent();
    send(
        &mut h,
        &room,
        ALICE,
        "m.call.hangup",
        json!({"call_id": "c1", "party_id": "alicephone", "version": "1", "reason": "ice_failed"}),
    );
    assert!(h.kv("call/c1").is_none());
    assert!(h.kv_keys().iter().all(|k| !k.starts_with("caller/")));
    assert!(h.timers().iter().all(|t| !t.0.starts_with("timeout/")));
    h.advance(20_000).unwrap();
    assert!(h.take_sent().is_empty(), "nothing more is said");
}

#[test]
fn two_calls_at_once_keep_their_own_place() {
    let (mut h, room) = setup();
    let other = h.room(&[CAROL, IVR]);
    call(&mut h, &room, "alice-call");
    h.event(invite_at(
        &h,
        &other,
        CAROL,
        invite_content("carol-call", "carolpad", CHROME, 60000),
        0,
    ))
    .unwrap();
    h.take_sent();
    dtmf(&mut h, &room, "alice-call", "2");
    h.message(&other, CAROL, "1").unwrap();
    let sent = h.take_sent();
    let in_room = |r: &str| -> Vec<String> {
        notices(
            &sent
                .iter()
                .filter(|s| s.room == r)
                .cloned()
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(in_room(&room)[0], "Sales menu: 1 news, * back.");
    assert_eq!(in_room(&other), ["Open 9 to 5."]);
    assert_eq!(Call::load("alice-call").unwrap().unwrap().menu, "sales");
    assert_eq!(Call::load("carol-call").unwrap().unwrap().menu, "main");
    // Carol's keys do not reach Alice's call.
    send(
        &mut h,
        &room,
        CAROL,
        "org.plugboard.call.dtmf",
        json!({"call_id": "alice-call", "party_id": "carolpad", "digits": "*", "version": "1"}),
    );
    assert_eq!(Call::load("alice-call").unwrap().unwrap().menu, "sales");
    assert_eq!(count(&h, "ignored/other_party"), 1);
}

#[test]
fn events_of_other_parties_unknown_calls_and_duplicates_are_passed_over() {
    let (mut h, room) = setup();
    call(&mut h, &room, "c1");
    h.take_sent();
    // Another device of Alice's.
    send(
        &mut h,
        &room,
        ALICE,
        "m.call.hangup",
        json!({"call_id": "c1", "party_id": "alicelaptop", "version": "1", "reason": "user_hangup"}),
    );
    assert!(h.kv("call/c1").is_some());
    send(
        &mut h,
        &room,
        ALICE,
        "m.call.hangup",
        json!({"call_id": "nope", "party_id": "alicephone", "version": "1"}),
    );
    let press = h.at_now(
        EventBuilder::new(
            "org.plugboard.call.dtmf",
            json!({"call_id": "c1", "party_id": "alicephone", "digits": "1", "version": "1"}),
        )
        .room(&room)
        .sender(ALICE),
    );
    h.event(press.clone()).unwrap();
    h.event(press).unwrap();
    assert_eq!(
        notices(&h.take_sent()),
        ["Open 9 to 5."],
        "the duplicate is not pressed twice"
    );
    assert_eq!(count(&h, "ignored/other_party"), 1);
    assert_eq!(count(&h, "ignored/unknown_call"), 1);
    assert_eq!(count(&h, "duplicate"), 1);
}

#[test]
fn candidates_are_kept_up_to_a_bound() {
    let (mut h, room) = setup();
    call(&mut h, &room, "c1");
    let many: Vec<Value> = (0..100)
        .map(|i| json!({"candidate": format!("candidate:{i} 1 udp 2113937151 192.0.2.1 5000{i} typ host"), "sdpMid": "0", "sdpMLineIndex": 0}))
        .collect();
    send(
        &mut h,
        &room,
        ALICE,
        "m.call.candidates",
        json!({"call_id": "c1", "party_id": "alicephone", "version": "1", "candidates": many}),
    );
    let c = Call::load("c1").unwrap().unwrap();
    assert_eq!(c.candidates.len(), crate::call::MAX_CANDIDATES);
    assert_eq!(
        c.dropped_candidates,
        100 - crate::call::MAX_CANDIDATES as u64
    );
}

#[test]
fn a_select_answer_for_another_party_ends_the_call_without_a_word() {
    let (mut h, room) = setup();
    call(&mut h, &room, "c1");
    let ours = of_type(&h.take_sent(), "m.call.answer")[0].content["party_id"].clone();
    send(
        &mut h,
        &room,
        ALICE,
        "m.call.select_answer",
        json!({"call_id": "c1", "party_id": "alicephone", "version": "1", "selected_party_id": ours}),
    );
    assert!(Call::load("c1").unwrap().unwrap().selected);
    send(
        &mut h,
        &room,
        ALICE,
        "m.call.hangup",
        json!({"call_id": "c1", "party_id": "alicephone", "version": "1", "reason": "user_hangup"}),
    );
    call(&mut h, &room, "c2");
    h.take_sent();
    send(
        &mut h,
        &room,
        ALICE,
        "m.call.select_answer",
        json!({"call_id": "c2", "party_id": "alicephone", "version": "1", "selected_party_id": "someoneelse"}),
    );
    assert!(h.take_sent().is_empty());
    assert!(Call::load("c2").unwrap().is_none());
}

#[test]
fn glare_keeps_the_lesser_call_id_and_its_menu() {
    let (mut h, room) = setup();
    call(&mut h, &room, "m-call");
    dtmf(&mut h, &room, "m-call", "2");
    h.take_sent();
    // A greater call id from the same caller in the same room is declined.
    h.event(invite_at(
        &h,
        &room,
        ALICE,
        invite_content("z-call", "alicephone", CHROME, 60000),
        0,
    ))
    .unwrap();
    let sent = h.take_sent();
    assert_eq!(
        of_type(&sent, "m.call.reject")[0].content["call_id"],
        "z-call"
    );
    assert!(of_type(&sent, "m.call.answer").is_empty());
    // A lesser one replaces the call in progress and carries on in its menu.
    h.event(invite_at(
        &h,
        &room,
        ALICE,
        invite_content("a-call", "alicephone", CHROME, 60000),
        0,
    ))
    .unwrap();
    let sent = h.take_sent();
    assert_eq!(
        of_type(&sent, "m.call.answer")[0].content["call_id"],
        "a-call"
    );
    assert_eq!(
        of_type(&sent, "m.call.hangup")[0].content["call_id"],
        "m-call"
    );
    assert_eq!(notices(&sent)[0], "Sales menu: 1 news, * back.");
    assert!(Call::load("m-call").unwrap().is_none());
    assert_eq!(Call::load("a-call").unwrap().unwrap().menu, "sales");
    assert_eq!(count(&h, "glare"), 1);
}

#[test]
fn a_renegotiation_is_answered_with_the_same_ice_credentials() {
    let (mut h, room) = setup();
    call(&mut h, &room, "c1");
    let first = of_type(&h.take_sent(), "m.call.answer")[0].content["answer"]["sdp"]
        .as_str()
        .unwrap()
        .to_string();
    let ufrag = first
        .lines()
        .find(|l| l.starts_with("a=ice-ufrag:"))
        .unwrap()
        .to_string();
    let held = CHROME.replacen("a=sendrecv", "a=sendonly", 1);
    let e = EventBuilder::new(
        "m.call.negotiate",
        json!({"call_id": "c1", "party_id": "alicephone",
        "version": "1", "lifetime": 10000, "description": {"type": "offer", "sdp": held}}),
    )
    .room(&room)
    .sender(ALICE)
    .id("$neg")
    .ts(h.now_ms())
    .build();
    h.event(e).unwrap();
    let sent = h.take_sent();
    let n = &of_type(&sent, "m.call.negotiate")[0].content;
    assert_eq!(n["description"]["type"], "answer");
    let sdp = n["description"]["sdp"].as_str().unwrap();
    webrtc_sdp::parse_sdp(sdp, true).unwrap();
    assert!(sdp.contains(&ufrag));
    assert!(sdp.contains("a=recvonly"));
    assert!(
        sdp.contains(" 3 IN IP4"),
        "the session version went up: {sdp}"
    );
}

#[test]
fn bad_offers_are_answered_in_the_room_and_hung_up() {
    let (mut h, room) = setup();
    h.event(invite_at(
        &h,
        &room,
        ALICE,
        invite_content("bad", "p", "hello", 60000),
        0,
    ))
    .unwrap();
    h.event(invite_at(
        &h,
        &room,
        ALICE,
        invite_content("vid", "p", VIDEO_ONLY, 60000),
        0,
    ))
    .unwrap();
    let sent = h.take_sent();
    let said = notices(&sent);
    assert!(
        said[0].starts_with("Cannot take the call: the offer is not valid SDP"),
        "{said:?}"
    );
    assert!(
        said[1].starts_with("Cannot take the call: no audio codec in common"),
        "{said:?}"
    );
    let hangups = of_type(&sent, "m.call.hangup");
    assert_eq!(hangups.len(), 2);
    assert_eq!(hangups[0].content["reason"], "unknown_error");
    assert!(of_type(&sent, "m.call.answer").is_empty());
    assert_eq!(count(&h, "rejected/sdp"), 1);
    assert_eq!(count(&h, "rejected/no_common_codec"), 1);
}

#[test]
fn hostile_call_events_are_counted_never_trapped() {
    let (mut h, room) = setup();
    call(&mut h, &room, "c1");
    h.take_sent();
    let huge = "9".repeat(100_000);
    for (t, c) in [
        ("m.call.invite", json!({"call_id": "x1", "version": "1"})),
        (
            "m.call.invite",
            json!({"call_id": "x2", "version": "1", "lifetime": -5, "offer": {"type": "offer", "sdp": CHROME}}),
        ),
        (
            "m.call.invite",
            json!({"call_id": "bad id!", "party_id": "p", "version": "1", "lifetime": 1000, "offer": {"type": "offer", "sdp": CHROME}}),
        ),
        (
            "m.call.invite",
            json!({"call_id": "x3", "party_id": "p", "version": "1", "lifetime": 60000, "offer": {"type": "offer", "sdp": huge}}),
        ),
        ("m.call.hangup", json!({"call_id": 5})),
        (
            "m.call.candidates",
            json!({"call_id": "c1", "version": "1", "candidates": "lots"}),
        ),
        (
            "org.plugboard.call.dtmf",
            json!({"call_id": "c1", "party_id": "alicephone", "digits": huge, "version": "1"}),
        ),
        (
            "org.plugboard.call.dtmf",
            json!({"call_id": "c1", "digits": ["1"], "version": "1"}),
        ),
        ("m.room.message", json!({"msgtype": "m.text", "body": 7})),
    ] {
        let e = EventBuilder::new(t, c)
            .room(&room)
            .sender(ALICE)
            .id("$h")
            .ts(h.now_ms())
            .build();
        h.event(e).unwrap();
    }
    assert_eq!(count(&h, "rejected/malformed_call"), 4);
    assert_eq!(count(&h, "rejected/call_id"), 1);
    assert_eq!(count(&h, "rejected/sdp"), 1);
    assert_eq!(count(&h, "rejected/dtmf"), 2);
    assert_eq!(count(&h, "rejected/malformed_message"), 1);
    let said = notices(&h.take_sent());
    assert!(said
        .iter()
        .any(|s| s.starts_with("Cannot take the call: the invite is malformed")));
    assert_eq!(
        Call::load("c1").unwrap().unwrap().menu,
        "main",
        "the call in progress goes on"
    );
}

#[test]
fn the_status_command_lists_the_calls_and_the_counts() {
    let (mut h, room) = setup();
    call(&mut h, &room, "c1");
    h.event(invite_at(
        &h,
        &room,
        ALICE,
        invite_content("old", "p", CHROME, 1000),
        5000,
    ))
    .unwrap();
    h.take_sent();
    h.message(&room, ALICE, "!ivr").unwrap();
    let said = notices(&h.take_sent());
    assert_eq!(
        said,
        ["Calls in progress: 1.\nYour call c1 is in menu `main`.\nPassed over: expired 1."]
    );
}

#[test]
fn more_calls_than_allowed_are_answered_busy() {
    let mut c = config();
    c["max_calls"] = json!(1);
    let (mut h, room) = setup_with(c, ALICE);
    let other = h.room(&[CAROL, IVR]);
    call(&mut h, &room, "c1");
    h.take_sent();
    h.event(invite_at(
        &h,
        &other,
        CAROL,
        invite_content("c2", "p", CHROME, 60000),
        0,
    ))
    .unwrap();
    let sent = h.take_sent();
    assert_eq!(
        of_type(&sent, "m.call.hangup")[0].content["reason"],
        "user_busy"
    );
    assert!(of_type(&sent, "m.call.answer").is_empty());
    assert_eq!(count(&h, "busy"), 1);
}

#[test]
fn without_menus_calls_are_declined_saying_what_to_set() {
    let (mut h, room) = setup_with(json!({"menus": {}}), ALICE);
    call(&mut h, &room, "c1");
    let sent = h.take_sent();
    assert_eq!(
        notices(&sent),
        ["The IVR is not configured: set `menus` in its configuration."]
    );
    assert_eq!(of_type(&sent, "m.call.reject").len(), 1);
    assert!(of_type(&sent, "m.call.answer").is_empty());
}

#[test]
fn a_call_in_a_group_room_is_answered_only_when_it_names_the_ivr() {
    let h0 = Harness::<Ivr>::with_sender(config(), "ivr").unwrap();
    let mut h = h0;
    h.room(&["@staff:test", IVR]);
    let group = h.room(&[ALICE, CAROL, IVR]);
    h.event(invite_at(
        &h,
        &group,
        ALICE,
        invite_content("g1", "p", CHROME, 60000),
        0,
    ))
    .unwrap();
    assert!(h.take_sent().is_empty());
    assert_eq!(count(&h, "ignored/not_a_direct_room"), 1);
    let mut named = invite_content("g2", "p", CHROME, 60000);
    named["invitee"] = json!(IVR);
    h.event(invite_at(&h, &group, ALICE, named, 0)).unwrap();
    assert_eq!(of_type(&h.take_sent(), "m.call.answer").len(), 1);
    let mut other = invite_content("g3", "p", CHROME, 60000);
    other["invitee"] = json!(CAROL);
    h.event(invite_at(&h, &group, ALICE, other, 0)).unwrap();
    assert!(h.take_sent().is_empty());
}

#[test]
fn the_caller_leaving_the_room_ends_the_call() {
    let (mut h, room) = setup();
    call(&mut h, &room, "c1");
    let leave = h.at_now(
        EventBuilder::new("m.room.member", json!({"membership": "leave"}))
            .room(&room)
            .sender(ALICE)
            .state_key(ALICE),
    );
    h.event(leave).unwrap();
    assert!(Call::load("c1").unwrap().is_none());
}

#[test]
fn joins_when_invited_unless_invite_from_keeps_the_inviter_out() {
    let mut c = config();
    c["invite_from"] = json!(["@admin:test"]);
    let (mut h, _) = setup_with(c, ALICE);
    let room = h.room(&[ALICE, "@admin:test"]);
    h.event(plugboard_sdk::testing::invite(&room, ALICE, IVR))
        .unwrap();
    assert_eq!(h.members(&room)[IVR], "invite", "invited, not joined");
    h.event(plugboard_sdk::testing::invite(&room, "@admin:test", IVR))
        .unwrap();
    assert_eq!(h.members(&room)[IVR], "join");
}

#[test]
fn a_timer_that_fails_runs_again_from_the_state_before_it() {
    let (mut h, room) = setup();
    call(&mut h, &room, "c1");
    h.take_sent();
    h.fail_next("kv_set", plugboard_sdk::Error::unknown("database is busy"));
    assert!(
        h.advance(5000).is_err(),
        "the failed timer call is reported"
    );
    let before = Call::load("c1").unwrap().unwrap();
    assert_eq!(before.prompts, 1, "the failed call's writes were dropped");
    h.take_sent();
    h.advance(0).unwrap();
    assert_eq!(Call::load("c1").unwrap().unwrap().prompts, 2);
}

#[test]
fn a_voicemail_the_mailbox_cannot_take_is_kept_and_delivered_later() {
    let (mut h, room) = setup();
    call(&mut h, &room, "c1");
    dtmf(&mut h, &room, "c1", "3");
    h.take_sent();
    h.fail_next(
        "send_event",
        plugboard_sdk::Error::new("M_FORBIDDEN", "not in the room"),
    );
    h.fail_next(
        "join",
        plugboard_sdk::Error::new("M_FORBIDDEN", "not invited"),
    );
    h.message(&room, ALICE, "Call me back").unwrap();
    let sent = h.take_sent();
    assert!(sent.iter().all(|s| s.room != MAILBOX));
    assert!(notices(&sent)
        .last()
        .unwrap()
        .starts_with("Thank you, your message was recorded: it will reach"));
    assert!(h.kv("voicemail/c1").is_some());
    assert_eq!(count(&h, "voicemail_delayed"), 1);
    h.advance(60_000).unwrap();
    let late = h.take_sent();
    let forwarded = late
        .iter()
        .find(|s| s.room == MAILBOX)
        .expect("delivered on the retry");
    assert!(forwarded.content["body"]
        .as_str()
        .unwrap()
        .ends_with("Call me back"));
    assert!(h.kv("voicemail/c1").is_none());
}

#[test]
fn a_kept_voicemail_is_given_up_after_its_tries() {
    let (mut h, room) = setup();
    call(&mut h, &room, "c1");
    dtmf(&mut h, &room, "c1", "3");
    for _ in 0..2 {
        h.fail_next("send_event", plugboard_sdk::Error::new("M_FORBIDDEN", "no"));
        h.fail_next("join", plugboard_sdk::Error::new("M_FORBIDDEN", "no"));
    }
    h.message(&room, ALICE, "Call me back").unwrap();
    for _ in 0..40 {
        h.fail_next("send_event", plugboard_sdk::Error::new("M_FORBIDDEN", "no"));
        h.fail_next("join", plugboard_sdk::Error::new("M_FORBIDDEN", "no"));
    }
    h.advance(24 * 60 * 60 * 1000).unwrap();
    assert!(h.kv("voicemail/c1").is_none());
    assert_eq!(count(&h, "voicemail_lost"), 1);
    assert!(h.timers().iter().all(|t| !t.0.starts_with("redeliver/")));
}

#[test]
fn candidates_sent_with_the_invite_before_the_answer_are_kept() {
    let (mut h, room) = setup();
    let invite = invite_at(
        &h,
        &room,
        ALICE,
        invite_content("c1", "alicephone", CHROME, 60000),
        0,
    );
    let candidates = h.at_now(
        EventBuilder::new(
            "m.call.candidates",
            json!({"call_id": "c1", "party_id": "alicephone", "version": "1", "candidates": [
                {"candidate": "candidate:1 1 udp 2113937151 192.0.2.1 50000 typ host", "sdpMid": "0", "sdpMLineIndex": 0},
                {"candidate": "", "sdpMid": "0", "sdpMLineIndex": 0}]}),
        )
        .room(&room)
        .sender(ALICE),
    );
    h.transaction(vec![invite, candidates]).unwrap();
    let c = Call::load("c1").unwrap().unwrap();
    assert_eq!(c.candidates.len(), 2);
    assert_eq!(
        c.candidates[1].candidate, "",
        "the end of candidates is kept too"
    );
}

#[test]
fn many_ended_calls_share_one_sweep_timer() {
    let (mut h, room) = setup();
    for i in 0..600 {
        let id = format!("c{i:03}");
        call(&mut h, &room, &id);
        send(
            &mut h,
            &room,
            ALICE,
            "m.call.hangup",
            json!({"call_id": id, "party_id": "alicephone", "version": "1"}),
        );
    }
    assert_eq!(h.timers().len(), 1, "one sweep, no timer per call");
    assert_eq!(
        h.kv_keys()
            .iter()
            .filter(|k| k.starts_with("ended/"))
            .count(),
        600
    );
    // Two batches, a second apart, then nothing more to sweep.
    h.advance(10 * 60 * 1000 + 2000).unwrap();
    assert!(h.kv_keys().iter().all(|k| !k.starts_with("ended/")));
    assert!(h.timers().is_empty());
}
