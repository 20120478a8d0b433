//! The room alias directory and the public room list.

use super::state::RoomState;
use super::RoomService;
use crate::service::identifiers::{RoomAlias, RoomId, UserId};
use serde_json::{json, Value};

use super::values::{GuestAccess, HistoryVisibility, JoinRule, Membership};
use crate::service::{Error, Result};

impl RoomService {
    pub(crate) async fn create_alias(
        &self,
        user: &UserId,
        alias: &RoomAlias,
        room_id: &RoomId,
    ) -> Result<()> {
        let (local, server) = (alias.localpart(), alias.server_name());
        if server != self.server_name {
            return Err(Error::InvalidParam(format!(
                "aliases on {server} cannot be made here"
            )));
        }
        if !super::create::valid_alias_localpart(local) {
            return Err(Error::InvalidParam(format!(
                "'{alias}' is not a valid alias"
            )));
        }
        self.require_room(room_id).await?;
        self.require_joined(room_id, user).await?;
        if !self.storage.create_alias(alias, room_id, user).await? {
            return Err(Error::Conflict(format!("{alias} already exists")));
        }
        (self.alias_changed)(room_id);
        Ok(())
    }

    /// `(room_id, servers)` of a local alias.
    pub(crate) async fn lookup_alias(&self, alias: &RoomAlias) -> Result<(String, Vec<String>)> {
        match self.storage.alias(alias).await? {
            Some((room_id, _)) => Ok((room_id, vec![self.server_name.clone()])),
            None => Err(Error::NotFound(format!("unknown alias {alias}"))),
        }
    }

    /// Its creator, a user with power to set the room's canonical alias, or a server admin
    /// may delete an alias.
    pub(crate) async fn delete_alias(
        &self,
        user: &UserId,
        is_admin: bool,
        alias: &RoomAlias,
    ) -> Result<()> {
        let Some((room_id, creator)) = self.storage.alias(alias).await? else {
            return Err(Error::NotFound(format!("unknown alias {alias}")));
        };
        let allowed = is_admin || creator == user || {
            let pl = self.read_state(&room_id, super::auth::power_levels).await?;
            pl.user_level(user) >= pl.event_level("m.room.canonical_alias", true)
        };
        if !allowed {
            return Err(Error::Forbidden(format!("{user} may not delete {alias}")));
        }
        self.storage.delete_alias(alias).await?;
        (self.alias_changed)(&room_id);
        Ok(())
    }

    pub(crate) async fn room_aliases(&self, room_id: &str) -> Result<Vec<String>> {
        Ok(self.storage.room_aliases(room_id).await?)
    }

    /// Listing a room in the directory publishes its name, topic and alias: it takes a
    /// member with the power to set the room's canonical alias.
    pub(crate) async fn set_public(
        &self,
        user: &UserId,
        room_id: &RoomId,
        public: bool,
    ) -> Result<()> {
        self.require_joined(room_id, user).await?;
        let pl = self.read_state(room_id, super::auth::power_levels).await?;
        if pl.user_level(user) < pl.event_level("m.room.canonical_alias", true) {
            return Err(Error::Forbidden(format!(
                "{user} may not change the directory visibility of {room_id}"
            )));
        }
        Ok(self.storage.set_room_public(room_id, public).await?)
    }

    pub(crate) async fn is_public(&self, room_id: &RoomId) -> Result<bool> {
        self.require_room(room_id).await?;
        Ok(self.storage.room_is_public(room_id).await?)
    }

    pub(crate) async fn public_rooms(&self) -> Result<Vec<String>> {
        Ok(self.storage.public_rooms().await?)
    }

    /// A page of the public room directory, optionally searched by a term in the name,
    /// topic or alias; `since` is the offset token of an earlier page.
    pub(crate) async fn public_rooms_page(
        &self,
        limit: Option<usize>,
        since: Option<&str>,
        term: Option<&str>,
    ) -> Result<Value> {
        let offset: usize = match since {
            Some(t) => t
                .parse()
                .map_err(|_| Error::InvalidParam(format!("'{t}' is not a valid token")))?,
            None => 0,
        };
        let limit = limit.unwrap_or(100).clamp(1, 500);
        let mut rooms = Vec::new();
        for room_id in self.public_rooms().await? {
            let entry = self
                .read_state(&room_id, |state| directory_entry(&room_id, state))
                .await?;
            if let Some(term) = term {
                let hay = format!(
                    "{} {} {}",
                    entry["name"].as_str().unwrap_or(""),
                    entry["topic"].as_str().unwrap_or(""),
                    entry["canonical_alias"].as_str().unwrap_or("")
                )
                .to_lowercase();
                if !hay.contains(term) {
                    continue;
                }
            }
            rooms.push(entry);
        }
        let total = rooms.len();
        let page: Vec<Value> = rooms.into_iter().skip(offset).take(limit).collect();
        let mut body = json!({ "chunk": page, "total_room_count_estimate": total });
        if offset.saturating_add(limit) < total {
            body["next_batch"] = json!((offset + limit).to_string());
        }
        if offset > 0 {
            body["prev_batch"] = json!(offset.saturating_sub(limit).to_string());
        }
        Ok(body)
    }
}

/// A room's entry in the public directory, from its state.
pub(super) fn directory_entry(room_id: &str, state: &RoomState) -> Value {
    let get = |kind: &str, field: &str| {
        state
            .get(kind, "")
            .and_then(|p| p.content()[field].as_str().map(str::to_string))
    };
    let joined = state
        .of_kind("m.room.member")
        .filter(|(_, p)| p.membership() == Some(Membership::Join))
        .count();
    let mut entry = json!({
        "room_id": room_id,
        "num_joined_members": joined,
        "world_readable": get("m.room.history_visibility", "history_visibility").as_deref()
            == Some(HistoryVisibility::WorldReadable.as_str()),
        "guest_can_join": get("m.room.guest_access", "guest_access").as_deref()
            == Some(GuestAccess::CanJoin.as_str()),
        "join_rule": get("m.room.join_rules", "join_rule")
            .unwrap_or_else(|| JoinRule::Invite.as_str().into()),
    });
    for (key, kind, field) in [
        ("name", "m.room.name", "name"),
        ("topic", "m.room.topic", "topic"),
        ("canonical_alias", "m.room.canonical_alias", "alias"),
        ("avatar_url", "m.room.avatar", "url"),
    ] {
        if let Some(v) = get(kind, field) {
            entry[key] = json!(v);
        }
    }
    entry
}
