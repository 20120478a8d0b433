//! Membership changes as their users ask for them: join (by id or alias), invite, knock,
//! leave, kick, ban, unban and forget. Each is one member event through the auth rules (a join
//! repeated unchanged makes none).

use std::sync::Arc;

use serde_json::{json, Value};

use super::pdu::Pdu;
use super::timeline::Draft;
use super::values::Membership;
use super::RoomService;
use crate::service::identifiers::{RoomId, RoomOrAlias, UserId};
use crate::service::{Error, Result};

impl RoomService {
    /// Resolves a room id or a local alias to a room id.
    pub(crate) async fn resolve_room(&self, id_or_alias: &RoomOrAlias) -> Result<RoomId> {
        match id_or_alias {
            RoomOrAlias::Room(id) => Ok(id.clone()),
            RoomOrAlias::Alias(alias) => match self.storage.alias(alias).await? {
                Some((room_id, _)) => RoomId::parse(room_id),
                None => Err(Error::NotFound(format!("unknown alias {alias}"))),
            },
        }
    }

    /// The member content a user's own join carries: membership and their profile.
    pub(crate) async fn profile_content(
        &self,
        user: &str,
        membership: Membership,
    ) -> Result<Value> {
        let mut content = json!({ "membership": membership.as_str() });
        if let Some(p) = self.storage.user(user).await? {
            if let Some(d) = p.displayname {
                content["displayname"] = json!(d);
            }
            if let Some(a) = p.avatar_url {
                content["avatar_url"] = json!(a);
            }
        }
        Ok(content)
    }

    pub(crate) async fn join(&self, user: &UserId, room_id: &RoomId) -> Result<Pdu> {
        let content = self.profile_content(user, Membership::Join).await?;
        // A member joining again with the same profile changes nothing: the join they have
        // answers (a bot hears its invite twice: beside the room, then in it).
        if let Some(joined) = self
            .state_event(room_id.as_str(), "m.room.member", user.as_str())
            .await?
            .filter(|e| e.json["content"] == content && e.redacted_by.is_none())
        {
            return Ok(Arc::unwrap_or_clone(joined));
        }
        self.append(
            room_id,
            Draft::new(user, "m.room.member", Some(user), content),
        )
        .await
    }

    /// Asks to join a room whose join rule is `knock`: the members see the knock and may
    /// invite (or kick) the knocker.
    pub(crate) async fn knock(
        &self,
        user: &UserId,
        room_id: &RoomId,
        reason: Option<&str>,
    ) -> Result<Pdu> {
        let mut content = self.profile_content(user, Membership::Knock).await?;
        if let Some(r) = reason {
            content["reason"] = json!(r);
        }
        self.append(
            room_id,
            Draft::new(user, "m.room.member", Some(user), content),
        )
        .await
    }

    pub(crate) async fn invite(
        &self,
        sender: &UserId,
        room_id: &RoomId,
        target: &UserId,
        reason: Option<&str>,
    ) -> Result<Pdu> {
        let mut content = member_content(Membership::Invite, reason);
        if let Some(p) = self.storage.user(target).await? {
            if let Some(d) = p.displayname {
                content["displayname"] = json!(d);
            }
        }
        self.append(
            room_id,
            Draft::new(sender, "m.room.member", Some(target), content),
        )
        .await
    }

    /// Leave (target = sender), kick, ban and unban, with an optional reason.
    pub(crate) async fn set_membership(
        &self,
        sender: &UserId,
        room_id: &RoomId,
        target: &UserId,
        membership: Membership,
        reason: Option<&str>,
    ) -> Result<Pdu> {
        let content = member_content(membership, reason);
        self.append(
            room_id,
            Draft::new(sender, "m.room.member", Some(target), content),
        )
        .await
    }

    /// Kick: only a member, an invitee or a knocker can be kicked (a ban is lifted with
    /// unban); kicking a knocker refuses the knock.
    pub(crate) async fn kick(
        &self,
        sender: &UserId,
        room_id: &RoomId,
        target: &UserId,
        reason: Option<&str>,
    ) -> Result<Pdu> {
        self.remove_member(
            sender,
            room_id,
            target,
            reason,
            &[Membership::Join, Membership::Invite, Membership::Knock],
            "in the room",
        )
        .await
    }

    /// Unban: only a banned user can be unbanned.
    pub(crate) async fn unban(
        &self,
        sender: &UserId,
        room_id: &RoomId,
        target: &UserId,
        reason: Option<&str>,
    ) -> Result<Pdu> {
        self.remove_member(
            sender,
            room_id,
            target,
            reason,
            &[Membership::Ban],
            "banned",
        )
        .await
    }

    /// Sets `target`'s membership to leave when it is one of `from`; otherwise `Forbidden`
    /// saying the target is not `what`.
    async fn remove_member(
        &self,
        sender: &UserId,
        room_id: &RoomId,
        target: &UserId,
        reason: Option<&str>,
        from: &[Membership],
        what: &str,
    ) -> Result<Pdu> {
        let current = self
            .read_state(room_id, |s| {
                s.get("m.room.member", target).and_then(|p| p.membership())
            })
            .await?;
        if !current.is_some_and(|m| from.contains(&m)) {
            return Err(Error::Forbidden(format!("{target} is not {what}")));
        }
        self.set_membership(sender, room_id, target, Membership::Leave, reason)
            .await
    }

    pub(crate) async fn forget(&self, user: &UserId, room_id: &RoomId) -> Result<()> {
        let membership = self.storage.membership(room_id, user).await?;
        match membership.map(|m| Membership::parse(&m.membership)) {
            Some(Some(Membership::Leave | Membership::Ban)) => {
                self.storage.forget_room(room_id, user).await?;
                Ok(())
            }
            Some(_) => Err(Error::BadState(format!("{user} is still in {room_id}"))),
            None => Err(Error::NotFound(format!("{user} was never in {room_id}"))),
        }
    }

    /// Updates the member event of every room `user` is joined to after a profile change.
    pub(crate) async fn refresh_profile(&self, user: &str) -> Result<()> {
        let joined = Some(Membership::Join.as_str());
        for m in self.storage.user_memberships(user, joined).await? {
            let content = self.profile_content(user, Membership::Join).await?;
            let current = self
                .state_content(&m.room_id, "m.room.member", user)
                .await?;
            if current.as_ref() == Some(&content) {
                continue;
            }
            self.append(
                &m.room_id,
                Draft::new(user, "m.room.member", Some(user), content),
            )
            .await?;
        }
        Ok(())
    }

    /// The joined members with their profiles, for a member of the room.
    pub(crate) async fn joined_members(
        &self,
        room_id: &RoomId,
        user: &UserId,
    ) -> Result<serde_json::Map<String, Value>> {
        self.require_joined(room_id, user).await?;
        self.read_state(room_id, |state| {
            let mut joined = serde_json::Map::new();
            for (key, p) in state.of_kind("m.room.member") {
                let mut content = p.content();
                if content["membership"] != Membership::Join.as_str() {
                    continue;
                }
                let mut profile = serde_json::Map::new();
                for (from, to) in [
                    ("displayname", "display_name"),
                    ("avatar_url", "avatar_url"),
                ] {
                    if let Some(v) = content.get_mut(from).filter(|v| v.is_string()) {
                        profile.insert(to.to_string(), v.take());
                    }
                }
                joined.insert(key.to_string(), Value::Object(profile));
            }
            joined
        })
        .await
    }

    /// The membership of `user` in a room, if any.
    pub(crate) async fn membership(&self, room_id: &str, user: &str) -> Result<Option<Membership>> {
        Ok(self
            .storage
            .membership(room_id, user)
            .await?
            .and_then(|m| Membership::parse(&m.membership)))
    }

    pub(crate) async fn require_joined(&self, room_id: &str, user: &str) -> Result<()> {
        if self.membership(room_id, user).await? != Some(Membership::Join) {
            return Err(Error::Forbidden(format!("{user} is not in {room_id}")));
        }
        Ok(())
    }

    pub(crate) async fn joined_rooms(&self, user: &str) -> Result<Vec<String>> {
        Ok(self
            .storage
            .user_memberships(user, Some(Membership::Join.as_str()))
            .await?
            .into_iter()
            .map(|m| m.room_id)
            .collect())
    }
}

/// A member event's content: `membership`, and the `reason` when one was given.
pub(crate) fn member_content(membership: Membership, reason: Option<&str>) -> Value {
    let mut content = json!({ "membership": membership.as_str() });
    if let Some(r) = reason {
        content["reason"] = json!(r);
    }
    content
}
