//! The end-to-end tests' probe: records every transaction it accepts in kv (`seen/{txn}` →
//! its event ids), shows them at `GET /seen`, echoes at `/request` what it was handed of a
//! web request (to see what reaches a plugin of its caller's), answers commands that exercise the host
//! imports, and misbehaves on request (`!loop`, `!bomb`, `!panic`). Built with the feature
//! `always-trap`, it traps on every transaction.

use plugboard_sdk::homeserver::RoomOptions;
use plugboard_sdk::prelude::*;
use serde_json::{json, Value};

pub struct Probe;

fn say(event: &Event, text: &str) -> Result<(), Error> {
    homeserver::reply(event, MsgType::Notice, text).map(drop)
}

fn answer<T: std::fmt::Debug>(event: &Event, r: Result<T, Error>) -> Result<(), Error> {
    match r {
        Ok(v) => say(event, &format!("ok {v:?}")),
        Err(e) => say(event, &format!("error {}", e.errcode)),
    }
}

#[inline(never)]
fn spin(n: u64) -> u64 {
    let mut x = n;
    loop {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        if x == 42 {
            return x;
        }
    }
}

impl Plugin for Probe {
    fn init(_config: &Config) -> Result<Self, Error> {
        Ok(Probe)
    }

    fn commands(&self) -> Commands<Self> {
        Commands::new("!")
            .command("say", "TEXT", "says TEXT", |_, e, a| say(e, a.rest()))
            .command("loop", "", "runs forever", |_, e, _| {
                let n = spin(e.origin_server_ts);
                say(e, &n.to_string())
            })
            .command("bomb", "", "allocates until it cannot", |_, e, _| {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    if hoard.len() == usize::MAX {
                        return say(e, "unreachable");
                    }
                }
            })
            .command("panic", "", "panics", |_, _, _| {
                panic!("the probe was asked to panic")
            })
            .command(
                "flaky",
                "TEXT",
                "says TEXT, then fails the first time",
                |_, e, a| {
                    // Kept in the instance, which a plugin error (unlike a trap) does not drop.
                    static ATTEMPTS: std::sync::atomic::AtomicU32 =
                        std::sync::atomic::AtomicU32::new(0);
                    say(e, a.rest())?;
                    if ATTEMPTS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                        return Err(Error::unknown("the first attempt fails after it spoke"));
                    }
                    Ok(())
                },
            )
            .command("http", "URL", "fetches URL", |_, e, a| {
                let r = http::fetch(&http::Request::get(a.rest()));
                answer(e, r.map(|resp| resp.status))
            })
            .command("kv", "KIB", "stores KIB KiB", |_, e, a| {
                let kib: usize = a.rest().parse().unwrap_or(1);
                answer(e, kv::set("fill", &vec![7u8; kib * 1024]))
            })
            .command("as", "USER TEXT", "speaks as USER", |_, e, a| {
                let user = a.word(0).unwrap_or_default();
                let r = homeserver::send_message(
                    Some(user),
                    &e.room_id,
                    Content::text(a.after_words(1)),
                );
                answer(e, r)
            })
            .command("invite", "USER", "invites USER here", |_, e, a| {
                answer(e, homeserver::invite(None, &e.room_id, a.rest()))
            })
            .command(
                "sleep",
                "MS",
                "sleeps in the host for MS milliseconds",
                |_, e, a| {
                    let ms: u64 = a.rest().parse().unwrap_or(0);
                    std::thread::sleep(std::time::Duration::from_millis(ms));
                    say(e, "woke up")
                },
            )
            .command("register", "LOCALPART", "registers a user", |_, e, a| {
                answer(e, homeserver::register_user(a.rest()))
            })
            .command(
                "room",
                "LOCALPART",
                "makes a room as that user and invites the sender",
                |_, e, a| {
                    let r = (|| {
                        let user = homeserver::ensure_user(a.rest())?;
                        let room = homeserver::create_room(
                            Some(&user),
                            &RoomOptions {
                                name: Some("made by the probe".into()),
                                invite: vec![e.sender.clone()],
                                ..RoomOptions::default()
                            },
                        )?;
                        homeserver::send_message(
                            Some(&user),
                            &room,
                            Content::text("hello from the probe"),
                        )?;
                        Ok(room)
                    })();
                    answer(e, r)
                },
            )
            .command(
                "access",
                "USER [ROOM]",
                "what USER may read of ROOM (this room by default)",
                |_, e, a| {
                    let user = a.word(0).unwrap_or_default();
                    let room = a.word(1).unwrap_or(&e.room_id);
                    let r = homeserver::room_access(user, room).map(|x| {
                        format!(
                            "joined={} readable={} whole={}",
                            x.joined, x.readable, x.whole_history
                        )
                    });
                    match r {
                        Ok(v) => say(e, &format!("ok {v}")),
                        Err(err) => say(e, &format!("error {}", err.errcode)),
                    }
                },
            )
            .command(
                "visible",
                "USER EVENT…",
                "which of the EVENTs USER may see",
                |_, e, a| {
                    let user = a.word(0).unwrap_or_default();
                    let events: Vec<String> = a
                        .after_words(1)
                        .split_whitespace()
                        .map(str::to_string)
                        .collect();
                    answer(e, homeserver::visible_events(user, &events))
                },
            )
            .command(
                "admin",
                "USER",
                "whether USER is a server admin",
                |_, e, a| answer(e, homeserver::is_server_admin(a.rest())),
            )
            .command(
                "timer",
                "MS TEXT",
                "says TEXT in MS milliseconds",
                |_, e, a| {
                    let ms: u64 = a.word(0).and_then(|w| w.parse().ok()).unwrap_or(0);
                    let payload = json!({"room": e.room_id, "text": a.after_words(1)}).to_string();
                    answer(
                        e,
                        timers::set_timer(&format!("t-{}", e.event_id), ms, &payload),
                    )
                },
            )
    }

    fn on_message(&mut self, _event: &Event, _message: &Message) -> Result<(), Error> {
        Ok(())
    }

    fn on_timer(&mut self, _key: &str, payload: &str) -> Result<(), Error> {
        let p: Value = serde_json::from_str(payload)?;
        homeserver::send_notice(
            p["room"].as_str().unwrap_or_default(),
            &format!("timer {}", p["text"].as_str().unwrap_or_default()),
        )
        .map(drop)
    }

    fn query_user(&mut self, user_id: &str) -> bool {
        let local = user_id
            .strip_prefix('@')
            .and_then(|u| u.split(':').next())
            .unwrap_or_default();
        local.starts_with("probe_lazy") && homeserver::register_user(local).is_ok()
    }

    fn query_alias(&mut self, alias: &str) -> bool {
        let local = alias
            .strip_prefix('#')
            .and_then(|a| a.split(':').next())
            .unwrap_or_default();
        local.starts_with("probe_lazy")
            && homeserver::create_room(
                None,
                &RoomOptions {
                    alias_name: Some(local.to_string()),
                    preset: Some("public_chat".into()),
                    ..RoomOptions::default()
                },
            )
            .is_ok()
    }

    fn handle_http(&mut self, request: &HttpRequest) -> HttpResponse {
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/seen") => match seen() {
                Ok(v) => HttpResponse::json(200, &v),
                Err(e) => HttpResponse::error(500, &e.errcode, &e.message),
            },
            ("GET", "/whoami") => HttpResponse::json(200, &json!({ "user_id": request.user_id })),
            // Any method: what the host handed over of this request.
            (_, "/request") => HttpResponse::json(
                200,
                &json!({
                    "method": request.method,
                    "path": request.path,
                    "query": request.query,
                    "headers": request.headers,
                    "user_id": request.user_id,
                }),
            ),
            ("POST", "/echo") => HttpResponse::new(201, "text/plain", request.body.clone()),
            _ => HttpResponse::not_found(),
        }
    }

    fn sees_own_events(&self) -> bool {
        true
    }
}

/// Every transaction recorded, in txn id order: `{"txns": [...], "events": [...],
/// "repeats": [...]}`; `repeats` are the txn ids delivered again after the store already held
/// their record (what a transaction acknowledged with its writes never is).
fn seen() -> Result<Value, Error> {
    let mut txns = Vec::new();
    let mut events = Vec::new();
    let repeats: Vec<String> = kv::all_keys("repeat/")?
        .iter()
        .map(|k| {
            k.trim_start_matches("repeat/")
                .trim_start_matches('0')
                .to_string()
        })
        .collect();
    for key in kv::all_keys("seen/")? {
        let ids: Vec<String> = kv::get_json(&key)?.unwrap_or_default();
        txns.push(json!(key
            .trim_start_matches("seen/")
            .trim_start_matches('0')));
        events.extend(ids.into_iter().map(Value::String));
    }
    Ok(json!({ "txns": txns, "events": events, "repeats": repeats }))
}

/// The probe takes transactions through its own export, around the SDK's handlers, so it
/// can record each one whole.
pub struct Recorder;

impl Recorder {
    pub fn record(txn: &Transaction) -> Result<(), Error> {
        if cfg!(feature = "always-trap") {
            panic!("this release of the probe is broken");
        }
        let n: u64 = txn.txn_id.parse().unwrap_or(0);
        let ids: Vec<&str> = txn.events.iter().map(|e| e.event_id.as_str()).collect();
        let key = format!("seen/{n:020}");
        if kv::get(&key)?.is_some() {
            kv::set(&format!("repeat/{n:020}"), b"")?;
        }
        kv::set_json(&key, &ids)
    }
}

struct Guest;

impl plugboard_sdk::bindings::Guest for Guest {
    fn init(config: String) -> Result<(), Error> {
        plugboard_sdk::__runner::init::<Probe>(&config)
    }
    fn on_transaction(
        txn: plugboard_sdk::bindings::plugboard::appservice::types::Transaction,
    ) -> Result<(), Error> {
        let txn: Transaction = txn.into();
        Recorder::record(&txn)?;
        plugboard_sdk::__runner::on_transaction::<Probe>(txn)
    }
    fn on_timer(key: String, payload: String) -> Result<(), Error> {
        plugboard_sdk::__runner::on_timer::<Probe>(&key, &payload)
    }
    fn query_user(user: String) -> bool {
        plugboard_sdk::__runner::query_user::<Probe>(&user)
    }
    fn query_alias(alias: String) -> bool {
        plugboard_sdk::__runner::query_alias::<Probe>(&alias)
    }
    fn handle_http(request: HttpRequest) -> HttpResponse {
        plugboard_sdk::__runner::handle_http::<Probe>(&request)
    }
}

plugboard_sdk::bindings::export!(Guest with_types_in plugboard_sdk::bindings);
