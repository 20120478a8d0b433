use super::super::test_support::{error, minimal, parse, FULL};
use super::super::{Namespace, Origin};
use super::*;

#[test]
fn refuses_a_sender_localpart_that_makes_a_user_id_over_255_bytes() {
    let long = "b".repeat(MAX_LOCALPART_BYTES + 1);
    let text = minimal("x", "").replace(
        "sender_localpart: x_bot",
        &format!("sender_localpart: {long}"),
    );
    assert!(
        error(&text).contains("sender_localpart"),
        "{}",
        error(&text)
    );
    let fits = "b".repeat(MAX_LOCALPART_BYTES);
    let text = minimal("x", "").replace(
        "sender_localpart: x_bot",
        &format!("sender_localpart: {fits}"),
    );
    assert_eq!(parse(&text).sender_localpart, fits);
}

#[test]
fn parses_every_field_of_a_synapse_registration() {
    let reg = parse(FULL);
    assert_eq!(reg.origin, Origin::File("appservice.yaml".into()));
    assert_eq!(reg.id, "irc");
    assert_eq!(reg.url.as_deref(), Some("http://127.0.0.1:9999"));
    assert_eq!(reg.as_token, "as-secret");
    assert_eq!(reg.hs_token, "hs-secret");
    assert_eq!(reg.sender_localpart, "_irc_bot");
    assert!(!reg.rate_limited);
    assert_eq!(reg.protocols, ["irc", "gitter"]);
    assert!(reg.receive_ephemeral);
    let users = &reg.namespaces.users;
    assert_eq!(users.len(), 2);
    assert_eq!(users[0].regex, r"@irc_.*:example\.org");
    assert!(users[0].exclusive);
    assert_eq!(users[1].regex, "@freenode_.*");
    assert!(!users[1].exclusive);
    assert_eq!(reg.namespaces.aliases.len(), 1);
    assert!(reg.namespaces.aliases[0].exclusive);
    assert_eq!(reg.namespaces.rooms.len(), 1);
    assert!(!reg.namespaces.rooms[0].exclusive);
}

#[test]
fn tolerates_keys_it_does_not_know() {
    let reg = parse(&minimal(
        "a",
        "ip_range_whitelist: [\"10.0.0.0/8\"]\nfoo: {bar: 1}\n",
    ));
    assert_eq!(reg.id, "a");
}

#[test]
fn a_null_url_means_no_pushes() {
    assert_eq!(parse(&minimal("a", "")).url, None);
}

#[test]
fn an_absent_url_means_no_pushes() {
    let text = "id: a\nas_token: x\nhs_token: y\nsender_localpart: bot\n";
    assert_eq!(parse(text).url, None);
}

#[test]
fn a_url_that_is_not_http_is_refused_naming_file_and_field() {
    let text = minimal("a", "").replace("url: null", "url: ftp://x");
    assert_eq!(
        error(&text),
        "appservice.yaml: field `url`: must be an http:// or https:// URL, or null for no pushes"
    );
    let text = minimal("a", "").replace("url: null", "url: 5");
    assert_eq!(
        error(&text),
        "appservice.yaml: field `url`: must be a string or null, not a number"
    );
}

#[test]
fn defaults_apply_to_every_optional_field() {
    let reg = parse(&minimal("a", ""));
    assert!(reg.rate_limited);
    assert!(reg.protocols.is_empty());
    assert!(!reg.receive_ephemeral);
    assert!(reg.namespaces.users.is_empty());
    assert!(reg.namespaces.aliases.is_empty());
    assert!(reg.namespaces.rooms.is_empty());
}

#[test]
fn a_namespace_kind_may_be_absent_or_null() {
    let reg = parse(&minimal(
        "a",
        "namespaces:\n  users: null\n  rooms:\n    - regex: '!r'\n",
    ));
    assert!(reg.namespaces.users.is_empty());
    assert!(reg.namespaces.aliases.is_empty());
    assert_eq!(reg.namespaces.rooms.len(), 1);
}

#[test]
fn exclusive_defaults_to_false() {
    let reg = parse(&minimal(
        "a",
        "namespaces:\n  users:\n    - regex: '@a_.*'\n",
    ));
    assert!(!reg.namespaces.users[0].exclusive);
}

#[test]
fn the_unstable_msc2409_key_turns_on_receive_ephemeral() {
    let reg = parse(&minimal("a", "de.sorunome.msc2409.push_ephemeral: true\n"));
    assert!(reg.receive_ephemeral);
    let reg = parse(&minimal(
        "a",
        "receive_ephemeral: false\nde.sorunome.msc2409.push_ephemeral: true\n",
    ));
    assert!(reg.receive_ephemeral);
}

#[test]
fn msc3202_is_off_unless_the_registration_opts_in_with_a_boolean() {
    assert!(!parse(&minimal("a", "")).msc3202);
    assert!(parse(&minimal("a", "org.matrix.msc3202: true\n")).msc3202);
    assert!(!parse(&minimal("a", "org.matrix.msc3202: false\n")).msc3202);
    let e = error(&minimal("a", "org.matrix.msc3202: yes please\n"));
    assert!(e.contains("org.matrix.msc3202"), "{e}");
}

#[test]
fn the_legacy_query_token_is_asked_for_explicitly() {
    assert!(!parse(&minimal("a", "")).legacy_query_token);
    assert!(parse(&minimal("a", "legacy_query_token: true\n")).legacy_query_token);
}

#[test]
fn each_missing_required_field_is_named_with_the_file() {
    for field in ["id", "as_token", "hs_token", "sender_localpart"] {
        let text: String = minimal("a", "")
            .lines()
            .filter(|line| !line.starts_with(&format!("{field}:")))
            .map(|line| format!("{line}\n"))
            .collect();
        assert_eq!(
            error(&text),
            format!("appservice.yaml: missing field `{field}`")
        );
    }
}

#[test]
fn an_empty_or_non_string_token_is_refused() {
    let text = minimal("a", "").replace("as_token: as-a", "as_token: ''");
    assert_eq!(
        error(&text),
        "appservice.yaml: field `as_token`: must not be empty"
    );
    let text = minimal("a", "").replace("hs_token: hs-a", "hs_token: 12345");
    assert_eq!(
        error(&text),
        "appservice.yaml: field `hs_token`: must be a string, not a number"
    );
}

#[test]
fn a_sender_localpart_that_needs_url_encoding_is_refused() {
    let text = minimal("a", "").replace("sender_localpart: a_bot", "sender_localpart: 'a bot'");
    assert_eq!(
        error(&text),
        "appservice.yaml: field `sender_localpart`: may only contain letters, digits and `-._~/`"
    );
}

#[test]
fn wrong_types_of_optional_fields_are_named() {
    assert_eq!(
        error(&minimal("a", "rate_limited: 'yes'\n")),
        "appservice.yaml: field `rate_limited`: must be true or false, not a string"
    );
    assert_eq!(
        error(&minimal("a", "protocols: [irc, 3]\n")),
        "appservice.yaml: field `protocols[1]`: must be a string, not a number"
    );
    assert_eq!(
        error(&minimal("a", "receive_ephemeral: 1\n")),
        "appservice.yaml: field `receive_ephemeral`: must be true or false, not a number"
    );
    assert_eq!(
        error(&minimal("a", "namespaces: [a]\n")),
        "appservice.yaml: field `namespaces`: must be a mapping of users / aliases / rooms, not a list"
    );
    assert_eq!(
        error(&minimal("a", "namespaces:\n  users:\n    - regex: '@a'\n      exclusive: 'yes'\n")),
        "appservice.yaml: field `namespaces.users[0].exclusive`: must be true or false, not a string"
    );
    assert_eq!(
        error(&minimal("a", "namespaces:\n  aliases:\n    - '#a'\n")),
        "appservice.yaml: field `namespaces.aliases[0]`: must be a {regex, exclusive} mapping, not a string"
    );
    assert_eq!(
        error(&minimal(
            "a",
            "namespaces:\n  rooms:\n    - exclusive: true\n"
        )),
        "appservice.yaml: missing field `namespaces.rooms[0].regex`"
    );
}

#[test]
fn an_invalid_regex_is_named_with_its_file_and_path() {
    let text = minimal(
        "a",
        "namespaces:\n  users:\n    - regex: '@a_.*'\n    - regex: '@b_(.*'\n",
    );
    let message = error(&text);
    assert!(
        message.starts_with("appservice.yaml: field `namespaces.users[1].regex`: invalid regex: "),
        "{message}"
    );
}

#[test]
fn an_unbalanced_group_cannot_escape_the_anchor() {
    let text = minimal("a", "namespaces:\n  users:\n    - regex: 'a)|(b'\n");
    let message = error(&text);
    assert!(
        message.starts_with("appservice.yaml: field `namespaces.users[0].regex`: invalid regex"),
        "{message}"
    );
}

#[test]
fn text_that_is_not_a_yaml_mapping_is_refused_naming_the_file() {
    let message = error("id: [unclosed\n");
    assert!(
        message.starts_with("appservice.yaml: not a valid YAML registration: "),
        "{message}"
    );
    assert_eq!(
        error("- a\n- b\n"),
        "appservice.yaml: not a valid YAML registration: the document is not a mapping of keys to values"
    );
    assert_eq!(
        error(""),
        "appservice.yaml: not a valid YAML registration: the document is not a mapping of keys to values"
    );
}

#[test]
fn regexes_are_anchored_at_the_start() {
    let ns = Namespace::new("@irc_.*", true).unwrap();
    assert_eq!(ns.anchored_pattern(), "^(?:@irc_.*)");
    assert!(ns.is_match("@irc_a:x"));
    assert!(!ns.is_match("@xirc_a:x"));
    let ns = Namespace::new("irc_.*", true).unwrap();
    assert!(!ns.is_match("@irc_a:x"), "an unanchored search would match");
}

#[test]
fn regexes_are_not_anchored_at_the_end_as_in_synapse() {
    let ns = Namespace::new("@irc_a", false).unwrap();
    assert!(ns.is_match("@irc_abc:x"));
    let ns = Namespace::new("@irc_a$", false).unwrap();
    assert!(!ns.is_match("@irc_abc:x"));
    assert!(ns.is_match("@irc_a"));
}

#[test]
fn regexes_are_case_sensitive() {
    let ns = Namespace::new("@irc_.*", false).unwrap();
    assert!(!ns.is_match("@IRC_a:x"));
    assert!(!ns.is_match("@Irc_a:x"));
}

#[test]
fn the_sender_is_the_localpart_on_our_server() {
    assert_eq!(parse(FULL).sender("example.org"), "@_irc_bot:example.org");
}

#[test]
fn debug_output_hides_the_tokens() {
    let shown = format!("{:?}", parse(FULL));
    assert!(
        !shown.contains("as-secret") && !shown.contains("hs-secret"),
        "{shown}"
    );
    assert!(shown.contains("<redacted>"));
}
