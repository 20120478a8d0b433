//! Which identifiers and events each application service is interested in, from its
//! namespaces compiled into one [`RegexSet`] per kind when the set of registrations changes.
//!
//! An event goes to a service when
//! - its sender, or (for an `m.room.member` event) its `state_key`, is in the service's users
//!   namespace or is the service's sender — the event-level part, [`Namespaces::event_interest`];
//! - or its room id is in the rooms namespace, one of the room's aliases is in the aliases
//!   namespace, or one of the room's local members is in the users namespace (or is the
//!   service's sender) — the room-level part, [`Namespaces::room_interest`].
//!
//! The room-level part does not depend on the event, so a caller computes it once per room
//! ([`Registry::room_interest`]), keeps the resulting [`Interest`] in a room → interest cache,
//! and only evaluates the cheap event-level part per event ([`Registry::interested`]).

use std::collections::{BTreeSet, HashMap};

use regex::RegexSet;

use super::registration::{validate_set, NamespaceKind, Registration, RegistrationError};
use crate::service::identifiers::parse_user_id;

/// One service's namespaces, compiled for a given server name.
#[derive(Clone, Debug)]
pub struct Namespaces {
    server_name: String,
    /// The service's own user, `@{sender_localpart}:{server_name}`.
    sender: String,
    users: RegexSet,
    exclusive_users: RegexSet,
    aliases: RegexSet,
    exclusive_aliases: RegexSet,
    rooms: RegexSet,
}

impl Namespaces {
    /// Compiles `registration`'s namespaces; `server_name` is ours, used to keep user
    /// namespaces to local users and to make the service's sender.
    pub fn compile(
        registration: &Registration,
        server_name: &str,
    ) -> Result<Namespaces, RegistrationError> {
        let set = |ns_kind: NamespaceKind, exclusive_only: bool| {
            let patterns = registration
                .namespaces
                .get(ns_kind)
                .iter()
                .filter(|ns| ns.exclusive || !exclusive_only)
                .map(|ns| ns.anchored_pattern());
            RegexSet::new(patterns).map_err(|e| RegistrationError::Invalid {
                file: registration.source.clone(),
                field: format!("namespaces.{}", ns_kind.key()),
                message: format!("the regexes do not compile together: {e}"),
            })
        };
        Ok(Namespaces {
            server_name: server_name.to_owned(),
            sender: registration.sender(server_name),
            users: set(NamespaceKind::Users, false)?,
            exclusive_users: set(NamespaceKind::Users, true)?,
            aliases: set(NamespaceKind::Aliases, false)?,
            exclusive_aliases: set(NamespaceKind::Aliases, true)?,
            rooms: set(NamespaceKind::Rooms, false)?,
        })
    }

    /// The service's own user id.
    pub fn sender(&self) -> &str {
        &self.sender
    }

    /// User namespaces match local users only: a user on another server never matches,
    /// whatever the regex says.
    fn is_local_user(&self, user_id: &str) -> bool {
        matches!(parse_user_id(user_id), Ok((_, server)) if server == self.server_name)
    }

    /// The user is the service's sender, or a local user in its users namespace.
    pub fn is_interested_in_user(&self, user_id: &str) -> bool {
        user_id == self.sender || (self.is_local_user(user_id) && self.users.is_match(user_id))
    }

    /// The user is the service's sender, or a local user in one of its exclusive users
    /// namespaces: nobody else may register or act as that user.
    pub fn is_exclusive_user(&self, user_id: &str) -> bool {
        user_id == self.sender
            || (self.is_local_user(user_id) && self.exclusive_users.is_match(user_id))
    }

    pub fn is_interested_in_alias(&self, alias: &str) -> bool {
        self.aliases.is_match(alias)
    }

    /// The alias is in one of the service's exclusive aliases namespaces.
    pub fn is_exclusive_alias(&self, alias: &str) -> bool {
        self.exclusive_aliases.is_match(alias)
    }

    pub fn is_interested_in_room(&self, room_id: &str) -> bool {
        self.rooms.is_match(room_id)
    }

    /// The room-level part of interest: the service wants every event of the room because of
    /// the room's id, one of its `aliases`, or one of its `local_members` (the room's joined
    /// members on this server). It changes only when those do, so it can be cached per room.
    pub fn room_interest(
        &self,
        room_id: &str,
        aliases: &[String],
        local_members: &[String],
    ) -> bool {
        self.is_interested_in_room(room_id)
            || aliases
                .iter()
                .any(|alias| self.is_interested_in_alias(alias))
            || local_members
                .iter()
                .any(|member| self.is_interested_in_user(member))
    }

    /// The user is one of the service's own: its sender, or in an exclusive users namespace.
    pub fn is_own_user(&self, user_id: &str) -> bool {
        self.is_exclusive_user(user_id)
    }

    /// The event-level part of interest: the event's `sender`, or the `state_key` of an
    /// `m.room.member` event (`kind` is the event type), is a user the service is interested
    /// in.
    pub fn event_interest(&self, sender: &str, kind: &str, state_key: Option<&str>) -> bool {
        self.is_interested_in_user(sender)
            || (kind == "m.room.member"
                && state_key.is_some_and(|key| self.is_interested_in_user(key)))
    }
}

/// One registered service, ready for matching.
#[derive(Clone, Debug)]
pub struct CompiledService {
    pub id: String,
    pub registration: Registration,
    pub namespaces: Namespaces,
}

impl CompiledService {
    /// Events sent by the service's own users come back to it only when its registration
    /// sets `receive_own_events` (always so for a registration file; a plugin's manifest may
    /// turn it off).
    pub fn takes_events_of(&self, sender: &str) -> bool {
        self.registration.receive_own_events || !self.namespaces.is_own_user(sender)
    }
}

/// The room-level interest of every service in one room: the ids of the services that want
/// all of the room's events. A value to cache per room; drop a room's entry when its aliases
/// or its local membership change, and the whole cache when the [`Registry`] is replaced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interest {
    services: BTreeSet<String>,
}

impl Interest {
    /// The service wants every event of this room.
    pub fn wants_room(&self, service_id: &str) -> bool {
        self.services.contains(service_id)
    }

    /// The service wants this event of this room: the room-level part, or else the event-level
    /// part ([`Namespaces::event_interest`]).
    pub fn wants(
        &self,
        service: &CompiledService,
        sender: &str,
        kind: &str,
        state_key: Option<&str>,
    ) -> bool {
        self.wants_room(&service.id) || service.namespaces.event_interest(sender, kind, state_key)
    }
}

/// Every registered service, compiled. Built once per change of the set of registrations.
#[derive(Clone, Debug)]
pub struct Registry {
    services: Vec<CompiledService>,
    /// `as_token` → index in `services`.
    by_as_token: HashMap<String, usize>,
}

impl Registry {
    /// Checks the set ([`validate_set`]) and compiles every service for `server_name`.
    pub fn new(
        registrations: Vec<Registration>,
        server_name: &str,
    ) -> Result<Registry, RegistrationError> {
        validate_set(&registrations)?;
        let mut services = Vec::with_capacity(registrations.len());
        let mut by_as_token = HashMap::with_capacity(registrations.len());
        for registration in registrations {
            let namespaces = Namespaces::compile(&registration, server_name)?;
            by_as_token.insert(registration.as_token.clone(), services.len());
            services.push(CompiledService {
                id: registration.id.clone(),
                registration,
                namespaces,
            });
        }
        Ok(Registry {
            services,
            by_as_token,
        })
    }

    /// No services at all.
    pub fn empty() -> Registry {
        Registry {
            services: Vec::new(),
            by_as_token: HashMap::new(),
        }
    }

    pub fn services(&self) -> &[CompiledService] {
        &self.services
    }

    pub fn get(&self, id: &str) -> Option<&CompiledService> {
        self.services.iter().find(|service| service.id == id)
    }

    /// The service that authenticates with `token`.
    pub fn by_as_token(&self, token: &str) -> Option<&CompiledService> {
        self.by_as_token.get(token).map(|&i| &self.services[i])
    }

    /// The id of the service that holds `user_id` exclusively (its sender, or a local user in
    /// one of its exclusive users namespaces). [`validate_set`] ensures there is at most one.
    pub fn exclusive_owner_of_user(&self, user_id: &str) -> Option<&str> {
        self.services
            .iter()
            .find(|service| service.namespaces.is_exclusive_user(user_id))
            .map(|service| service.id.as_str())
    }

    /// The id of the service that holds `alias` exclusively.
    pub fn exclusive_owner_of_alias(&self, alias: &str) -> Option<&str> {
        self.services
            .iter()
            .find(|service| service.namespaces.is_exclusive_alias(alias))
            .map(|service| service.id.as_str())
    }

    /// The room-level interest of every service in one room (see [`Interest`]).
    pub fn room_interest(
        &self,
        room_id: &str,
        aliases: &[String],
        local_members: &[String],
    ) -> Interest {
        Interest {
            services: self
                .services
                .iter()
                .filter(|service| {
                    service
                        .namespaces
                        .room_interest(room_id, aliases, local_members)
                })
                .map(|service| service.id.clone())
                .collect(),
        }
    }

    /// The services that want one event, given its room's (possibly cached) `room` interest.
    pub fn interested<'a>(
        &'a self,
        room: &'a Interest,
        sender: &'a str,
        kind: &'a str,
        state_key: Option<&'a str>,
    ) -> impl Iterator<Item = &'a CompiledService> + 'a {
        self.services
            .iter()
            .filter(move |service| room.wants(service, sender, kind, state_key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: &str = "example.org";

    const IRC: &str = r#"
id: irc
url: "http://127.0.0.1:9999"
as_token: irc-as
hs_token: irc-hs
sender_localpart: _irc_bot
namespaces:
  users:
    - exclusive: true
      regex: '@irc_.*'
    - regex: '@watched_.*'
  aliases:
    - exclusive: true
      regex: '#irc_.*'
    - regex: '#shared_.*'
  rooms:
    - regex: '!bridged.*'
"#;

    const SLACK: &str = r#"
id: slack
url: null
as_token: slack-as
hs_token: slack-hs
sender_localpart: slackbot
namespaces:
  users:
    - exclusive: true
      regex: '@slack_.*:example\.org'
"#;

    fn registration(text: &str, file: &str) -> Registration {
        Registration::from_yaml(text, file).unwrap()
    }

    fn irc() -> Namespaces {
        Namespaces::compile(&registration(IRC, "irc.yaml"), SERVER).unwrap()
    }

    fn registry() -> Registry {
        Registry::new(
            vec![
                registration(IRC, "irc.yaml"),
                registration(SLACK, "slack.yaml"),
            ],
            SERVER,
        )
        .unwrap()
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn user_namespaces_match_local_users_only() {
        let ns = irc();
        assert!(ns.is_interested_in_user("@irc_alice:example.org"));
        assert!(!ns.is_interested_in_user("@irc_alice:elsewhere.org"));
        assert!(!ns.is_interested_in_user("@irc_alice:example.org.evil"));
        assert!(!ns.is_interested_in_user("@irc_alice"));
        assert!(ns.is_exclusive_user("@irc_alice:example.org"));
        assert!(!ns.is_exclusive_user("@irc_alice:elsewhere.org"));
    }

    #[test]
    fn user_matching_is_anchored_and_case_sensitive() {
        let ns = irc();
        assert!(!ns.is_interested_in_user("@xirc_a:example.org"));
        assert!(!ns.is_interested_in_user("@IRC_a:example.org"));
    }

    #[test]
    fn the_sender_is_always_of_interest_and_exclusive() {
        let ns = irc();
        assert_eq!(ns.sender(), "@_irc_bot:example.org");
        assert!(ns.is_interested_in_user("@_irc_bot:example.org"));
        assert!(ns.is_exclusive_user("@_irc_bot:example.org"));
        assert!(!ns.is_interested_in_user("@_irc_bot:elsewhere.org"));
    }

    #[test]
    fn only_exclusive_namespaces_make_a_user_or_alias_exclusive() {
        let ns = irc();
        assert!(ns.is_interested_in_user("@watched_bob:example.org"));
        assert!(!ns.is_exclusive_user("@watched_bob:example.org"));
        assert!(ns.is_interested_in_alias("#shared_x:example.org"));
        assert!(!ns.is_exclusive_alias("#shared_x:example.org"));
        assert!(ns.is_exclusive_alias("#irc_x:example.org"));
    }

    #[test]
    fn aliases_and_rooms_match_their_namespaces() {
        let ns = irc();
        assert!(ns.is_interested_in_alias("#irc_freenode:example.org"));
        assert!(!ns.is_interested_in_alias("#other:example.org"));
        assert!(ns.is_interested_in_room("!bridged123:example.org"));
        assert!(!ns.is_interested_in_room("!plain:example.org"));
    }

    #[test]
    fn an_event_from_a_namespaced_sender_is_of_interest() {
        assert!(irc().event_interest("@irc_alice:example.org", "m.room.message", None));
    }

    #[test]
    fn an_event_from_the_services_own_sender_is_of_interest() {
        assert!(irc().event_interest("@_irc_bot:example.org", "m.room.message", None));
    }

    #[test]
    fn a_member_event_about_a_namespaced_user_is_of_interest() {
        assert!(irc().event_interest(
            "@carol:example.org",
            "m.room.member",
            Some("@irc_alice:example.org")
        ));
    }

    #[test]
    fn a_state_key_only_counts_for_member_events() {
        assert!(!irc().event_interest(
            "@carol:example.org",
            "m.room.topic",
            Some("@irc_alice:example.org")
        ));
    }

    #[test]
    fn a_room_in_the_rooms_namespace_is_of_interest() {
        assert!(irc().room_interest("!bridged1:example.org", &[], &[]));
    }

    #[test]
    fn a_room_with_a_namespaced_alias_is_of_interest() {
        let aliases = strings(&["#plain:example.org", "#irc_chat:example.org"]);
        assert!(irc().room_interest("!plain:example.org", &aliases, &[]));
    }

    #[test]
    fn a_room_with_a_namespaced_local_member_is_of_interest() {
        let members = strings(&["@carol:example.org", "@irc_alice:example.org"]);
        assert!(irc().room_interest("!plain:example.org", &[], &members));
        let members = strings(&["@_irc_bot:example.org"]);
        assert!(irc().room_interest("!plain:example.org", &[], &members));
    }

    #[test]
    fn an_unrelated_sender_in_an_unrelated_room_is_not_of_interest() {
        let ns = irc();
        let aliases = strings(&["#plain:example.org"]);
        let members = strings(&["@carol:example.org", "@dave:example.org"]);
        assert!(!ns.room_interest("!plain:example.org", &aliases, &members));
        assert!(!ns.event_interest("@carol:example.org", "m.room.message", None));
        assert!(!ns.event_interest(
            "@carol:example.org",
            "m.room.member",
            Some("@dave:example.org")
        ));
    }

    #[test]
    fn a_remote_user_matching_the_regex_text_is_not_of_interest() {
        let ns = irc();
        let remote = "@irc_alice:elsewhere.org";
        assert!(!ns.event_interest(remote, "m.room.message", None));
        assert!(!ns.event_interest("@carol:example.org", "m.room.member", Some(remote)));
        assert!(!ns.room_interest("!plain:example.org", &[], &strings(&[remote])));
    }

    #[test]
    fn the_registry_refuses_a_conflicting_set_naming_the_file() {
        let clash = SLACK
            .replace("id: slack", "id: irc2")
            .replace("slack-as", "x-as")
            .replace("slack-hs", "x-hs")
            .replace(r"@slack_.*:example\.org", "@irc_x.*");
        let err = Registry::new(
            vec![
                registration(IRC, "irc.yaml"),
                registration(&clash, "clash.yaml"),
            ],
            SERVER,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with(
                "clash.yaml: field `namespaces.users[0].regex`: exclusive namespace `@irc_x.*`"
            ),
            "{err}"
        );
    }

    #[test]
    fn the_registry_finds_the_exclusive_owner_of_a_user() {
        let registry = registry();
        assert_eq!(
            registry.exclusive_owner_of_user("@irc_a:example.org"),
            Some("irc")
        );
        assert_eq!(
            registry.exclusive_owner_of_user("@slack_a:example.org"),
            Some("slack")
        );
        assert_eq!(
            registry.exclusive_owner_of_user("@slackbot:example.org"),
            Some("slack")
        );
        assert_eq!(
            registry.exclusive_owner_of_user("@watched_a:example.org"),
            None
        );
        assert_eq!(
            registry.exclusive_owner_of_user("@irc_a:elsewhere.org"),
            None
        );
        assert_eq!(registry.exclusive_owner_of_user("@carol:example.org"), None);
    }

    #[test]
    fn the_registry_finds_the_exclusive_owner_of_an_alias() {
        let registry = registry();
        assert_eq!(
            registry.exclusive_owner_of_alias("#irc_a:example.org"),
            Some("irc")
        );
        assert_eq!(
            registry.exclusive_owner_of_alias("#shared_a:example.org"),
            None
        );
        assert_eq!(
            registry.exclusive_owner_of_alias("#other:example.org"),
            None
        );
    }

    #[test]
    fn the_registry_finds_a_service_by_as_token_only() {
        let registry = registry();
        assert_eq!(
            registry.by_as_token("slack-as").map(|s| s.id.as_str()),
            Some("slack")
        );
        assert_eq!(
            registry.by_as_token("irc-as").map(|s| s.id.as_str()),
            Some("irc")
        );
        assert!(registry.by_as_token("irc-hs").is_none());
        assert!(registry.by_as_token("").is_none());
        assert_eq!(
            registry.get("irc").map(|s| s.registration.source.as_str()),
            Some("irc.yaml")
        );
        assert!(Registry::empty().by_as_token("irc-as").is_none());
    }

    #[test]
    fn a_cached_room_interest_combines_with_each_events_interest() {
        let registry = registry();
        let members = strings(&["@irc_alice:example.org", "@carol:example.org"]);
        let room = registry.room_interest("!plain:example.org", &[], &members);
        assert!(room.wants_room("irc"));
        assert!(!room.wants_room("slack"));

        let ids = |sender: &str, kind: &str, state_key: Option<&str>| -> Vec<String> {
            registry
                .interested(&room, sender, kind, state_key)
                .map(|s| s.id.clone())
                .collect()
        };
        assert_eq!(ids("@carol:example.org", "m.room.message", None), ["irc"]);
        assert_eq!(
            ids("@slack_x:example.org", "m.room.message", None),
            ["irc", "slack"]
        );
        assert_eq!(
            ids(
                "@carol:example.org",
                "m.room.member",
                Some("@slackbot:example.org")
            ),
            ["irc", "slack"]
        );

        let quiet =
            registry.room_interest("!plain:example.org", &[], &strings(&["@carol:example.org"]));
        assert_eq!(quiet, Interest::default());
        assert!(ids_for(&registry, &quiet, "@carol:example.org").is_empty());
        assert!(ids_for(&registry, &quiet, "@slack_x:elsewhere.org").is_empty());
    }

    fn ids_for(registry: &Registry, room: &Interest, sender: &str) -> Vec<String> {
        registry
            .interested(room, sender, "m.room.message", None)
            .map(|s| s.id.clone())
            .collect()
    }
}
