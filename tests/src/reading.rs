//! What a client reads of a room, and waits for, as the end-to-end tests ask it of any server
//! (Plugboard or Synapse): memberships, joined members, a room in a sync section, one event,
//! message bodies paged back. Each wait polls with [`eventually`](crate::eventually) and fails
//! saying what it saw last.

use std::time::Duration;

use serde_json::Value;

use crate::{enc, eventually, Client};

/// How long a wait across servers may take: longer than a wait on one server, as a peer
/// under a loaded test run takes its time.
pub const ACROSS: Duration = Duration::from_secs(30);

/// `user`'s membership of `room_id` as `reader`'s server has it.
pub async fn membership_of(reader: &Client, room_id: &str, user: &str) -> Option<String> {
    let reply = reader
        .get(&format!(
            "/rooms/{}/state/m.room.member/{}",
            enc(room_id),
            enc(user)
        ))
        .await;
    reply.body["membership"].as_str().map(str::to_string)
}

/// Waits until `reader`'s server has `user`'s membership of `room_id` as `want`.
pub async fn wait_membership(reader: &Client, room_id: &str, user: &str, want: &str) {
    let mut now = None;
    let became = eventually(ACROSS, async || {
        now = membership_of(reader, room_id, user).await;
        now.as_deref() == Some(want)
    })
    .await;
    assert!(
        became,
        "{user} never became {want} in {room_id} as {} sees it (it is {now:?})",
        reader.user_id
    );
}

/// The members `reader` sees joined in `room_id`, sorted.
pub async fn joined_members(reader: &Client, room_id: &str) -> Vec<String> {
    let reply = reader
        .get(&format!("/rooms/{}/joined_members", enc(room_id)))
        .await;
    let mut members: Vec<String> = reply.body["joined"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    members.sort();
    members
}

/// Waits until `reader` sees exactly `want` (any order) joined in `room_id`.
pub async fn wait_joined_members(reader: &Client, room_id: &str, want: &[&str]) {
    let mut want: Vec<String> = want.iter().map(|u| u.to_string()).collect();
    want.sort();
    let mut now = Vec::new();
    let reached = eventually(ACROSS, async || {
        now = joined_members(reader, room_id).await;
        now == want
    })
    .await;
    assert!(
        reached,
        "{} sees {now:?} joined in {room_id}, not {want:?}",
        reader.user_id
    );
}

/// `room_id` in `user`'s initial sync under `section` (`invite`, `join`, `knock`, `leave`),
/// once it is there.
pub async fn wait_in_sync(user: &Client, section: &str, room_id: &str) -> Value {
    let mut sync = Value::Null;
    let shown = eventually(ACROSS, async || {
        sync = user.sync(None, 0).await;
        sync["rooms"][section].get(room_id).is_some()
    })
    .await;
    assert!(
        shown,
        "{room_id} never showed under {section} for {}: {sync}",
        user.user_id
    );
    sync["rooms"][section][room_id].clone()
}

/// Every `m.room.message` body `reader` reads in `room_id`, oldest first, paging back as a
/// client does (`limit` events a page, following `end`) until the room's start.
pub async fn paged_bodies(reader: &Client, room_id: &str, limit: usize) -> Vec<String> {
    let mut read: Vec<String> = Vec::new();
    let mut from: Option<String> = None;
    for _ in 0..100 {
        let mut path = format!("/rooms/{}/messages?dir=b&limit={limit}", enc(room_id));
        if let Some(f) = &from {
            path.push_str(&format!("&from={}", enc(f)));
        }
        let page = reader.get(&path).await;
        assert_eq!(page.status, 200, "{}", page.body);
        for e in page.body["chunk"].as_array().into_iter().flatten() {
            if e["type"] == "m.room.message" {
                read.push(
                    e["content"]["body"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                );
            }
        }
        match page.body["end"].as_str() {
            Some(end) => from = Some(end.to_string()),
            None => break,
        }
    }
    read.reverse();
    read
}

/// Waits until `reader` sees `user` joined to `room_id`.
pub async fn wait_member(reader: &Client, room_id: &str, user: &str) {
    let mut reply = Value::Null;
    let joined = eventually(ACROSS, async || {
        reply = reader
            .get(&format!("/rooms/{}/joined_members", enc(room_id)))
            .await
            .body;
        reply["joined"].get(user).is_some()
    })
    .await;
    assert!(
        joined,
        "{user} never showed joined to {} in {room_id}: {reply}",
        reader.user_id
    );
}

/// `event_id` as `reader`'s server has it, once it has arrived there (`log`: what to print
/// if it never does, such as the other server's log).
pub async fn wait_event(
    reader: &Client,
    room_id: &str,
    event_id: &str,
    log: impl Fn() -> String,
) -> Value {
    let mut reply = Value::Null;
    let readable = eventually(ACROSS, async || {
        let got = reader
            .get(&format!("/rooms/{}/event/{}", enc(room_id), enc(event_id)))
            .await;
        reply = got.body;
        got.status == 200
    })
    .await;
    assert!(
        readable,
        "{event_id} never reached {}: {reply}\n{}",
        reader.user_id,
        log()
    );
    reply
}
