//! What `homeserver` needs of the server, as one narrow trait in the server's own types: the
//! runtime answers it with the real services ([`backend`](crate::plugins::backend)), a unit
//! test with a fake.

use std::sync::Arc;

use futures_core::future::BoxFuture;
use serde_json::Value;

use crate::service::identifiers::{EventId, RoomAlias, RoomId, RoomOrAlias, UserId};
use crate::service::media::Media;
use crate::service::rooms::create::CreateRoom;
use crate::service::rooms::pdu::Pdu;
use crate::service::rooms::timeline::Queued;
use crate::service::rooms::values::Membership;
use crate::service::rooms::visibility::RoomAccess;
use crate::service::users::Session;
use crate::service::Error as ServiceError;

/// The server's answer to one request of [`Homeserver`], to be awaited.
pub(crate) type Reply<'a, T> = BoxFuture<'a, Result<T, ServiceError>>;

/// What `homeserver` needs of the server, in the server's own types: the services the client
/// API's endpoints call, and the few reads `in_view` makes. Each answers with the service's
/// own error, which [`to_wit`](super::to_wit) turns into what the plugin sees.
pub(crate) trait Homeserver: Send + Sync {
    // Who the plugin acts as.

    /// The session of plugin `plugin` acting as `as_user`, or as its sender when none: the
    /// rule of an appservice's `?user_id=` (`M_FORBIDDEN` outside its users namespace).
    fn session<'a>(&'a self, plugin: &'a str, as_user: Option<&'a str>) -> Reply<'a, Session>;
    /// The server's public base URL, without a trailing slash.
    fn public_base_url(&self) -> String;
    /// Registers `localpart` in plugin `plugin`'s users namespace, without a login: its id.
    fn register<'a>(&'a self, plugin: &'a str, localpart: &'a str) -> Reply<'a, String>;

    // Sending: each is queued for the group commit, and [`Homeserver::commit`] waits for it.

    fn queue_message<'a>(
        &'a self,
        session: &'a Session,
        room: &'a RoomId,
        event_type: &'a str,
        txn_id: Option<&'a str>,
        content: Value,
    ) -> Reply<'a, Queued>;
    fn queue_state<'a>(
        &'a self,
        session: &'a Session,
        room: &'a RoomId,
        event_type: &'a str,
        state_key: &'a str,
        content: Value,
    ) -> Reply<'a, Queued>;
    fn queue_redaction<'a>(
        &'a self,
        session: &'a Session,
        room: &'a RoomId,
        event: &'a EventId,
        reason: Option<&'a str>,
    ) -> Reply<'a, Queued>;
    /// Waits until a queued event is stored.
    fn commit(&self, queued: Queued) -> Reply<'_, ()>;

    // Rooms, membership, profile, aliases: as the session's user.

    /// Creates a room: its id.
    fn create_room<'a>(&'a self, session: &'a Session, room: CreateRoom) -> Reply<'a, String>;
    /// Joins `room` (an id or an alias) as `user`, through another server when this one is
    /// not in it (the inviter's, for an invite from there): the room's id.
    fn join<'a>(&'a self, user: &'a UserId, room: &'a RoomOrAlias) -> Reply<'a, RoomId>;
    /// Leaves `room` as `user`, or refuses an invite to it (through the inviting server when
    /// this one is not in the room).
    fn leave<'a>(&'a self, user: &'a UserId, room: &'a RoomId) -> Reply<'a, ()>;
    fn invite<'a>(
        &'a self,
        sender: &'a UserId,
        room: &'a RoomId,
        target: &'a UserId,
    ) -> Reply<'a, ()>;
    /// Sets `target`'s membership (leave, ban) as `sender`.
    fn set_membership<'a>(
        &'a self,
        sender: &'a UserId,
        room: &'a RoomId,
        target: &'a UserId,
        membership: Membership,
        reason: Option<&'a str>,
    ) -> Reply<'a, ()>;
    fn kick<'a>(
        &'a self,
        sender: &'a UserId,
        room: &'a RoomId,
        target: &'a UserId,
        reason: Option<&'a str>,
    ) -> Reply<'a, ()>;
    fn set_displayname<'a>(&'a self, user: &'a UserId, name: Option<&'a str>) -> Reply<'a, ()>;
    fn set_avatar_url<'a>(&'a self, user: &'a UserId, url: Option<&'a str>) -> Reply<'a, ()>;
    /// The room `alias` points to.
    fn lookup_alias<'a>(&'a self, alias: &'a RoomAlias) -> Reply<'a, String>;
    fn create_alias<'a>(
        &'a self,
        session: &'a Session,
        alias: &'a RoomAlias,
        room: &'a RoomId,
    ) -> Reply<'a, ()>;

    // Reading, as `/messages` and `/state` let the user read.

    fn readable_state<'a>(
        &'a self,
        room: &'a RoomId,
        user: &'a UserId,
        event_type: &'a str,
        state_key: &'a str,
    ) -> Reply<'a, Option<Arc<Pdu>>>;
    /// The event in its client format.
    fn visible_event<'a>(
        &'a self,
        session: &'a Session,
        room: &'a RoomId,
        event: &'a EventId,
    ) -> Reply<'a, Value>;
    /// The room's `m.room.member` events.
    fn member_events<'a>(
        &'a self,
        session: &'a Session,
        room: &'a RoomId,
    ) -> Reply<'a, Vec<Arc<Pdu>>>;
    fn joined_rooms<'a>(&'a self, user: &'a str) -> Reply<'a, Vec<String>>;

    // Answering for any user.

    fn room_access<'a>(&'a self, room: &'a RoomId, user: &'a UserId) -> Reply<'a, RoomAccess>;
    /// Of `events`, those `user` may see, each with its room, in the order asked.
    fn visible_events<'a>(
        &'a self,
        user: &'a UserId,
        events: &'a [String],
    ) -> Reply<'a, Vec<(String, String)>>;
    fn is_admin<'a>(&'a self, user: &'a UserId) -> Reply<'a, bool>;

    // Media.

    /// Stores an upload: its `mxc://` URI.
    fn upload_media<'a>(
        &'a self,
        uploader: &'a str,
        content_type: &'a str,
        filename: Option<&'a str>,
        data: &'a [u8],
    ) -> Reply<'a, String>;
    fn download_media<'a>(&'a self, server: &'a str, media_id: &'a str) -> Reply<'a, Media>;

    // What `in_view` reads.

    /// Whether `user` has a membership of `room` (joined, invited, left, banned, knocking).
    fn has_membership<'a>(&'a self, room: &'a str, user: &'a str) -> Reply<'a, bool>;
    /// Every user with a membership of `room`.
    fn members<'a>(&'a self, room: &'a str) -> Reply<'a, Vec<String>>;
    /// The local aliases of `room`.
    fn room_aliases<'a>(&'a self, room: &'a str) -> Reply<'a, Vec<String>>;
}
