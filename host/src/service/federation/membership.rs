//! Joins, knocks and leaves across servers, as the resident server: templates for another
//! server's user (`make_join`, `make_knock`, `make_leave`) and the signed event taken in
//! (`send_join`, `send_knock`, `send_leave`). Our users' side of the same exchange is
//! [`remote_membership`](super::remote_membership)'s.

use serde_json::{json, Value};

use crate::service::identifiers::UserId;
use crate::service::room_version::RoomVersion;
use crate::service::rooms::remote::Verdict;
use crate::service::{Error, Result, Services};

/// A membership another server's user can ask the resident server for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RemoteMembership {
    Join,
    Leave,
    Knock,
}

impl RemoteMembership {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RemoteMembership::Join => "join",
            RemoteMembership::Leave => "leave",
            RemoteMembership::Knock => "knock",
        }
    }
}

impl Services {
    /// `make_join` / `make_leave` / `make_knock`: the template of `user_id`'s member event,
    /// for `origin` (the user's server) to sign; `versions` are the room versions the asking
    /// server supports (`None`: it did not say).
    pub(crate) async fn make_membership(
        &self,
        origin: &str,
        room_id: &str,
        user_id: &str,
        membership: RemoteMembership,
        versions: Option<&[String]>,
    ) -> Result<(Value, &'static RoomVersion)> {
        let user = UserId::parse(user_id)?;
        if user.server_name() != origin {
            return Err(Error::Forbidden(format!(
                "{origin} may not ask for {user_id}'s membership"
            )));
        }
        self.rooms.require_room(room_id).await?;
        self.check_acl(room_id, origin).await?;
        let version = self.room_version_of(room_id).await?;
        if let Some(versions) = versions {
            if !versions.iter().any(|v| v == version.id) {
                return Err(Error::IncompatibleRoomVersion(version.id.to_string()));
            }
        }
        let (template, version) = self
            .rooms
            .member_template(room_id, user_id, membership.as_str())
            .await?;
        Ok((template, version))
    }

    /// `send_join` / `send_leave` / `send_knock`: takes in the member event `event_id` that
    /// `origin` signed; answers the room's state before it and their auth chain (for a join).
    pub(crate) async fn send_membership(
        &self,
        origin: &str,
        room_id: &str,
        event_id: &str,
        membership: RemoteMembership,
        pdu: Value,
    ) -> Result<Value> {
        self.rooms.require_room(room_id).await?;
        self.check_acl(room_id, origin).await?;
        let sender = pdu["sender"].as_str().unwrap_or_default();
        let state_key = pdu["state_key"].as_str().unwrap_or_default();
        let sender_server = UserId::parse(sender)?.server_name().to_string();
        if pdu["type"] != "m.room.member"
            || sender != state_key
            || pdu["content"]["membership"] != membership.as_str()
            || pdu["room_id"] != room_id
        {
            return Err(Error::BadJson(format!(
                "not a {} of its sender in this room",
                membership.as_str()
            )));
        }
        if sender_server != origin {
            return Err(Error::Forbidden(format!(
                "{origin} may not send {sender}'s membership"
            )));
        }
        let version = self.room_version_of(room_id).await?;
        let incoming = self.check_pdu(pdu, version).await.map_err(Error::BadJson)?;
        if incoming.event_id != event_id {
            return Err(Error::BadJson(format!(
                "the event's id is {}, not {event_id}",
                incoming.event_id
            )));
        }
        let json = incoming.json.clone();
        match self.receive_checked(origin, room_id, incoming).await? {
            Verdict::Timeline(_) | Verdict::Known => {}
            Verdict::SoftFailed(why) | Verdict::Rejected(why) => return Err(Error::Forbidden(why)),
        }
        match membership {
            RemoteMembership::Join => {}
            RemoteMembership::Leave => return Ok(json!({})),
            RemoteMembership::Knock => {
                let state = self.rooms.current_state(room_id).await?;
                return Ok(json!({
                    "knock_room_state": crate::service::rooms::pdu::stripped_state(&state),
                }));
            }
        }
        let state = self.state_before(version, &json).await?;
        let mut state_ids: Vec<String> = state.into_values().collect();
        state_ids.sort();
        let mut chain_of = state_ids.clone();
        chain_of.push(event_id.to_string());
        let auth_chain = self.auth_chain_ids(&chain_of).await?;
        let servers = self.servers_in_room(room_id).await?;
        Ok(json!({
            "origin": self.server_name(),
            "state": self.federation_pdus(&state_ids).await?,
            "auth_chain": self.federation_pdus(&auth_chain).await?,
            "event": json,
            "members_omitted": false,
            "servers_in_room": servers,
        }))
    }

    /// The servers with a joined member in the room, ours among them.
    pub(crate) async fn servers_in_room(&self, room_id: &str) -> Result<Vec<String>> {
        let mut servers: Vec<String> = self
            .rooms
            .read_state(room_id, |s| {
                s.of_kind("m.room.member")
                    .filter(|(_, e)| e.is_joined())
                    .map(|(u, _)| crate::service::identifiers::server_of(u).to_string())
                    .collect()
            })
            .await?;
        servers.sort();
        servers.dedup();
        Ok(servers)
    }
}
