//! The homeserver, as the plugin's users: a function per import of the WIT interface
//! `homeserver`, plus helpers for what bots do most (send text, reply, join on invite).
//! `as_user` is a user of the plugin's namespace, or `None` for its sender.
//!
//! Who may see what is the server's to say, not each plugin's: a plugin that serves what it
//! kept of rooms (through its web endpoints, say) asks [`access_to_rooms`] whether the caller
//! may read each room now and [`visible_events`] which of the events it would answer with the
//! caller may see, with one call for a whole list.

use std::cell::RefCell;

use serde_json::Value;

use crate::bindings::plugboard::appservice::homeserver as wit;
use crate::events::MsgType;
use crate::host;
use crate::message::Content;
use crate::types::{Error, Event};

pub use wit::{Media, Member, RoomAccess, RoomOptions};

/// Most rooms or event ids the host takes in one [`access_to_rooms`] or [`visible_events`]
/// call; these functions split a longer list into calls of this many.
pub use plugboard_limits::homeserver::MAX_IDS_PER_CALL;

/// The plugin's own user: who acts when `as_user` is `None`.
pub fn sender() -> String {
    host::with(|h| h.sender())
}

/// The server part of the plugin's user ids.
pub fn server_name() -> String {
    let me = sender();
    me.split_once(':')
        .map(|(_, s)| s.to_string())
        .unwrap_or_default()
}

/// The URL people and other services reach the server at, without a trailing slash
/// (`https://matrix.example.org`): what links to the plugin's web endpoints start with
/// (`{public_base_url}/_plugboard/plugins/{plugin id}/…`).
pub fn public_base_url() -> String {
    host::with(|h| h.public_base_url())
}

/// Registers `@{localpart}:server` in the plugin's users namespace.
pub fn register_user(localpart: &str) -> Result<String, Error> {
    host::with(|h| h.register_user(localpart))
}

/// Registers the user unless it exists: answers its id either way.
pub fn ensure_user(localpart: &str) -> Result<String, Error> {
    match register_user(localpart) {
        Err(e) if e.is("M_USER_IN_USE") => Ok(format!("@{localpart}:{}", server_name())),
        other => other,
    }
}

thread_local! {
    /// The transaction being handled and how many sends it has made: where the txn ids of
    /// sends without one of their own come from.
    static HANDLING: RefCell<Option<(String, u32)>> = const { RefCell::new(None) };
}

/// The runner is handling transaction `txn_id` (or, with `None`, nothing).
pub(crate) fn handling(txn_id: Option<&str>) {
    HANDLING.with(|h| *h.borrow_mut() = txn_id.map(|t| (t.to_string(), 0)));
}

/// The txn id of the next send made while handling a transaction: the same, in the same
/// order, when the server delivers the transaction again after a failure, so the host answers
/// the event the first attempt sent instead of sending it twice.
fn next_txn_id() -> Option<String> {
    HANDLING.with(|h| {
        h.borrow_mut().as_mut().map(|(txn, n)| {
            *n += 1;
            format!("plugboard.{txn}.{n}")
        })
    })
}

/// Sends any message-like event. With a `txn_id` the send is idempotent; without one, a send
/// made while handling a transaction gets one derived from the transaction, so a retried
/// transaction does not send it again.
pub fn send_event(
    as_user: Option<&str>,
    room: &str,
    event_type: &str,
    content: &Value,
    txn_id: Option<&str>,
) -> Result<String, Error> {
    let content = content.to_string();
    let derived = match txn_id {
        Some(_) => None,
        None => next_txn_id(),
    };
    let txn_id = txn_id.or(derived.as_deref());
    host::with(|h| h.send_event(as_user, room, event_type, &content, txn_id))
}

/// Sends an `m.room.message` built with [`Content`].
pub fn send_message(as_user: Option<&str>, room: &str, content: Content) -> Result<String, Error> {
    send_event(as_user, room, "m.room.message", &content.into_value(), None)
}

/// Sends plain text as the plugin's sender.
pub fn send_text(room: &str, text: &str) -> Result<String, Error> {
    send_message(None, room, Content::text(text))
}

/// Sends a notice (what bots answer with) as the plugin's sender.
pub fn send_notice(room: &str, text: &str) -> Result<String, Error> {
    send_message(None, room, Content::notice(text))
}

/// Answers `event` in its room with a reply of `msgtype` as the plugin's sender.
pub fn reply(event: &Event, msgtype: MsgType, text: &str) -> Result<String, Error> {
    send_message(
        None,
        &event.room_id,
        Content::new(msgtype, text).reply_to(event),
    )
}

/// Sets a state event; `content` is its JSON object.
pub fn send_state(
    as_user: Option<&str>,
    room: &str,
    event_type: &str,
    state_key: &str,
    content: &Value,
) -> Result<String, Error> {
    let content = content.to_string();
    host::with(|h| h.send_state(as_user, room, event_type, state_key, &content))
}

/// Redacts `event`; answers the redaction's id.
pub fn redact(
    as_user: Option<&str>,
    room: &str,
    event: &str,
    reason: Option<&str>,
) -> Result<String, Error> {
    host::with(|h| h.redact(as_user, room, event, reason))
}

/// Creates a room; answers its id.
pub fn create_room(as_user: Option<&str>, options: &RoomOptions) -> Result<String, Error> {
    host::with(|h| h.create_room(as_user, options))
}

/// Joins by room id or alias; answers the room id.
pub fn join(as_user: Option<&str>, room: &str) -> Result<String, Error> {
    host::with(|h| h.join(as_user, room))
}

/// Invites `user` to `room`.
pub fn invite(as_user: Option<&str>, room: &str, user: &str) -> Result<(), Error> {
    host::with(|h| h.invite(as_user, room, user))
}

/// Leaves `room`.
pub fn leave(as_user: Option<&str>, room: &str) -> Result<(), Error> {
    host::with(|h| h.leave(as_user, room))
}

/// Kicks `user` out of `room`.
pub fn kick(
    as_user: Option<&str>,
    room: &str,
    user: &str,
    reason: Option<&str>,
) -> Result<(), Error> {
    host::with(|h| h.kick(as_user, room, user, reason))
}

/// Bans `user` from `room`.
pub fn ban(
    as_user: Option<&str>,
    room: &str,
    user: &str,
    reason: Option<&str>,
) -> Result<(), Error> {
    host::with(|h| h.ban(as_user, room, user, reason))
}

/// Sets (or with `None` removes) the display name.
pub fn set_displayname(as_user: Option<&str>, name: Option<&str>) -> Result<(), Error> {
    host::with(|h| h.set_displayname(as_user, name))
}

/// Sets (or removes) the avatar, an `mxc://` URI.
pub fn set_avatar(as_user: Option<&str>, url: Option<&str>) -> Result<(), Error> {
    host::with(|h| h.set_avatar(as_user, url))
}

/// The room an alias points to.
pub fn resolve_alias(alias: &str) -> Result<String, Error> {
    host::with(|h| h.resolve_alias(alias))
}

/// Points `alias` at `room`.
pub fn create_alias(as_user: Option<&str>, alias: &str, room: &str) -> Result<(), Error> {
    host::with(|h| h.create_alias(as_user, alias, room))
}

/// The content of a state event.
pub fn get_state(
    as_user: Option<&str>,
    room: &str,
    event_type: &str,
    state_key: &str,
) -> Result<Value, Error> {
    let text = host::with(|h| h.get_state(as_user, room, event_type, state_key))?;
    Ok(serde_json::from_str(&text)?)
}

/// One event, if `as_user` may see it.
pub fn get_event(as_user: Option<&str>, room: &str, event: &str) -> Result<Event, Error> {
    host::with(|h| h.get_event(as_user, room, event)).map(Event::from)
}

/// The members of a room `as_user` is in.
pub fn room_members(as_user: Option<&str>, room: &str) -> Result<Vec<Member>, Error> {
    host::with(|h| h.room_members(as_user, room))
}

/// The rooms `as_user` has joined.
pub fn joined_rooms(as_user: Option<&str>) -> Result<Vec<String>, Error> {
    host::with(|h| h.joined_rooms(as_user))
}

/// For each of `rooms`, in order, what `user` (anyone, such as the caller of a web endpoint)
/// may read of it now, by the server's rules: joined, readable (joined, or the room is world
/// readable; not after leaving), and whether the whole of its history is visible to them.
/// Rooms the plugin has no view of (none of its users was ever in them, its namespaces do
/// not cover them) answer nothing readable.
pub fn access_to_rooms(user: &str, rooms: &[String]) -> Result<Vec<RoomAccess>, Error> {
    let mut answers = Vec::with_capacity(rooms.len());
    for chunk in rooms.chunks(MAX_IDS_PER_CALL) {
        answers.extend(host::with(|h| h.access_to_rooms(user, chunk))?);
    }
    Ok(answers)
}

/// What `user` may read of `room` now (see [`access_to_rooms`]).
pub fn room_access(user: &str, room: &str) -> Result<RoomAccess, Error> {
    let mut answers = host::with(|h| h.access_to_rooms(user, &[room.to_string()]))?;
    Ok(answers.pop().unwrap_or(RoomAccess {
        joined: false,
        readable: false,
        whole_history: false,
    }))
}

/// Whether `user` may read `room` now: joined to it, or it is world readable.
pub fn can_read_room(user: &str, room: &str) -> Result<bool, Error> {
    Ok(room_access(user, room)?.readable)
}

/// The events of `events` that `user` may see, in the order given, by the rule of the server's
/// `/messages` (the history visibility at each event and the user's membership then). A user
/// who left still sees what came before they left: check [`access_to_rooms`] first to answer
/// only those who may read the room now. Unknown events are left out.
pub fn visible_events(user: &str, events: &[String]) -> Result<Vec<String>, Error> {
    let mut visible = Vec::with_capacity(events.len());
    for chunk in events.chunks(MAX_IDS_PER_CALL) {
        visible.extend(host::with(|h| h.visible_events(user, chunk))?);
    }
    Ok(visible)
}

/// Whether `user` may see `event` (see [`visible_events`]).
pub fn can_see_event(user: &str, event: &str) -> Result<bool, Error> {
    Ok(!host::with(|h| h.visible_events(user, &[event.to_string()]))?.is_empty())
}

/// Whether `user` is an admin of the server: who may see server-wide figures.
pub fn is_server_admin(user: &str) -> Result<bool, Error> {
    host::with(|h| h.is_server_admin(user))
}

/// Stores a file in the media repository; answers its `mxc://` URI.
pub fn upload_media(
    as_user: Option<&str>,
    content_type: &str,
    filename: Option<&str>,
    data: &[u8],
) -> Result<String, Error> {
    host::with(|h| h.upload_media(as_user, content_type, filename, data))
}

/// A file of the media repository, by its `mxc://` URI.
pub fn download_media(uri: &str) -> Result<Media, Error> {
    host::with(|h| h.download_media(uri))
}

/// Joins `event.room_id` as the plugin's sender when `member` is an invite of it and
/// `accepts` says yes (a failure to join is logged); answers whether it was such an invite.
/// The room versions whose creators (the create event's sender and its `additional_creators`)
/// outrank every power level, and are not named in `m.room.power_levels`.
const PRIVILEGED_CREATOR_VERSIONS: &[&str] = &["12"];

/// Whether `user_id` created `room` and the room's version gives creators infinite power.
fn is_privileged_creator(room: &str, user_id: &str) -> Result<bool, Error> {
    // A room whose create event cannot be read (a test host's made-up room) has no creators
    // to privilege; what it can be asked, the power levels, decides.
    let Ok(create) = get_state(None, room, "m.room.create", "") else {
        return Ok(false);
    };
    let version = create["room_version"].as_str().unwrap_or("1");
    if !PRIVILEGED_CREATOR_VERSIONS.contains(&version) {
        return Ok(false);
    }
    let additional = create["additional_creators"].as_array();
    if additional.is_some_and(|users| users.iter().any(|u| u == user_id)) {
        return Ok(true);
    }
    // The room id of these versions is the create event's id with the room's sigil.
    let Some(hash) = room.strip_prefix('!') else {
        return Ok(false);
    };
    Ok(get_event(None, room, &format!("${hash}"))?.sender == user_id)
}

/// What [`Plugin::on_membership`](crate::Plugin::on_membership) does by default, for a
/// plugin that handles memberships itself.
pub fn join_if_invited(
    event: &Event,
    member: &crate::events::Membership,
    accepts: impl FnOnce() -> bool,
) -> bool {
    if member.membership != "invite" || member.user_id != sender() {
        return false;
    }
    if accepts() {
        if let Err(e) = join(None, &event.room_id) {
            crate::log::warn(&format!("cannot join {}: {e}", event.room_id));
        }
    }
    true
}

/// Whether `user_id` may change state in `room` (`state_default` or its own level in the
/// room's power levels, or a creator of a version 12 room): who may configure a bot there.
pub fn can_change_state(room: &str, user_id: &str) -> Result<bool, Error> {
    if is_privileged_creator(room, user_id)? {
        return Ok(true);
    }
    let levels = get_state(None, room, "m.room.power_levels", "")?;
    let level = |v: &Value| {
        v.as_i64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    };
    let user = levels["users"]
        .get(user_id)
        .and_then(level)
        .or_else(|| levels.get("users_default").and_then(level))
        .unwrap_or(0);
    let needed = levels.get("state_default").and_then(level).unwrap_or(50);
    Ok(user >= needed)
}
