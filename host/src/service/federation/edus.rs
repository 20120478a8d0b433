//! EDUs from other servers: typing notices, read receipts, presence, to-device messages and
//! device list / signing key updates of their users, each taken only for what the sending
//! server may speak for (its own users, rooms they are joined to). Unknown EDU types are
//! ignored, as the spec asks.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::service::identifiers::UserId;
use crate::service::{now_ms, Result, Services};
use crate::storage::presence::PresenceWrite;
use crate::storage::receipts::ReceiptWrite;
use crate::storage::to_device::ToDeviceWrite;
use crate::storage::writer::WriteOp;

/// How long a remote user's typing notice lasts without a refresh (the spec's suggestion).
const REMOTE_TYPING_MS: u64 = 30_000;

impl Services {
    /// Takes one EDU that `origin` sent; what it may not say is dropped with a log line.
    pub(crate) async fn receive_edu(&self, origin: &str, edu: &Value) -> Result<()> {
        let content = &edu["content"];
        match edu["edu_type"].as_str().unwrap_or_default() {
            "m.typing" => self.remote_typing(origin, content).await,
            "m.receipt" => self.remote_receipts(origin, content).await,
            "m.direct_to_device" => self.remote_to_device(origin, content).await,
            "m.presence" => self.remote_presence(origin, content).await,
            "m.device_list_update" | "m.signing_key_update" => {
                self.remote_keys_changed(origin, content).await
            }
            other => {
                tracing::debug!(origin, edu_type = other, "ignored an EDU");
                Ok(())
            }
        }
    }

    /// Whether `user` is a user of `origin` joined to `room_id` here.
    async fn speaks_for(&self, origin: &str, user: &str, room_id: &str) -> Result<bool> {
        let Ok(parsed) = UserId::parse(user) else {
            return Ok(false);
        };
        if parsed.server_name() != origin {
            return Ok(false);
        }
        if self.rooms.require_room(room_id).await.is_err()
            || self.check_acl(room_id, origin).await.is_err()
        {
            return Ok(false);
        }
        self.rooms
            .read_state(room_id, |s| {
                s.get("m.room.member", user).is_some_and(|e| e.is_joined())
            })
            .await
    }

    /// `m.presence`: the presence of the origin's users, each kept as a local user's is, so
    /// that the users sharing a room with them see it in /sync.
    async fn remote_presence(&self, origin: &str, content: &Value) -> Result<()> {
        for update in content["push"].as_array().into_iter().flatten() {
            let Some(user) = update["user_id"].as_str() else {
                continue;
            };
            if UserId::parse(user)
                .map(|u| u.server_name() != origin)
                .unwrap_or(true)
            {
                continue;
            }
            let presence = update["presence"].as_str().unwrap_or_default();
            if !matches!(presence, "online" | "unavailable" | "offline") {
                continue;
            }
            let ago = update["last_active_ago"].as_i64().unwrap_or(0).max(0);
            self.writer
                .write(WriteOp::Presence(PresenceWrite {
                    user_id: user.to_string(),
                    presence: presence.to_string(),
                    status_msg: update["status_msg"].as_str().map(str::to_string),
                    last_active_ts: now_ms() - ago,
                }))
                .await?;
        }
        Ok(())
    }

    async fn remote_typing(&self, origin: &str, content: &Value) -> Result<()> {
        let (Some(room_id), Some(user)) =
            (content["room_id"].as_str(), content["user_id"].as_str())
        else {
            return Ok(());
        };
        if !self.speaks_for(origin, user, room_id).await? {
            return Ok(());
        }
        let typing = content["typing"].as_bool().unwrap_or(false);
        let timeout = typing.then(|| std::time::Duration::from_millis(REMOTE_TYPING_MS));
        if let Some(serial) = self.typing.set(room_id, user, timeout) {
            self.notifier.typing_changed(serial);
        }
        Ok(())
    }

    async fn remote_receipts(&self, origin: &str, content: &Value) -> Result<()> {
        let Some(rooms) = content.as_object() else {
            return Ok(());
        };
        for (room_id, by_type) in rooms {
            let Some(read) = by_type["m.read"].as_object() else {
                continue;
            };
            for (user, receipt) in read {
                if !self.speaks_for(origin, user, room_id).await? {
                    continue;
                }
                let Some(event_id) = receipt["event_ids"]
                    .as_array()
                    .and_then(|ids| ids.last())
                    .and_then(Value::as_str)
                else {
                    continue;
                };
                match self.rooms.event(event_id).await? {
                    Some(e) if e.room_id == *room_id => {}
                    _ => continue,
                }
                let thread = receipt["data"]["thread_id"].as_str().unwrap_or("");
                self.writer
                    .write(WriteOp::Receipt(ReceiptWrite {
                        room_id: room_id.clone(),
                        user_id: user.clone(),
                        receipt_type: "m.read".into(),
                        thread_id: thread.to_string(),
                        event_id: event_id.to_string(),
                        ts: receipt["data"]["ts"].as_i64().unwrap_or_else(now_ms),
                    }))
                    .await?;
            }
        }
        Ok(())
    }

    async fn remote_to_device(&self, origin: &str, content: &Value) -> Result<()> {
        let (Some(sender), Some(kind), Some(message_id)) = (
            content["sender"].as_str(),
            content["type"].as_str(),
            content["message_id"].as_str(),
        ) else {
            return Ok(());
        };
        if UserId::parse(sender)
            .map(|u| u.server_name() != origin)
            .unwrap_or(true)
        {
            return Ok(());
        }
        let Some(messages) = content["messages"].as_object() else {
            return Ok(());
        };
        let mut queued = Vec::new();
        let by_user: BTreeMap<&String, &Value> = messages.iter().collect();
        for (user, targets) in by_user {
            if !self.is_local_user(user) {
                continue;
            }
            let devices: Vec<String> = self
                .storage
                .devices(user)
                .await?
                .into_iter()
                .map(|d| d.device_id)
                .collect();
            for (target, message) in targets.as_object().into_iter().flatten() {
                if !message.is_object() {
                    continue;
                }
                for device in devices.iter().filter(|d| target == "*" || *d == target) {
                    queued.push((user.clone(), device.clone(), message.to_string()));
                }
            }
        }
        if queued.is_empty() {
            return Ok(());
        }
        self.writer
            .write(WriteOp::ToDevice(Box::new(ToDeviceWrite {
                sender: sender.to_string(),
                // A remote sender's messages are told apart by their server's message id.
                sender_device: format!("federation:{origin}"),
                txn_id: message_id.to_string(),
                kind: kind.to_string(),
                messages: queued,
            })))
            .await?;
        Ok(())
    }
}
