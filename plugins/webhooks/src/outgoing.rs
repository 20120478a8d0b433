//! Outgoing hooks: a room's messages forwarded as Slack-shaped JSON (`text`, `username`,
//! `room`, …) to a URL on the plugin's allow-list. A message is only queued in the store
//! while its transaction is handled; a durable timer delivers the queue in order, so a
//! failing URL never holds up the room's transactions: a failed try keeps the message and
//! tries again after a pause that doubles up to `retry_max_ms`, forever, with the room told
//! once per outage. A room keeps at most `max_pending` messages waiting, and all rooms
//! together at most `max_pending_bytes_total` bytes of them; more are dropped and counted. The
//! first thing sent to a new URL is a test post, which is how the plugin learns whether its
//! host is on the allow-list.
//!
//! A write the host refuses anyway (`M_RESOURCE_LIMIT_EXCEEDED`: the quota, the timers)
//! drops the message it was for, counted: returned as an error it would fail the
//! transaction, which the host would retry for ever with every other room behind it.

use std::time::{Duration, Instant};

use plugboard_sdk::http;
use plugboard_sdk::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::settings::Settings;
use crate::{fits, totals};

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
    /// Forwarding is turned off, and the record stays only until the delivery timer has
    /// deleted the messages that waited.
    #[serde(default)]
    pub off: bool,
    /// The messages queued before this sequence number waited when forwarding was turned
    /// off: they are deleted unsent (0: none).
    #[serde(default)]
    pub drop_before: u64,
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
pub const MAX_URL: usize = 2048;
/// The longest host (and port) taken: a DNS name has at most 253 bytes. The record keeps it
/// twice, and the bound on forwarding rooms counts the record's size.
pub const MAX_HOST: usize = 300;
/// The most waiting messages one timer call deletes when forwarding is turned off: well
/// under the keys one call may write (`kv::MAX_WRITES_PER_CALL`), which a room's
/// `max_pending` may pass.
const CLEAR_BATCH: u32 = 1000;
/// The longest failure kept in the record, whose size the bound on forwarding rooms counts.
pub const MAX_ERROR: usize = 256;

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
    if authority.len() > MAX_HOST {
        return Err(format!(
            "the URL's host must be at most {MAX_HOST} characters"
        ));
    }
    Ok(authority.to_ascii_lowercase())
}

/// Starts (or moves) forwarding `room` to `url`; the delivery timer sends the test post
/// and answers the command. Messages already waiting go to the new URL. Answers `false`
/// when the host refused to keep it (its quota or its timers), with nothing changed.
pub fn start(event: &Event, url: &str, host: &str) -> Result<bool, Error> {
    let room = &event.room_id;
    let old = load(room)?;
    let mut f = old.clone().unwrap_or_default();
    if f.verified {
        f.previous = Some((f.url.clone(), f.host.clone()));
    }
    f.url = url.to_string();
    f.host = host.to_string();
    f.verified = false;
    f.off = false;
    f.failures = 0;
    f.last_error = None;
    f.told_failing = false;
    f.asked_in = event.event_id.clone();
    // A timer left by a refusal below only calls a delivery early, or finds no record.
    if !fits(arm(room, &mut f, 0))? {
        return Ok(false);
    }
    let new = old.is_none();
    if new && !fits(totals::add_forwarding_rooms(1))? {
        return Ok(false);
    }
    if !fits(save(room, &f))? {
        if new {
            // Back to the count read above, a write no longer than the one it undoes.
            totals::add_forwarding_rooms(-1)?;
        }
        return Ok(false);
    }
    Ok(true)
}

/// Stops forwarding `room`; answers the host it went to and how many waiting messages
/// were dropped, or `None` when it forwarded nothing.
pub fn stop(room: &str) -> Result<Option<(String, u64)>, Error> {
    let Some(mut f) = load(room)?.filter(|f| !f.off) else {
        return Ok(None);
    };
    let dropped = f.pending;
    turn_off(room, &mut f)?;
    Ok(Some((f.host, dropped)))
}

/// Turns forwarding of `room` off and drops what waits. Without waiting messages the record
/// goes at once. Otherwise the delivery timer deletes them, [`CLEAR_BATCH`] a call, and
/// then the record: deleting them here could take this call past the keys one call may
/// write, with `max_pending` above it or with many rooms turned off in one transaction, and
/// the host would retry the transaction for ever.
fn turn_off(room: &str, f: &mut Forward) -> Result<(), Error> {
    if kv::list_keys(&queue_prefix(room), None, 1)?.is_empty() {
        return forget(room);
    }
    f.off = true;
    f.drop_before = f.next_seq;
    f.pending = 0;
    f.verified = false;
    f.previous = None;
    if !fits(arm(room, f, 0))? {
        // Each forwarding room holds one timer, and their bound keeps them under the host's
        // cap; a store from before the bound may not. The messages are then deleted when
        // the room forwards again.
        log::warn(&format!(
            "forwarding of {room} is off, but its waiting messages stay: no timer to delete them"
        ));
    }
    save(room, f)
}

/// Deletes the record of `room`'s forwarding, its timer and its place in the count.
fn forget(room: &str) -> Result<(), Error> {
    timers::cancel_timer(&timer_key(room));
    if kv::delete(&forward_key(room))? {
        totals::add_forwarding_rooms(-1)?;
    }
    Ok(())
}

/// Deletes the messages that waited when forwarding was turned off, at most [`CLEAR_BATCH`]
/// and for at most [`BUDGET`]; answers whether none is left.
fn purge(room: &str, f: &mut Forward, started: Instant) -> Result<bool, Error> {
    if f.drop_before == 0 {
        return Ok(true);
    }
    let prefix = queue_prefix(room);
    let keys = kv::list_keys(&prefix, None, CLEAR_BATCH)?;
    for key in &keys {
        let seq = key
            .strip_prefix(&prefix)
            .and_then(|s| s.parse::<u64>().ok());
        if seq.is_some_and(|s| s >= f.drop_before) {
            f.drop_before = 0;
            return Ok(true);
        }
        if started.elapsed() > BUDGET {
            return Ok(false);
        }
        unqueue(key)?;
    }
    if keys.len() < CLEAR_BATCH as usize {
        f.drop_before = 0;
        return Ok(true);
    }
    Ok(false)
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
    let Some(mut f) = load(room)?.filter(|f| !f.off) else {
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
    if !f.armed && !fits(arm(room, &mut f, 0))? {
        crate::count("forward_store_full");
        let notice = behind(&f, "the server allows this plugin no more timers");
        return drop_one(room, &mut f, &notice);
    }
    let mut queued = f.clone();
    queued.next_seq += 1;
    queued.pending += 1;
    if queued.told_full && drained(settings, &queued)? {
        queued.told_full = false;
    }
    if !queue(room, &queued, &key, &bytes, size)? {
        crate::count("forward_store_full");
        let notice = behind(&f, "the plugin's store is full");
        return drop_one(room, &mut f, &notice);
    }
    Ok(())
}

/// Stores a waiting message, its bytes in all rooms' count and the room's record `f` that
/// counts it, all or none: when the host refuses one, those before it are undone and the
/// answer is `false`. An undo never grows the store and writes only keys this call wrote
/// already, so the host cannot refuse it.
fn queue(room: &str, f: &Forward, key: &str, bytes: &[u8], size: u64) -> Result<bool, Error> {
    if !fits(kv::set(key, bytes))? {
        return Ok(false);
    }
    if !fits(totals::add_queued_bytes(size as i64))? {
        kv::delete(key)?;
        return Ok(false);
    }
    if !fits(save(room, f))? {
        totals::add_queued_bytes(-(size as i64))?;
        kv::delete(key)?;
        return Ok(false);
    }
    Ok(true)
}

/// Whether a room told that its messages are dropped may be told again: once its queue,
/// and all rooms' together, are down to half their bounds, so that a busy room near a bound
/// is not told again after every delivery.
fn drained(settings: &Settings, f: &Forward) -> Result<bool, Error> {
    Ok(f.pending <= settings.max_pending as u64 / 2
        && totals::queued_bytes()? <= settings.max_pending_bytes_total / 2)
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
    // `told_full` set and `armed` set only shorten the record, so a full store refuses it
    // only when `dropped` gains a digit: that count is then lost, not the transaction.
    if !fits(save(room, f))? {
        log::warn(&format!(
            "forwarding of {room}: the store refused the count of a dropped message"
        ));
    }
    Ok(())
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
    if !purge(room, &mut f, started)? {
        arm(room, &mut f, 0)?;
        return save(room, &f);
    }
    if f.off {
        return forget(room);
    }
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
    if f.told_full && drained(settings, &f)? {
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
    f.last_error = Some(clip(&why, MAX_ERROR));
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
    if f.pending > 0 {
        crate::count("forward_dropped");
    }
    turn_off(room, &mut f.clone())
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
