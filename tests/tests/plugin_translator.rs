//! The translator against a real server and a LibreTranslate look-alike that the test starts
//! on 127.0.0.1 (no real translation service is reachable here): a word list behind
//! `/translate`, `/detect` and `/languages`, counting what it is asked, switchable to fail,
//! to be slow, or to be paced so that a backlog lasts. The plugin's url and allow-list come
//! from the server config's per-plugin settings, as an admin sets them. Covered: `!tr`,
//! `!translate on/off`, the glossary, the cache, an outage with a restart in the middle,
//! SIGKILLs of a server process in the middle of a backlog and of an outage, a slow backend,
//! and bad input.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use plugboard::config::{Config, Overrides};
use plugboard_tests::plugins::{
    self, admin, install, show, wait_for_member, wait_for_words, wait_until,
};
use plugboard_tests::{enc, test_config, Client, ServerProcess, TestServer};
use serde_json::{json, Value};

const BINARY: &str = env!("CARGO_BIN_EXE_plugboard-test-server");
const BOT: &str = "@translator:localhost";

/// How long the slow look-alike takes to answer: far past any deadline of the plugin.
const SLOW: Duration = Duration::from_secs(10);

/// How long the paced look-alike takes per request: a backlog of [`BACKLOG`] messages then
/// takes seconds, long enough for a kill to land in the middle of it.
const PACE: Duration = Duration::from_millis(100);
const BACKLOG: usize = 20;

fn translator() -> plugins::Built {
    plugins::build("plugboard-plugin-translator", "plugins/translator", &[])
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Up,
    Down,
    Slow,
    Paced,
}

/// The look-alike's state: how it answers and what it was asked, by path.
struct Lt {
    mode: Mutex<Mode>,
    asked: Mutex<Vec<(String, Value)>>,
}

impl Lt {
    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn count(&self, path: &str) -> usize {
        self.asked
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .count()
    }

    fn requests(&self) -> usize {
        self.asked.lock().unwrap().len()
    }

    fn last(&self, path: &str) -> Option<Value> {
        self.asked
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(p, _)| p == path)
            .map(|(_, b)| b.clone())
    }

    /// Records a request; answers the failure to give instead of an answer, if any.
    async fn gate(&self, path: &str, body: Value) -> Option<Response> {
        self.asked.lock().unwrap().push((path.to_string(), body));
        let mode = *self.mode.lock().unwrap();
        match mode {
            Mode::Up => None,
            Mode::Down => Some(
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(json!({"error": "overloaded"})),
                )
                    .into_response(),
            ),
            Mode::Slow => {
                tokio::time::sleep(SLOW).await;
                None
            }
            Mode::Paced => {
                tokio::time::sleep(PACE).await;
                None
            }
        }
    }
}

const WORDS: &[(&str, &str)] = &[
    ("hello", "bonjour"),
    ("world", "monde"),
    ("good", "bon"),
    ("morning", "matin"),
    ("cat", "chat"),
];

async fn languages(State(lt): State<Arc<Lt>>) -> Response {
    if let Some(r) = lt.gate("/languages", Value::Null).await {
        return r;
    }
    Json(json!([
        {"code": "en", "name": "English", "targets": ["fr"]},
        {"code": "fr", "name": "French", "targets": ["en"]},
        {"code": "de", "name": "German", "targets": []},
    ]))
    .into_response()
}

async fn detect(State(lt): State<Arc<Lt>>, Json(body): Json<Value>) -> Response {
    if let Some(r) = lt.gate("/detect", body.clone()).await {
        return r;
    }
    let q = body["q"].as_str().unwrap_or_default().to_lowercase();
    let french = q
        .split_whitespace()
        .any(|w| WORDS.iter().any(|(_, fr)| *fr == w));
    Json(json!([{"language": if french { "fr" } else { "en" }, "confidence": 90.0}]))
        .into_response()
}

async fn translate(State(lt): State<Arc<Lt>>, Json(body): Json<Value>) -> Response {
    if let Some(r) = lt.gate("/translate", body.clone()).await {
        return r;
    }
    let (source, target) = (
        body["source"].as_str().unwrap_or_default(),
        body["target"].as_str().unwrap_or_default(),
    );
    if ![("en", "fr"), ("fr", "en")].contains(&(source, target)) || body["format"] != "text" {
        let error = json!({"error": format!("{source} to {target} is not supported")});
        return (StatusCode::BAD_REQUEST, Json(error)).into_response();
    }
    let text: Vec<String> = body["q"]
        .as_str()
        .unwrap_or_default()
        .split(' ')
        .map(|w| {
            let lower = w.to_lowercase();
            WORDS
                .iter()
                .find_map(|(en, fr)| match source {
                    "en" if *en == lower => Some(fr.to_string()),
                    "fr" if *fr == lower => Some(en.to_string()),
                    _ => None,
                })
                .unwrap_or_else(|| w.to_string())
        })
        .collect();
    Json(json!({"translatedText": text.join(" ")})).into_response()
}

/// Starts the look-alike on 127.0.0.1.
async fn look_alike() -> (SocketAddr, Arc<Lt>) {
    let lt = Arc::new(Lt {
        mode: Mutex::new(Mode::Up),
        asked: Mutex::new(Vec::new()),
    });
    let app = Router::new()
        .route("/languages", get(languages))
        .route("/detect", post(detect))
        .route("/translate", post(translate))
        .with_state(lt.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, lt)
}

/// The translator's settings as an admin gives them in the environment
/// (`PLUGBOARD_PLUGINS__SETTINGS__TRANSLATOR__…`), pointing it at `lt`.
fn settings_env(lt: SocketAddr) -> Vec<(String, String)> {
    let key = |k: &str| format!("PLUGBOARD_PLUGINS__SETTINGS__TRANSLATOR__{k}");
    vec![
        (key("HTTP_ALLOW"), lt.to_string()),
        (key("CONFIG__URL"), format!("http://{lt}")),
        (key("CONFIG__RETRY_BASE_MS"), "200".to_string()),
        (key("CONFIG__RETRY_MAX_MS"), "1000".to_string()),
    ]
}

/// The server config with the settings of [`settings_env`], as the server reads them.
fn configured(config: &mut Config, lt: Option<SocketAddr>) {
    let Some(lt) = lt else { return };
    let admin_settings = Config::load_from(None, settings_env(lt), &Overrides::default()).unwrap();
    config.plugins.settings = admin_settings.plugins.settings;
}

async fn server(lt: Option<SocketAddr>) -> TestServer {
    let server = TestServer::start_with(|c| configured(c, lt)).await;
    install(&admin(&server.base, server.data_dir.path()), &translator()).await;
    server
}

/// Alice's public room with the translator in it, and Bob, who joined it; `anon` is a
/// client of the server, not logged in.
async fn room(anon: &Client) -> (Client, Client, String) {
    let alice = anon.clone().register("alice", "password").await;
    let bob = anon.clone().register("bob", "password").await;
    let room = alice
        .create_room(json!({"preset": "public_chat", "invite": [BOT]}))
        .await;
    wait_for_member(&alice, &room, BOT).await;
    bob.join(&room).await.ok();
    (alice, bob, room)
}

/// Waits until the translator has said `n` things in `room`; answers all it said.
async fn said(reader: &Client, room: &str, n: usize) -> Vec<String> {
    wait_for_words(reader, room, BOT, |s| s.len() >= n).await
}

/// Alice turns translation into French on and waits for it to be confirmed.
async fn french(alice: &Client, room: &str) -> usize {
    let before = plugins::said_by(alice, room, BOT).await.len();
    alice.send_text(room, "!translate on fr").await;
    let said = said(alice, room, before + 1).await;
    assert_eq!(
        said[before],
        "Translating this room into French (fr) from now on. `!translate off` stops."
    );
    before + 1
}

fn unavailable(said: &[String]) -> usize {
    said.iter()
        .filter(|s| s.starts_with("The translation backend is unavailable"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn translates_on_request_and_every_message_of_a_room_with_its_glossary_and_cache() {
    let (addr, lt) = look_alike().await;
    let server = server(Some(addr)).await;
    let (alice, bob, room) = room(&server.client()).await;

    alice.send_text(&room, "!tr fr hello world").await;
    assert_eq!(said(&alice, &room, 1).await, ["[en→fr] bonjour monde"]);
    let n = french(&alice, &room).await;

    let asked = bob.send_text(&room, "good morning").await;
    bob.send_text(&room, "bonjour le monde").await;
    bob.send_text(&room, "!echo for another bot").await;
    bob.send_text(&room, "hello").await;
    let said_now = said(&alice, &room, n + 2).await;
    assert_eq!(said_now[n..], ["[en→fr] bon matin", "[en→fr] bonjour"]);
    let first = plugins::contents_by(&alice, &room, BOT).await[n].clone();
    assert_eq!(first["msgtype"], "m.notice");
    assert_eq!(first["m.relates_to"]["m.in_reply_to"]["event_id"], asked);
    assert_eq!(
        first["org.plugboard.translation"],
        json!({"source": "en", "target": "fr", "event_id": asked})
    );

    alice
        .send_text(&room, "!glossary add Morning = matinée")
        .await;
    bob.send_text(&room, "good morning").await;
    let said_now = said(&alice, &room, n + 4).await;
    assert_eq!(
        said_now[n + 2..],
        [
            "Glossary: Morning is translated as matinée (1 terms).",
            "[en→fr] bon matinée"
        ]
    );
    assert_eq!(
        lt.last("/translate").unwrap()["q"],
        "good [[0]]",
        "the term is not sent to be translated"
    );

    let translations = lt.count("/translate");
    let detections = lt.count("/detect");
    bob.send_text(&room, "good morning").await;
    bob.send_text(&room, "hello").await;
    let said_now = said(&alice, &room, n + 6).await;
    assert_eq!(
        said_now[n + 4..],
        ["[en→fr] bon matinée", "[en→fr] bonjour"]
    );
    assert_eq!(
        (lt.count("/translate"), lt.count("/detect")),
        (translations, detections),
        "texts seen before are answered from the cache"
    );

    alice.send_text(&room, "!translate off").await;
    bob.send_text(&room, "hello world").await;
    alice.send_text(&room, "!tr fr cat").await;
    let said_now = said(&alice, &room, n + 8).await;
    assert_eq!(
        said_now[n + 6..],
        ["Stopped translating this room.", "[en→fr] chat"]
    );
    alice.send_text(&room, "!translate").await;
    let status = said(&alice, &room, n + 9).await[n + 8].clone();
    assert!(status.contains("This room is not translated."), "{status}");
    assert!(status.contains(": up."), "{status}");
    assert!(status.contains("Translated 7, cache hits"), "{status}");
    let view = show(&admin(&server.base, server.data_dir.path()), "translator").await;
    assert_eq!(view["errors"], 0, "{view}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_gets_one_notice_and_loses_nothing_across_a_restart_in_the_middle() {
    let (addr, lt) = look_alike().await;
    let server = server(Some(addr)).await;
    let (alice, bob, room) = room(&server.client()).await;
    let n = french(&alice, &room).await;

    lt.set(Mode::Down);
    for text in ["hello", "good morning", "cat"] {
        bob.send_text(&room, text).await;
    }
    let said_now = said(&alice, &room, n + 1).await;
    assert!(
        said_now[n].starts_with("The translation backend is unavailable (HTTP 503 overloaded)."),
        "{}",
        said_now[n]
    );
    // The tries go on with backoff (200, 400, 800, 1000 ms) and tell the room nothing more.
    let tries = lt.count("/detect");
    plugins::wait_until("the plugin to try again", async || {
        lt.count("/detect") >= tries + 2
    })
    .await;
    let said_now = plugins::said_by(&alice, &room, BOT).await;
    assert_eq!(said_now.len(), n + 1, "{said_now:?}");

    let data_dir = server.stop().await;
    let mut config = test_config(data_dir.path());
    configured(&mut config, Some(addr));
    let server = TestServer::start_in(data_dir, config).await;
    let (mut alice, mut bob) = (alice, bob);
    alice.base = server.base.clone();
    bob.base = server.base.clone();
    bob.send_text(&room, "world").await;
    let tries = lt.count("/detect");
    plugins::wait_until("the plugin to try after the restart", async || {
        lt.count("/detect") > tries
    })
    .await;

    lt.set(Mode::Up);
    let said_now = said(&alice, &room, n + 6).await;
    assert_eq!(
        said_now[n + 1..],
        [
            "[en→fr] bonjour",
            "The translation backend is back; translating what was waiting.",
            "[en→fr] bon matin",
            "[en→fr] chat",
            "[en→fr] monde",
        ]
    );
    assert_eq!(unavailable(&said_now), 1, "one notice for the whole outage");
    bob.send_text(&room, "hello world").await;
    assert_eq!(
        said(&alice, &room, n + 7).await[n + 6],
        "[en→fr] bonjour monde"
    );
    alice.send_text(&room, "!translate").await;
    let status = said(&alice, &room, n + 8).await[n + 7].clone();
    assert!(status.contains("Waiting: 0 here, 0 in all."), "{status}");
    assert!(status.contains(": up."), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_backend_does_not_hold_up_the_queue_longer_than_the_deadline() {
    let (addr, lt) = look_alike().await;
    let server = server(Some(addr)).await;
    let admin = admin(&server.base, server.data_dir.path());
    let (alice, bob, room) = room(&server.client()).await;
    let n = french(&alice, &room).await;
    let deadline_ms = show(&admin, "translator").await["capabilities"]["deadline_ms"]
        .as_u64()
        .unwrap();

    lt.set(Mode::Slow);
    bob.send_text(&room, "hello").await;
    let asked = Instant::now();
    alice.send_text(&room, "!glossary add cat = Minou").await;
    let said_now = said(&alice, &room, n + 2).await;
    let waited = asked.elapsed();
    assert!(
        said_now[n..].contains(&"Glossary: cat is translated as Minou (1 terms).".to_string()),
        "{said_now:?}"
    );
    let notice = said_now[n..]
        .iter()
        .find(|s| s.starts_with("The translation backend is unavailable"))
        .expect("the room is told");
    assert!(notice.contains("(no answer within 800 ms)"), "{notice}");
    assert!(
        waited < SLOW / 2,
        "a command waited {waited:?} behind a backend taking {SLOW:?}"
    );
    let view = show(&admin, "translator").await;
    assert_eq!(
        view["traps"]["deadline"], 0,
        "no call ran past {deadline_ms} ms: {view}"
    );
    assert_eq!(view["errors"], 0, "{view}");
    let p99 = view["call_ms"]["p99"].as_f64().unwrap();
    assert!(p99 < deadline_ms as f64, "calls took up to {p99} ms");

    lt.set(Mode::Up);
    let said_now = said(&alice, &room, n + 4).await;
    assert_eq!(
        said_now[n + 2..],
        [
            "[en→fr] bonjour",
            "The translation backend is back; translating what was waiting."
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_url_its_commands_say_what_to_set() {
    let server = server(None).await;
    let (alice, bob, room) = room(&server.client()).await;
    alice.send_text(&room, "!tr fr hello").await;
    alice.send_text(&room, "!translate on fr").await;
    bob.send_text(&room, "hello").await;
    alice.send_text(&room, "!translate").await;
    let said_now = said(&alice, &room, 3).await;
    for s in &said_now[..2] {
        assert!(
            s.starts_with("not configured (no url is set): set url (and http_allow)"),
            "{s}"
        );
    }
    assert!(
        said_now[2].contains("Backend: not configured"),
        "{}",
        said_now[2]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_answered_or_counted_and_never_breaks_the_plugin() {
    let (addr, lt) = look_alike().await;
    let server = server(Some(addr)).await;
    let (alice, bob, room) = room(&server.client()).await;
    // Answered by the queue, after a look at the backend's languages.
    alice.send_text(&room, "!tr xx hello").await;
    said(&alice, &room, 1).await;
    let huge = format!("!tr fr {}", "hello ".repeat(500));
    for text in [
        "!translate on 123",
        huge.as_str(),
        "!tr fr",
        "!glossary add no equals sign",
        "!translate sideways",
    ] {
        alice.send_text(&room, text).await;
    }
    bob.send_text(&room, "!translate on fr").await;
    for (i, content) in [
        json!({"msgtype": 5, "body": "hello"}),
        json!({"msgtype": "m.text", "body": {"nested": "hello"}}),
        json!({"msgtype": "m.text"}),
    ]
    .into_iter()
    .enumerate()
    {
        let txn = format!("malformed{i}");
        alice
            .put(
                &format!("/rooms/{}/send/m.room.message/{txn}", enc(&room)),
                content,
            )
            .await
            .ok();
    }
    alice.send_text(&room, "!translate").await;
    let said_now = said(&alice, &room, 8).await;
    assert_eq!(
        said_now[..7],
        [
            "The backend does not know the language `xx`. Known: en, fr, de.",
            "`123` is not a language code (like en, fr, pt-BR).",
            "That is too long: I translate at most 2000 characters at a time.",
            "Usage: !tr LANG TEXT",
            "write it as TERM = TRANSLATION. Usage: !glossary add TERM = TRANSLATION | \
             !glossary remove TERM | !glossary",
            "Usage: !translate on LANG | !translate off | !translate languages | !translate",
            "Only members who may change this room's settings can do that.",
        ]
    );
    let status = &said_now[7];
    assert!(status.contains("malformed 3"), "{status}");
    assert!(status.contains("unknown_language 1"), "{status}");
    assert!(status.contains("too_long 1"), "{status}");
    assert_eq!(lt.count("/translate"), 0, "nothing bad reached the backend");
    alice.send_text(&room, "!tr de hello").await;
    let said_now = said(&alice, &room, 9).await;
    assert_eq!(
        said_now[8],
        "The backend cannot do this: en to de is not supported"
    );
    let view = show(&admin(&server.base, server.data_dir.path()), "translator").await;
    assert_eq!(view["state"], "running", "{view}");
    assert_eq!(view["errors"], 0, "{view}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_in_a_backlog_and_in_an_outage_loses_no_translation_and_repeats_none() {
    let (addr, lt) = look_alike().await;
    let env = settings_env(addr);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = ServerProcess::spawn_with_env(BINARY, &data, &env).await;
    install(&admin(&server.base, &data), &translator()).await;
    let (mut alice, mut bob, room) = room(&server.client()).await;
    let n = french(&alice, &room).await;
    // The translation each acknowledged message must get, by its event id.
    let mut expected: Vec<(String, String)> = Vec::new();

    lt.set(Mode::Paced);
    for i in 0..BACKLOG {
        let id = bob.send_text(&room, &format!("hello {i}")).await;
        expected.push((id, format!("[en→fr] bonjour {i}")));
    }
    let said_now = said(&alice, &room, n + 3).await;
    server.kill();
    assert!(
        said_now.len() < n + BACKLOG,
        "the backlog was done before the kill: {said_now:?}"
    );

    // The backend goes down while the server is away: the rest of the backlog meets an
    // outage, and more messages come during it.
    lt.set(Mode::Down);
    let server = ServerProcess::spawn_with_env(BINARY, &data, &env).await;
    alice.base = server.base.clone();
    bob.base = server.base.clone();
    wait_for_words(&alice, &room, BOT, |s| unavailable(s) == 1).await;
    for i in 0..3 {
        let id = bob.send_text(&room, &format!("cat {i}")).await;
        expected.push((id, format!("[en→fr] chat {i}")));
    }
    let tries = lt.requests();
    wait_until("the plugin to try again in the outage", async || {
        lt.requests() >= tries + 2
    })
    .await;
    server.kill();

    let server = ServerProcess::spawn_with_env(BINARY, &data, &env).await;
    alice.base = server.base.clone();
    bob.base = server.base.clone();
    let tries = lt.requests();
    wait_until("the plugin to try after the restart", async || {
        lt.requests() > tries
    })
    .await;
    lt.set(Mode::Up);
    // Queued last, so translated last: once it is, all that was waiting has been done.
    let marker = bob.send_text(&room, "world").await;
    expected.push((marker, "[en→fr] monde".into()));
    wait_for_words(&alice, &room, BOT, |s| {
        s.iter().any(|b| b == "[en→fr] monde")
    })
    .await;

    let mut translated: Vec<(String, String)> = plugins::contents_by(&alice, &room, BOT)
        .await
        .into_iter()
        .filter(|c| c["org.plugboard.translation"].is_object())
        .map(|c| {
            let answered = &c["org.plugboard.translation"]["event_id"];
            (
                answered.as_str().unwrap().to_string(),
                c["body"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    translated.sort();
    expected.sort();
    let missing: Vec<_> = expected
        .iter()
        .filter(|e| !translated.contains(e))
        .collect();
    let repeated: Vec<_> = translated
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| &w[0])
        .collect();
    assert_eq!(
        translated, expected,
        "one translation per message sent: missing {missing:?}, repeated {repeated:?}"
    );
    let said_now = plugins::said_by(&alice, &room, BOT).await;
    assert_eq!(unavailable(&said_now), 1, "one notice for the whole outage");
    let back = said_now
        .iter()
        .filter(|s| s.starts_with("The translation backend is back"))
        .count();
    assert_eq!(back, 1, "{said_now:?}");
    alice.send_text(&room, "!translate").await;
    let status = said(&alice, &room, said_now.len() + 1).await[said_now.len()].clone();
    assert!(status.contains("Waiting: 0 here, 0 in all."), "{status}");
    assert!(status.contains(": up."), "{status}");
}
