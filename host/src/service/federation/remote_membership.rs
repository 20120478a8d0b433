//! Our users' memberships of rooms of other servers, made through a server in the room (a
//! resident server): a join, whose answer (the room's state and auth chain) becomes the room
//! here; a knock; and the leave that refuses an invite or withdraws a knock. Each is the
//! resident's `make_*` template, filled and signed here, then sent back with its `send_*`.
//! The resident side of the same exchange is [`membership`](super::membership)'s. A join of a
//! room this server is in is made here, after taking in an invite kept beside the room.

use serde_json::{json, Value};

use super::client::path_segment;
use super::membership::RemoteMembership;
use super::FederationError;
use crate::service::identifiers::{RoomId, RoomOrAlias, UserId};
use crate::service::room_version::{RoomVersion, SUPPORTED};
use crate::service::rooms::remote::{Incoming, Verdict};
use crate::service::rooms::values::Membership;
use crate::service::{now_ms, Error, Result, Services};
use crate::storage::graph::{SideEvent, Standing, StoredPdu};
use crate::storage::writer::WriteOp;

/// The pauses before asking an inviting server that refused a join again: doubling from the
/// first to the last (about four seconds in all).
const INVITER_FIRST_PAUSE: std::time::Duration = std::time::Duration::from_millis(250);
const INVITER_LAST_PAUSE: std::time::Duration = std::time::Duration::from_secs(2);

/// The key of a stored knock's `unsigned` that keeps the server it went through, for its
/// withdrawal to go through the same one (a knock is our user's event: its sender names no
/// other server).
const KNOCKED_THROUGH: &str = "io.plugboard.knocked_through";

/// Whether `e` is another server's refusal (403) of what was asked.
fn is_refusal(e: &Error) -> bool {
    matches!(
        e,
        Error::Federation(FederationError::Remote { status: 403, .. })
    )
}

/// The server of the user who sent `event`.
fn sender_server(event: &Value) -> Option<String> {
    event["sender"]
        .as_str()
        .and_then(|s| UserId::parse(s).ok())
        .map(|u| u.server_name().to_string())
}

/// Where a membership of a room is made.
enum Route {
    /// Here: this server is in the room, or the room is only here.
    Local(RoomId),
    /// Through one of `servers`, in order; `pending` is the server of the user's pending
    /// invite or knock, if any.
    Remote {
        room_id: RoomId,
        servers: Vec<String>,
        pending: Option<String>,
    },
}

/// A member event made through a resident server: as sent, its id, its room's version and
/// the resident's answer to the send.
struct Made {
    event: Value,
    event_id: String,
    version: &'static RoomVersion,
    answer: Value,
}

impl Services {
    /// The room `target` names, with the servers to ask about it: those its alias names,
    /// then `via`.
    async fn resolve_target(
        &self,
        target: &RoomOrAlias,
        via: Vec<String>,
    ) -> Result<(RoomId, Vec<String>)> {
        let (room_id, mut servers) = match target {
            RoomOrAlias::Alias(alias) => {
                let (room_id, servers) = self.lookup_alias(alias).await?;
                (RoomId::parse(room_id)?, servers)
            }
            RoomOrAlias::Room(id) => (id.clone(), Vec::new()),
        };
        servers.extend(via);
        Ok((room_id, servers))
    }

    /// Where `user`'s membership of `room_id` is made: here when this server is in the room
    /// (or the room is only here), else through `servers` (those its alias named and `via`),
    /// the servers in the room as this server last knew it, the room id's own server, and
    /// the server of a pending invite or knock.
    async fn route(
        &self,
        user: &UserId,
        room_id: RoomId,
        mut servers: Vec<String>,
    ) -> Result<Route> {
        if self.storage.room_exists(room_id.as_str()).await? {
            let in_room = self.servers_in_room(room_id.as_str()).await?;
            if in_room.is_empty() || in_room.iter().any(|s| s == self.server_name()) {
                return Ok(Route::Local(room_id));
            }
            servers.extend(in_room);
        }
        if let Some((_, server)) = room_id.as_str().split_once(':') {
            servers.push(server.to_string());
        }
        let pending = self.pending_server(user, room_id.as_str()).await?;
        servers.extend(pending.clone());
        let mut seen = std::collections::HashSet::new();
        servers.retain(|s| s != self.server_name() && seen.insert(s.clone()));
        Ok(Route::Remote {
            room_id,
            servers,
            pending,
        })
    }

    /// Joins `user` to a room by id or alias (see [`Services::route`]); answers the room id.
    /// Joins of one room take turns: bots invited together hear their invites at once, and
    /// each join after the first finds the room stored here by the one before.
    pub(crate) async fn join_room_as(
        &self,
        user: &UserId,
        target: &RoomOrAlias,
        via: Vec<String>,
    ) -> Result<RoomId> {
        let (room_id, servers) = self.resolve_target(target, via).await?;
        let _turn = self.federation.joining.turn(room_id.as_str()).await;
        let (room_id, servers, pending) = match self.route(user, room_id, servers).await? {
            Route::Local(room_id) => {
                self.join_resident(user, &room_id).await?;
                return Ok(room_id);
            }
            Route::Remote {
                room_id,
                servers,
                pending,
            } => (room_id, servers, pending),
        };
        let content = self.rooms.profile_content(user, Membership::Join).await?;
        self.join_remote(user, &room_id, &servers, pending.as_deref(), content)
            .await?;
        Ok(room_id)
    }

    /// Joins `user` to a room this server is in. An invite from another server that came
    /// while this server was not in the room is kept beside it (see
    /// [`Services::receive_invite`]); when the room's state here lacks it still (the join
    /// that made this server resident was built before it), it is taken into the room first,
    /// with whatever of the room's history it builds on, from the inviting server.
    async fn join_resident(&self, user: &UserId, room_id: &RoomId) -> Result<()> {
        let why = match self.rooms.join(user, room_id).await {
            Err(Error::Forbidden(why)) => why,
            other => return other.map(|_| ()),
        };
        let Some((Membership::Invite, invite)) =
            self.pending_member(user, room_id.as_str()).await?
        else {
            return Err(Error::Forbidden(why));
        };
        // An invite placed already (it came in since) needs only the join tried again.
        if !invite.standing.placed() {
            if let Err(e) = self.take_in_invite(room_id, invite).await {
                tracing::info!(room_id = %room_id, error = %e, "cannot take in a pending invite");
                return Err(Error::Forbidden(why));
            }
        }
        self.rooms.join(user, room_id).await?;
        Ok(())
    }

    /// Takes `invite`, kept beside the room, into it from the inviting server (see
    /// [`Services::join_resident`]); an error says why it stays out.
    async fn take_in_invite(&self, room_id: &RoomId, invite: StoredPdu) -> Result<()> {
        let json = invite.value()?;
        let inviter = sender_server(&json)
            .ok_or_else(|| Error::BadJson("the invite's sender is not a user id".into()))?;
        self.check_acl(room_id.as_str(), &inviter).await?;
        let version = self.room_version_of(room_id.as_str()).await?;
        // Checked as it came (its `unsigned`, the room's stripped state, is left out).
        let incoming = self
            .check_pdu(json, version)
            .await
            .map_err(Error::BadJson)?;
        match self
            .receive_checked(&inviter, room_id.as_str(), incoming)
            .await?
        {
            Verdict::Timeline(_) | Verdict::Known => Ok(()),
            Verdict::SoftFailed(why) | Verdict::Rejected(why) => Err(Error::Forbidden(why)),
        }
    }

    /// `user` knocks on a room by id or alias (see [`Services::route`]); answers the room id.
    /// A knock on a room of another server is kept here with the room's stripped state that
    /// server answered, for the user's syncs to show.
    pub(crate) async fn knock_room_as(
        &self,
        user: &UserId,
        target: &RoomOrAlias,
        via: Vec<String>,
        reason: Option<&str>,
    ) -> Result<RoomId> {
        let (room_id, servers) = self.resolve_target(target, via).await?;
        let (room_id, servers) = match self.route(user, room_id, servers).await? {
            Route::Local(room_id) => {
                self.rooms.knock(user, &room_id, reason).await?;
                return Ok(room_id);
            }
            Route::Remote {
                room_id, servers, ..
            } => (room_id, servers),
        };
        let mut content = self.rooms.profile_content(user, Membership::Knock).await?;
        if let Some(r) = reason {
            content["reason"] = json!(r);
        }
        let mut last = None;
        for server in &servers {
            let made = match self
                .make_through(
                    user,
                    &room_id,
                    server,
                    RemoteMembership::Knock,
                    content.clone(),
                )
                .await
            {
                Ok(made) => made,
                Err(e) => {
                    tracing::info!(room_id = %room_id, server, error = %e, "a remote knock failed");
                    last = Some(e);
                    continue;
                }
            };
            let state = match &made.answer["knock_room_state"] {
                Value::Array(state) => state.clone(),
                // The name of the first unstable version of knocking, which servers may still
                // answer with.
                _ => made.answer["knock_state_events"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            };
            let mut kept = made.event.clone();
            kept["unsigned"] = json!({ "knock_room_state": state, KNOCKED_THROUGH: server });
            self.store_out_of_room(user, &room_id, made.event_id, kept, Membership::Knock)
                .await?;
            return Ok(room_id);
        }
        Err(last.unwrap_or_else(|| {
            Error::NotFound(format!(
                "no server to knock on {room_id} through: name one with via"
            ))
        }))
    }

    /// `user` leaves `room_id`: here when this server is in the room, else (an invite from
    /// another server refused, a knock withdrawn) through the server of the invite or knock.
    pub(crate) async fn leave_room(
        &self,
        user: &UserId,
        room_id: &RoomId,
        reason: Option<&str>,
    ) -> Result<()> {
        let server = match self.pending_server(user, room_id.as_str()).await? {
            Some(server) if !self.is_in_room(room_id.as_str()).await? => server,
            _ => {
                self.rooms
                    .set_membership(user, room_id, user, Membership::Leave, reason)
                    .await?;
                return Ok(());
            }
        };
        let mut content = json!({});
        if let Some(r) = reason {
            content["reason"] = json!(r);
        }
        let made = self
            .make_through(user, room_id, &server, RemoteMembership::Leave, content)
            .await?;
        self.store_out_of_room(user, room_id, made.event_id, made.event, Membership::Leave)
            .await
    }

    /// Whether this server has the room and a member in it.
    pub(super) async fn is_in_room(&self, room_id: &str) -> Result<bool> {
        Ok(self.storage.room_exists(room_id).await?
            && self
                .servers_in_room(room_id)
                .await?
                .iter()
                .any(|s| s == self.server_name()))
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
        let Made {
            mut event,
            event_id,
            version,
            answer,
        } = self
            .make_through(user, room_id, server, RemoteMembership::Join, content)
            .await?;
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

    /// `user`'s `membership` of `room_id` with `content`, made through `server`: its
    /// `make_*` template (offered the room versions this server supports, for a join or a
    /// knock), filled and signed here, and sent with its `send_*`.
    async fn make_through(
        &self,
        user: &UserId,
        room_id: &RoomId,
        server: &str,
        membership: RemoteMembership,
        mut content: Value,
    ) -> Result<Made> {
        let client = self.federation.client()?;
        let name = membership.as_str();
        let mut uri = format!(
            "/_matrix/federation/v1/make_{name}/{}/{}",
            path_segment(room_id.as_str()),
            path_segment(user.as_str())
        );
        if membership != RemoteMembership::Leave {
            let versions: Vec<String> = SUPPORTED.iter().map(|v| format!("ver={}", v.id)).collect();
            uri = format!("{uri}?{}", versions.join("&"));
        }
        let template = client.get(server, &uri).await?;
        let version = template["room_version"]
            .as_str()
            .and_then(RoomVersion::get)
            .ok_or_else(|| {
                Error::UnsupportedRoomVersion(format!(
                    "{server} offers room version {}, which this server does not support",
                    template["room_version"]
                ))
            })?;
        let mut event = template["event"].clone();
        if event["type"] != "m.room.member" || event["state_key"] != user.as_str() {
            return Err(FederationError::BadResponse {
                server: server.to_string(),
                why: format!("make_{name} answered a template that is not this user's {name}"),
            }
            .into());
        }
        content["membership"] = json!(name);
        if let Some(via) = event["content"]["join_authorised_via_users_server"].as_str() {
            if membership == RemoteMembership::Join {
                content["join_authorised_via_users_server"] = json!(via);
            }
        }
        let event_id = self.sign_template(&mut event, content, version);
        // Joins and leaves are sent with version 2 (an object answered); knocks have one.
        let send_version = if membership == RemoteMembership::Knock {
            "v1"
        } else {
            "v2"
        };
        let uri = format!(
            "/_matrix/federation/{send_version}/send_{name}/{}/{}",
            path_segment(room_id.as_str()),
            path_segment(&event_id)
        );
        let answer = client.put(server, &uri, &event).await?;
        Ok(Made {
            event,
            event_id,
            version,
            answer,
        })
    }

    /// Keeps `user`'s member event `json` of `room_id`, a room this server is not in, outside
    /// any timeline: it becomes the user's `membership` of the room.
    pub(super) async fn store_out_of_room(
        &self,
        user: &UserId,
        room_id: &RoomId,
        event_id: String,
        json: Value,
        membership: Membership,
    ) -> Result<()> {
        self.writer
            .write(WriteOp::Side(Box::new(SideEvent {
                event_id,
                room_id: room_id.to_string(),
                standing: Standing::Outlier,
                reason: None,
                json: json.to_string(),
                state_group: None,
                new_groups: Vec::new(),
                received_ts: now_ms(),
                member: Some((user.to_string(), membership.as_str().into())),
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

    /// `user`'s pending invite to or knock on `room_id`, as stored: its membership and event.
    async fn pending_member(
        &self,
        user: &UserId,
        room_id: &str,
    ) -> Result<Option<(Membership, StoredPdu)>> {
        let Some(m) = self.storage.membership(room_id, user.as_str()).await? else {
            return Ok(None);
        };
        let membership = match Membership::parse(&m.membership) {
            Some(p @ (Membership::Invite | Membership::Knock)) => p,
            _ => return Ok(None),
        };
        let stored = self.storage.stored_pdu(&m.event_id).await?;
        Ok(stored.map(|s| (membership, s)))
    }

    /// The server of `user`'s pending invite to `room_id` (the inviter's) or knock on it (the
    /// one it went through), if any.
    async fn pending_server(&self, user: &UserId, room_id: &str) -> Result<Option<String>> {
        let Some((membership, stored)) = self.pending_member(user, room_id).await? else {
            return Ok(None);
        };
        let json = stored.value()?;
        Ok(match membership {
            Membership::Knock => json["unsigned"][KNOCKED_THROUGH]
                .as_str()
                .map(str::to_string),
            _ => sender_server(&json),
        })
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
