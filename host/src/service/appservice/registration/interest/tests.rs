use super::super::{CompiledNamespaces, Origin, Registration, Registry};
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
    Registration::from_yaml(text, Origin::File(file.into())).unwrap()
}

fn irc() -> CompiledNamespaces {
    CompiledNamespaces::compile(&registration(IRC, "irc.yaml"), SERVER).unwrap()
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
fn a_remote_users_events_match_the_namespace_but_the_user_is_not_the_services() {
    let ns = irc();
    // Sent as Synapse sends them: a regex naming no server matches every server's users.
    assert!(ns.event_interest("@irc_alice:elsewhere.org", "m.room.message", None));
    assert!(ns.event_interest(
        "@carol:elsewhere.org",
        "m.room.member",
        Some("@watched_bob:elsewhere.org")
    ));
    assert!(!ns.event_interest("@carol:elsewhere.org", "m.room.message", None));
    // Neither asked about, acted as, nor held exclusively.
    assert!(!ns.is_interested_in_user("@irc_alice:elsewhere.org"));
    assert!(!ns.is_exclusive_user("@irc_alice:elsewhere.org"));
    let slack = CompiledNamespaces::compile(&registration(SLACK, "slack.yaml"), SERVER).unwrap();
    assert!(!slack.event_interest("@slack_x:elsewhere.org", "m.room.message", None));
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
fn a_remote_user_matching_the_regex_makes_its_events_of_interest_but_not_its_rooms() {
    let ns = irc();
    let remote = "@irc_alice:elsewhere.org";
    // Federation: namespaces match remote senders as local ones (as Synapse does).
    assert!(ns.event_interest(remote, "m.room.message", None));
    assert!(ns.event_interest("@carol:example.org", "m.room.member", Some(remote)));
    // A room is wanted for its members on this server only.
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
        registry.get("irc").map(|s| &s.registration.origin),
        Some(&Origin::File("irc.yaml".into()))
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
