//! The translator run natively in the SDK's harness against a small LibreTranslate look-alike
//! (a word list, switchable to fail or to be slow): commands, automatic translation, the
//! glossary, the cache, outages with their notices, budgets and bad input.

use std::cell::RefCell;
use std::rc::Rc;

use plugboard_sdk::http::{Request, Response};
use plugboard_sdk::testing::{invite, EventBuilder, Harness};
use serde_json::{json, Value};

use super::*;

const ALICE: &str = "@alice:test";
const BOB: &str = "@bob:test";
const BOT: &str = "@bot:test";

/// How the look-alike answers.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Up,
    /// 503 to everything.
    Down,
    /// No answer in time.
    TimedOut,
    /// Answers, after this many milliseconds of real time.
    Slow(u64),
}

struct Lt {
    mode: Mode,
    /// Requests by path.
    hits: Vec<(String, Value)>,
}

const WORDS: &[(&str, &str)] = &[
    ("hello", "bonjour"),
    ("world", "monde"),
    ("good", "bon"),
    ("morning", "matin"),
    ("cat", "chat"),
];

fn translate_words(text: &str, source: &str, target: &str) -> String {
    text.split(' ')
        .map(|w| {
            let lower = w.to_lowercase();
            let found = WORDS.iter().find_map(|(en, fr)| match (source, target) {
                ("en", "fr") if *en == lower => Some(*fr),
                ("fr", "en") if *fr == lower => Some(*en),
                _ => None,
            });
            found.map_or_else(|| w.to_string(), str::to_string)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn ok(body: Value) -> Result<Response, Error> {
    reply_with(200, body)
}

fn reply_with(status: u16, body: Value) -> Result<Response, Error> {
    Ok(Response {
        status,
        headers: vec![],
        body: body.to_string().into_bytes(),
    })
}

impl Lt {
    fn answer(&mut self, r: &Request) -> Result<Response, Error> {
        let path = r.url.trim_start_matches("http://lt:5000").to_string();
        let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        self.hits.push((path.clone(), body.clone()));
        match self.mode {
            Mode::Down => return reply_with(503, json!({"error": "overloaded"})),
            Mode::TimedOut => return Err(Error::new(plugboard_sdk::http::TIMED_OUT, "late")),
            Mode::Slow(ms) => std::thread::sleep(std::time::Duration::from_millis(ms)),
            Mode::Up => {}
        }
        let q = body["q"].as_str().unwrap_or_default();
        match path.as_str() {
            "/languages" => ok(json!([
                {"code": "en", "name": "English", "targets": ["fr", "de"]},
                {"code": "fr", "name": "French", "targets": ["en"]},
                {"code": "de", "name": "German", "targets": ["en"]},
            ])),
            "/detect" => {
                let french = q
                    .split_whitespace()
                    .any(|w| WORDS.iter().any(|(_, fr)| *fr == w.to_lowercase()));
                let confidence = if q.contains("zzz") { 5.0 } else { 90.0 };
                ok(
                    json!([{"language": if french { "fr" } else { "en" }, "confidence": confidence}]),
                )
            }
            "/translate" => {
                let (source, target) = (
                    body["source"].as_str().unwrap_or_default(),
                    body["target"].as_str().unwrap_or_default(),
                );
                if ![("en", "fr"), ("fr", "en")].contains(&(source, target)) {
                    return reply_with(400, json!({"error": format!("{target} is not supported")}));
                }
                ok(json!({"translatedText": translate_words(q, source, target)}))
            }
            _ => reply_with(404, json!({"error": "Not Found"})),
        }
    }

    fn count(&self, path: &str) -> usize {
        self.hits.iter().filter(|(p, _)| p == path).count()
    }
}

struct Setup {
    h: Harness<Translator>,
    lt: Rc<RefCell<Lt>>,
    room: String,
}

fn setup(config: Value) -> Setup {
    let mut c = json!({"url": "http://lt:5000/", "retry_base_ms": 1000, "retry_max_ms": 8000});
    if let (Some(c), Some(extra)) = (c.as_object_mut(), config.as_object()) {
        c.extend(extra.clone());
    }
    let h = Harness::<Translator>::new(c).unwrap();
    let lt = Rc::new(RefCell::new(Lt {
        mode: Mode::Up,
        hits: Vec::new(),
    }));
    let answer = lt.clone();
    h.on_http(move |r| answer.borrow_mut().answer(r));
    let room = h.room(&[ALICE, BOT, BOB]);
    Setup { h, lt, room }
}

impl Setup {
    fn say(&mut self, who: &str, text: &str) -> Event {
        let e = self.h.message(&self.room, who, text).unwrap();
        self.h.advance(0).unwrap();
        e
    }

    fn mode(&self, mode: Mode) {
        self.lt.borrow_mut().mode = mode;
    }

    fn bodies(&self) -> Vec<String> {
        self.h
            .take_sent()
            .iter()
            .filter_map(|s| s.content["body"].as_str().map(str::to_string))
            .collect()
    }

    fn translate_on(&mut self, lang: &str) {
        self.say(ALICE, &format!("!translate on {lang}"));
        self.h.take_sent();
        self.lt.borrow_mut().hits.clear();
    }
}

#[test]
fn without_a_url_the_commands_say_what_to_set_and_messages_wait_for_nothing() {
    let mut h = Harness::<Translator>::new(json!({})).unwrap();
    let room = h.room(&[ALICE, BOT]);
    for command in ["!tr fr hello", "!translate on fr", "!translate languages"] {
        h.message(&room, ALICE, command).unwrap();
        let sent = h.take_sent();
        let body = sent[0].content["body"].as_str().unwrap();
        assert!(
            body.starts_with("not configured (no url is set): set url (and http_allow)"),
            "{body}"
        );
    }
    h.message(&room, ALICE, "!translate").unwrap();
    let status = h.take_sent()[0].content["body"].to_string();
    assert!(status.contains("not configured"), "{status}");
    assert!(h.kv_keys().iter().all(|k| !k.starts_with("q/")));
    assert!(h.timers().is_empty());
}

#[test]
fn tr_translates_once_as_a_notice_reply_marked_with_the_language_pair() {
    let mut s = setup(json!({}));
    let asked = s.say(ALICE, "!tr fr hello world");
    let sent = s.h.take_sent();
    assert_eq!(sent.len(), 1);
    let c = &sent[0].content;
    assert_eq!(c["body"], "[en→fr] bonjour monde");
    assert_eq!(c["msgtype"], "m.notice");
    assert_eq!(
        c["m.relates_to"]["m.in_reply_to"]["event_id"],
        asked.event_id.as_str()
    );
    assert_eq!(
        c["org.plugboard.translation"],
        json!({"source": "en", "target": "fr", "event_id": asked.event_id})
    );
    s.say(ALICE, "!tr en bonjour");
    assert_eq!(s.bodies(), ["[fr→en] hello"]);
    s.say(ALICE, "!tr fr bonjour le chat");
    assert_eq!(s.bodies(), ["That is already in fr."]);
    assert!(
        s.h.kv_keys().iter().all(|k| !k.starts_with("q/")),
        "done jobs are gone"
    );
}

#[test]
fn translate_on_checks_the_language_then_translates_messages_not_already_in_it() {
    let mut s = setup(json!({}));
    s.say(ALICE, "hello before");
    s.say(ALICE, "!translate on FR");
    assert_eq!(
        s.bodies(),
        ["Translating this room into French (fr) from now on. `!translate off` stops."]
    );
    s.say(BOB, "good morning");
    s.say(BOB, "bonjour le monde");
    s.say(BOB, "!echo not for me");
    s.say(BOB, "1234 :)");
    assert_eq!(s.bodies(), ["[en→fr] bon matin"]);
    s.say(ALICE, "!translate");
    let status = s.bodies().join("");
    assert!(
        status.contains("Translating this room into French (fr)"),
        "{status}"
    );
    assert!(status.contains("Backend http://lt:5000: up."), "{status}");
    s.say(ALICE, "!translate off");
    s.say(BOB, "hello world");
    assert_eq!(s.bodies(), ["Stopped translating this room."]);
}

#[test]
fn notices_edits_and_low_confidence_messages_are_not_translated() {
    let mut s = setup(json!({}));
    s.translate_on("fr");
    let notice = s.h.at_now(
        EventBuilder::new(
            "m.room.message",
            json!({"msgtype": "m.notice", "body": "hello"}),
        )
        .room(&s.room)
        .sender(BOB),
    );
    s.h.event(notice).unwrap();
    let edit = s.h.at_now(
        EventBuilder::new(
            "m.room.message",
            json!({"msgtype": "m.text", "body": "* hello",
                "m.new_content": {"msgtype": "m.text", "body": "hello"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": "$x"}}),
        )
        .room(&s.room)
        .sender(BOB),
    );
    s.h.event(edit).unwrap();
    s.say(BOB, "zzz hello");
    s.h.advance(0).unwrap();
    assert!(s.bodies().is_empty());
    let emote = s.h.at_now(
        EventBuilder::new(
            "m.room.message",
            json!({"msgtype": "m.emote", "body": "waves hello"}),
        )
        .room(&s.room)
        .sender(BOB),
    );
    s.h.event(emote).unwrap();
    s.h.advance(0).unwrap();
    assert_eq!(s.bodies(), ["[en→fr] waves bonjour"]);
}

#[test]
fn unknown_languages_are_answered_with_the_known_ones_and_counted() {
    let mut s = setup(json!({}));
    s.say(ALICE, "!translate on xx");
    assert_eq!(
        s.bodies(),
        ["The backend does not know the language `xx`. Known: en, fr, de."]
    );
    s.say(ALICE, "!tr zz hello");
    assert_eq!(
        s.bodies(),
        ["The backend does not know the language `zz`. Known: en, fr, de."]
    );
    s.say(ALICE, "!tr 12 hello");
    s.say(ALICE, "!translate on f");
    assert_eq!(
        s.bodies(),
        [
            "`12` is not a language code (like en, fr, pt-BR).",
            "`f` is not a language code (like en, fr, pt-BR)."
        ]
    );
    assert_eq!(
        s.h.kv_json("counts/rejected/unknown_language"),
        Some(json!(2))
    );
    assert_eq!(s.h.kv_json("counts/rejected/bad_language"), Some(json!(2)));
    assert_eq!(
        s.lt.borrow().count("/languages"),
        2,
        "a missing code asks again"
    );
    assert_eq!(s.h.kv(&format!("room/{}", s.room)), None);
}

#[test]
fn a_refused_translation_is_answered_for_tr_and_only_counted_for_a_room() {
    let mut s = setup(json!({}));
    s.say(ALICE, "!tr de hello");
    assert_eq!(
        s.bodies(),
        ["The backend cannot do this: de is not supported"]
    );
    s.translate_on("de");
    s.say(BOB, "hello");
    assert!(s.bodies().is_empty());
    assert_eq!(
        s.h.kv_json("counts/rejected/backend_refused"),
        Some(json!(1 + 1))
    );
}

#[test]
fn the_glossary_protects_its_terms_from_the_backend_and_puts_their_translations_in() {
    let mut s = setup(json!({}));
    s.say(ALICE, "!glossary add World = Univers");
    s.say(ALICE, "!glossary add Plugboard = Plugboard");
    assert_eq!(
        s.bodies(),
        [
            "Glossary: World is translated as Univers (1 terms).",
            "Glossary: Plugboard is translated as Plugboard (2 terms)."
        ]
    );
    s.say(ALICE, "!tr fr hello world of plugboard");
    assert_eq!(s.bodies(), ["[en→fr] bonjour Univers of Plugboard"]);
    let sent = s.lt.borrow().hits.last().unwrap().1.clone();
    assert_eq!(
        sent["q"], "hello [[0]] of [[1]]",
        "the terms are not sent to translate"
    );
    s.say(ALICE, "!glossary");
    assert_eq!(
        s.bodies(),
        ["Glossary:\nPlugboard = Plugboard\nWorld = Univers"]
    );
    s.say(ALICE, "!glossary remove WORLD");
    s.say(ALICE, "!tr fr hello world");
    assert_eq!(
        s.bodies(),
        [
            "Glossary: World removed (1 terms).",
            "[en→fr] bonjour monde"
        ]
    );
    let other = s.h.room(&[ALICE, BOT]);
    s.h.message(&other, ALICE, "!glossary").unwrap();
    assert_eq!(
        s.h.take_sent()[0].content["body"],
        "This room's glossary is empty.",
        "a glossary is per room"
    );
}

#[test]
fn translations_and_detections_are_cached_and_a_glossary_change_is_a_new_text() {
    let mut s = setup(json!({}));
    s.translate_on("fr");
    s.say(BOB, "hello world");
    s.say(ALICE, "hello world");
    assert_eq!(
        s.bodies(),
        ["[en→fr] bonjour monde", "[en→fr] bonjour monde"]
    );
    assert_eq!(
        (
            s.lt.borrow().count("/detect"),
            s.lt.borrow().count("/translate")
        ),
        (1, 1)
    );
    assert_eq!(s.h.kv_json("counts/cache_hits"), Some(json!(2)));
    s.say(ALICE, "!glossary add world = terre");
    s.say(BOB, "hello world");
    assert_eq!(s.bodies()[1], "[en→fr] bonjour terre");
    assert_eq!(s.lt.borrow().count("/translate"), 2);
    s.say(ALICE, "!glossary add world = planète");
    s.say(BOB, "hello world");
    assert_eq!(s.bodies()[1], "[en→fr] bonjour planète");
    assert_eq!(
        s.lt.borrow().count("/translate"),
        2,
        "the backend's answer for `hello [[0]]` is reused with the new translation"
    );
}

#[test]
fn the_cache_stays_within_its_entries() {
    let mut s = setup(json!({"cache_entries": 4}));
    s.translate_on("fr");
    for i in 0..10 {
        s.say(BOB, &format!("hello {i} world"));
    }
    let cached =
        s.h.kv_keys()
            .iter()
            .filter(|k| k.starts_with("cache/"))
            .count();
    assert_eq!(cached, 4);
    assert_eq!(s.bodies().len(), 10);
}

#[test]
fn an_outage_gets_one_notice_per_room_loses_nothing_and_ends_with_one_back_notice() {
    let mut s = setup(json!({}));
    s.translate_on("fr");
    s.mode(Mode::Down);
    s.say(BOB, "hello");
    s.say(BOB, "good morning");
    s.say(ALICE, "!tr fr cat");
    let notices = s.bodies();
    assert_eq!(
        notices,
        [
            "The translation backend is unavailable (HTTP 503 overloaded). 1 waiting here; they \
          will be translated when it is back."
        ]
    );
    assert_eq!(s.lt.borrow().hits.len(), 1, "one try, then the pause");
    let (key, due, _) = s.h.timers()[0].clone();
    assert_eq!((key.as_str(), due - s.h.now_ms()), (WORK, 1000));
    s.h.advance(1000).unwrap();
    s.h.advance(1999).unwrap();
    assert_eq!(
        s.lt.borrow().hits.len(),
        2,
        "the second pause is twice the first"
    );
    s.h.advance(1).unwrap();
    assert_eq!(s.lt.borrow().hits.len(), 3);
    assert!(s.bodies().is_empty(), "no notice per failure or message");
    s.say(ALICE, "!translate");
    let status = s.bodies().join("");
    assert!(
        status.contains("unavailable (HTTP 503 overloaded), 3 failures"),
        "{status}"
    );
    assert!(status.contains("Waiting: 3 here, 3 in all."), "{status}");
    s.mode(Mode::Up);
    s.h.advance(8000).unwrap();
    assert_eq!(
        s.bodies(),
        [
            "[en→fr] bonjour",
            "The translation backend is back; translating what was waiting.",
            "[en→fr] bon matin",
            "[en→fr] chat",
        ]
    );
    assert!(s.h.timers().is_empty());
    s.mode(Mode::Down);
    s.say(BOB, "hello cat world");
    let again = s.bodies();
    assert_eq!(again.len(), 1, "{again:?}");
    assert!(
        again[0].starts_with("The translation backend is unavailable"),
        "a new outage is told again"
    );
}

#[test]
fn a_backend_that_does_not_answer_in_time_is_an_outage_not_a_stuck_queue() {
    let mut s = setup(json!({}));
    s.translate_on("fr");
    s.mode(Mode::TimedOut);
    s.say(BOB, "hello");
    let notice = s.bodies().join("");
    assert!(
        notice.contains("unavailable (no answer within 800 ms)"),
        "{notice}"
    );
    s.say(ALICE, "!glossary add cat = Minou");
    assert_eq!(s.bodies().len(), 1, "commands go on being answered");
    s.mode(Mode::Up);
    s.h.advance(1000).unwrap();
    assert_eq!(
        s.bodies(),
        [
            "[en→fr] bonjour",
            "The translation backend is back; translating what was waiting."
        ]
    );
}

#[test]
fn a_round_stops_asking_when_its_budget_is_spent_and_the_next_round_goes_on() {
    let mut s = setup(json!({"call_budget_ms": 250, "request_timeout_ms": 100}));
    s.translate_on("fr");
    s.mode(Mode::Slow(120));
    s.h.message(&s.room, BOB, "hello").unwrap();
    s.h.message(&s.room, BOB, "good morning").unwrap();
    let rounds = s.h.advance(0).unwrap();
    assert!(rounds >= 4, "one slow request per round: {rounds} rounds");
    assert_eq!(s.bodies(), ["[en→fr] bonjour", "[en→fr] bon matin"]);
    s.mode(Mode::Up);
    s.say(BOB, "cat");
    s.say(BOB, "hello");
    s.say(BOB, "world");
    assert_eq!(s.bodies().len(), 3);
}

#[test]
fn a_failed_post_is_retried_by_the_timer_without_losing_the_job() {
    let mut s = setup(json!({}));
    s.h.message(&s.room, ALICE, "!tr fr hello").unwrap();
    s.h.fail_next("send_event", Error::new("M_UNKNOWN", "database busy"));
    assert!(s.h.advance(0).is_err());
    assert!(s.bodies().is_empty());
    assert_eq!(s.h.timers().len(), 1, "the timer stays to be fired again");
    s.h.advance(0).unwrap();
    assert_eq!(s.bodies(), ["[en→fr] bonjour"]);
    s.h.message(&s.room, ALICE, "!tr fr cat").unwrap();
    s.h.fail_next("send_event", Error::new("M_FORBIDDEN", "not in the room"));
    s.h.advance(0).unwrap();
    assert_eq!(
        s.h.kv_json("counts/unsent"),
        Some(json!(1)),
        "a post refused for good is dropped"
    );
    assert!(s.h.timers().is_empty());
}

#[test]
fn bad_input_is_answered_or_counted_and_never_fails_the_transaction() {
    let mut s = setup(json!({"max_chars": 20, "max_glossary_terms": 1}));
    s.say(ALICE, &format!("!tr fr {}", "a".repeat(21)));
    s.say(ALICE, "!tr fr");
    s.say(ALICE, "!translate sideways");
    s.say(ALICE, "!glossary add nonsense");
    s.say(ALICE, "!glossary add a = b");
    s.say(ALICE, "!glossary add c = d");
    s.say(ALICE, "!glossary remove zzz");
    s.say(BOB, "!translate on fr");
    s.say(BOB, "!glossary add x = y");
    let said = s.bodies();
    assert_eq!(
        said,
        [
            "That is too long: I translate at most 20 characters at a time.",
            "Usage: !tr LANG TEXT",
            "Usage: !translate on LANG | !translate off | !translate languages | !translate",
            "write it as TERM = TRANSLATION. Usage: !glossary add TERM = TRANSLATION | \
             !glossary remove TERM | !glossary",
            "Glossary: a is translated as b (1 terms).",
            "The glossary is full (1 terms); remove one first.",
            "The glossary has no such term.",
            "Only members who may change this room's settings can do that.",
            "Only members who may change this room's settings can do that.",
        ]
    );
    s.translate_on("fr");
    s.say(BOB, &"hello ".repeat(10));
    for (t, c) in [
        ("m.room.message", json!({"msgtype": 5, "body": "hello"})),
        (
            "m.room.message",
            json!({"msgtype": "m.text", "body": {"evil": true}}),
        ),
        ("m.room.message", json!({"msgtype": "m.text"})),
    ] {
        let e =
            s.h.at_now(EventBuilder::new(t, c).room(&s.room).sender(BOB));
        s.h.event(e).unwrap();
    }
    s.h.advance(0).unwrap();
    assert!(s.bodies().is_empty());
    assert_eq!(s.h.kv_json("counts/rejected/too_long"), Some(json!(2)));
    assert_eq!(s.h.kv_json("counts/rejected/malformed"), Some(json!(3)));
    assert_eq!(s.h.kv_json("counts/rejected/not_allowed"), Some(json!(2)));
    s.say(ALICE, "!translate");
    let status = s.bodies().join("");
    assert!(status.contains("malformed 3"), "{status}");
    assert!(status.contains("too_long 2"), "{status}");
}

#[test]
fn a_full_queue_refuses_more_work_and_says_so() {
    let mut s = setup(json!({"max_pending": 2}));
    s.mode(Mode::Down);
    s.say(ALICE, "!tr fr hello");
    s.say(ALICE, "!tr fr cat");
    s.say(ALICE, "!tr fr world");
    let said = s.bodies();
    assert_eq!(said.len(), 2, "{said:?}");
    assert!(said[0].starts_with("The translation backend is unavailable"));
    assert_eq!(
        said[1],
        "Too many translations are waiting; try again once they are done."
    );
    assert_eq!(s.h.kv_json("counts/rejected/queue_full"), Some(json!(1)));
}

#[test]
fn a_job_stored_in_a_shape_it_cannot_read_is_dropped_and_counted() {
    let mut s = setup(json!({}));
    s.h.message(&s.room, ALICE, "!tr fr hello").unwrap();
    kv::set("q/0000000000000000", b"[1, 2]").unwrap();
    s.h.advance(0).unwrap();
    assert!(s.bodies().is_empty());
    assert_eq!(s.h.kv_json("counts/rejected/stored_job"), Some(json!(1)));
    assert!(s.h.kv_keys().iter().all(|k| !k.starts_with("pending/")));
}

#[test]
fn it_joins_when_invited_only_by_whom_invite_from_lets_in() {
    let mut h = Harness::<Translator>::new(json!({"invite_from": ["@admin:test"]})).unwrap();
    let room = h.room(&[ALICE, "@admin:test"]);
    h.event(invite(&room, ALICE, BOT)).unwrap();
    assert_eq!(h.members(&room)[BOT], "invite", "invited, not joined");
    h.event(invite(&room, "@admin:test", BOT)).unwrap();
    assert_eq!(h.members(&room)[BOT], "join");
}
