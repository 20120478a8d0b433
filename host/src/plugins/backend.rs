//! What the host interfaces need of the server, backed by the real services: each
//! `host/<interface>.rs` names the narrow trait it calls, and this is where the runtime
//! answers it with the services and the database.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use serde_json::{Map, Value};

use super::guest::{Guest, ServerGone};
use super::host::e2ee::E2ee;
use super::host::homeserver::{Homeserver, Reply};
use super::host::kv::{KvStore, StoreError};
use crate::service::appservice::identity::NewLogin;
use crate::service::e2ee::keys::UploadBody;
use crate::service::identifiers::{EventId, RoomAlias, RoomId, RoomOrAlias, UserId};
use crate::service::media::Media;
use crate::service::rooms::create::CreateRoom;
use crate::service::rooms::pdu::Pdu;
use crate::service::rooms::timeline::Queued;
use crate::service::rooms::values::Membership;
use crate::service::rooms::visibility::RoomAccess;
use crate::service::users::Session;
use crate::service::Services;

/// A plugin's committed key-value store in the server's database.
pub(crate) struct StoredKv {
    guest: Arc<Guest>,
    services: Weak<Services>,
}

impl StoredKv {
    pub(crate) fn new(guest: Arc<Guest>, services: Weak<Services>) -> StoredKv {
        StoredKv { guest, services }
    }

    fn services(&self) -> Result<Arc<Services>, StoreError> {
        self.services.upgrade().ok_or_else(|| ServerGone.into())
    }
}

impl KvStore for StoredKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let s = self.services()?;
        Ok(self.guest.block_on(s.storage.kv_get(&self.guest.id, key))?)
    }

    fn len(&self, key: &str) -> Result<Option<usize>, StoreError> {
        let s = self.services()?;
        Ok(self.guest.block_on(s.storage.kv_len(&self.guest.id, key))?)
    }

    fn keys(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let s = self.services()?;
        let keys = s
            .storage
            .kv_keys(&self.guest.id, prefix, after, limit as i64);
        Ok(self.guest.block_on(keys)?)
    }
}

/// `homeserver` calls the services the client API's endpoints call, with what a plugin's
/// call cannot choose fixed: no client timestamp, no client txn id for redactions, no login
/// for the users it registers. Where a method has the name of one of `Services`' own, the
/// call inside it is that inherent method (Rust picks it over the trait's), not a recursion.
impl Homeserver for Services {
    fn session<'a>(&'a self, plugin: &'a str, as_user: Option<&'a str>) -> Reply<'a, Session> {
        Box::pin(self.service_session(plugin, as_user))
    }

    fn public_base_url(&self) -> String {
        self.config.public_baseurl()
    }

    fn register<'a>(&'a self, plugin: &'a str, localpart: &'a str) -> Reply<'a, String> {
        Box::pin(async move {
            let login = NewLogin {
                inhibit_login: true,
                ..NewLogin::default()
            };
            let registered = self.register_for_appservice(plugin, localpart, None, login);
            Ok(registered.await?.user_id)
        })
    }

    fn queue_message<'a>(
        &'a self,
        session: &'a Session,
        room: &'a RoomId,
        event_type: &'a str,
        txn_id: Option<&'a str>,
        content: Value,
    ) -> Reply<'a, Queued> {
        Box::pin(self.queue_message(session, room, event_type, txn_id, None, content))
    }

    fn queue_state<'a>(
        &'a self,
        session: &'a Session,
        room: &'a RoomId,
        event_type: &'a str,
        state_key: &'a str,
        content: Value,
    ) -> Reply<'a, Queued> {
        Box::pin(self.queue_state(session, (room, event_type, state_key), None, content))
    }

    fn queue_redaction<'a>(
        &'a self,
        session: &'a Session,
        room: &'a RoomId,
        event: &'a EventId,
        reason: Option<&'a str>,
    ) -> Reply<'a, Queued> {
        Box::pin(self.queue_redaction(session, room, event, reason, None))
    }

    fn commit(&self, queued: Queued) -> Reply<'_, ()> {
        Box::pin(async move { queued.committed(&self.rooms).await.map(drop) })
    }

    fn create_room<'a>(&'a self, session: &'a Session, room: CreateRoom) -> Reply<'a, String> {
        Box::pin(self.create_room_as(session, room))
    }

    fn join<'a>(&'a self, user: &'a UserId, room: &'a RoomOrAlias) -> Reply<'a, RoomId> {
        Box::pin(self.join_room_as(user, room, Vec::new()))
    }

    fn leave<'a>(&'a self, user: &'a UserId, room: &'a RoomId) -> Reply<'a, ()> {
        Box::pin(self.leave_room(user, room, None))
    }

    fn invite<'a>(
        &'a self,
        sender: &'a UserId,
        room: &'a RoomId,
        target: &'a UserId,
    ) -> Reply<'a, ()> {
        Box::pin(async move { self.invite(sender, room, target, None).await.map(drop) })
    }

    fn set_membership<'a>(
        &'a self,
        sender: &'a UserId,
        room: &'a RoomId,
        target: &'a UserId,
        membership: Membership,
        reason: Option<&'a str>,
    ) -> Reply<'a, ()> {
        Box::pin(async move {
            let set = self
                .rooms
                .set_membership(sender, room, target, membership, reason);
            set.await.map(drop)
        })
    }

    fn kick<'a>(
        &'a self,
        sender: &'a UserId,
        room: &'a RoomId,
        target: &'a UserId,
        reason: Option<&'a str>,
    ) -> Reply<'a, ()> {
        Box::pin(async move {
            self.rooms
                .kick(sender, room, target, reason)
                .await
                .map(drop)
        })
    }

    fn set_displayname<'a>(&'a self, user: &'a UserId, name: Option<&'a str>) -> Reply<'a, ()> {
        Box::pin(self.set_displayname(user, name))
    }

    fn set_avatar_url<'a>(&'a self, user: &'a UserId, url: Option<&'a str>) -> Reply<'a, ()> {
        Box::pin(self.set_avatar_url(user, url))
    }

    fn lookup_alias<'a>(&'a self, alias: &'a RoomAlias) -> Reply<'a, String> {
        Box::pin(async move { Ok(self.lookup_alias(alias).await?.0) })
    }

    fn create_alias<'a>(
        &'a self,
        session: &'a Session,
        alias: &'a RoomAlias,
        room: &'a RoomId,
    ) -> Reply<'a, ()> {
        Box::pin(self.create_alias_as(session, alias, room))
    }

    fn readable_state<'a>(
        &'a self,
        room: &'a RoomId,
        user: &'a UserId,
        event_type: &'a str,
        state_key: &'a str,
    ) -> Reply<'a, Option<Arc<Pdu>>> {
        Box::pin(
            self.rooms
                .readable_state_event(room, user, event_type, state_key),
        )
    }

    fn visible_event<'a>(
        &'a self,
        session: &'a Session,
        room: &'a RoomId,
        event: &'a EventId,
    ) -> Reply<'a, Value> {
        Box::pin(self.visible_event(session, room, event))
    }

    fn member_events<'a>(
        &'a self,
        session: &'a Session,
        room: &'a RoomId,
    ) -> Reply<'a, Vec<Arc<Pdu>>> {
        Box::pin(self.member_events(session, room, None, None))
    }

    fn joined_rooms<'a>(&'a self, user: &'a str) -> Reply<'a, Vec<String>> {
        Box::pin(self.rooms.joined_rooms(user))
    }

    fn room_access<'a>(&'a self, room: &'a RoomId, user: &'a UserId) -> Reply<'a, RoomAccess> {
        Box::pin(self.rooms.room_access(room, user))
    }

    fn visible_events<'a>(
        &'a self,
        user: &'a UserId,
        events: &'a [String],
    ) -> Reply<'a, Vec<(String, String)>> {
        Box::pin(self.rooms.visible_events(user, events))
    }

    fn is_admin<'a>(&'a self, user: &'a UserId) -> Reply<'a, bool> {
        Box::pin(self.users.is_admin(user))
    }

    fn upload_media<'a>(
        &'a self,
        uploader: &'a str,
        content_type: &'a str,
        filename: Option<&'a str>,
        data: &'a [u8],
    ) -> Reply<'a, String> {
        Box::pin(
            self.media
                .upload(uploader, Some(content_type), filename, data),
        )
    }

    fn download_media<'a>(&'a self, server: &'a str, media_id: &'a str) -> Reply<'a, Media> {
        Box::pin(self.media.download(server, media_id))
    }

    fn has_membership<'a>(&'a self, room: &'a str, user: &'a str) -> Reply<'a, bool> {
        Box::pin(async move { Ok(self.storage.membership(room, user).await?.is_some()) })
    }

    fn members<'a>(&'a self, room: &'a str) -> Reply<'a, Vec<String>> {
        Box::pin(async move {
            let rows = self.storage.room_members(room, None).await?;
            Ok(rows.into_iter().map(|m| m.user_id).collect())
        })
    }

    fn room_aliases<'a>(&'a self, room: &'a str) -> Reply<'a, Vec<String>> {
        Box::pin(async move { Ok(self.storage.room_aliases(room).await?) })
    }
}

/// `e2ee` calls the services the client API's key, device and to-device endpoints call.
/// Where a method has the name of one of `Services`' own, the call inside it is that inherent
/// method, not a recursion.
impl E2ee for Services {
    fn device_session<'a>(
        &'a self,
        plugin: &'a str,
        as_user: Option<&'a str>,
        device: Option<&'a str>,
    ) -> Reply<'a, Session> {
        Box::pin(self.service_device_session(plugin, as_user, device))
    }

    fn create_device<'a>(
        &'a self,
        session: &'a Session,
        device: &'a str,
        display_name: Option<&'a str>,
    ) -> Reply<'a, bool> {
        Box::pin(
            self.users
                .create_device(&session.user_id, device, display_name),
        )
    }

    fn delete_device<'a>(&'a self, session: &'a Session) -> Reply<'a, ()> {
        Box::pin(async move {
            let device = std::slice::from_ref(&session.device_id);
            self.remove_devices(&session.user_id, Some(device)).await
        })
    }

    fn upload_keys<'a>(&'a self, session: &'a Session, body: UploadBody) -> Reply<'a, Value> {
        Box::pin(Services::upload_keys(self, session, body))
    }

    fn query_keys<'a>(
        &'a self,
        session: &'a Session,
        wanted: BTreeMap<String, Vec<String>>,
    ) -> Reply<'a, Value> {
        Box::pin(Services::query_keys(
            self,
            &session.user_id,
            wanted,
            crate::service::federation::e2ee::DEFAULT_KEYS_TIMEOUT,
        ))
    }

    fn claim_keys(&self, wanted: BTreeMap<String, BTreeMap<String, String>>) -> Reply<'_, Value> {
        Box::pin(Services::claim_keys(
            self,
            wanted,
            crate::service::federation::e2ee::DEFAULT_KEYS_TIMEOUT,
        ))
    }

    fn send_to_device<'a>(
        &'a self,
        session: &'a Session,
        event_type: &'a str,
        txn_id: &'a str,
        messages: BTreeMap<String, Map<String, Value>>,
    ) -> Reply<'a, ()> {
        Box::pin(Services::send_to_device(
            self, session, event_type, txn_id, messages,
        ))
    }
}
