//! The plugin under the SDK's native harness: commands, the hook endpoint with good and
//! hostile requests, and forwarding with a receiver that answers, refuses and fails.

use std::cell::RefCell;
use std::rc::Rc;

use plugboard_sdk::http::{Request, Response};
use plugboard_sdk::testing::{EventBuilder, Harness, Sent};
use plugboard_sdk::{Error, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::Webhooks;

const ALICE: &str = "@alice:test";
const BOB: &str = "@bob:test";
const BOT: &str = "@bot:test";

fn config() -> Value {
    json!({"public_url": "https://matrix.test/", "retry_base_ms": 100, "retry_max_ms": 1000,
           "notify_after_failures": 3})
}

/// A harness and a room where alice (power 100), bob (power 0) and the bot are joined.
fn setup(config: Value) -> (Harness<Webhooks>, String) {
    let h = Harness::<Webhooks>::new(config).unwrap();
    let room = h.room(&[ALICE, BOB, BOT]);
    (h, room)
}

fn notices_in(sent: &[Sent], room: &str) -> Vec<String> {
    sent.iter()
        .filter(|s| s.room == room && s.event_type == "m.room.message")
        .filter_map(|s| s.content["body"].as_str().map(str::to_string))
        .collect()
}

fn last_notice(h: &Harness<Webhooks>, room: &str) -> String {
    notices_in(&h.sent(), room).pop().unwrap_or_default()
}

/// Makes hook `name` as alice; answers its token, read from the direct chat.
fn make_hook(h: &mut Harness<Webhooks>, room: &str, name: &str) -> String {
    h.message(room, ALICE, &format!("!webhook new {name}"))
        .unwrap();
    let url = h
        .sent()
        .iter()
        .rev()
        .filter(|s| s.room != room && s.event_type == "m.room.message")
        .find_map(|s| {
            let body = s.content["body"].as_str()?;
            body.split_whitespace()
                .find(|w| w.contains("/hooks/"))
                .map(str::to_string)
        })
        .expect("a URL in a direct chat");
    let (base, token) = url.split_once("/hooks/").unwrap();
    assert_eq!(base, "https://matrix.test/_plugboard/plugins/webhooks");
    token.to_string()
}

fn request(method: &str, path: &str, content_type: &str, body: &[u8]) -> HttpRequest {
    HttpRequest {
        method: method.into(),
        path: path.into(),
        query: String::new(),
        headers: vec![("content-type".into(), content_type.into())],
        body: body.to_vec(),
        user_id: None,
    }
}

fn post(h: &mut Harness<Webhooks>, token: &str, body: Value) -> HttpResponse {
    h.http(request(
        "POST",
        &format!("/hooks/{token}"),
        "application/json",
        body.to_string().as_bytes(),
    ))
}

fn body_json(r: &HttpResponse) -> Value {
    serde_json::from_slice(&r.body).unwrap_or(Value::Null)
}

fn posts_by(h: &Harness<Webhooks>, user: &str) -> Vec<Value> {
    h.sent()
        .into_iter()
        .filter(|s| s.user == user && s.event_type == "m.room.message")
        .map(|s| s.content)
        .collect()
}

#[test]
fn a_room_admin_makes_a_hook_and_gets_its_url_only_in_a_direct_chat() {
    let (mut h, room) = setup(config());
    let token = make_hook(&mut h, &room, "ci");
    assert_eq!(token.len(), crate::token::TOKEN_LEN);
    let sent = h.sent();
    let dm = sent
        .iter()
        .find(|s| s.event_type == "m.room.create")
        .map(|s| s.room.clone())
        .unwrap();
    assert_eq!(h.members(&dm)[ALICE], "invite");
    assert!(notices_in(&sent, &room).iter().all(|b| !b.contains(&token)));
    assert!(last_notice(&h, &room).contains("@_webhook_ci:test"));
    assert!(
        h.kv_keys().iter().all(|k| !k.contains(&token[12..])),
        "the secret part is not in any key"
    );
    assert!(h.kv_keys().iter().all(|k| h
        .kv(k)
        .is_none_or(|v| !String::from_utf8_lossy(&v).contains(&token[12..]))));
    // A second hook reuses the direct chat.
    make_hook(&mut h, &room, "deploy");
    let creates = h
        .sent()
        .iter()
        .filter(|s| s.event_type == "m.room.create")
        .count();
    assert_eq!(creates, 1);
}

#[test]
fn members_without_power_and_bad_names_are_refused() {
    let (mut h, room) = setup(config());
    h.message(&room, BOB, "!webhook new ci").unwrap();
    assert!(last_notice(&h, &room).contains("Only members who may change"));
    h.message(&room, BOB, "!webhook out https://example.org/x")
        .unwrap();
    assert!(last_notice(&h, &room).contains("Only members who may change"));
    for bad in ["ci:evil", "-x", &"x".repeat(40)] {
        h.message(&room, ALICE, &format!("!webhook new {bad}"))
            .unwrap();
        assert!(
            last_notice(&h, &room).contains("A webhook name is"),
            "{bad}"
        );
    }
    h.message(&room, ALICE, "!webhook new").unwrap();
    assert!(last_notice(&h, &room).starts_with("Usage: !webhook new NAME"));
    assert!(h.kv_keys().iter().all(|k| !k.starts_with("hook/")));
    assert_eq!(
        h.kv_json("counts/rejected/command_not_allowed"),
        Some(json!(2))
    );
}

#[test]
fn without_a_public_url_it_says_what_to_set() {
    let (mut h, room) = setup(json!({}));
    h.message(&room, ALICE, "!webhook new ci").unwrap();
    let said = last_notice(&h, &room);
    assert!(
        said.contains("not configured") && said.contains("public_url"),
        "{said}"
    );
    assert!(h.kv_keys().iter().all(|k| !k.starts_with("hook/")));
}

#[test]
fn a_post_appears_in_the_room_as_the_hooks_user_with_its_markdown_as_html() {
    let (mut h, room) = setup(config());
    let token = make_hook(&mut h, &room, "ci");
    let r = post(&mut h, &token, json!({"text": "build 7 passed"}));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(body_json(&r)["event_id"].is_string());
    let r = post(
        &mut h,
        &token,
        json!({"text": "**failed**: [log](https://ci.test/7) <script>alert(1)</script>"}),
    );
    assert_eq!(r.status, 200);
    let posts = posts_by(&h, "@_webhook_ci:test");
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[0]["body"], "build 7 passed");
    assert!(posts[0].get("formatted_body").is_none());
    assert_eq!(posts[0]["m.mentions"], json!({}));
    let html = posts[1]["formatted_body"].as_str().unwrap();
    assert_eq!(posts[1]["format"], "org.matrix.custom.html");
    assert!(html.contains("<strong>failed</strong>"), "{html}");
    assert!(
        html.contains("<a href=\"https://ci.test/7\">log</a>"),
        "{html}"
    );
    assert!(
        html.contains("&lt;script&gt;") && !html.contains("<script"),
        "{html}"
    );
    assert_eq!(h.members(&room)["@_webhook_ci:test"], "join");
    assert_eq!(h.kv_json("counts/posted"), Some(json!(2)));
}

#[test]
fn username_and_icon_set_the_hooks_look_in_the_room() {
    let (mut h, room) = setup(config());
    let token = make_hook(&mut h, &room, "ci");
    let fetched = Rc::new(RefCell::new(0));
    let count = fetched.clone();
    h.on_http(move |r: &Request| {
        *count.borrow_mut() += 1;
        assert_eq!(r.method, "GET");
        Ok(Response {
            status: 200,
            headers: vec![("content-type".into(), "image/png".into())],
            body: vec![0x89, b'P', b'N', b'G'],
        })
    });
    let look = json!({"text": "hi", "username": "Jenkins", "icon_url": "https://ci.test/icon.png"});
    assert_eq!(post(&mut h, &token, look.clone()).status, 200);
    assert_eq!(post(&mut h, &token, look).status, 200);
    assert_eq!(*fetched.borrow(), 1, "the icon is fetched once");
    let member_events: Vec<Value> = h
        .sent()
        .into_iter()
        .filter(|s| s.event_type == "m.room.member" && s.user == "@_webhook_ci:test")
        .map(|s| s.content)
        .collect();
    let last = member_events.last().unwrap();
    assert_eq!(last["displayname"], "Jenkins");
    let avatar = last["avatar_url"].as_str().unwrap();
    assert_eq!(h.media(avatar).unwrap().content_type, "image/png");
    // The same look twice sends one member event, not two.
    let with_look = member_events
        .iter()
        .filter(|c| c["displayname"] == "Jenkins")
        .count();
    assert_eq!(with_look, 1);
    // An mxc icon is used as it is; a bad one is ignored and the message still posted.
    let r = post(
        &mut h,
        &token,
        json!({"text": "x", "icon_url": "mxc://test/abc"}),
    );
    assert_eq!(r.status, 200);
    let r = post(
        &mut h,
        &token,
        json!({"text": "y", "icon_url": "javascript:x"}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(h.kv_json("counts/rejected/icon_bad"), Some(json!(1)));
}

#[test]
fn a_bad_or_revoked_token_gets_404_and_nothing_is_posted() {
    let (mut h, room) = setup(config());
    let token = make_hook(&mut h, &room, "ci");
    let mut wrong = token.clone();
    let last = if wrong.ends_with('A') { "B" } else { "A" };
    wrong.replace_range(wrong.len() - 1.., last);
    for t in [wrong.as_str(), &token[1..], "", "../../etc"] {
        let r = post(&mut h, t, json!({"text": "sneaky"}));
        assert_eq!(r.status, 404, "{t}");
        assert_eq!(body_json(&r)["errcode"], "M_NOT_FOUND");
    }
    h.message(&room, BOB, "!webhook revoke ci").unwrap();
    assert_eq!(post(&mut h, &token, json!({"text": "still"})).status, 200);
    h.message(&room, ALICE, "!webhook revoke ci").unwrap();
    assert!(last_notice(&h, &room).contains("Revoked webhook `ci`"));
    let r = post(&mut h, &token, json!({"text": "after revoke"}));
    assert_eq!(r.status, 404);
    let posts = posts_by(&h, "@_webhook_ci:test");
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0]["body"], "still");
    assert_eq!(h.kv_json("counts/rejected/http_bad_token"), Some(json!(5)));
}

#[test]
fn hostile_bodies_get_matrix_errors_with_the_right_status_and_are_counted() {
    let (mut h, room) = setup(config());
    let token = make_hook(&mut h, &room, "ci");
    let path = format!("/hooks/{token}");
    let cases: Vec<(HttpRequest, u16, &str)> = vec![
        (
            request("POST", &path, "application/json", b"{not json"),
            400,
            "M_NOT_JSON",
        ),
        (
            request("POST", &path, "application/json", b"[1,2]"),
            400,
            "M_BAD_JSON",
        ),
        (
            request("POST", &path, "application/json", b"{}"),
            400,
            "M_BAD_JSON",
        ),
        (
            request("POST", &path, "application/json", br#"{"text": 5}"#),
            400,
            "M_BAD_JSON",
        ),
        (
            request("POST", &path, "application/json", br#"{"text": "  "}"#),
            400,
            "M_BAD_JSON",
        ),
        (
            request(
                "POST",
                &path,
                "application/json",
                br#"{"text": "x", "username": []}"#,
            ),
            400,
            "M_BAD_JSON",
        ),
        (
            request(
                "POST",
                &path,
                "application/json",
                json!({"text": "x".repeat(16 * 1024 + 1)})
                    .to_string()
                    .as_bytes(),
            ),
            413,
            "M_TOO_LARGE",
        ),
        (
            request(
                "POST",
                &path,
                "application/x-www-form-urlencoded",
                b"text=hi",
            ),
            400,
            "M_NOT_JSON",
        ),
        (request("GET", &path, "", b""), 405, "M_UNRECOGNIZED"),
        (
            request("POST", "/other", "application/json", b"{}"),
            404,
            "M_UNRECOGNIZED",
        ),
    ];
    for (req, status, errcode) in cases {
        let what = format!("{} {}", req.method, String::from_utf8_lossy(&req.body));
        let r = h.http(req);
        assert_eq!(r.status, status, "{what}");
        let b = body_json(&r);
        assert_eq!(b["errcode"], errcode, "{what}");
        assert!(b["error"].is_string(), "{what}");
    }
    assert!(posts_by(&h, "@_webhook_ci:test").is_empty());
    assert_eq!(h.kv_json("counts/rejected/http_bad_json"), Some(json!(5)));
    assert_eq!(h.kv_json("counts/rejected/http_not_json"), Some(json!(2)));
    assert_eq!(h.kv_json("counts/rejected/http_method"), Some(json!(1)));
    // Slack's form body with the JSON in `payload` is taken, and so is JSON sent as a form.
    let form = format!("payload={}", "%7B%22text%22%3A%22from+a+form%22%7D");
    let r = h.http(request(
        "POST",
        &path,
        "application/x-www-form-urlencoded",
        form.as_bytes(),
    ));
    assert_eq!(r.status, 200);
    assert_eq!(posts_by(&h, "@_webhook_ci:test")[0]["body"], "from a form");
    let curl = br#"{"text": "from curl -d"}"#;
    let r = h.http(request(
        "POST",
        &path,
        "application/x-www-form-urlencoded",
        curl,
    ));
    assert_eq!(r.status, 200);
    assert_eq!(posts_by(&h, "@_webhook_ci:test")[1]["body"], "from curl -d");
    h.message(&room, ALICE, "!webhook list").unwrap();
    let list = last_notice(&h, &room);
    assert!(
        list.contains("Incoming webhooks: ci.") && list.contains("http_bad_json 5"),
        "{list}"
    );
}

/// A receiver for forwarded messages: what it got, and the status it answers (or an error).
type Inbox = Rc<RefCell<Vec<Value>>>;

fn receiver(h: &Harness<Webhooks>, answer: Rc<RefCell<Result<u16, Error>>>) -> Inbox {
    let inbox: Inbox = Rc::default();
    let got = inbox.clone();
    h.on_http(move |r: &Request| {
        if !r.url.starts_with("https://hooks.test/") {
            return Err(Error::new("M_FORBIDDEN", "not on the allow-list"));
        }
        let status = answer.borrow().clone()?;
        if (200..300).contains(&status) {
            got.borrow_mut()
                .push(serde_json::from_slice(&r.body).unwrap_or(Value::Null));
        }
        Ok(Response {
            status,
            headers: vec![],
            body: b"ok".to_vec(),
        })
    });
    inbox
}

#[test]
fn messages_are_forwarded_in_slack_shape_after_a_test_post() {
    let (mut h, room) = setup(config());
    let inbox = receiver(&h, Rc::new(RefCell::new(Ok(200))));
    h.message(&room, ALICE, "!webhook out https://hooks.test/in/SECRET")
        .unwrap();
    h.advance(0).unwrap();
    assert_eq!(inbox.borrow().len(), 1, "the test post");
    let said = last_notice(&h, &room);
    assert_eq!(said, "Forwarding this room's messages to hooks.test.");
    assert!(notices_in(&h.sent(), &room)
        .iter()
        .all(|b| !b.contains("SECRET")));
    let hello = h.message(&room, BOB, "hello out there").unwrap();
    h.message(&room, ALICE, "second").unwrap();
    h.advance(0).unwrap();
    let got = inbox.borrow().clone();
    assert_eq!(got.len(), 3);
    assert_eq!(got[1]["text"], "hello out there");
    assert_eq!(got[1]["username"], BOB);
    assert_eq!(got[1]["user_id"], BOB);
    assert_eq!(got[1]["room"], room.as_str());
    assert_eq!(got[1]["event_id"], hello.event_id.as_str());
    assert_eq!(got[2]["text"], "second");
    // The hook users' posts and the plugin's own messages are not forwarded.
    let hook_post = h.at_now(
        EventBuilder::new(
            "m.room.message",
            json!({"msgtype": "m.text", "body": "from ci"}),
        )
        .room(&room)
        .sender("@_webhook_ci:test"),
    );
    h.event(hook_post).unwrap();
    h.message(&room, BOT, "my own").unwrap();
    h.advance(0).unwrap();
    assert_eq!(inbox.borrow().len(), 3);
    assert!(h.kv_keys().iter().all(|k| !k.starts_with("queue/")));
}

#[test]
fn a_host_off_the_allow_list_is_refused_by_name() {
    let (mut h, room) = setup(config());
    let inbox = receiver(&h, Rc::new(RefCell::new(Ok(200))));
    h.message(&room, ALICE, "!webhook out https://evil.test/x")
        .unwrap();
    h.message(&room, BOB, "not forwarded").unwrap();
    h.advance(0).unwrap();
    let said = last_notice(&h, &room);
    assert!(
        said.starts_with("Refused: evil.test is not on this plugin's allow-list"),
        "{said}"
    );
    assert!(inbox.borrow().is_empty());
    assert!(h
        .kv_keys()
        .iter()
        .all(|k| !k.starts_with("out/") && !k.starts_with("queue/")));
    assert!(h.timers().is_empty());
    h.message(&room, ALICE, "!webhook out ftp://x").unwrap();
    assert!(last_notice(&h, &room).starts_with("Refused:"));
}

#[test]
fn a_refused_new_url_leaves_the_working_one_in_place() {
    let (mut h, room) = setup(config());
    let inbox = receiver(&h, Rc::new(RefCell::new(Ok(200))));
    h.message(&room, ALICE, "!webhook out https://hooks.test/in")
        .unwrap();
    h.advance(0).unwrap();
    h.message(&room, ALICE, "!webhook out https://evil.test/x")
        .unwrap();
    h.message(&room, BOB, "still goes out").unwrap();
    h.advance(0).unwrap();
    let said = notices_in(&h.sent(), &room);
    let refusal = said.iter().find(|b| b.starts_with("Refused")).unwrap();
    assert!(refusal.contains("evil.test") && refusal.ends_with("Still forwarding to hooks.test."));
    h.advance(0).unwrap();
    let texts: Vec<Value> = inbox.borrow().iter().map(|m| m["text"].clone()).collect();
    assert_eq!(texts.last().unwrap(), "still goes out");
}

#[test]
fn a_failing_receiver_loses_nothing_and_is_retried_with_backoff() {
    let (mut h, room) = setup(config());
    let answer = Rc::new(RefCell::new(Ok(200)));
    let inbox = receiver(&h, answer.clone());
    h.message(&room, ALICE, "!webhook out https://hooks.test/in")
        .unwrap();
    h.advance(0).unwrap();
    *answer.borrow_mut() = Err(Error::new("M_CONNECTION_FAILED", "connection refused"));
    for i in 0..5 {
        h.message(&room, BOB, &format!("m{i}")).unwrap();
    }
    // Tries at 0, then after 100, 200, 400 ms: the third failure tells the room.
    assert_eq!(h.advance(0).unwrap(), 1);
    assert_eq!(h.advance(99).unwrap(), 0);
    assert_eq!(h.advance(1).unwrap(), 1);
    assert_eq!(h.advance(200).unwrap(), 1);
    let said = last_notice(&h, &room);
    assert!(said.contains("has failed 3 times in a row"), "{said}");
    assert!(said.contains("5 messages are kept"), "{said}");
    assert_eq!(h.timers()[0].1, h.now_ms() + 400);
    // A 503 is a failure too; then the receiver comes back.
    *answer.borrow_mut() = Ok(503);
    h.advance(400).unwrap();
    assert_eq!(h.timers()[0].1, h.now_ms() + 800);
    *answer.borrow_mut() = Ok(200);
    h.advance(800).unwrap();
    let texts: Vec<Value> = inbox
        .borrow()
        .iter()
        .skip(1)
        .map(|m| m["text"].clone())
        .collect();
    assert_eq!(texts, ["m0", "m1", "m2", "m3", "m4"]);
    assert_eq!(
        last_notice(&h, &room),
        "Forwarding to hooks.test works again."
    );
    assert!(h.timers().is_empty());
    let f = h.kv_json(&format!("out/{room}")).unwrap();
    assert_eq!(f["failures"], 0);
    assert_eq!(f["pending"], 0);
    assert_eq!(f["delivered"], 5);
}

#[test]
fn a_full_queue_drops_new_messages_and_says_so_once() {
    let mut cfg = config();
    cfg["max_pending"] = json!(2);
    let (mut h, room) = setup(cfg);
    let answer = Rc::new(RefCell::new(Ok(200)));
    let inbox = receiver(&h, answer.clone());
    h.message(&room, ALICE, "!webhook out https://hooks.test/in")
        .unwrap();
    h.advance(0).unwrap();
    *answer.borrow_mut() = Ok(500);
    for i in 0..5 {
        h.message(&room, BOB, &format!("m{i}")).unwrap();
    }
    let full: Vec<String> = notices_in(&h.sent(), &room)
        .into_iter()
        .filter(|b| b.contains("new messages are dropped"))
        .collect();
    assert_eq!(full.len(), 1);
    assert_eq!(h.kv_json("counts/rejected/forward_dropped"), Some(json!(3)));
    *answer.borrow_mut() = Ok(200);
    h.advance(0).unwrap();
    let texts: Vec<Value> = inbox
        .borrow()
        .iter()
        .skip(1)
        .map(|m| m["text"].clone())
        .collect();
    assert_eq!(texts, ["m0", "m1"]);
}

#[test]
fn a_message_the_receiver_refuses_is_dropped_so_the_rest_go_on() {
    let (mut h, room) = setup(config());
    let answer = Rc::new(RefCell::new(Ok(200)));
    let inbox = receiver(&h, answer.clone());
    h.message(&room, ALICE, "!webhook out https://hooks.test/in")
        .unwrap();
    h.advance(0).unwrap();
    *answer.borrow_mut() = Ok(400);
    h.message(&room, BOB, "refused").unwrap();
    h.advance(0).unwrap();
    *answer.borrow_mut() = Ok(200);
    h.message(&room, BOB, "taken").unwrap();
    h.advance(0).unwrap();
    let texts: Vec<Value> = inbox
        .borrow()
        .iter()
        .skip(1)
        .map(|m| m["text"].clone())
        .collect();
    assert_eq!(texts, ["taken"]);
    assert_eq!(
        h.kv_json("counts/rejected/forward_refused_by_receiver"),
        Some(json!(1))
    );
}

#[test]
fn out_off_stops_forwarding_and_drops_what_waits() {
    let (mut h, room) = setup(config());
    let answer = Rc::new(RefCell::new(Ok(200)));
    let inbox = receiver(&h, answer.clone());
    h.message(&room, ALICE, "!webhook out https://hooks.test/in")
        .unwrap();
    h.advance(0).unwrap();
    *answer.borrow_mut() = Ok(502);
    h.message(&room, BOB, "waits").unwrap();
    h.advance(0).unwrap();
    h.message(&room, ALICE, "!webhook list").unwrap();
    let list = last_notice(&h, &room);
    assert!(
        list.contains("Forwarding to hooks.test: 1 waiting"),
        "{list}"
    );
    h.message(&room, ALICE, "!webhook out off").unwrap();
    assert_eq!(
        last_notice(&h, &room),
        "Stopped forwarding to hooks.test; dropped 1 waiting messages."
    );
    *answer.borrow_mut() = Ok(200);
    h.message(&room, BOB, "after off").unwrap();
    h.advance(10_000).unwrap();
    assert_eq!(inbox.borrow().len(), 1, "only the test post");
    assert!(h.timers().is_empty());
    h.message(&room, ALICE, "!webhook out off").unwrap();
    assert_eq!(last_notice(&h, &room), "This room forwards nothing.");
}

#[test]
fn malformed_messages_are_counted_and_passed_over() {
    let (mut h, room) = setup(config());
    let bad = h.at_now(
        EventBuilder::new("m.room.message", json!({"msgtype": 5, "body": ["x"]}))
            .room(&room)
            .sender(BOB),
    );
    h.event(bad).unwrap();
    assert_eq!(h.kv_json("counts/rejected/malformed_event"), Some(json!(1)));
}

#[test]
fn other_bots_commands_are_forwarded_not_answered() {
    let (mut h, room) = setup(config());
    let inbox = receiver(&h, Rc::new(RefCell::new(Ok(200))));
    h.message(&room, ALICE, "!webhook out https://hooks.test/in")
        .unwrap();
    h.advance(0).unwrap();
    let before = h.sent().len();
    h.message(&room, BOB, "!deploy prod").unwrap();
    h.advance(0).unwrap();
    assert_eq!(h.sent().len(), before, "no answer to another bot's command");
    assert_eq!(inbox.borrow().last().unwrap()["text"], "!deploy prod");
}

#[test]
fn hooks_in_all_rooms_together_stop_at_max_hooks_total() {
    let mut cfg = config();
    cfg["max_hooks_total"] = json!(2);
    let (mut h, room) = setup(cfg);
    let other = h.room(&[ALICE, BOT]);
    make_hook(&mut h, &room, "ci");
    make_hook(&mut h, &other, "deploy");
    let dms_before = h
        .sent()
        .iter()
        .filter(|s| s.room != room && s.room != other)
        .count();
    h.message(&room, ALICE, "!webhook new third").unwrap();
    assert_eq!(
        last_notice(&h, &room),
        "This server has 2 webhooks in all its rooms, the most it keeps; revoke one (here or \
         in another room) or ask the server admin to raise max_hooks_total."
    );
    let dms_after = h
        .sent()
        .iter()
        .filter(|s| s.room != room && s.room != other)
        .count();
    assert_eq!(dms_before, dms_after, "no URL was sent");
    assert!(!h.kv_keys().iter().any(|k| k.ends_with("/hook/third")));
    h.message(&room, ALICE, "!webhook list").unwrap();
    assert!(last_notice(&h, &room).contains("command_server_full 1"));
    // A revocation anywhere makes room again.
    h.message(&other, ALICE, "!webhook revoke deploy").unwrap();
    make_hook(&mut h, &room, "third");
    assert_eq!(h.kv_json("totals/hooks"), Some(json!(2)));
}

#[test]
fn waiting_messages_of_all_rooms_together_stop_at_max_pending_bytes_total() {
    let mut cfg = config();
    cfg["max_pending_bytes_total"] = json!(600);
    let (mut h, room) = setup(cfg);
    let other = h.room(&[ALICE, BOT]);
    let answer = Rc::new(RefCell::new(Ok(200)));
    let inbox = receiver(&h, answer.clone());
    for r in [&room, &other] {
        h.message(r, ALICE, "!webhook out https://hooks.test/in")
            .unwrap();
    }
    h.advance(0).unwrap();
    // The receiver is down: what is sent waits, some 175 bytes a message.
    *answer.borrow_mut() = Ok(503);
    for i in 0..3 {
        h.message(&room, BOB, &format!("m{i}")).unwrap();
    }
    h.message(&other, ALICE, "o0").unwrap();
    h.message(&other, ALICE, "o1").unwrap();
    let waiting = h.kv_json("totals/queued_bytes").unwrap().as_u64().unwrap();
    assert!(
        (450..=600).contains(&waiting),
        "only the first room's: {waiting}"
    );
    let full: Vec<String> = notices_in(&h.sent(), &other)
        .into_iter()
        .filter(|b| b.contains("dropped"))
        .collect();
    assert_eq!(
        full,
        [
            "Forwarding to hooks.test: the messages waiting in all rooms fill what this server \
             keeps for them (600 bytes), so new messages here are dropped until those are \
             delivered. The server admin can raise max_pending_bytes_total."
        ]
    );
    assert_eq!(
        h.kv_json("counts/rejected/forward_server_full"),
        Some(json!(2))
    );
    // Once the receiver is back and the queues drain, both rooms forward again.
    *answer.borrow_mut() = Ok(200);
    h.advance(1_000).unwrap();
    h.message(&other, ALICE, "o2").unwrap();
    h.advance(0).unwrap();
    let texts: Vec<Value> = inbox
        .borrow()
        .iter()
        .filter(|m| m.get("event_id").is_some())
        .map(|m| m["text"].clone())
        .collect();
    assert_eq!(texts, ["m0", "m1", "m2", "o2"]);
    assert_eq!(h.kv_json("totals/queued_bytes"), Some(json!(0)));
}

#[test]
fn out_off_gives_back_the_bytes_of_what_waited() {
    let (mut h, room) = setup(config());
    let answer = Rc::new(RefCell::new(Ok(200)));
    receiver(&h, answer.clone());
    h.message(&room, ALICE, "!webhook out https://hooks.test/in")
        .unwrap();
    h.advance(0).unwrap();
    *answer.borrow_mut() = Ok(502);
    h.message(&room, BOB, "waits").unwrap();
    h.message(&room, BOB, "waits too").unwrap();
    assert!(h.kv_json("totals/queued_bytes").unwrap().as_u64().unwrap() > 0);
    h.message(&room, ALICE, "!webhook out off").unwrap();
    assert_eq!(h.kv_json("totals/queued_bytes"), Some(json!(0)));
}
