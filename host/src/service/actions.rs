//! What a session does in rooms, with every check the client API applies: sending events and
//! state, redacting, creating rooms and aliases, reading members. The client API's handlers
//! and the plugin host's imports both call these, so a plugin is held to the same rules as a
//! client. Rate limits are the handlers' (they need the client's address; plugins are exempt).

use std::sync::Arc;

use serde_json::{json, Value};

use super::identifiers::{check_event_type, EventId, RoomAlias, RoomId, UserId};
use super::rooms::create::CreateRoom;
use super::rooms::pdu::Pdu;
use super::rooms::timeline::{Draft, Queued};
use super::rooms::values::Membership;
use super::users::Session;
use super::{Error, Result, Services};

fn object(content: Value) -> Result<Value> {
    if content.is_object() {
        Ok(content)
    } else {
        Err(Error::BadJson("event content must be a JSON object".into()))
    }
}

impl Services {
    /// Sends one non-state event as `session`, idempotently per device when `txn_id` is
    /// given, at `ts` when an application service asserted one; answers once it is stored.
    pub(crate) async fn send_message(
        &self,
        session: &Session,
        room_id: &RoomId,
        event_type: &str,
        txn_id: Option<&str>,
        ts: Option<i64>,
        content: Value,
    ) -> Result<String> {
        let queued = self
            .queue_message(session, room_id, event_type, txn_id, ts, content)
            .await?;
        Ok(queued.committed(&self.rooms).await?.event_id)
    }

    /// [`Services::send_message`] up to the group commit: the event is checked, built and
    /// queued, and the caller decides when to wait for it.
    pub(crate) async fn queue_message(
        &self,
        session: &Session,
        room_id: &RoomId,
        event_type: &str,
        txn_id: Option<&str>,
        ts: Option<i64>,
        content: Value,
    ) -> Result<Queued> {
        check_event_type(event_type)?;
        let mut draft = Draft::new(&session.user_id, event_type, None, object(content)?);
        draft.txn = txn_id.map(|t| (session.device_id.clone(), t.to_string()));
        draft.ts = ts;
        self.rooms.append_queued(room_id, draft).await
    }

    /// Sets one state event as `session`; answers once it is stored.
    pub(crate) async fn send_state(
        &self,
        session: &Session,
        at: (&RoomId, &str, &str),
        ts: Option<i64>,
        content: Value,
    ) -> Result<String> {
        let queued = self.queue_state(session, at, ts, content).await?;
        Ok(queued.committed(&self.rooms).await?.event_id)
    }

    /// [`Services::send_state`] up to the group commit.
    pub(crate) async fn queue_state(
        &self,
        session: &Session,
        (room_id, event_type, state_key): (&RoomId, &str, &str),
        ts: Option<i64>,
        content: Value,
    ) -> Result<Queued> {
        check_event_type(event_type)?;
        if event_type == "m.room.create" {
            return Err(Error::Forbidden(
                "m.room.create cannot be sent to an existing room".into(),
            ));
        }
        let mut draft = Draft::new(
            &session.user_id,
            event_type,
            Some(state_key),
            object(content)?,
        );
        draft.ts = ts;
        self.rooms.append_queued(room_id, draft).await
    }

    /// Redacts `event_id` as `session`; answers the redaction's id once it is stored.
    pub(crate) async fn redact(
        &self,
        session: &Session,
        room_id: &RoomId,
        event_id: &EventId,
        reason: Option<&str>,
        txn_id: Option<&str>,
    ) -> Result<String> {
        let queued = self
            .queue_redaction(session, room_id, event_id, reason, txn_id)
            .await?;
        Ok(queued.committed(&self.rooms).await?.event_id)
    }

    /// [`Services::redact`] up to the group commit.
    pub(crate) async fn queue_redaction(
        &self,
        session: &Session,
        room_id: &RoomId,
        event_id: &EventId,
        reason: Option<&str>,
        txn_id: Option<&str>,
    ) -> Result<Queued> {
        let mut content = json!({});
        if let Some(r) = reason {
            content["reason"] = json!(r);
        }
        let mut draft = Draft::new(&session.user_id, "m.room.redaction", None, content);
        draft.redacts = Some(event_id.to_string());
        draft.txn = txn_id.map(|t| (session.device_id.clone(), t.to_string()));
        self.rooms.append_queued(room_id, draft).await
    }

    /// Creates a room as `session`: its alias must be claimable by the session, and users of
    /// an application service's namespace it invites are made first if the service can.
    pub(crate) async fn create_room_as(
        &self,
        session: &Session,
        req: CreateRoom,
    ) -> Result<String> {
        for (kind, _, _) in &req.initial_state {
            check_event_type(kind)?;
        }
        if let Some(name) = &req.room_alias_name {
            let alias = RoomAlias::parse(format!("#{name}:{}", self.server_name()))?;
            self.check_alias_claim(session, &alias)?;
        }
        // The invitees stay strings in the request (room creation refuses a malformed one in
        // its own order of checks); each is parsed here before anyone is asked for it.
        for user_id in &req.invite {
            self.require_namespaced_user(&UserId::parse(user_id.as_str())?)
                .await?;
        }
        self.rooms.create_room(&session.user_id, req).await
    }

    /// Points `alias` at `room_id` as `session`.
    pub(crate) async fn create_alias_as(
        &self,
        session: &Session,
        alias: &RoomAlias,
        room_id: &RoomId,
    ) -> Result<()> {
        self.check_alias_claim(session, alias)?;
        self.rooms
            .create_alias(&session.user_id, alias, room_id)
            .await
    }

    /// The member events of a room that `session` may read, with `membership` when given
    /// and without `not_membership`.
    pub(crate) async fn member_events(
        &self,
        session: &Session,
        room_id: &RoomId,
        membership: Option<&str>,
        not_membership: Option<&str>,
    ) -> Result<Vec<Arc<Pdu>>> {
        let parse = |m: Option<&str>| {
            m.map(|m| {
                Membership::parse(m).ok_or_else(|| {
                    Error::InvalidParam(format!(
                        "a membership is one of {}, not '{}'",
                        Membership::NAMES.join(", "),
                        m.escape_debug()
                    ))
                })
            })
            .transpose()
        };
        let (membership, not_membership) = (parse(membership)?, parse(not_membership)?);
        let state = self.rooms.readable_state(room_id, &session.user_id).await?;
        Ok(state
            .into_iter()
            .filter(|((kind, _), p)| {
                let m = p.membership();
                kind == "m.room.member"
                    && membership.is_none_or(|want| Some(want) == m)
                    && not_membership.is_none_or(|unwanted| Some(unwanted) != m)
            })
            .map(|(_, p)| p)
            .collect())
    }
}
