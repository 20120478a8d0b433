//! Ephemeral room data: typing notifications (in memory, with time-outs) and read receipts
//! (stored, with stream positions).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::identifiers::{check_event_id, EventId, RoomId, UserId};
use super::{now_ms, Error, Result, Services};
use crate::lock::lock;
use crate::storage::account_data::AccountDataWrite;
use crate::storage::receipts::ReceiptWrite;
use crate::storage::writer::WriteOp;

/// Who is typing where, and a serial that moves on every change so /sync can tell.
pub(crate) struct Typing {
    rooms: Mutex<HashMap<String, HashMap<String, Instant>>>,
    /// The global serial, and the serial of each room's last change.
    serial: Mutex<(u64, HashMap<String, u64>)>,
}

/// Typing notices last at most this long, whatever the client asks.
const MAX_TYPING: Duration = Duration::from_secs(120);

impl Default for Typing {
    fn default() -> Self {
        Self::new()
    }
}

impl Typing {
    pub(crate) fn new() -> Self {
        Typing {
            rooms: Mutex::new(HashMap::new()),
            // Serials start from the clock, so that tokens handed out before a restart are
            // behind every change made after it.
            serial: Mutex::new((now_ms().max(0) as u64, HashMap::new())),
        }
    }

    /// Sets or clears a user's typing; answers the new serial when anything changed.
    pub(crate) fn set(&self, room_id: &str, user: &str, timeout: Option<Duration>) -> Option<u64> {
        let mut rooms = lock(&self.rooms);
        let room = rooms.entry(room_id.to_string()).or_default();
        let changed = match timeout {
            Some(t) => room
                .insert(user.to_string(), Instant::now() + t.min(MAX_TYPING))
                .is_none(),
            None => room.remove(user).is_some(),
        };
        changed.then(|| self.bump([room_id]))
    }

    fn bump<'a>(&self, rooms: impl IntoIterator<Item = &'a str>) -> u64 {
        let mut s = lock(&self.serial);
        s.0 += 1;
        let serial = s.0;
        for r in rooms {
            s.1.insert(r.to_string(), serial);
        }
        serial
    }

    pub(crate) fn serial(&self) -> u64 {
        lock(&self.serial).0
    }

    /// The rooms whose typing list changed after `serial`.
    pub(crate) fn rooms_changed_since(&self, serial: u64) -> Vec<String> {
        let s = lock(&self.serial);
        s.1.iter()
            .filter(|(_, changed)| **changed > serial)
            .map(|(room, _)| room.clone())
            .collect()
    }

    /// Whether the room's typing list changed after `serial`.
    pub(crate) fn changed_since(&self, room_id: &str, serial: u64) -> bool {
        let s = lock(&self.serial);
        s.1.get(room_id).is_some_and(|r| *r > serial)
    }

    /// Drops expired notices; answers the new serial when any expired.
    pub(crate) fn expire(&self) -> Option<u64> {
        let now = Instant::now();
        let mut rooms = lock(&self.rooms);
        let mut changed = Vec::new();
        for (room, users) in rooms.iter_mut() {
            let before = users.len();
            users.retain(|_, until| *until > now);
            if users.len() != before {
                changed.push(room.clone());
            }
        }
        rooms.retain(|_, users| !users.is_empty());
        (!changed.is_empty()).then(|| self.bump(changed.iter().map(String::as_str)))
    }

    pub(crate) fn typing_in(&self, room_id: &str) -> Vec<String> {
        let now = Instant::now();
        let rooms = lock(&self.rooms);
        let mut users: Vec<String> = rooms
            .get(room_id)
            .map(|u| {
                u.iter()
                    .filter(|(_, until)| **until > now)
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default();
        users.sort();
        users
    }
}

impl Services {
    pub(crate) async fn set_typing(
        &self,
        user: &UserId,
        room_id: &RoomId,
        typing: bool,
        timeout_ms: Option<u64>,
    ) -> Result<()> {
        self.rooms.require_joined(room_id, user).await?;
        let timeout = typing.then(|| Duration::from_millis(timeout_ms.unwrap_or(30_000)));
        if let Some(serial) = self.typing.set(room_id, user, timeout) {
            self.notifier.typing_changed(serial);
        }
        Ok(())
    }

    pub(crate) async fn send_receipt(
        &self,
        user: &UserId,
        room_id: &RoomId,
        receipt_type: &str,
        event_id: &EventId,
        thread_id: Option<&str>,
    ) -> Result<()> {
        if !matches!(receipt_type, "m.read" | "m.read.private" | "m.fully_read") {
            return Err(Error::InvalidParam(format!(
                "unknown receipt type {receipt_type}"
            )));
        }
        if let Some(thread) = thread_id.filter(|t| *t != "main") {
            if receipt_type == "m.fully_read" || check_event_id(thread).is_err() {
                return Err(Error::InvalidParam(format!(
                    "thread_id must be \"main\" or the event id of a thread root of an m.read \
                     or m.read.private receipt, not '{}'",
                    thread.escape_debug()
                )));
            }
        }
        self.rooms.require_joined(room_id, user).await?;
        match self.rooms.event(event_id).await? {
            Some(e) if e.room_id == room_id => {}
            _ => return Err(Error::NotFound(format!("unknown event {event_id}"))),
        }
        if receipt_type == "m.fully_read" {
            let content = serde_json::json!({ "event_id": event_id });
            self.writer
                .write(WriteOp::AccountData(AccountDataWrite {
                    user_id: user.to_string(),
                    room_id: room_id.to_string(),
                    kind: "m.fully_read".into(),
                    content: content.to_string(),
                }))
                .await?;
            return Ok(());
        }
        self.writer
            .write(WriteOp::Receipt(ReceiptWrite {
                room_id: room_id.to_string(),
                user_id: user.to_string(),
                receipt_type: receipt_type.to_string(),
                thread_id: thread_id.unwrap_or("").to_string(),
                event_id: event_id.to_string(),
                ts: now_ms(),
            }))
            .await?;
        Ok(())
    }
}
