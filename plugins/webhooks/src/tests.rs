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
fn without_a_public_url_hooks_start_with_the_servers_public_base_url() {
    let (mut h, room) = setup(json!({}));
    h.set_public_base_url("http://127.0.0.1:8008");
    h.message(&room, ALICE, "!webhook new ci").unwrap();
    let dm = h
        .sent()
        .iter()
        .filter(|s| s.room != room && s.event_type == "m.room.message")
        .find_map(|s| s.content["body"].as_str().map(str::to_string))
        .expect("the hook's URL in a direct chat");
    assert!(
        dm.contains("http://127.0.0.1:8008/_plugboard/plugins/webhooks/hooks/"),
        "{dm}"
    );
    assert!(h.kv_keys().iter().any(|k| k.starts_with("hook/")));
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
    h.advance(0).unwrap();
    assert_eq!(h.kv_json("totals/queued_bytes"), Some(json!(0)));
    assert!(h
        .kv_keys()
        .iter()
        .all(|k| !k.starts_with("queue/") && !k.starts_with("out/")));
    assert_eq!(h.kv_json("totals/forwarding_rooms"), Some(json!(0)));
}

/// Forwarding of `room` to hooks.test, confirmed, with the receiver answering `answer`.
fn forwarding(h: &mut Harness<Webhooks>, room: &str) {
    h.message(room, ALICE, "!webhook out https://hooks.test/in")
        .unwrap();
    h.advance(0).unwrap();
    assert_eq!(
        last_notice(h, room),
        "Forwarding this room's messages to hooks.test."
    );
}

/// Messages from bob in `room`, a hundred a transaction as the host sends them.
fn many_messages(h: &mut Harness<Webhooks>, room: &str, n: usize) {
    let mut batch = Vec::new();
    for i in 0..n {
        batch.push(
            h.at_now(
                EventBuilder::new(
                    "m.room.message",
                    json!({"msgtype": "m.text", "body": format!("old {i}")}),
                )
                .room(room)
                .sender(BOB),
            ),
        );
        if batch.len() == 100 || i + 1 == n {
            h.transaction(std::mem::take(&mut batch)).unwrap();
        }
    }
}

fn u64_at(h: &Harness<Webhooks>, key: &str) -> u64 {
    h.kv_json(key).and_then(|v| v.as_u64()).unwrap_or(0)
}

/// What the store holds agrees with its counts: every write of a message, a hook or a
/// forwarding went in with its count, or none did.
fn assert_consistent(h: &Harness<Webhooks>, what: &str) {
    let keys = h.kv_keys();
    let under = |p: &str| keys.iter().filter(|k| k.starts_with(p)).count() as u64;
    let queued: u64 = keys
        .iter()
        .filter(|k| k.starts_with("queue/"))
        .map(|k| (k.len() + h.kv(k).unwrap().len()) as u64)
        .sum();
    assert_eq!(u64_at(h, "totals/queued_bytes"), queued, "{what}");
    assert_eq!(u64_at(h, "totals/hooks"), under("hook/"), "{what}");
    assert_eq!(
        keys.iter().filter(|k| k.contains("/hook/")).count() as u64,
        under("hook/"),
        "{what}"
    );
    assert_eq!(
        u64_at(h, "totals/forwarding_rooms"),
        under("out/"),
        "{what}"
    );
    for k in keys.iter().filter(|k| k.starts_with("out/")) {
        let f = h.kv_json(k).unwrap();
        let room = &k["out/".len()..];
        if f["off"] != true {
            assert_eq!(f["pending"], under(&format!("queue/{room}/")), "{what}");
        }
    }
}

#[test]
fn forwarding_in_all_rooms_together_stops_at_max_forwarding_rooms() {
    let mut cfg = config();
    cfg["max_forwarding_rooms"] = json!(2);
    let (mut h, room) = setup(cfg);
    let second = h.room(&[ALICE, BOT]);
    let third = h.room(&[ALICE, BOT]);
    receiver(&h, Rc::new(RefCell::new(Ok(200))));
    forwarding(&mut h, &room);
    forwarding(&mut h, &second);
    let timers = h.timers().len();
    h.message(&third, ALICE, "!webhook out https://hooks.test/in")
        .unwrap();
    assert_eq!(
        last_notice(&h, &third),
        "This server forwards the messages of 2 rooms, the most it keeps; stop forwarding in \
         another room or ask the server admin to raise max_forwarding_rooms."
    );
    assert!(h.kv(&format!("out/{third}")).is_none());
    assert_eq!(h.timers().len(), timers, "no delivery timer either");
    assert_eq!(
        h.kv_json("counts/rejected/command_forwarding_full"),
        Some(json!(1))
    );
    // A room that forwards already may move to another URL.
    h.message(&room, ALICE, "!webhook out https://hooks.test/other")
        .unwrap();
    h.advance(0).unwrap();
    assert_eq!(
        last_notice(&h, &room),
        "Forwarding this room's messages to hooks.test."
    );
    // Turned off anywhere, forwarding makes room again.
    h.message(&second, ALICE, "!webhook out off").unwrap();
    forwarding(&mut h, &third);
    assert_eq!(h.kv_json("totals/forwarding_rooms"), Some(json!(2)));
    assert_consistent(&h, "after");
}

#[test]
fn a_message_is_queued_with_its_counts_or_dropped_whichever_write_the_store_refuses() {
    let mut outcomes = std::collections::BTreeSet::new();
    for room_left in 0..500 {
        let (mut h, room) = setup(config());
        receiver(&h, Rc::new(RefCell::new(Ok(503))));
        h.message(&room, ALICE, "!webhook out https://hooks.test/in")
            .unwrap();
        h.set_kv_quota(h.kv_bytes() + room_left);
        h.message(&room, BOB, "a message that waits")
            .unwrap_or_else(|e| panic!("{room_left} bytes left: {e:?}"));
        assert_consistent(&h, &format!("{room_left} bytes left"));
        let queued = h.kv_keys().iter().any(|k| k.starts_with("queue/"));
        if !queued {
            assert!(
                last_notice(&h, &room).contains("the plugin's store is full"),
                "{room_left}"
            );
        }
        outcomes.insert(queued);
    }
    assert_eq!(outcomes.len(), 2, "both dropped and queued were seen");
}

#[test]
fn a_message_the_host_gives_no_timer_is_dropped_and_counted() {
    let (mut h, room) = setup(config());
    let other = h.room(&[ALICE, BOT]);
    let inbox = receiver(&h, Rc::new(RefCell::new(Ok(200))));
    forwarding(&mut h, &room);
    assert!(h.timers().is_empty());
    for i in 0..plugboard_sdk::timers::MAX_TIMERS {
        plugboard_sdk::timers::set_timer(&format!("other/{i}"), 3_600_000, "").unwrap();
    }
    h.message(&room, BOB, "no timer for me").unwrap();
    assert_eq!(
        last_notice(&h, &room),
        "Forwarding to hooks.test: 0 messages are waiting and the server allows this plugin no \
         more timers; new messages are dropped until it catches up."
    );
    assert_eq!(
        h.kv_json("counts/rejected/forward_store_full"),
        Some(json!(1))
    );
    assert!(h.kv_keys().iter().all(|k| !k.starts_with("queue/")));
    // Nor can a new room forward: it is told so, and the transaction goes on.
    h.message(&other, ALICE, "!webhook out https://hooks.test/in")
        .unwrap();
    assert!(last_notice(&h, &other).starts_with("Refused: this plugin's store"));
    assert!(h.kv(&format!("out/{other}")).is_none());
    assert_consistent(&h, "timers full");
    assert_eq!(inbox.borrow().len(), 1, "only the test post");
}

#[test]
fn a_hook_or_a_forwarding_the_store_refuses_is_answered_and_leaves_nothing_behind() {
    let mut refused = 0;
    for room_left in 0..400 {
        let (mut h, room) = setup(config());
        receiver(&h, Rc::new(RefCell::new(Ok(200))));
        // The direct chat and the counts exist already.
        make_hook(&mut h, &room, "first");
        forwarding(&mut h, &room);
        let other = h.room(&[ALICE, BOT]);
        h.set_kv_quota(h.kv_bytes() + room_left);
        let before = h.sent().len();
        h.message(&room, ALICE, "!webhook new second").unwrap();
        h.message(&other, ALICE, "!webhook out https://hooks.test/in")
            .unwrap();
        h.advance(0).unwrap();
        assert_consistent(&h, &format!("{room_left} bytes left"));
        let said: Vec<String> = notices_in(&h.sent()[before..], &room)
            .into_iter()
            .chain(notices_in(&h.sent()[before..], &other))
            .collect();
        for s in &said {
            if s.starts_with("Refused") {
                refused += 1;
                assert_eq!(
                    s,
                    "Refused: this plugin's store on the server is full. The server admin can \
                     raise kv_quota_bytes in [plugins.settings.webhooks]."
                );
            }
        }
        if h.kv(&format!("out/{other}")).is_none() {
            assert!(said.iter().any(|s| s.starts_with("Refused")), "{said:?}");
        }
    }
    assert!(refused > 0);
}

#[test]
fn out_off_drops_more_waiting_messages_than_one_call_may_write() {
    let mut cfg = config();
    cfg["max_pending"] = json!(100_000);
    let (mut h, room) = setup(cfg);
    let answer = Rc::new(RefCell::new(Ok(200)));
    let inbox = receiver(&h, answer.clone());
    forwarding(&mut h, &room);
    *answer.borrow_mut() = Ok(503);
    let waiting = plugboard_sdk::kv::MAX_WRITES_PER_CALL + 50;
    many_messages(&mut h, &room, waiting);
    assert_eq!(
        h.kv_json(&format!("out/{room}")).unwrap()["pending"],
        waiting
    );
    h.message(&room, ALICE, "!webhook out off").unwrap();
    assert_eq!(
        last_notice(&h, &room),
        format!("Stopped forwarding to hooks.test; dropped {waiting} waiting messages.")
    );
    h.message(&room, ALICE, "!webhook list").unwrap();
    assert!(last_notice(&h, &room).contains("No forwarding."));
    h.message(&room, BOB, "not forwarded").unwrap();
    *answer.borrow_mut() = Ok(200);
    // A thousand a call.
    assert_eq!(h.advance(0).unwrap(), waiting.div_ceil(1000));
    assert!(h
        .kv_keys()
        .iter()
        .all(|k| !k.starts_with("queue/") && !k.starts_with("out/")));
    assert!(h.timers().is_empty());
    assert_eq!(h.kv_json("totals/queued_bytes"), Some(json!(0)));
    assert_eq!(h.kv_json("totals/forwarding_rooms"), Some(json!(0)));
    assert_eq!(inbox.borrow().len(), 1, "only the test post");
}

#[test]
fn forwarding_turned_on_again_before_the_old_messages_are_gone_never_sends_them() {
    let (mut h, room) = setup(config());
    let answer = Rc::new(RefCell::new(Ok(200)));
    let inbox = receiver(&h, answer.clone());
    forwarding(&mut h, &room);
    *answer.borrow_mut() = Ok(503);
    many_messages(&mut h, &room, 1000 + 500);
    h.message(&room, ALICE, "!webhook out off").unwrap();
    *answer.borrow_mut() = Ok(200);
    h.message(&room, ALICE, "!webhook out https://hooks.test/again")
        .unwrap();
    h.message(&room, BOB, "new").unwrap();
    h.advance(0).unwrap();
    let got = inbox.borrow();
    let texts: Vec<&str> = got.iter().filter_map(|m| m["text"].as_str()).collect();
    assert_eq!(texts.len(), 3, "{:?}", &texts[..texts.len().min(5)]);
    assert!(texts[1].starts_with("This URL now receives"));
    assert_eq!(texts[2], "new");
    assert_consistent(&h, "after");
    assert!(h.kv_keys().iter().all(|k| !k.starts_with("queue/")));
}

#[test]
fn a_room_near_its_bound_is_told_of_drops_once_until_its_queue_is_down_by_half() {
    let mut cfg = config();
    cfg["max_pending"] = json!(50);
    let (mut h, room) = setup(cfg);
    // The receiver takes as many as the test lets through, and fails the rest.
    let passes = Rc::new(RefCell::new(1u32));
    let left = passes.clone();
    h.on_http(move |_: &Request| {
        let mut n = left.borrow_mut();
        let status = if *n > 0 { 200 } else { 503 };
        *n = n.saturating_sub(1);
        Ok(Response {
            status,
            headers: vec![],
            body: vec![],
        })
    });
    forwarding(&mut h, &room);
    let told = |h: &Harness<Webhooks>| {
        notices_in(&h.sent(), &room)
            .iter()
            .filter(|b| b.contains("new messages are dropped"))
            .count()
    };
    *passes.borrow_mut() = 0;
    many_messages(&mut h, &room, 51);
    assert_eq!(told(&h), 1);
    // One delivery call sends its batch of 20: 30 wait, more than half the bound, and
    // the next burst is dropped without another notice.
    *passes.borrow_mut() = 20;
    h.advance(0).unwrap();
    assert_eq!(h.kv_json(&format!("out/{room}")).unwrap()["pending"], 30);
    many_messages(&mut h, &room, 21);
    assert_eq!(told(&h), 1);
    // Drained, the room is told again when it next fills.
    *passes.borrow_mut() = 1000;
    h.advance(10_000).unwrap();
    *passes.borrow_mut() = 0;
    many_messages(&mut h, &room, 51);
    assert_eq!(told(&h), 2);
}

#[test]
fn the_default_bounds_keep_the_store_under_the_default_quota_and_timers() {
    use crate::outgoing::{Forward, MAX_ERROR, MAX_HOST, MAX_URL};
    let url = "u".repeat(MAX_URL);
    let host = "h".repeat(MAX_HOST);
    let largest = Forward {
        url: url.clone(),
        host: host.clone(),
        failures: u32::MAX,
        last_error: Some(format!("{}…", "e".repeat(MAX_ERROR))),
        next_seq: u64::MAX,
        pending: u64::MAX,
        delivered: u64::MAX,
        dropped: u64::MAX,
        asked_in: format!("${}", "e".repeat(254)),
        previous: Some((url, host)),
        drop_before: u64::MAX,
        ..Forward::default()
    };
    let room = format!("!{}", "r".repeat(254));
    let record = (format!("out/{room}").len() + serde_json::to_vec(&largest).unwrap().len()) as u64;
    assert!(record < 6 * 1024, "{record}");
    let s = crate::settings::Settings::default();
    let most =
        s.max_pending_bytes_total + s.max_hooks_total * 1024 + s.max_forwarding_rooms * record;
    assert!(most < plugboard_sdk::testing::KV_QUOTA_BYTES, "{most}");
    assert!(s.max_forwarding_rooms * 10 <= plugboard_sdk::timers::MAX_TIMERS as u64);
}

#[test]
fn a_url_with_a_host_longer_than_a_dns_name_is_refused() {
    let (mut h, room) = setup(config());
    let host = format!("{}.test", "a".repeat(300));
    h.message(&room, ALICE, &format!("!webhook out https://{host}/in"))
        .unwrap();
    assert_eq!(
        last_notice(&h, &room),
        "Refused: the URL's host must be at most 300 characters."
    );
    assert!(h.kv(&format!("out/{room}")).is_none());
}
