//! Outgoing hooks: a room's messages forwarded as Slack-shaped JSON (`text`, `username`,
//! `room`, …) to a URL on the plugin's allow-list. A message is only queued in the store
//! while its transaction is handled; a durable timer delivers the queue in order, so a
//! failing URL never holds up the room's transactions: a failed try keeps the message and
//! tries again after a pause that doubles up to `retry_max_ms`, forever, with the room told
//! once per outage. A room keeps at most `max_pending` messages waiting, and all rooms
//! together at most `max_pending_bytes_total` bytes of them; more are dropped and counted. The first thing sent to a new URL is a test post, which is how the plugin
//! learns whether its host is on the allow-list.

use std::time::{Duration, Instant};

use plugboard_sdk::http;
use plugboard_sdk::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::settings::Settings;
use crate::totals;

/// What forwarding a room does and how it is going: `out/{room}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forward {
    /// Where messages go.
    pub url: String,
    /// The URL's host (and port): the only part of the URL the room is shown.
    pub host: String,
    /// The test post went through: the host is allowed and the URL answers.
    pub verified: bool,
    /// Failed tries in a row.
    pub failures: u32,
    /// What the last failed try said.
    pub last_error: Option<String>,
    /// The room was told of the current outage.
    pub told_failing: bool,
    /// The room was told that its queue is full.
    pub told_full: bool,
    /// A delivery timer is set.
    pub armed: bool,
    /// The sequence number of the next queued message.
    pub next_seq: u64,
    /// Messages waiting.
    pub pending: u64,
    /// Messages delivered since forwarding started.
    pub delivered: u64,
    /// Messages dropped since forwarding started (queue full, store full, refused by the
    /// receiver).
    pub dropped: u64,
    /// The `!webhook out` command, which the first answers reply to.
    pub asked_in: String,
    /// The confirmed URL and host this one replaces: kept if the new one is refused.
    #[serde(default)]
    pub previous: Option<(String, String)>,
}

/// The most messages one timer call tries, and the share of the call's deadline after
/// which it starts no more: the rest waits for the next call, right after.
const BATCH: usize = 20;
const BUDGET: Duration = Duration::from_millis(2_500);
/// The longest one post may take. With [`BUDGET`] it keeps a call well inside the
/// manifest's `deadline_ms` (5 s): a call cut by its deadline would lose the record of the
/// posts it made, and send them again. Receivers as slow as Slack's (half a second) fit.
const POST_TIMEOUT_MS: u64 = 2_000;
/// The longest URL taken.
const MAX_URL: usize = 2048;

fn forward_key(room: &str) -> String {
    format!("out/{room}")
}

fn queue_prefix(room: &str) -> String {
    format!("queue/{room}/")
}

fn timer_key(room: &str) -> String {
    format!("deliver/{room}")
}

/// A room's forwarding, if it has one.
pub fn load(room: &str) -> Result<Option<Forward>, Error> {
    kv::get_json(&forward_key(room))
}

fn save(room: &str, f: &Forward) -> Result<(), Error> {
    kv::set_json(&forward_key(room), f)
}

/// The host (and port) of an outgoing URL, or why the URL is refused.
pub fn check_url(url: &str) -> Result<String, String> {
    if url.len() > MAX_URL || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "the URL must be at most {MAX_URL} characters, without spaces"
        ));
    }
    let (_, authority, _) = http::split_url(url).map_err(|e| e.message)?;
    if authority.contains('@') {
        return Err("the URL must not carry a user name or password".into());
    }
    Ok(authority.to_ascii_lowercase())
}

/// Starts (or moves) forwarding `room` to `url`; the delivery timer sends the test post
/// and answers the command. Messages already waiting go to the new URL.
pub fn start(event: &Event, url: &str, host: &str) -> Result<(), Error> {
    let mut f = load(&event.room_id)?.unwrap_or_default();
    if f.verified {
        f.previous = Some((f.url.clone(), f.host.clone()));
    }
    f.url = url.to_string();
    f.host = host.to_string();
    f.verified = false;
    f.failures = 0;
    f.last_error = None;
    f.told_failing = false;
    f.asked_in = event.event_id.clone();
    arm(&event.room_id, &mut f, 0)?;
    save(&event.room_id, &f)
}

/// Stops forwarding `room`; answers the host it went to and how many waiting messages
/// were dropped, or `None` when it forwarded nothing.
pub fn stop(room: &str) -> Result<Option<(String, usize)>, Error> {
    let Some(f) = load(room)? else {
        return Ok(None);
    };
    let dropped = clear(room)?;
    kv::delete(&forward_key(room))?;
    Ok(Some((f.host, dropped)))
}

fn clear(room: &str) -> Result<usize, Error> {
    timers::cancel_timer(&timer_key(room));
    let keys = kv::all_keys(&queue_prefix(room))?;
    for k in &keys {
        unqueue(k)?;
    }
    Ok(keys.len())
}

/// Deletes a waiting message, and its bytes from all rooms' count.
fn unqueue(key: &str) -> Result<(), Error> {
    if let Some(value) = kv::get(key)? {
        kv::delete(key)?;
        totals::add_queued_bytes(-(totals::size(key, &value) as i64))?;
    }
    Ok(())
}

fn arm(room: &str, f: &mut Forward, after_ms: u64) -> Result<(), Error> {
    timers::set_timer(&timer_key(room), after_ms, room)?;
    f.armed = true;
    Ok(())
}

/// The timer key's room, if the key is a delivery timer's.
pub fn timer_room(key: &str) -> Option<&str> {
    key.strip_prefix("deliver/")
}

/// The JSON a message is forwarded as, or `None` for what is not forwarded.
pub fn payload(settings: &Settings, event: &Event, message: &Message) -> Option<Value> {
    let (text, edits) = match (message.replaces(), &message.new_content) {
        (Some(original), Some(new)) => (
            new.get("body").and_then(Value::as_str)?.to_string(),
            Some(original.to_string()),
        ),
        _ => (message.text_without_fallback().to_string(), None),
    };
    let text = clip(&text, settings.max_text_bytes);
    let username = homeserver::get_state(None, &event.room_id, "m.room.member", &event.sender)
        .ok()
        .and_then(|m| {
            m.get("displayname")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| event.sender.clone());
    let mut p = json!({
        "text": text,
        "username": clip(&username, 256),
        "user_id": event.sender,
        "room": event.room_id,
        "event_id": event.event_id,
        "timestamp": event.origin_server_ts,
        "msgtype": message.msgtype.as_str(),
    });
    if let Some(original) = edits {
        p["edits"] = json!(original);
    }
    if let Some(url) = message.url.as_deref().filter(|u| u.len() <= MAX_URL) {
        p["url"] = json!(url);
    }
    Some(p)
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn clip(text: &str, max: usize) -> String {
    plugboard_sdk::message::clip_marked(text, max).into_owned()
}

/// Queues a message of a forwarded room. A room that forwards nothing is left alone.
pub fn enqueue(settings: &Settings, event: &Event, message: &Message) -> Result<(), Error> {
    let room = &event.room_id;
    let Some(mut f) = load(room)? else {
        return Ok(());
    };
    let Some(item) = payload(settings, event, message) else {
        return Ok(());
    };
    if f.pending >= settings.max_pending as u64 {
        let notice = behind(&f, "the queue is full");
        return drop_one(room, &mut f, &notice);
    }
    let key = format!("{}{:020}", queue_prefix(room), f.next_seq);
    let bytes = serde_json::to_vec(&item)?;
    let size = totals::size(&key, &bytes);
    if totals::queued_bytes()?.saturating_add(size) > settings.max_pending_bytes_total {
        crate::count("forward_server_full");
        let notice = format!(
            "Forwarding to {}: the messages waiting in all rooms fill what this server keeps \
             for them ({} bytes), so new messages here are dropped until those are delivered. \
             The server admin can raise max_pending_bytes_total.",
            f.host, settings.max_pending_bytes_total
        );
        return drop_one(room, &mut f, &notice);
    }
    match kv::set(&key, &bytes) {
        Ok(()) => {}
        // The store is full: dropping this message beats retrying the transaction forever.
        Err(e) if e.is("M_RESOURCE_LIMIT_EXCEEDED") => {
            let notice = behind(&f, "the plugin's store is full");
            return drop_one(room, &mut f, &notice);
        }
        Err(e) => return Err(e),
    }
    totals::add_queued_bytes(size as i64)?;
    f.next_seq += 1;
    f.pending += 1;
    if !f.armed {
        arm(room, &mut f, 0)?;
    }
    save(room, &f)
}

/// What the room is told when its own queue cannot take more, for `why`.
fn behind(f: &Forward, why: &str) -> String {
    format!(
        "Forwarding to {}: {} messages are waiting and {why}; new messages are dropped until \
         it catches up.",
        f.host, f.pending
    )
}

/// Drops a message that cannot be queued; tells the room `notice` once until it can again.
fn drop_one(room: &str, f: &mut Forward, notice: &str) -> Result<(), Error> {
    f.dropped += 1;
    crate::count("forward_dropped");
    if !f.told_full {
        f.told_full = true;
        homeserver::send_notice(room, notice)?;
    }
    save(room, f)
}

/// What one POST came to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Delivered,
    /// The receiver answered that it will never take this (3xx, 4xx but 408 and 429).
    Refused(u16),
    /// The host is not on the plugin's allow-list.
    Denied,
    /// Worth another try later.
    Failed(String),
}

/// POSTs `body` as JSON to `url`, with the forwarded event's id as an idempotency key for a
/// receiver that gets a message again after a try whose answer was lost.
fn post(url: &str, body: &Value) -> Outcome {
    let mut request = http::Request::post_json(url, body).timeout_ms(POST_TIMEOUT_MS);
    if let Some(id) = body["event_id"].as_str() {
        request = request.header("idempotency-key", id);
    }
    match http::fetch(&request).map(|r| r.status) {
        Ok(status) if (200..300).contains(&status) => Outcome::Delivered,
        Ok(status) if status == 408 || status == 429 || status >= 500 => {
            Outcome::Failed(format!("it answered HTTP {status}"))
        }
        Ok(status) => Outcome::Refused(status),
        Err(e) if e.is("M_FORBIDDEN") => Outcome::Denied,
        Err(e) => Outcome::Failed(e.message),
    }
}

/// The delivery timer of `room` fired: sends the test post if the URL is new, then the
/// waiting messages in order, until one fails, the batch is done or the time is up.
pub fn deliver(settings: &Settings, room: &str) -> Result<(), Error> {
    let Some(mut f) = load(room)? else {
        return Ok(());
    };
    f.armed = false;
    let started = Instant::now();
    if !f.verified {
        let hello = json!({
            "text": format!("This URL now receives the messages of Matrix room {room}."),
            "username": "webhooks",
            "room": room,
        });
        match post(&f.url, &hello) {
            Outcome::Delivered => {
                f.verified = true;
                f.failures = 0;
                f.told_failing = false;
                f.last_error = None;
                answer(
                    room,
                    &f,
                    &format!("Forwarding this room's messages to {}.", f.host),
                )?;
            }
            Outcome::Denied => {
                let text = format!(
                    "Refused: {} is not on this plugin's allow-list. The server admin can add \
                     it to http_allow in [plugins.settings.webhooks].",
                    f.host
                );
                return give_up(room, &f, &text);
            }
            Outcome::Refused(status) => {
                let text = format!(
                    "Refused: {} answered HTTP {status} to a test post; check the URL.",
                    f.host
                );
                return give_up(room, &f, &text);
            }
            Outcome::Failed(why) => {
                if f.failures == 0 {
                    answer(
                        room,
                        &f,
                        &format!(
                            "Forwarding to {} is set, but it cannot be reached now ({why}); \
                             messages are kept and sent once it answers.",
                            f.host
                        ),
                    )?;
                    f.told_failing = true;
                }
                return failed(settings, room, &mut f, why);
            }
        }
    }
    let mut recovered = false;
    let keys = kv::list_keys(&queue_prefix(room), None, BATCH as u32)?;
    for key in &keys {
        if started.elapsed() > BUDGET {
            break;
        }
        let Some(bytes) = kv::get(key)? else {
            continue;
        };
        let item: Value = serde_json::from_slice(&bytes)?;
        match post(&f.url, &item) {
            Outcome::Delivered => {
                f.delivered += 1;
                crate::count_done("forwarded");
            }
            Outcome::Refused(status) => {
                // The receiver is up but will not take this one: keeping it would block
                // every message after it.
                f.dropped += 1;
                crate::count("forward_refused_by_receiver");
                log::info(&format!(
                    "{} refused a forwarded message of {room} with HTTP {status}",
                    f.host
                ));
            }
            Outcome::Denied => {
                return failed(
                    settings,
                    room,
                    &mut f,
                    "its host is not on the allow-list".into(),
                )
            }
            Outcome::Failed(why) => return failed(settings, room, &mut f, why),
        }
        unqueue(key)?;
        f.pending = f.pending.saturating_sub(1);
        if f.failures > 0 {
            recovered = f.told_failing;
            f.failures = 0;
            f.last_error = None;
            f.told_failing = false;
        }
    }
    if f.pending < settings.max_pending as u64
        && totals::queued_bytes()? < settings.max_pending_bytes_total
    {
        f.told_full = false;
    }
    if recovered {
        homeserver::send_notice(room, &format!("Forwarding to {} works again.", f.host))?;
    }
    if f.pending > 0 && !kv::list_keys(&queue_prefix(room), None, 1)?.is_empty() {
        arm(room, &mut f, 0)?;
    } else {
        f.pending = 0;
    }
    save(room, &f)
}

/// A try failed: keeps everything and tries again after the backoff; tells the room once
/// the failures reach `notify_after_failures`.
fn failed(settings: &Settings, room: &str, f: &mut Forward, why: String) -> Result<(), Error> {
    f.failures = f.failures.saturating_add(1);
    f.last_error = Some(why.clone());
    crate::count("forward_failed");
    let pause = settings.backoff_ms(f.failures);
    if !f.told_failing && f.failures >= settings.notify_after_failures {
        f.told_failing = true;
        homeserver::send_notice(
            room,
            &format!(
                "Forwarding to {} has failed {} times in a row ({why}); {} messages are \
                 kept and tried again every {} s at most. `!webhook out off` stops it.",
                f.host,
                f.failures,
                f.pending,
                settings.retry_max_ms / 1000
            ),
        )?;
    }
    arm(room, f, pause)?;
    save(room, f)
}

/// The test post was refused: forwarding goes back to the URL it replaced, or else is off
/// again, and the room is told why.
fn give_up(room: &str, f: &Forward, text: &str) -> Result<(), Error> {
    if let Some((url, host)) = f.previous.clone() {
        answer(room, f, &format!("{text} Still forwarding to {host}."))?;
        let mut back = Forward {
            url,
            host,
            verified: true,
            previous: None,
            ..f.clone()
        };
        if back.pending > 0 {
            arm(room, &mut back, 0)?;
        }
        return save(room, &back);
    }
    answer(room, f, &format!("{text} Nothing is forwarded."))?;
    let dropped = clear(room)?;
    if dropped > 0 {
        crate::count("forward_dropped");
    }
    kv::delete(&forward_key(room)).map(drop)
}

/// A notice in reply to the `!webhook out` command, when it is still there to reply to.
fn answer(room: &str, f: &Forward, text: &str) -> Result<(), Error> {
    let mut content = Content::notice(text);
    if !f.asked_in.is_empty() {
        content = content.with(
            "m.relates_to",
            json!({"m.in_reply_to": {"event_id": f.asked_in}}),
        );
    }
    homeserver::send_message(None, room, content).map(drop)
}
