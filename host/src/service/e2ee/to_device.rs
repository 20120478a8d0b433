//! To-device messages: `PUT /sendToDevice/{eventType}/{txnId}` queues one message per target
//! device (`*` for all of a user's devices), and the device's /sync hands out what waits for
//! it. A sync whose `since` is past a message acknowledges it ([`acknowledged_upto`]): the
//! message is deleted then, not when it is first handed out, so a response lost on the way is
//! handed out again. At most [`MAX_WAITING`](crate::storage::to_device::MAX_WAITING) wait per
//! device; beyond it the oldest go, so a device that stopped syncing never refuses its
//! senders, and what it finds when it comes back are the newest messages (the room keys of the
//! sessions in use).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::service::sync::token::Position;
use crate::service::users::Session;
use crate::service::{Error, Result, Services};
use crate::storage::to_device::ToDeviceWrite;
use crate::storage::writer::WriteOp;

/// The stream position up to which a sync from `since` acknowledges the device's messages:
/// everything the sync that handed out `since` had delivered; nothing for an initial sync.
pub(crate) fn acknowledged_upto(since: Option<Position>) -> Option<i64> {
    since.map(|s| s.stream).filter(|s| *s > 0)
}

/// The devices a message addressed to `target` reaches, of a user with `devices`: all of them
/// for `*`, else that one if it exists.
pub(crate) fn recipients<'a>(target: &'a str, devices: &'a [String]) -> Vec<&'a str> {
    if target == "*" {
        devices.iter().map(String::as_str).collect()
    } else {
        devices
            .iter()
            .map(String::as_str)
            .filter(|d| *d == target)
            .collect()
    }
}

impl Services {
    /// PUT /sendToDevice: `messages` is user id → device id (or `*`) → content.
    pub(crate) async fn send_to_device(
        &self,
        session: &Session,
        kind: &str,
        txn_id: &str,
        messages: BTreeMap<String, Map<String, Value>>,
    ) -> Result<()> {
        let mut queued = Vec::new();
        for (user, targets) in messages {
            if !self.is_local_user(&user) {
                if !self.config.federation.enabled {
                    // Such messages cannot be delivered, and the spec has no per-recipient
                    // failure to report them in.
                    tracing::debug!(%user, "to-device message for a remote user dropped");
                    continue;
                }
                // Stored as addressed (`*` included): the user's server's outgoing queue
                // sends them as an `m.direct_to_device` EDU, and its server hands them out.
                for (target, content) in targets {
                    if !content.is_object() {
                        return Err(Error::BadJson(
                            "each to-device message's content must be an object".into(),
                        ));
                    }
                    queued.push((user.clone(), target, content.to_string()));
                }
                continue;
            }
            let devices: Vec<String> = self
                .storage
                .devices(&user)
                .await?
                .into_iter()
                .map(|d| d.device_id)
                .collect();
            for (target, content) in targets {
                if !content.is_object() {
                    return Err(Error::BadJson(
                        "each to-device message's content must be an object".into(),
                    ));
                }
                for device in recipients(&target, &devices) {
                    queued.push((user.clone(), device.to_string(), content.to_string()));
                }
            }
        }
        self.writer
            .write(WriteOp::ToDevice(Box::new(ToDeviceWrite {
                sender: session.user_id.to_string(),
                sender_device: session.device_id.clone(),
                txn_id: txn_id.to_string(),
                kind: kind.to_string(),
                messages: queued,
            })))
            .await?;
        Ok(())
    }

    /// The to-device events of a sync of `session` from `since` to `upto`, after deleting
    /// those that `since` acknowledges.
    pub(crate) async fn to_device_for_sync(
        &self,
        session: &Session,
        since: Option<Position>,
        upto: i64,
    ) -> Result<Vec<Value>> {
        if session.device_id.is_empty() {
            return Ok(Vec::new());
        }
        let (user, device) = (&session.user_id, &session.device_id);
        if let Some(acked) = acknowledged_upto(since) {
            self.storage
                .acknowledge_to_device(user, device, acked)
                .await?;
        }
        let rows = self.storage.to_device_waiting(user, device, upto).await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let content: Value = serde_json::from_str(&r.content).unwrap_or(json!({}));
                json!({ "sender": r.sender, "type": r.kind, "content": content })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sync_acknowledges_what_its_since_token_had_delivered_and_an_initial_sync_nothing() {
        assert_eq!(acknowledged_upto(None), None);
        assert_eq!(
            acknowledged_upto(Some(Position {
                stream: 0,
                typing: 3
            })),
            None
        );
        assert_eq!(
            acknowledged_upto(Some(Position {
                stream: 42,
                typing: 0
            })),
            Some(42)
        );
    }

    #[test]
    fn a_star_reaches_every_device_and_a_name_only_that_device_if_it_exists() {
        let devices = vec!["A".to_string(), "B".to_string()];
        assert_eq!(recipients("*", &devices), ["A", "B"]);
        assert_eq!(recipients("B", &devices), ["B"]);
        assert!(recipients("C", &devices).is_empty());
    }
}
