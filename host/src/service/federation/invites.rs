//! Invites across servers, sending side: a local user invites a user of another server, whose
//! server signs the invite (`PUT /_matrix/federation/v2/invite`) before it is stored here and
//! sent to the room.

use serde_json::{json, Value};

use super::client::path_segment;
use super::FederationError;
use crate::service::identifiers::{RoomId, UserId};
use crate::service::keys::signing::reference_event_id;
use crate::service::room_version::RoomVersion;
use crate::service::rooms::membership::member_content;
use crate::service::rooms::pdu::{out_of_room_client_event, stripped_state, Pdu};
use crate::service::rooms::timeline::Draft;
use crate::service::rooms::values::Membership;
use crate::service::{Error, Result, Services};

impl Services {
    /// Invites `target`, a user of another server, to `room_id` as `sender`.
    pub(crate) async fn invite_remote(
        &self,
        sender: &UserId,
        room_id: &RoomId,
        target: &UserId,
        reason: Option<&str>,
    ) -> Result<Pdu> {
        let client = self.federation.client()?;
        let server = target.server_name().to_string();
        let mut invite_state = stripped_state(&self.rooms.current_state(room_id.as_str()).await?);
        if let Some(me) = self
            .rooms
            .state_event(room_id.as_str(), "m.room.member", sender.as_str())
            .await?
        {
            invite_state.push(me.to_stripped());
        }
        let draft = Draft::new(
            sender,
            "m.room.member",
            Some(target),
            member_content(Membership::Invite, reason),
        );
        let room = room_id.as_str().to_string();
        self.rooms
            .append_countersigned(room_id.as_str(), draft, move |event, version, event_id| {
                Box::pin(async move {
                    let uri = format!(
                        "/_matrix/federation/v2/invite/{}/{}",
                        path_segment(&room),
                        path_segment(&event_id)
                    );
                    let body = json!({
                        "room_version": version.id,
                        "event": event,
                        "invite_room_state": invite_state,
                    });
                    let answer = client.put(&server, &uri, &body).await?;
                    let signed = answer["event"].clone();
                    if !signed.is_object() || reference_event_id(&signed, version) != event_id {
                        return Err(Error::from(FederationError::BadResponse {
                            server: server.clone(),
                            why: "the invite came back as another event".into(),
                        }));
                    }
                    if signed["signatures"][&server]
                        .as_object()
                        .is_none_or(|s| s.is_empty())
                    {
                        return Err(Error::from(FederationError::BadResponse {
                            server: server.clone(),
                            why: "the invite came back without its signature".into(),
                        }));
                    }
                    Ok(signed)
                })
            })
            .await
    }
}

impl Services {
    /// `PUT /_matrix/federation/v2/invite`: another server's user invites one of ours. The
    /// invite is checked, signed by this server and answered; when this server is not in the
    /// room, it is kept with the room's stripped state for the user's syncs.
    pub(crate) async fn receive_invite(
        &self,
        origin: &str,
        room_id: &str,
        event_id: &str,
        body: &Value,
    ) -> Result<Value> {
        let version_id = body["room_version"].as_str().unwrap_or("1");
        let Some(version) = RoomVersion::get(version_id) else {
            return Err(Error::IncompatibleRoomVersion(version_id.to_string()));
        };
        let event = body["event"].clone();
        let target = event["state_key"].as_str().unwrap_or_default().to_string();
        let sender = event["sender"].as_str().unwrap_or_default();
        if event["type"] != "m.room.member"
            || event["content"]["membership"] != "invite"
            || event["room_id"] != room_id
        {
            return Err(Error::BadJson("not an invite to this room".into()));
        }
        if UserId::parse(sender)?.server_name() != origin {
            return Err(Error::Forbidden(format!(
                "{origin} may not invite as {sender}"
            )));
        }
        let target_id = UserId::parse(target.as_str())?;
        // A user an application service or plugin holds (its bot, a bridged user) exists as
        // soon as it is asked for, as for an invite from here.
        if target_id.server_name() != self.server_name()
            || !(self.users.exists(&target).await? || self.query_user(&target_id).await?)
        {
            return Err(Error::NotFound(format!("no user {target} here")));
        }
        let mut incoming = self
            .check_pdu(event, version)
            .await
            .map_err(Error::BadJson)?;
        if incoming.event_id != event_id {
            return Err(Error::BadJson(format!(
                "the event's id is {}, not {event_id}",
                incoming.event_id
            )));
        }
        self.key.countersign_event(&mut incoming.json, version);
        let signed = incoming.json.clone();
        if !self.is_in_room(room_id).await? {
            // The room's stripped state travels with the invite, where sync finds it.
            let mut kept = signed.clone();
            kept["unsigned"] = json!({ "invite_room_state": body["invite_room_state"] });
            let room = RoomId::parse(room_id)?;
            let event_id = incoming.event_id.clone();
            self.store_out_of_room(&target_id, &room, event_id, kept, Membership::Invite)
                .await?;
        }
        Ok(json!({ "event": signed }))
    }

    /// A member event of one of our users in a room this server is not in (an invite, or its
    /// refusal), in client format.
    pub(crate) async fn out_of_room_event(
        &self,
        event_id: &str,
        room_id: &str,
    ) -> Result<Option<Value>> {
        let Some(stored) = self.storage.stored_pdu(event_id).await? else {
            return Ok(None);
        };
        let json = stored.value()?;
        Ok(Some(out_of_room_client_event(
            &json, event_id, room_id, false,
        )))
    }

    /// The stripped state of a room of another server that a user is invited to or knocked
    /// on (`event_id` is the invite or knock): what that server sent with it, and the event.
    pub(crate) async fn remote_stripped_state(&self, event_id: &str) -> Result<Vec<Value>> {
        let Some(stored) = self.storage.stored_pdu(event_id).await? else {
            return Ok(Vec::new());
        };
        let json = stored.value()?;
        let unsigned = &json["unsigned"];
        let mut events: Vec<Value> = unsigned["invite_room_state"]
            .as_array()
            .or_else(|| unsigned["knock_room_state"].as_array())
            .cloned()
            .unwrap_or_default();
        events.push(json!({
            "type": json["type"],
            "state_key": json["state_key"],
            "content": json["content"],
            "sender": json["sender"],
        }));
        Ok(events)
    }
}
