//! Account data, global and per room, taking stream positions so that /sync reports changes.

use serde_json::Value;

use super::identifiers::{check_event_type, RoomId, UserId};
use super::rooms::timeline::{json_depth, MAX_CONTENT_DEPTH};
use super::{Error, Result, Services};
use crate::storage::account_data::AccountDataWrite;
use crate::storage::writer::WriteOp;

impl Services {
    pub async fn set_account_data(
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
        if kind == "m.fully_read" || kind == "m.push_rules" {
            return Err(Error::BadJson(format!("{kind} cannot be set here")));
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

    pub async fn account_data(
        &self,
        user_id: &UserId,
        room_id: Option<&RoomId>,
        kind: &str,
    ) -> Result<Value> {
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
}
