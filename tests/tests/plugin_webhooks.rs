//! The webhook bridge end to end: a real server with the built `webhooks` plugin, users who
//! make and revoke incoming hooks and read their URL from a direct chat, hostile requests
//! to the hook endpoint, and forwarding to an axum receiver in the test that goes down and
//! comes back, with a server restart in the middle.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::routing::{get, post};
use axum::{Json, Router};
use plugboard::config::{Config, PluginSettings};
use plugboard_tests::plugins::{self, admin, install_with, room_with_bot, wait_until};
use plugboard_tests::{enc, test_config, Client, Reply, TestServer};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::sync::oneshot;

const BOT: &str = "@webhooks:localhost";
const CI: &str = "@_webhook_ci:localhost";

/// What the receiver was sent, in order.
type Inbox = Arc<Mutex<Vec<Value>>>;

/// An HTTP server of the test: takes forwarded messages at `POST /in`, serves an icon at
/// `GET /icon.png` and answers `POST /slow` only after 3 s. It can be stopped and started
/// again on the same port.
struct Receiver {
    addr: SocketAddr,
    inbox: Inbox,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Not a whole PNG, but what a PNG starts with: the plugin checks the content type only.
const ICON: &[u8] = b"\x89PNG\r\n\x1a\n icon";

impl Receiver {
    async fn start() -> Receiver {
        let mut r = Receiver {
            addr: "127.0.0.1:0".parse().unwrap(),
            inbox: Inbox::default(),
            stop: None,
            task: None,
        };
        r.up().await;
        r
    }

    /// Serves on its address (a fresh port the first time, the same one after).
    async fn up(&mut self) {
        let inbox = self.inbox.clone();
        let app = Router::new()
            .route(
                "/in",
                post(move |Json(v): Json<Value>| {
                    let inbox = inbox.clone();
                    async move {
                        inbox.lock().unwrap().push(v);
                        "ok"
                    }
                }),
            )
            .route(
                "/icon.png",
                get(|| async { ([("content-type", "image/png")], ICON) }),
            )
            .route(
                "/slow",
                post(|| async {
                    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                    "too late"
                }),
            );
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        self.addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        self.stop = Some(tx);
        self.task = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        }));
    }

    /// Stops serving: connections to its port are refused until [`Receiver::up`].
    async fn down(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(plugboard_tests::WAIT, task).await;
        }
    }

    fn texts(&self) -> Vec<String> {
        self.inbox
            .lock()
            .unwrap()
            .iter()
            .filter_map(|m| m["text"].as_str().map(str::to_string))
            .collect()
    }

    fn got(&self) -> Vec<Value> {
        self.inbox.lock().unwrap().clone()
    }
}

/// The server's configuration: the plugin may reach the receiver, and nothing else.
fn config(dir: &Path, receiver: SocketAddr) -> Config {
    let mut c = test_config(dir);
    c.plugins.settings.insert(
        "webhooks".into(),
        PluginSettings {
            http_allow: Some(vec![receiver.to_string()]),
            ..Default::default()
        },
    );
    c
}

/// A server with the plugin installed, no `public_url` set: its hook URLs start with the
/// server's own public base URL, here its loopback address.
async fn server_with_plugin(receiver: SocketAddr) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path(), receiver);
    let server = TestServer::start_in(dir, c).await;
    let admin = admin(&server.base, server.data_dir.path());
    let built = plugins::build("plugboard-plugin-webhooks", "plugins/webhooks", &[]);
    let settings = "retry_base_ms = 100\nretry_max_ms = 400\nnotify_after_failures = 3\n\
                    max_forwarding_rooms = 2\n";
    let view = install_with(
        &admin,
        &built.bytes(),
        &built.manifest_text(),
        Some(settings),
        json!("live"),
    )
    .await
    .ok();
    assert_eq!(view["state"], "running", "{view}");
    server
}

/// Stops the server and starts it again on the same data dir (a new port).
async fn restart(server: TestServer, receiver: SocketAddr) -> TestServer {
    let dir = server.stop().await;
    let c = config(dir.path(), receiver);
    TestServer::start_in(dir, c).await
}

/// Waits for the bot's answer containing `words` in `room`; on a timeout, says what the
/// bot did say.
async fn answer_with(reader: &Client, room: &str, words: &str) -> String {
    let deadline = tokio::time::Instant::now() + plugboard_tests::WAIT;
    loop {
        let said = plugins::said_by(reader, room, BOT).await;
        if let Some(b) = said.iter().find(|b| b.contains(words)) {
            return b.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for the bot to say {words:?}; it said {said:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// `alice` asks for hook `name` and reads its URL from the direct chat the bot opens.
async fn new_hook(alice: &Client, room: &str, name: &str) -> String {
    alice.send_text(room, &format!("!webhook new {name}")).await;
    answer_with(alice, room, &format!("Made webhook `{name}`")).await;
    let mut dm = None;
    wait_until("an invite to a direct chat", async || {
        let sync = alice.sync(None, 0).await;
        dm = sync["rooms"]["invite"]
            .as_object()
            .and_then(|rooms| rooms.keys().next().cloned());
        dm.is_some()
    })
    .await;
    let dm = dm.unwrap();
    alice.join(&dm).await.ok();
    let said = plugins::wait_for_words(alice, &dm, BOT, |s| {
        s.iter().any(|b| b.contains(&format!("Webhook `{name}`")))
    })
    .await;
    let body = said
        .iter()
        .find(|b| b.contains(&format!("Webhook `{name}`")))
        .unwrap();
    body.split_whitespace()
        .find(|w| w.contains("/hooks/"))
        .expect("a URL in the direct chat")
        .to_string()
}

/// POSTs `body` (raw bytes) with a content type to `url`.
async fn hook(url: &str, method: Method, content_type: &str, body: Vec<u8>) -> Reply {
    let resp = reqwest::Client::new()
        .request(method, url)
        .header("content-type", content_type)
        .body(body)
        .timeout(plugboard_tests::WAIT)
        .send()
        .await
        .expect("request sent");
    let status = resp.status();
    let bytes = resp.bytes().await.expect("body read");
    Reply {
        status,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

async fn hook_json(url: &str, body: Value) -> Reply {
    hook(
        url,
        Method::POST,
        "application/json",
        body.to_string().into_bytes(),
    )
    .await
}

/// The path part of a hook URL, for the same hook on a server at another address.
fn path_of(url: &str) -> &str {
    let start = url.find("/_plugboard/").expect("a plugin path");
    &url[start..]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_hooks_post_as_their_user_refuse_bad_requests_and_survive_a_restart() {
    let receiver = Receiver::start().await;
    let server = server_with_plugin(receiver.addr).await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = room_with_bot(&alice, BOT).await;
    alice.invite(&room, &bob.user_id).await.ok();
    bob.join(&room).await.ok();

    // Only who may change the room's state makes hooks.
    bob.send_text(&room, "!webhook new ci").await;
    answer_with(&alice, &room, "Only members who may change").await;
    let url = new_hook(&alice, &room, "ci").await;
    assert!(url.starts_with(&format!(
        "{}/_plugboard/plugins/webhooks/hooks/",
        server.base
    )));
    let token = url.rsplit('/').next().unwrap();
    assert!(token.len() >= 43, "{token}");
    let in_room = plugins::said_by(&alice, &room, BOT).await;
    assert!(in_room.iter().all(|b| !b.contains(token)), "{in_room:?}");

    // Plain text, Markdown with a link and a script, a username and an icon.
    let r = hook_json(&url, json!({"text": "build 41 passed"})).await;
    assert_eq!(r.ok()["ok"], true);
    hook_json(
        &url,
        json!({"text": "**build 42 failed**: [log](https://ci.example.org/42) <script>alert(1)</script>"}),
    )
    .await
    .ok();
    let icon = format!("http://{}/icon.png", receiver.addr);
    hook_json(
        &url,
        json!({"text": "deployed", "username": "CI bot", "icon_url": icon}),
    )
    .await
    .ok();
    let mut posts = Vec::new();
    wait_until("three hook posts", async || {
        posts = plugins::contents_by(&alice, &room, CI).await;
        posts.len() >= 3
    })
    .await;
    assert_eq!(posts[0]["body"], "build 41 passed");
    assert!(posts[0].get("formatted_body").is_none(), "{}", posts[0]);
    let html = posts[1]["formatted_body"].as_str().unwrap();
    assert_eq!(posts[1]["format"], "org.matrix.custom.html");
    assert!(html.contains("<strong>build 42 failed</strong>"), "{html}");
    assert!(
        html.contains("<a href=\"https://ci.example.org/42\">log</a>"),
        "{html}"
    );
    assert!(
        html.contains("&lt;script&gt;") && !html.contains("<script"),
        "{html}"
    );
    let member = alice
        .get(&format!(
            "/rooms/{}/state/m.room.member/{}",
            enc(&room),
            enc(CI)
        ))
        .await
        .ok();
    assert_eq!(member["displayname"], "CI bot", "{member}");
    let avatar = member["avatar_url"].as_str().expect("an avatar");
    assert!(avatar.starts_with("mxc://"), "{avatar}");
    let media = alice
        .get(&format!(
            "/_matrix/media/v3/download/{}",
            avatar.trim_start_matches("mxc://")
        ))
        .await;
    assert_eq!(media.status, 200);

    // Hostile requests: Matrix errors with the right statuses, and nothing posted.
    let long = "x".repeat(20 * 1024);
    let cases: Vec<(Method, &str, Vec<u8>, u16, &str)> = vec![
        (
            Method::POST,
            "application/json",
            b"{not json".to_vec(),
            400,
            "M_NOT_JSON",
        ),
        (
            Method::POST,
            "application/json",
            b"[\"text\"]".to_vec(),
            400,
            "M_BAD_JSON",
        ),
        (
            Method::POST,
            "application/json",
            b"{}".to_vec(),
            400,
            "M_BAD_JSON",
        ),
        (
            Method::POST,
            "application/json",
            br#"{"text": 42}"#.to_vec(),
            400,
            "M_BAD_JSON",
        ),
        (
            Method::POST,
            "application/json",
            br#"{"text": "x", "icon_url": {"a": 1}}"#.to_vec(),
            400,
            "M_BAD_JSON",
        ),
        (
            Method::POST,
            "application/json",
            json!({ "text": long }).to_string().into_bytes(),
            413,
            "M_TOO_LARGE",
        ),
        (
            Method::GET,
            "application/json",
            Vec::new(),
            405,
            "M_UNRECOGNIZED",
        ),
    ];
    for (method, content_type, body, status, errcode) in cases {
        let r = hook(&url, method.clone(), content_type, body).await;
        r.err(status, errcode);
    }
    let mut wrong = url.clone();
    let last = if wrong.ends_with('A') { "B" } else { "A" };
    wrong.replace_range(wrong.len() - 1.., last);
    hook_json(&wrong, json!({"text": "forged"}))
        .await
        .err(404, "M_NOT_FOUND");
    hook_json(
        &format!("{}/_plugboard/plugins/webhooks/hooks/short", server.base),
        json!({"text": "forged"}),
    )
    .await
    .err(404, "M_NOT_FOUND");

    // Slack's form encoding works too: `payload=<json>`.
    let form = format!(
        "payload={}",
        enc(&json!({"text": "from a form"}).to_string())
    );
    hook(
        &url,
        Method::POST,
        "application/x-www-form-urlencoded",
        form.into_bytes(),
    )
    .await
    .ok();

    // Revoking, too, takes the power to change state: bob is refused, the hook goes on.
    let refusal = "Only members who may change";
    bob.send_text(&room, "!webhook revoke ci").await;
    wait_until("bob's revoke to be refused", async || {
        let said = plugins::said_by(&alice, &room, BOT).await;
        said.iter().filter(|b| b.contains(refusal)).count() >= 2
    })
    .await;
    hook_json(&url, json!({"text": "still here"})).await.ok();

    // A restart: the hook lives on at the same path.
    let server = restart(server, receiver.addr).await;
    let alice = Client {
        base: server.base.clone(),
        ..alice
    };
    let url = format!("{}{}", server.base, path_of(&url));
    hook_json(&url, json!({"text": "after the restart"}))
        .await
        .ok();

    // Revoked: 404 at once, and nothing more is posted.
    alice.send_text(&room, "!webhook revoke ci").await;
    answer_with(&alice, &room, "Revoked webhook `ci`").await;
    hook_json(&url, json!({"text": "after the revocation"}))
        .await
        .err(404, "M_NOT_FOUND");
    alice.send_text(&room, "!webhook list").await;
    let list = answer_with(&alice, &room, "No incoming webhooks").await;
    assert!(list.contains("http_bad_token 3"), "{list}");
    let bodies: Vec<Value> = plugins::contents_by(&alice, &room, CI)
        .await
        .into_iter()
        .map(|c| c["body"].clone())
        .collect();
    assert_eq!(
        bodies,
        [
            json!("build 41 passed"),
            json!(
                "**build 42 failed**: [log](https://ci.example.org/42) <script>alert(1)</script>"
            ),
            json!("deployed"),
            json!("from a form"),
            json!("still here"),
            json!("after the restart"),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_messages_reach_a_receiver_that_goes_down_and_up_across_a_restart() {
    let mut receiver = Receiver::start().await;
    let server = server_with_plugin(receiver.addr).await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = room_with_bot(&alice, BOT).await;
    bob.put(
        &format!("/profile/{}/displayname", enc(&bob.user_id)),
        json!({"displayname": "Bob"}),
    )
    .await
    .ok();
    alice.invite(&room, &bob.user_id).await.ok();
    bob.join(&room).await.ok();
    let target = format!("http://{}/in", receiver.addr);

    bob.send_text(&room, &format!("!webhook out {target}"))
        .await;
    answer_with(&alice, &room, "Only members who may change").await;
    // A host off the allow-list is refused by name.
    alice
        .send_text(&room, "!webhook out http://127.0.0.2:9/in")
        .await;
    answer_with(
        &alice,
        &room,
        "Refused: 127.0.0.2:9 is not on this plugin's allow-list",
    )
    .await;
    alice
        .send_text(&room, &format!("!webhook out {target}"))
        .await;
    let host = receiver.addr.to_string();
    answer_with(
        &alice,
        &room,
        &format!("Forwarding this room's messages to {host}."),
    )
    .await;
    assert_eq!(receiver.texts().len(), 1, "the test post");

    // A receiver that never answers in time fails the try, well inside the call's deadline.
    let slow_room = room_with_bot(&alice, BOT).await;
    let slow = format!("http://{host}/slow");
    alice
        .send_text(&slow_room, &format!("!webhook out {slow}"))
        .await;
    answer_with(
        &alice,
        &slow_room,
        "cannot be reached now (the server did not answer in time)",
    )
    .await;
    // Two rooms forward: the most this server keeps.
    let third_room = room_with_bot(&alice, BOT).await;
    alice
        .send_text(&third_room, &format!("!webhook out {target}"))
        .await;
    answer_with(
        &alice,
        &third_room,
        "This server forwards the messages of 2 rooms, the most it keeps",
    )
    .await;
    alice.send_text(&slow_room, "!webhook out off").await;
    answer_with(&alice, &slow_room, &format!("Stopped forwarding to {host}")).await;

    // Slack-shaped, in order; a hook's posts are not forwarded.
    let hook_url = new_hook(&alice, &room, "ci").await;
    let one = bob.send_text(&room, "one").await;
    hook_json(&hook_url, json!({"text": "from the hook"}))
        .await
        .ok();
    bob.send_text(&room, "two").await;
    wait_until("two forwarded messages", async || {
        receiver.texts().len() >= 3
    })
    .await;
    let got = receiver.got();
    assert_eq!(got[1]["text"], "one");
    assert_eq!(got[1]["username"], "Bob");
    assert_eq!(got[1]["user_id"], bob.user_id.as_str());
    assert_eq!(got[1]["room"], room.as_str());
    assert_eq!(got[1]["event_id"], one.as_str());
    assert_eq!(receiver.texts()[1..], ["one", "two"]);

    // The receiver goes down: messages wait, the room is told after three failed tries.
    receiver.down().await;
    bob.send_text(&room, "three").await;
    bob.send_text(&room, "four").await;
    answer_with(&alice, &room, "has failed 3 times in a row").await;

    // The server restarts meanwhile; then the receiver comes back.
    let server = restart(server, receiver.addr).await;
    let bob = Client {
        base: server.base.clone(),
        ..bob
    };
    let alice = Client {
        base: server.base.clone(),
        ..alice
    };
    bob.send_text(&room, "five").await;
    receiver.up().await;
    wait_until("every waiting message delivered", async || {
        receiver.texts().len() >= 6
    })
    .await;
    assert_eq!(
        receiver.texts()[1..],
        ["one", "two", "three", "four", "five"]
    );
    answer_with(&alice, &room, &format!("Forwarding to {host} works again.")).await;

    alice.send_text(&room, "!webhook out off").await;
    answer_with(&alice, &room, &format!("Stopped forwarding to {host}")).await;
    alice.send_text(&room, "!webhook list").await;
    answer_with(&alice, &room, "No forwarding.").await;
    assert_eq!(receiver.texts().len(), 6);
    // Both turned off, another room may forward.
    alice
        .send_text(&third_room, &format!("!webhook out {target}"))
        .await;
    answer_with(
        &alice,
        &third_room,
        &format!("Forwarding this room's messages to {host}."),
    )
    .await;
}

/// As the README's run command starts the server: the bundled plugins, nothing configured.
/// The bot hands out a hook at the server's own address, and a post to it lands in the room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bundled_bot_makes_working_hooks_with_nothing_configured() {
    let server = TestServer::start_with(|c| c.plugins.bundled = true).await;
    let alice = server.register("alice").await;
    let room = room_with_bot(&alice, BOT).await;
    let url = new_hook(&alice, &room, "ci").await;
    assert!(
        url.starts_with(&format!(
            "{}/_plugboard/plugins/webhooks/hooks/",
            server.base
        )),
        "{url}"
    );
    assert_eq!(
        hook_json(&url, json!({"text": "hello from ci"})).await.ok()["ok"],
        true
    );
    wait_until("the post in the room", async || {
        plugins::contents_by(&alice, &room, CI)
            .await
            .iter()
            .any(|c| c["body"] == "hello from ci")
    })
    .await;
}
