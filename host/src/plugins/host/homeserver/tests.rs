//! `homeserver` called on its context directly, over a server in memory: which rooms a plugin
//! has a view of, the id lists it may ask about, whom it may act as, and what it is told when
//! the server fails.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use plugboard_limits::homeserver::MAX_IDS_PER_CALL;

use super::*;
use crate::plugins::guest::Capabilities;
use crate::plugins::manifest::Manifest;
use crate::service::media::Media as StoredMedia;
use crate::service::rooms::pdu::Pdu;
use crate::service::rooms::visibility::RoomAccess as Access;
use crate::storage::StorageError;

const SENDER: &str = "@bot:example.org";

/// The plugin's namespaces: users `@bot_…`, aliases `#bot_…`, rooms `!bot_…`.
fn namespaces() -> CompiledNamespaces {
    let manifest = Manifest::parse(
        r##"
id = "bot"
version = "0.1.0"
sender_localpart = "bot"

[namespaces]
users = [{ regex = "@bot_.*", exclusive = true }]
aliases = [{ regex = "#bot_.*", exclusive = true }]
rooms = [{ regex = "!bot_.*" }]
"##,
        "plugin.toml",
    )
    .unwrap();
    CompiledNamespaces::compile(&manifest.registration(), "example.org").unwrap()
}

/// A server in memory. It lets the plugin act as its sender and as `actors`, refusing anyone
/// else as the real server refuses a user outside the namespace; every room and event is
/// readable by anyone; every call it answers is written down in `asked`.
#[derive(Default)]
struct Fake {
    /// Users with a membership (any) of each room.
    members: HashMap<String, Vec<String>>,
    aliases: HashMap<String, Vec<String>>,
    /// Every event there is, with its room.
    events: Vec<(String, String)>,
    actors: Vec<String>,
    /// Every read fails as a broken database would.
    failing: bool,
    asked: Mutex<Vec<String>>,
}

impl Fake {
    fn member(mut self, room: &str, user: &str) -> Fake {
        let users = self.members.entry(room.to_string()).or_default();
        users.push(user.to_string());
        self
    }

    fn alias(mut self, room: &str, alias: &str) -> Fake {
        let aliases = self.aliases.entry(room.to_string()).or_default();
        aliases.push(alias.to_string());
        self
    }

    fn event(mut self, event: &str, room: &str) -> Fake {
        self.events.push((event.to_string(), room.to_string()));
        self
    }

    fn note(&self, call: String) {
        self.asked.lock().unwrap().push(call);
    }

    fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }

    /// What the fake answers, written down.
    fn answer<'a, T: Send + 'a>(&'a self, call: String, value: T) -> Reply<'a, T> {
        self.note(call);
        if self.failing {
            let gone = StorageError::Failed("the database is gone".into());
            return Box::pin(async move { Err(gone.into()) });
        }
        Box::pin(async move { Ok(value) })
    }
}

/// A call the tests do not make.
fn unfaked<'a, T: Send + 'a>(what: &str) -> Reply<'a, T> {
    let e = ServiceError::Internal(format!("the fake server has no {what}"));
    Box::pin(async move { Err(e) })
}

fn sent(room: &str) -> Queued {
    Queued::Repeated(Pdu {
        stream: 1,
        event_id: "$sent".into(),
        room_id: room.into(),
        sender: SENDER.into(),
        kind: "m.room.message".into(),
        state_key: None,
        json: json!({}),
        redacted_by: None,
        txn: None,
        history_visibility: None,
        version: crate::service::room_version::DEFAULT,
    })
}

impl Homeserver for Fake {
    fn public_base_url(&self) -> String {
        "https://matrix.test".into()
    }

    fn session<'a>(&'a self, _plugin: &'a str, as_user: Option<&'a str>) -> Reply<'a, Session> {
        let user = as_user.unwrap_or(SENDER);
        if user != SENDER && !self.actors.iter().any(|a| a == user) {
            let refused = ServiceError::Forbidden(format!(
                "the application service cannot act as {user}: it is outside the service's users namespace"
            ));
            return Box::pin(async move { Err(refused) });
        }
        let user_id = match UserId::parse(user) {
            Ok(user_id) => user_id,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        let session = Session {
            user_id,
            device_id: String::new(),
            appservice: None,
        };
        Box::pin(async move { Ok(session) })
    }

    fn register<'a>(&'a self, _plugin: &'a str, _localpart: &'a str) -> Reply<'a, String> {
        unfaked("register")
    }

    fn queue_message<'a>(
        &'a self,
        session: &'a Session,
        room: &'a RoomId,
        _event_type: &'a str,
        _txn_id: Option<&'a str>,
        _content: Value,
    ) -> Reply<'a, Queued> {
        let call = format!("queue_message {} {room}", session.user_id);
        self.answer(call, sent(room))
    }

    fn queue_state<'a>(
        &'a self,
        _session: &'a Session,
        _room: &'a RoomId,
        _event_type: &'a str,
        _state_key: &'a str,
        _content: Value,
    ) -> Reply<'a, Queued> {
        unfaked("queue_state")
    }

    fn queue_redaction<'a>(
        &'a self,
        _session: &'a Session,
        _room: &'a RoomId,
        _event: &'a EventId,
        _reason: Option<&'a str>,
    ) -> Reply<'a, Queued> {
        unfaked("queue_redaction")
    }

    fn commit(&self, queued: Queued) -> Reply<'_, ()> {
        self.answer(format!("commit {}", queued.event_id()), ())
    }

    fn create_room<'a>(&'a self, _session: &'a Session, _room: CreateRoom) -> Reply<'a, String> {
        unfaked("create_room")
    }

    fn join<'a>(&'a self, user: &'a UserId, room: &'a RoomOrAlias) -> Reply<'a, RoomId> {
        let RoomOrAlias::Room(room) = room else {
            return unfaked("join by alias");
        };
        self.answer(format!("join {user} {room}"), room.clone())
    }

    fn leave<'a>(&'a self, user: &'a UserId, room: &'a RoomId) -> Reply<'a, ()> {
        self.answer(format!("leave {user} {room}"), ())
    }

    fn invite<'a>(
        &'a self,
        _sender: &'a UserId,
        _room: &'a RoomId,
        _target: &'a UserId,
    ) -> Reply<'a, ()> {
        unfaked("invite")
    }

    fn set_membership<'a>(
        &'a self,
        _sender: &'a UserId,
        _room: &'a RoomId,
        _target: &'a UserId,
        _membership: Membership,
        _reason: Option<&'a str>,
    ) -> Reply<'a, ()> {
        unfaked("set_membership")
    }

    fn kick<'a>(
        &'a self,
        _sender: &'a UserId,
        _room: &'a RoomId,
        _target: &'a UserId,
        _reason: Option<&'a str>,
    ) -> Reply<'a, ()> {
        unfaked("kick")
    }

    fn set_displayname<'a>(&'a self, _user: &'a UserId, _name: Option<&'a str>) -> Reply<'a, ()> {
        unfaked("set_displayname")
    }

    fn set_avatar_url<'a>(&'a self, _user: &'a UserId, _url: Option<&'a str>) -> Reply<'a, ()> {
        unfaked("set_avatar_url")
    }

    fn lookup_alias<'a>(&'a self, _alias: &'a RoomAlias) -> Reply<'a, String> {
        unfaked("lookup_alias")
    }

    fn create_alias<'a>(
        &'a self,
        _session: &'a Session,
        _alias: &'a RoomAlias,
        _room: &'a RoomId,
    ) -> Reply<'a, ()> {
        unfaked("create_alias")
    }

    fn readable_state<'a>(
        &'a self,
        _room: &'a RoomId,
        _user: &'a UserId,
        _event_type: &'a str,
        _state_key: &'a str,
    ) -> Reply<'a, Option<Arc<Pdu>>> {
        unfaked("readable_state")
    }

    fn visible_event<'a>(
        &'a self,
        _session: &'a Session,
        _room: &'a RoomId,
        _event: &'a EventId,
    ) -> Reply<'a, Value> {
        unfaked("visible_event")
    }

    fn member_events<'a>(
        &'a self,
        _session: &'a Session,
        _room: &'a RoomId,
    ) -> Reply<'a, Vec<Arc<Pdu>>> {
        unfaked("member_events")
    }

    fn joined_rooms<'a>(&'a self, _user: &'a str) -> Reply<'a, Vec<String>> {
        unfaked("joined_rooms")
    }

    fn room_access<'a>(&'a self, room: &'a RoomId, user: &'a UserId) -> Reply<'a, Access> {
        let open = Access {
            joined: true,
            readable: true,
            whole_history: true,
        };
        self.answer(format!("room_access {room} {user}"), open)
    }

    fn visible_events<'a>(
        &'a self,
        user: &'a UserId,
        events: &'a [String],
    ) -> Reply<'a, Vec<(String, String)>> {
        let visible = events
            .iter()
            .filter_map(|id| self.events.iter().find(|(e, _)| e == id).cloned())
            .collect();
        self.answer(format!("visible_events {user}"), visible)
    }

    fn is_admin<'a>(&'a self, user: &'a UserId) -> Reply<'a, bool> {
        self.answer(format!("is_admin {user}"), false)
    }

    fn upload_media<'a>(
        &'a self,
        _uploader: &'a str,
        _content_type: &'a str,
        _filename: Option<&'a str>,
        _data: &'a [u8],
    ) -> Reply<'a, String> {
        unfaked("upload_media")
    }

    fn download_media<'a>(
        &'a self,
        _server: &'a str,
        _media_id: &'a str,
    ) -> Reply<'a, StoredMedia> {
        unfaked("download_media")
    }

    fn has_membership<'a>(&'a self, room: &'a str, user: &'a str) -> Reply<'a, bool> {
        let member = self
            .members
            .get(room)
            .is_some_and(|users| users.iter().any(|u| u == user));
        self.answer(format!("has_membership {room} {user}"), member)
    }

    fn members<'a>(&'a self, room: &'a str) -> Reply<'a, Vec<String>> {
        let users = self.members.get(room).cloned().unwrap_or_default();
        self.answer(format!("members {room}"), users)
    }

    fn room_aliases<'a>(&'a self, room: &'a str) -> Reply<'a, Vec<String>> {
        let aliases = self.aliases.get(room).cloned().unwrap_or_default();
        self.answer(format!("room_aliases {room}"), aliases)
    }
}

/// A plugin's `homeserver` context over `server`, with the runtime its calls block on.
struct Plugin {
    ctx: HomeserverCtx,
    runtime: tokio::runtime::Runtime,
}

fn plugin(server: &Arc<Fake>) -> Plugin {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let guest = Guest::new(
        "bot".into(),
        runtime.handle().clone(),
        Capabilities::default(),
        namespaces(),
    );
    let alive = Alive(Arc::new(AtomicBool::new(true)));
    let server: Arc<dyn Homeserver> = server.clone();
    let ctx = HomeserverCtx::new(Arc::new(guest), Arc::downgrade(&server), alive);
    Plugin { ctx, runtime }
}

impl Plugin {
    fn in_view(&self, server: &Fake, room: &str) -> bool {
        let seen = in_view(server, &self.ctx.guest.namespaces, room);
        self.runtime.block_on(seen).unwrap()
    }
}

fn refusal<T: std::fmt::Debug>(answer: Answer<T>) -> Error {
    answer.expect("no trap").expect_err("a refusal")
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_room_in_the_rooms_namespace_is_in_view_without_reading_anything() {
    let server = Arc::new(Fake::default());
    let p = plugin(&server);
    assert!(p.in_view(&server, "!bot_lobby:example.org"));
    assert!(server.asked().is_empty());
}

#[test]
fn a_room_the_plugins_sender_is_or_was_in_is_in_view() {
    let server = Arc::new(Fake::default().member("!r:example.org", SENDER));
    let p = plugin(&server);
    assert!(p.in_view(&server, "!r:example.org"));
    // One row, before reading every member of a room that may be large.
    assert_eq!(
        server.asked(),
        [format!("has_membership !r:example.org {SENDER}")]
    );
}

#[test]
fn a_room_one_of_the_plugins_users_is_in_is_in_view() {
    let server = Arc::new(
        Fake::default()
            .member("!r:example.org", "@alice:example.org")
            .member("!r:example.org", "@bot_alice:example.org"),
    );
    let p = plugin(&server);
    assert!(p.in_view(&server, "!r:example.org"));
}

#[test]
fn a_room_with_an_alias_in_the_plugins_namespace_is_in_view() {
    let server = Arc::new(
        Fake::default()
            .alias("!r:example.org", "#general:example.org")
            .alias("!r:example.org", "#bot_general:example.org"),
    );
    let p = plugin(&server);
    assert!(p.in_view(&server, "!r:example.org"));
}

#[test]
fn a_room_of_strangers_is_out_of_view() {
    let server = Arc::new(
        Fake::default()
            .member("!r:example.org", "@alice:example.org")
            // The users namespace is of local users only.
            .member("!r:example.org", "@bot_alice:elsewhere.org")
            .alias("!r:example.org", "#general:example.org"),
    );
    let p = plugin(&server);
    assert!(!p.in_view(&server, "!r:example.org"));
    assert!(!p.in_view(&server, "!elsewhere:example.org"));
}

#[test]
fn access_to_rooms_answers_nothing_about_rooms_out_of_view() {
    let server = Arc::new(
        Fake::default()
            .member("!ours:example.org", "@bot_alice:example.org")
            .member("!theirs:example.org", "@alice:example.org"),
    );
    let mut p = plugin(&server);
    let rooms = strings(&["!ours:example.org", "!theirs:example.org"]);
    let answers = p
        .ctx
        .access_to_rooms("@alice:example.org".into(), rooms)
        .unwrap()
        .unwrap();
    let joined: Vec<_> = answers
        .iter()
        .map(|a| (a.joined, a.readable, a.whole_history))
        .collect();
    assert_eq!(joined, [(true, true, true), (false, false, false)]);
    let asked = server.asked();
    assert!(asked.contains(&"room_access !ours:example.org @alice:example.org".to_string()));
    assert!(!asked.iter().any(|c| c.starts_with("room_access !theirs")));
}

#[test]
fn visible_events_keeps_only_events_of_rooms_in_view_in_the_order_asked() {
    let server = Arc::new(
        Fake::default()
            .member("!ours:example.org", SENDER)
            .event("$a", "!ours:example.org")
            .event("$b", "!theirs:example.org")
            .event("$c", "!bot_lobby:example.org")
            .event("$d", "!ours:example.org"),
    );
    let mut p = plugin(&server);
    let events = strings(&["$d", "$b", "$c", "$a", "$unknown"]);
    let visible = p
        .ctx
        .visible_events("@alice:example.org".into(), events)
        .unwrap()
        .unwrap();
    assert_eq!(visible, ["$d", "$c", "$a"]);
    // Each room's view is decided once, however many of its events are asked about.
    let ours = format!("has_membership !ours:example.org {SENDER}");
    let asked = server.asked();
    assert_eq!(asked.iter().filter(|c| **c == ours).count(), 1);
}

#[test]
fn access_to_rooms_refuses_more_than_a_thousand_rooms_before_asking_the_server() {
    let server = Arc::new(Fake::default());
    let mut p = plugin(&server);
    let user = "@alice:example.org".to_string();
    let too_many = vec!["!bot_lobby:example.org".to_string(); MAX_IDS_PER_CALL + 1];
    let refused = refusal(p.ctx.access_to_rooms(user.clone(), too_many));
    assert_eq!(refused.errcode, "M_TOO_LARGE");
    assert_eq!(
        refused.message,
        format!("at most {MAX_IDS_PER_CALL} rooms a call; this one has 1001")
    );
    assert!(server.asked().is_empty());
    let most = vec!["!bot_lobby:example.org".to_string(); MAX_IDS_PER_CALL];
    let answers = p.ctx.access_to_rooms(user, most).unwrap().unwrap();
    assert_eq!(answers.len(), MAX_IDS_PER_CALL);
}

#[test]
fn visible_events_refuses_more_than_a_thousand_events_before_asking_the_server() {
    let server = Arc::new(Fake::default());
    let mut p = plugin(&server);
    let user = "@alice:example.org".to_string();
    let too_many = vec!["$e".to_string(); MAX_IDS_PER_CALL + 1];
    let refused = refusal(p.ctx.visible_events(user.clone(), too_many));
    assert_eq!(refused.errcode, "M_TOO_LARGE");
    assert_eq!(
        refused.message,
        format!("at most {MAX_IDS_PER_CALL} event ids a call; this one has 1001")
    );
    assert!(server.asked().is_empty());
    let most = vec!["$e".to_string(); MAX_IDS_PER_CALL];
    assert!(p.ctx.visible_events(user, most).unwrap().is_ok());
}

#[test]
fn one_malformed_room_or_user_id_refuses_the_whole_access_list() {
    let server = Arc::new(Fake::default());
    let mut p = plugin(&server);
    let rooms = strings(&["!bot_lobby:example.org", "lobby"]);
    let refused = refusal(p.ctx.access_to_rooms("@alice:example.org".into(), rooms));
    assert_eq!(refused.errcode, "M_INVALID_PARAM");
    assert!(refused.message.contains("'lobby'"), "{}", refused.message);
    let rooms = strings(&["!bot_lobby:example.org"]);
    let refused = refusal(p.ctx.access_to_rooms("alice".into(), rooms));
    assert_eq!(refused.errcode, "M_INVALID_PARAM");
    assert!(server.asked().is_empty());
}

#[test]
fn one_malformed_event_or_user_id_refuses_the_whole_event_list() {
    let server = Arc::new(Fake::default().event("$a", "!bot_lobby:example.org"));
    let mut p = plugin(&server);
    let events = strings(&["$a", "a"]);
    let refused = refusal(p.ctx.visible_events("@alice:example.org".into(), events));
    assert_eq!(refused.errcode, "M_INVALID_PARAM");
    assert!(refused.message.contains("'a'"), "{}", refused.message);
    let refused = refusal(p.ctx.visible_events("alice".into(), strings(&["$a"])));
    assert_eq!(refused.errcode, "M_INVALID_PARAM");
    assert!(server.asked().is_empty());
}

#[test]
fn acting_as_a_user_outside_the_namespace_is_refused_and_does_nothing() {
    let server = Arc::new(Fake {
        actors: strings(&["@bot_alice:example.org"]),
        ..Fake::default()
    });
    let mut p = plugin(&server);
    let outsider = Some("@alice:example.org".to_string());
    let room = "!bot_lobby:example.org".to_string();
    let refused = refusal(p.ctx.send_event(
        outsider.clone(),
        room.clone(),
        "m.room.message".into(),
        "{}".into(),
        None,
    ));
    assert_eq!(refused.errcode, "M_FORBIDDEN");
    assert!(refused.message.contains("@alice:example.org"));
    assert_eq!(
        refusal(p.ctx.join(outsider, room.clone())).errcode,
        "M_FORBIDDEN"
    );
    assert!(server.asked().is_empty(), "{:?}", server.asked());

    let insider = Some("@bot_alice:example.org".to_string());
    p.ctx.join(insider, room.clone()).unwrap().unwrap();
    let sent = p
        .ctx
        .send_event(None, room, "m.room.message".into(), "{}".into(), None)
        .unwrap();
    assert_eq!(sent.unwrap(), "$sent");
    assert!(server
        .asked()
        .contains(&"join @bot_alice:example.org !bot_lobby:example.org".to_string()));
}

#[test]
fn a_service_error_reaches_the_plugin_with_its_errcode_and_message() {
    let refused = to_wit("bot", ServiceError::Forbidden("not in this room".into()));
    assert_eq!(
        (refused.errcode.as_str(), refused.message.as_str()),
        ("M_FORBIDDEN", "not in this room")
    );
    let missing = to_wit("bot", ServiceError::NotFound("unknown alias #x:y".into()));
    assert_eq!(missing.errcode, "M_NOT_FOUND");
    assert_eq!(missing.message, "unknown alias #x:y");
}

#[test]
fn an_internal_failure_reaches_the_plugin_as_m_unknown_without_its_detail() {
    for e in [
        ServiceError::Internal("disk on fire".into()),
        StorageError::Failed("disk on fire".into()).into(),
    ] {
        let seen = to_wit("bot", e);
        assert_eq!(
            (seen.errcode.as_str(), seen.message.as_str()),
            ("M_UNKNOWN", "internal server error")
        );
    }
    let server = Arc::new(Fake {
        failing: true,
        ..Fake::default()
    });
    let mut p = plugin(&server);
    let refused = refusal(p.ctx.is_server_admin("@alice:example.org".into()));
    assert_eq!(
        (refused.errcode.as_str(), refused.message.as_str()),
        ("M_UNKNOWN", "internal server error")
    );
}

#[test]
fn the_public_base_url_is_the_servers_and_traps_once_the_server_is_gone() {
    let server = Arc::new(Fake::default());
    let mut p = plugin(&server);
    assert_eq!(p.ctx.public_base_url().unwrap(), "https://matrix.test");
    drop(server);
    let trapped = p.ctx.public_base_url().unwrap_err();
    assert!(trapped.downcast_ref::<ServerGone>().is_some(), "{trapped}");
}

#[test]
fn a_call_after_the_server_is_gone_traps() {
    let server = Arc::new(Fake::default());
    let mut p = plugin(&server);
    drop(server);
    let trapped = p
        .ctx
        .join(None, "!bot_lobby:example.org".into())
        .unwrap_err();
    assert!(trapped.downcast_ref::<ServerGone>().is_some(), "{trapped}");
}

#[test]
fn content_past_the_largest_event_is_refused_before_it_is_parsed() {
    let big = format!("{{\"body\": \"{}\"}}", "x".repeat(MAX_EVENT_BYTES));
    let refused = json_object(&big, "content").unwrap_err();
    assert_eq!(refused.errcode(), "M_TOO_LARGE");
    assert_eq!(
        json_object("[1]", "content").unwrap_err().errcode(),
        "M_BAD_JSON"
    );
    assert_eq!(
        json_object("{", "content").unwrap_err().errcode(),
        "M_NOT_JSON"
    );
    assert!(json_object("{\"a\": 1}", "content").is_ok());
}
