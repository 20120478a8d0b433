//! Account data, global and per room, taking stream positions so that /sync reports changes.

use serde_json::Value;

use super::identifiers::{check_event_type, RoomId, UserId};
use super::push;
use super::rooms::timeline::{json_depth, MAX_CONTENT_DEPTH};
use super::{Error, Result, Services};
use crate::storage::account_data::AccountDataWrite;
use crate::storage::writer::WriteOp;

impl Services {
    pub(crate) async fn set_account_data(
        &self,
        user_id: &UserId,
        room_id: Option<&RoomId>,
        kind: &str,
        content: &Value,
    ) -> Result<()> {
        check_event_type(kind)?;
        if !content.is_object() {
            return Err(Error::BadJson("account data must be a JSON object".into()));
        }
        if json_depth(content) > MAX_CONTENT_DEPTH {
            return Err(Error::BadJson(format!(
                "account data may nest at most {MAX_CONTENT_DEPTH} levels deep"
            )));
        }
        if kind == "m.fully_read" || kind == push::rules::ACCOUNT_DATA_TYPE {
            let through = if kind == "m.fully_read" {
                "/rooms/{roomId}/read_markers"
            } else {
                "/pushrules"
            };
            return Err(Error::ServerManaged(format!(
                "{kind} is kept by the server: change it through {through}"
            )));
        }
        if let Some(room) = room_id {
            self.rooms.require_room(room).await?;
        }
        self.writer
            .write(WriteOp::AccountData(AccountDataWrite {
                user_id: user_id.to_string(),
                room_id: room_id.map_or("", RoomId::as_str).to_string(),
                kind: kind.to_string(),
                content: content.to_string(),
            }))
            .await?;
        Ok(())
    }

    pub(crate) async fn account_data(
        &self,
        user_id: &UserId,
        room_id: Option<&RoomId>,
        kind: &str,
    ) -> Result<Value> {
        if room_id.is_none() && kind == push::rules::ACCOUNT_DATA_TYPE {
            // Every user has push rules, kept or not: the defaults until they change one.
            return Ok(push::rules::account_data(&self.push_rules(user_id).await?));
        }
        match self
            .storage
            .account_data(user_id, room_id.map_or("", RoomId::as_str), kind)
            .await?
        {
            Some(text) => {
                Ok(serde_json::from_str(&text).map_err(crate::storage::StorageError::from)?)
            }
            None => Err(Error::NotFound(format!("no account data of type {kind}"))),
        }
    }

    /// Reads one entry of account data, changes it with `change` (which gets what is kept, if
    /// anything) and keeps the result, one such change at a time on the server, so that two
    /// requests at once (a client setting two tags, or two push rules) cannot each write over
    /// the other's. The entry's kind is the caller's: this is how the server changes what it
    /// keeps itself.
    pub(crate) async fn update_account_data(
        &self,
        user_id: &str,
        room_id: Option<&str>,
        kind: &str,
        change: impl FnOnce(Option<Value>) -> Result<Value>,
    ) -> Result<()> {
        let _one_at_a_time = self.account_data_updates.lock().await;
        let kept = self
            .storage
            .account_data(user_id, room_id.unwrap_or(""), kind)
            .await?
            .and_then(|text| serde_json::from_str::<Value>(&text).ok());
        let content = change(kept)?;
        self.writer
            .write(WriteOp::AccountData(AccountDataWrite {
                user_id: user_id.to_string(),
                room_id: room_id.unwrap_or("").to_string(),
                kind: kind.to_string(),
                content: content.to_string(),
            }))
            .await?;
        Ok(())
    }
}
