//! Joins and leaves across servers. As the resident server: templates for another server's
//! user (`make_join`, `make_leave`) and the signed event taken in (`send_join`, `send_leave`).
//! As the joining server: a local user joins a room of another server through one of the
//! servers named, and the room's state and auth chain from its answer become the room here.

use serde_json::{json, Value};

use super::client::path_segment;
use super::FederationError;
use crate::service::identifiers::{RoomId, RoomOrAlias, UserId};
use crate::service::room_version::RoomVersion;
use crate::service::rooms::remote::{Incoming, Verdict};
use crate::service::rooms::values::Membership;
use crate::service::{now_ms, Error, Result, Services};
use crate::storage::graph::{SideEvent, Standing};
use crate::storage::writer::WriteOp;

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

/// The pauses before asking an inviting server that refused a join again: doubling from the
/// first to the last (about four seconds in all).
const INVITER_FIRST_PAUSE: std::time::Duration = std::time::Duration::from_millis(250);
const INVITER_LAST_PAUSE: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether `e` is another server's refusal (403) of what was asked.
fn is_refusal(e: &Error) -> bool {
    matches!(
        e,
        Error::Federation(FederationError::Remote { status: 403, .. })
    )
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

    /// Joins `user` to a room by id or alias: here when this server is in the room (or the
    /// room is only here), else through the servers the alias names, `via`, and the room id's
    /// own server. Answers the room id.
    pub(crate) async fn join_room_as(
        &self,
        user: &UserId,
        target: &RoomOrAlias,
        via: Vec<String>,
    ) -> Result<RoomId> {
        let (room_id, mut servers) = match target {
            RoomOrAlias::Alias(alias) => {
                let (room_id, servers) = self.lookup_alias(alias).await?;
                (RoomId::parse(room_id)?, servers)
            }
            RoomOrAlias::Room(id) => (id.clone(), Vec::new()),
        };
        servers.extend(via);
        if self.storage.room_exists(room_id.as_str()).await? {
            let in_room = self.servers_in_room(room_id.as_str()).await?;
            if in_room.is_empty() || in_room.iter().any(|s| s == self.server_name()) {
                self.rooms.join(user, &room_id).await?;
                return Ok(room_id);
            }
            servers.extend(in_room);
        }
        if let Some((_, server)) = room_id.as_str().split_once(':') {
            servers.push(server.to_string());
        }
        // Invited from another server: that server is in the room.
        let inviter = self.inviting_server(user, room_id.as_str()).await?;
        servers.extend(inviter.clone());
        let mut seen = std::collections::HashSet::new();
        servers.retain(|s| seen.insert(s.clone()));
        let content = self.rooms.profile_content(user, Membership::Join).await?;
        self.join_remote(user, &room_id, &servers, inviter.as_deref(), content)
            .await?;
        Ok(room_id)
    }

    /// `user` leaves `room_id`: here when this server is in the room, else (an invite from
    /// another server, refused) through the inviting server's `make_leave` and `send_leave`.
    pub(crate) async fn leave_room(
        &self,
        user: &UserId,
        room_id: &RoomId,
        reason: Option<&str>,
    ) -> Result<()> {
        let Some(server) = self.inviting_server(user, room_id.as_str()).await? else {
            self.rooms
                .set_membership(user, room_id, user, Membership::Leave, reason)
                .await?;
            return Ok(());
        };
        if self.storage.room_exists(room_id.as_str()).await? {
            self.rooms
                .set_membership(user, room_id, user, Membership::Leave, reason)
                .await?;
            return Ok(());
        }
        let client = self.federation.client()?;
        let uri = format!(
            "/_matrix/federation/v1/make_leave/{}/{}",
            path_segment(room_id.as_str()),
            path_segment(user.as_str())
        );
        let answer = client.get(&server, &uri).await?;
        let version = answer["room_version"]
            .as_str()
            .and_then(RoomVersion::get)
            .ok_or_else(|| {
                Error::UnsupportedRoomVersion("the room's version is not supported".into())
            })?;
        let mut event = answer["event"].clone();
        if event["type"] != "m.room.member" || event["state_key"] != user.as_str() {
            return Err(FederationError::BadResponse {
                server,
                why: "make_leave answered a template that is not this user's leave".into(),
            }
            .into());
        }
        let mut content = json!({ "membership": "leave" });
        if let Some(r) = reason {
            content["reason"] = json!(r);
        }
        let event_id = self.sign_template(&mut event, content, version);
        let uri = format!(
            "/_matrix/federation/v2/send_leave/{}/{}",
            path_segment(room_id.as_str()),
            path_segment(&event_id)
        );
        client.put(&server, &uri, &event).await?;
        self.writer
            .write(WriteOp::Side(Box::new(SideEvent {
                event_id,
                room_id: room_id.to_string(),
                standing: Standing::Outlier,
                reason: None,
                json: event.to_string(),
                state_group: None,
                new_groups: Vec::new(),
                received_ts: now_ms(),
                member: Some((user.to_string(), "leave".into())),
            })))
            .await?;
        Ok(())
    }

    /// Fills a resident server's `make_*` template with `content`, as this server's event
    /// made now, and hashes and signs it; answers its event id.
    fn sign_template(&self, event: &mut Value, content: Value, version: &RoomVersion) -> String {
        event["content"] = content;
        event["origin"] = json!(self.server_name());
        event["origin_server_ts"] = json!(now_ms());
        if let Some(o) = event.as_object_mut() {
            for k in ["signatures", "hashes", "unsigned", "event_id"] {
                o.remove(k);
            }
        }
        self.key.hash_and_sign_event(event, version)
    }

    /// The server of whoever invited `user` to `room_id`, when the invite is pending.
    async fn inviting_server(&self, user: &UserId, room_id: &str) -> Result<Option<String>> {
        let Some(m) = self.storage.membership(room_id, user.as_str()).await? else {
            return Ok(None);
        };
        if m.membership != "invite" {
            return Ok(None);
        }
        let Some(stored) = self.storage.stored_pdu(&m.event_id).await? else {
            return Ok(None);
        };
        let json: Value =
            serde_json::from_str(&stored.json).map_err(crate::storage::StorageError::Corrupt)?;
        Ok(json["sender"]
            .as_str()
            .and_then(|s| UserId::parse(s).ok())
            .map(|u| u.server_name().to_string()))
    }

    /// Joins `user` to the room `room_id` of another server through the first of `via` that
    /// lets it in; answers once the room is stored here with the join. `inviter` is the
    /// server whose invite is pending, if any.
    pub(crate) async fn join_remote(
        &self,
        user: &UserId,
        room_id: &RoomId,
        via: &[String],
        inviter: Option<&str>,
        content: Value,
    ) -> Result<()> {
        let _joining = self.federation.joining.start(room_id.as_str());
        let mut last = None;
        for server in via.iter().filter(|s| *s != self.server_name()) {
            let mut pause = INVITER_FIRST_PAUSE;
            loop {
                match self
                    .join_through(user, room_id, server, content.clone())
                    .await
                {
                    Ok(()) => return Ok(()),
                    // The inviting server asks this one to sign an invite before it stores
                    // it, and a bot here joins as soon as it hears of it: a refusal that
                    // soon may only mean the invite is not stored there yet.
                    Err(e) if inviter == Some(server.as_str()) && is_refusal(&e) => {
                        if pause > INVITER_LAST_PAUSE {
                            last = Some(e);
                            break;
                        }
                        tokio::time::sleep(pause).await;
                        pause *= 2;
                    }
                    Err(e) => {
                        tracing::info!(room_id = %room_id, server, error = %e, "a remote join failed");
                        last = Some(e);
                        break;
                    }
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            Error::NotFound(format!(
                "no server to join {room_id} through: name one with server_name or via"
            ))
        }))
    }

    async fn join_through(
        &self,
        user: &UserId,
        room_id: &RoomId,
        server: &str,
        content: Value,
    ) -> Result<()> {
        let client = self.federation.client()?;
        let versions: String = crate::service::room_version::SUPPORTED
            .iter()
            .map(|v| format!("ver={}", v.id))
            .collect::<Vec<_>>()
            .join("&");
        let uri = format!(
            "/_matrix/federation/v1/make_join/{}/{}?{versions}",
            path_segment(room_id.as_str()),
            path_segment(user.as_str())
        );
        let answer = client.get(server, &uri).await?;
        let version = answer["room_version"]
            .as_str()
            .and_then(RoomVersion::get)
            .ok_or_else(|| {
                Error::UnsupportedRoomVersion(format!(
                    "{server} offers room version {}, which this server does not support",
                    answer["room_version"]
                ))
            })?;
        let mut event = answer["event"].clone();
        if event["type"] != "m.room.member" || event["state_key"] != user.as_str() {
            return Err(FederationError::BadResponse {
                server: server.to_string(),
                why: "make_join answered a template that is not this user's join".into(),
            }
            .into());
        }
        let mut joined = content;
        joined["membership"] = json!("join");
        if let Some(via) = event["content"]["join_authorised_via_users_server"].as_str() {
            joined["join_authorised_via_users_server"] = json!(via);
        }
        let event_id = self.sign_template(&mut event, joined, version);
        let uri = format!(
            "/_matrix/federation/v2/send_join/{}/{}",
            path_segment(room_id.as_str()),
            path_segment(&event_id)
        );
        let answer = client.put(server, &uri, &event).await?;
        // A restricted join comes back signed by the resident server too.
        if let Some(signed) = answer.get("event").filter(|e| e.is_object()) {
            if let Some(sigs) = signed["signatures"].as_object() {
                for (s, keys) in sigs {
                    event["signatures"][s] = keys.clone();
                }
            }
        }
        let state = self.checked_list(&answer["state"], version).await;
        let auth_chain = self.checked_list(&answer["auth_chain"], version).await;
        self.rooms
            .store_joined_room(
                room_id.as_str(),
                version,
                auth_chain,
                state,
                Incoming {
                    event_id,
                    json: event,
                    version,
                },
            )
            .await
    }

    /// The PDUs of a list that pass [`Services::check_pdu`] (the others are left out, as
    /// events that cannot be verified are).
    async fn checked_list(&self, list: &Value, version: &'static RoomVersion) -> Vec<Incoming> {
        let mut out = Vec::new();
        for pdu in list.as_array().into_iter().flatten() {
            match self.check_pdu(pdu.clone(), version).await {
                Ok(i) => out.push(i),
                Err(why) => tracing::info!(why, "left out an event of a join's answer"),
            }
        }
        out
    }
}
