//! `homeserver`: the plugin acting in rooms as one of its users. Every function takes the
//! user it acts as (its sender when none), checked as an appservice's `?user_id=` is
//! ([`Homeserver::session`]), and calls the same service as the client API's endpoint for it
//! through the narrow [`Homeserver`] trait (the runtime's [`backend`](crate::plugins::backend)
//! answers it with the real services, a unit test with a fake); the service's error comes
//! back to the plugin with its Matrix errcode.
//!
//! Sending (events, state, redactions) answers once the event is built, checked and queued
//! for the group commit, without waiting for the commit itself: a bot that answers each of a
//! transaction's events pays one commit for all of them instead of one each. That is safe
//! because the writer commits in queue order: the queue's acknowledgement of the transaction
//! is queued after the events the plugin sent for it, so it is never stored without them.
//! Every other function first waits for the sends still committing, so a plugin reads what
//! it wrote.
//!
//! `access-to-rooms` and `visible-events` answer for any user (the caller of a plugin's web
//! endpoint, say) with the rules of `/messages` ([`Viewer`](crate::service::rooms::visibility::Viewer)),
//! about rooms the plugin has a view of only ([`in_view`]): it learns nothing of the others.

use std::future::Future;
use std::sync::{Arc, Weak};

use serde_json::{json, Map, Value};
use wasmtime::component::{HasSelf, Linker};

use crate::plugins::bindings::homeserver::{self, Host, Media, Member, RoomAccess, RoomOptions};
use crate::plugins::bindings::{Error, Event};
use crate::plugins::convert;
use crate::plugins::guest::{Alive, Guest, ServerGone};
use crate::service::appservice::registration::CompiledNamespaces;
use crate::service::identifiers::{EventId, RoomAlias, RoomId, RoomOrAlias, UserId};
use crate::service::rooms::create::{CreateRoom, CreateRoomBody};
use crate::service::rooms::timeline::{Queued, MAX_EVENT_BYTES};
use crate::service::rooms::values::Membership;
use crate::service::users::Session;
use crate::service::Error as ServiceError;

mod server;
pub(crate) use server::{Homeserver, Reply};

type Answer<T> = wasmtime::Result<Result<T, Error>>;

/// Links `homeserver` into `linker`, its host found in the store's data by `get`.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut HomeserverCtx,
) -> wasmtime::Result<()> {
    homeserver::add_to_linker::<T, HasSelf<HomeserverCtx>>(linker, get)
}

pub(crate) struct HomeserverCtx {
    guest: Arc<Guest>,
    /// The server it calls; gone when the server shuts down.
    server: Weak<dyn Homeserver>,
    alive: Alive,
    /// Sends whose commit is still to come.
    committing: Vec<tokio::task::JoinHandle<()>>,
}

/// A service error as the plugin sees it: the errcode and message a client would get, and
/// for internal failures only that something went wrong (the detail goes to the log).
pub(crate) fn to_wit(plugin: &str, e: ServiceError) -> Error {
    if e.is_internal() {
        tracing::error!(plugin, error = %e, "internal error in a plugin's host call");
        return Error::new("M_UNKNOWN", "internal server error");
    }
    Error::new(e.errcode(), e.to_string())
}

/// `text` as a JSON object. Text longer than the largest event is refused before parsing:
/// nothing it could become would be stored.
fn json_object(text: &str, what: &str) -> Result<Value, ServiceError> {
    if text.len() > MAX_EVENT_BYTES {
        return Err(ServiceError::TooLarge(format!(
            "{what} is {} bytes; an event is at most {MAX_EVENT_BYTES}",
            text.len()
        )));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(v) if v.is_object() => Ok(v),
        Ok(_) => Err(ServiceError::BadJson(format!(
            "{what} must be a JSON object"
        ))),
        Err(e) => Err(ServiceError::NotJson(format!("{what} is not JSON: {e}"))),
    }
}

/// Refuses a list of ids past [`MAX_IDS_PER_CALL`](plugboard_limits::homeserver::MAX_IDS_PER_CALL) (an `M_TOO_LARGE`, as the limit says).
fn check_list(len: usize, what: &str) -> Result<(), ServiceError> {
    plugboard_limits::homeserver::check_ids(len, what)
        .map_err(|refused| ServiceError::TooLarge(refused.message))
}

/// Whether the plugin has a view of `room`: its rooms namespace or an alias of the room in its
/// aliases namespace covers it, or one of its users is or was a member (joined, invited, left,
/// banned). Only about such rooms does it learn who else may read what: of others it has
/// nothing to serve.
async fn in_view(
    s: &dyn Homeserver,
    namespaces: &CompiledNamespaces,
    room: &str,
) -> Result<bool, ServiceError> {
    if namespaces.is_interested_in_room(room) {
        return Ok(true);
    }
    // The plugin's own user is the usual member (the rooms a plugin serves are those it was
    // invited to): one row, before a read of every membership of a room that may be large.
    if s.has_membership(room, namespaces.sender()).await? {
        return Ok(true);
    }
    let members = s.members(room).await?;
    if members.iter().any(|m| namespaces.is_interested_in_user(m)) {
        return Ok(true);
    }
    Ok(s.room_aliases(room)
        .await?
        .iter()
        .any(|a| namespaces.is_interested_in_alias(a)))
}

impl HomeserverCtx {
    pub(crate) fn new(
        guest: Arc<Guest>,
        server: Weak<dyn Homeserver>,
        alive: Alive,
    ) -> HomeserverCtx {
        HomeserverCtx {
            guest,
            server,
            alive,
            committing: Vec::new(),
        }
    }

    /// The server, or a trap when it is shutting down.
    fn server(&self) -> wasmtime::Result<Arc<dyn Homeserver>> {
        self.server.upgrade().ok_or_else(|| ServerGone.into())
    }

    /// Waits for the sends still committing. One that fails to commit means the writer has
    /// stopped (it logs why): nothing later is stored either, this call's acknowledgement
    /// included, so the transaction comes again after a restart.
    fn flush(&mut self) {
        if self.committing.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.committing);
        self.guest.block_on(async move {
            for task in pending {
                let _ = task.await;
            }
        });
    }

    /// Runs `f` with the server and the session of `as_user`.
    fn act<T, F, Fut>(&mut self, as_user: Option<String>, f: F) -> Answer<T>
    where
        F: FnOnce(Arc<dyn Homeserver>, Session) -> Fut,
        Fut: Future<Output = Result<T, ServiceError>>,
    {
        self.alive.check()?;
        let s = self.server()?;
        let id = self.guest.id.clone();
        self.flush();
        let answer = self.guest.block_on(async move {
            let session = s.session(&id, as_user.as_deref()).await?;
            f(s, session).await
        });
        Ok(answer.map_err(|e| to_wit(&self.guest.id, e)))
    }

    /// Runs `f` with the server, acting as nobody in particular.
    fn ask<T, F, Fut>(&mut self, f: F) -> Answer<T>
    where
        F: FnOnce(Arc<dyn Homeserver>) -> Fut,
        Fut: Future<Output = Result<T, ServiceError>>,
    {
        self.alive.check()?;
        let s = self.server()?;
        self.flush();
        let answer = self.guest.block_on(f(s));
        Ok(answer.map_err(|e| to_wit(&self.guest.id, e)))
    }

    /// Runs `f`, which queues an event as `as_user`, and answers its id at once; its commit
    /// is waited for by the next call that is not a send.
    fn send<F, Fut>(&mut self, as_user: Option<String>, f: F) -> Answer<String>
    where
        F: FnOnce(Arc<dyn Homeserver>, Session) -> Fut,
        Fut: Future<Output = Result<Queued, ServiceError>>,
    {
        self.alive.check()?;
        let s = self.server()?;
        let id = self.guest.id.clone();
        let queued = self.guest.block_on({
            let s = s.clone();
            async move {
                let session = s.session(&id, as_user.as_deref()).await?;
                f(s, session).await
            }
        });
        match queued {
            Ok(queued) => {
                let event_id = queued.event_id().to_string();
                self.committing.retain(|task| !task.is_finished());
                let plugin = self.guest.id.clone();
                self.committing.push(self.guest.spawn(async move {
                    if let Err(e) = s.commit(queued).await {
                        tracing::error!(plugin, error = %e, "a plugin's event was not stored");
                    }
                }));
                Ok(Ok(event_id))
            }
            Err(e) => Ok(Err(to_wit(&self.guest.id, e))),
        }
    }
}

impl Host for HomeserverCtx {
    fn sender(&mut self) -> wasmtime::Result<String> {
        Ok(self.guest.namespaces.sender().to_string())
    }

    fn public_base_url(&mut self) -> wasmtime::Result<String> {
        self.alive.check()?;
        Ok(self.server()?.public_base_url())
    }

    fn register_user(&mut self, localpart: String) -> Answer<String> {
        let id = self.guest.id.clone();
        self.ask(|s| async move { s.register(&id, &localpart).await })
    }

    fn send_event(
        &mut self,
        as_user: Option<String>,
        room: String,
        event_type: String,
        content: String,
        txn_id: Option<String>,
    ) -> Answer<String> {
        self.send(as_user, |s, session| async move {
            let content = json_object(&content, "content")?;
            let room = RoomId::parse(room)?;
            s.queue_message(&session, &room, &event_type, txn_id.as_deref(), content)
                .await
        })
    }

    fn send_state(
        &mut self,
        as_user: Option<String>,
        room: String,
        event_type: String,
        state_key: String,
        content: String,
    ) -> Answer<String> {
        self.send(as_user, |s, session| async move {
            let content = json_object(&content, "content")?;
            let room = RoomId::parse(room)?;
            s.queue_state(&session, &room, &event_type, &state_key, content)
                .await
        })
    }

    fn redact(
        &mut self,
        as_user: Option<String>,
        room: String,
        event: String,
        reason: Option<String>,
    ) -> Answer<String> {
        self.send(as_user, |s, session| async move {
            let (room, event) = (RoomId::parse(room)?, EventId::parse(event)?);
            s.queue_redaction(&session, &room, &event, reason.as_deref())
                .await
        })
    }

    fn create_room(&mut self, as_user: Option<String>, options: RoomOptions) -> Answer<String> {
        self.act(as_user, |s, session| async move {
            let mut body = Map::new();
            let mut put = |k: &str, v: Option<String>| {
                if let Some(v) = v {
                    body.insert(k.into(), json!(v));
                }
            };
            put("name", options.name);
            put("topic", options.topic);
            put("room_alias_name", options.alias_name);
            put("preset", options.preset);
            body.insert(
                "visibility".into(),
                json!(if options.public { "public" } else { "private" }),
            );
            body.insert("is_direct".into(), json!(options.is_direct));
            body.insert("invite".into(), json!(options.invite));
            if let Some(extra) = options.extra {
                if let Value::Object(extra) = json_object(&extra, "extra")? {
                    body.extend(extra);
                }
            }
            let body: CreateRoomBody = serde_json::from_value(Value::Object(body))
                .map_err(|e| ServiceError::BadJson(format!("room options: {e}")))?;
            s.create_room(&session, CreateRoom::try_from(body)?).await
        })
    }

    fn join(&mut self, as_user: Option<String>, room: String) -> Answer<String> {
        self.act(as_user, |s, session| async move {
            let room_id = s
                .join(&session.user_id, &RoomOrAlias::parse(&room)?)
                .await?;
            Ok(room_id.into())
        })
    }

    fn invite(&mut self, as_user: Option<String>, room: String, user: String) -> Answer<()> {
        self.act(as_user, |s, session| async move {
            let room = RoomId::parse(room)?;
            s.invite(&session.user_id, &room, &UserId::parse(user)?)
                .await
        })
    }

    fn leave(&mut self, as_user: Option<String>, room: String) -> Answer<()> {
        self.act(as_user, |s, session| async move {
            let room = RoomId::parse(room)?;
            s.leave(&session.user_id, &room).await
        })
    }

    fn kick(
        &mut self,
        as_user: Option<String>,
        room: String,
        user: String,
        reason: Option<String>,
    ) -> Answer<()> {
        self.act(as_user, |s, session| async move {
            let (room, user) = (RoomId::parse(room)?, UserId::parse(user)?);
            s.kick(&session.user_id, &room, &user, reason.as_deref())
                .await
        })
    }

    fn ban(
        &mut self,
        as_user: Option<String>,
        room: String,
        user: String,
        reason: Option<String>,
    ) -> Answer<()> {
        self.act(as_user, |s, session| async move {
            let (room, user) = (RoomId::parse(room)?, UserId::parse(user)?);
            let (me, why) = (&session.user_id, reason.as_deref());
            s.set_membership(me, &room, &user, Membership::Ban, why)
                .await
        })
    }

    fn set_displayname(&mut self, as_user: Option<String>, name: Option<String>) -> Answer<()> {
        self.act(as_user, |s, session| async move {
            s.set_displayname(&session.user_id, name.as_deref()).await
        })
    }

    fn set_avatar(&mut self, as_user: Option<String>, url: Option<String>) -> Answer<()> {
        self.act(as_user, |s, session| async move {
            s.set_avatar_url(&session.user_id, url.as_deref()).await
        })
    }

    fn resolve_alias(&mut self, alias: String) -> Answer<String> {
        self.ask(|s| async move { s.lookup_alias(&RoomAlias::parse(alias)?).await })
    }

    fn create_alias(&mut self, as_user: Option<String>, alias: String, room: String) -> Answer<()> {
        self.act(as_user, |s, session| async move {
            let room = RoomId::parse(room)?;
            s.create_alias(&session, &RoomAlias::parse(alias)?, &room)
                .await
        })
    }

    fn get_state(
        &mut self,
        as_user: Option<String>,
        room: String,
        event_type: String,
        state_key: String,
    ) -> Answer<String> {
        self.act(as_user, |s, session| async move {
            let room = RoomId::parse(room)?;
            match s
                .readable_state(&room, &session.user_id, &event_type, &state_key)
                .await?
            {
                Some(p) => Ok(p.content().to_string()),
                None => Err(ServiceError::NotFound(format!(
                    "no {event_type} state with key '{state_key}'"
                ))),
            }
        })
    }

    fn get_event(&mut self, as_user: Option<String>, room: String, event: String) -> Answer<Event> {
        let guest = self.guest.clone();
        self.act(as_user, |s, session| async move {
            let (room, event) = (RoomId::parse(room)?, EventId::parse(event)?);
            let e = s.visible_event(&session, &room, &event).await?;
            Ok(convert::event(&e, &guest.namespaces))
        })
    }

    fn room_members(&mut self, as_user: Option<String>, room: String) -> Answer<Vec<Member>> {
        self.act(as_user, |s, session| async move {
            let members = s.member_events(&session, &RoomId::parse(room)?).await?;
            Ok(members
                .iter()
                .map(|p| Member {
                    user_id: p.state_key.clone().unwrap_or_default(),
                    membership: p.membership().map_or("", Membership::as_str).to_string(),
                    displayname: p.content()["displayname"].as_str().map(str::to_string),
                })
                .collect())
        })
    }

    fn joined_rooms(&mut self, as_user: Option<String>) -> Answer<Vec<String>> {
        self.act(as_user, |s, session| async move {
            s.joined_rooms(&session.user_id).await
        })
    }

    fn access_to_rooms(&mut self, user: String, rooms: Vec<String>) -> Answer<Vec<RoomAccess>> {
        let guest = self.guest.clone();
        self.ask(|s| async move {
            check_list(rooms.len(), "rooms")?;
            let user = UserId::parse(user)?;
            let rooms = rooms
                .into_iter()
                .map(RoomId::parse)
                .collect::<Result<Vec<_>, _>>()?;
            let mut answers = Vec::with_capacity(rooms.len());
            for room in &rooms {
                let access = if in_view(&*s, &guest.namespaces, room).await? {
                    s.room_access(room, &user).await?
                } else {
                    Default::default()
                };
                answers.push(RoomAccess {
                    joined: access.joined,
                    readable: access.readable,
                    whole_history: access.whole_history,
                });
            }
            Ok(answers)
        })
    }

    fn visible_events(&mut self, user: String, events: Vec<String>) -> Answer<Vec<String>> {
        let guest = self.guest.clone();
        self.ask(|s| async move {
            check_list(events.len(), "event ids")?;
            let user = UserId::parse(user)?;
            for event in &events {
                EventId::parse(event.as_str())?;
            }
            let visible = s.visible_events(&user, &events).await?;
            let mut view = std::collections::HashMap::new();
            let mut answer = Vec::with_capacity(visible.len());
            for (event, room) in visible {
                let seen = match view.get(&room) {
                    Some(seen) => *seen,
                    None => {
                        let seen = in_view(&*s, &guest.namespaces, &room).await?;
                        view.insert(room, seen);
                        seen
                    }
                };
                if seen {
                    answer.push(event);
                }
            }
            Ok(answer)
        })
    }

    fn is_server_admin(&mut self, user: String) -> Answer<bool> {
        self.ask(|s| async move { s.is_admin(&UserId::parse(user)?).await })
    }

    fn upload_media(
        &mut self,
        as_user: Option<String>,
        content_type: String,
        filename: Option<String>,
        data: Vec<u8>,
    ) -> Answer<String> {
        self.act(as_user, |s, session| async move {
            let name = filename.as_deref();
            s.upload_media(&session.user_id, &content_type, name, &data)
                .await
        })
    }

    fn download_media(&mut self, uri: String) -> Answer<Media> {
        self.ask(|s| async move {
            let Some((server, media_id)) = uri
                .strip_prefix("mxc://")
                .and_then(|rest| rest.split_once('/'))
            else {
                return Err(ServiceError::InvalidParam(format!(
                    "'{uri}' is not an mxc:// URI"
                )));
            };
            let m = s.download_media(server, media_id).await?;
            Ok(Media {
                content_type: m.content_type,
                filename: m.filename,
                data: m.bytes,
            })
        })
    }
}

#[cfg(test)]
mod tests;
