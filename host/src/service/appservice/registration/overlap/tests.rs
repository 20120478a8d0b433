use super::super::test_support::{parse, service, set_error, FULL};
use super::super::{Namespace, Origin};
use super::*;

#[test]
fn a_set_of_distinct_services_is_accepted() {
    let a = service("a", &[("@a_.*", true)]);
    let b = service("b", &[("@b_.*", true)]);
    validate_set(&[a, b]).unwrap();
    validate_set(&[parse(FULL)]).unwrap();
    validate_set(&[]).unwrap();
}

#[test]
fn a_duplicate_id_is_refused_naming_both_files() {
    let a = service("a", &[]);
    let mut b = service("b", &[]);
    b.id = "a".into();
    assert_eq!(
        set_error(&[a, b]),
        "b.yaml: field `id`: `a` is already the id of appservice `a` (a.yaml)"
    );
}

#[test]
fn a_duplicate_as_token_is_refused() {
    let a = service("a", &[]);
    let mut b = service("b", &[]);
    b.as_token = a.as_token.clone();
    assert_eq!(
        set_error(&[a, b]),
        "b.yaml: field `as_token`: the same as_token is already used by appservice `a` (a.yaml)"
    );
}

#[test]
fn a_duplicate_hs_token_is_refused() {
    let a = service("a", &[]);
    let mut b = service("b", &[]);
    b.hs_token = a.hs_token.clone();
    assert_eq!(
        set_error(&[a, b]),
        "b.yaml: field `hs_token`: the same hs_token is already used by appservice `a` (a.yaml)"
    );
}

#[test]
fn an_as_token_equal_to_another_services_hs_token_is_refused() {
    let a = service("a", &[]);
    let mut b = service("b", &[]);
    b.as_token = a.hs_token.clone();
    assert_eq!(
        set_error(&[a.clone(), b]),
        "b.yaml: field `as_token`: equals the hs_token of appservice `a` (a.yaml)"
    );
    let mut b = service("b", &[]);
    b.hs_token = a.as_token.clone();
    assert_eq!(
        set_error(&[a, b]),
        "b.yaml: field `hs_token`: equals the as_token of appservice `a` (a.yaml)"
    );
}

#[test]
fn overlapping_exclusive_user_namespaces_are_refused_with_an_example() {
    let a = service("a", &[("@irc_.*", true)]);
    let b = service("b", &[("@other_.*", false), ("@irc_bridge_.*", true)]);
    assert_eq!(
        set_error(&[a, b]),
        "b.yaml: field `namespaces.users[1].regex`: exclusive namespace `@irc_bridge_.*` \
         overlaps exclusive namespace `@irc_.*` of appservice `a` (a.yaml, field \
         `namespaces.users[0].regex`): both match `@irc_bridge_`"
    );
}

#[test]
fn exclusive_namespaces_overlap_through_a_shorter_prefix() {
    // `@a` matches every id starting with `@a`, `@ab:x` included.
    let a = service("a", &[("@a", true)]);
    let b = service("b", &[("@ab:x$", true)]);
    let message = set_error(&[a, b]);
    assert!(message.ends_with("both match `@ab:x`"), "{message}");
}

#[test]
fn exclusive_namespaces_that_cannot_meet_are_accepted() {
    let pairs = [
        (r"@irc_.*:a\.org$", r"@irc_.*:b\.org$"),
        ("@a_[0-9]+$", "@a_[a-z]+$"),
        ("@irc_", "@slack_"),
        ("@a$", "@ab"),
    ];
    for (x, y) in pairs {
        validate_set(&[service("a", &[(x, true)]), service("b", &[(y, true)])])
            .unwrap_or_else(|e| panic!("{x} / {y}: {e}"));
    }
}

#[test]
fn without_an_end_anchor_namespaces_for_two_servers_still_overlap() {
    // Matching is anchored at the start only, so `@irc_.*:a\.org` also matches ids that
    // go on after `a.org`.
    let a = service("a", &[(r"@irc_.*:a\.org", true)]);
    let b = service("b", &[(r"@irc_.*:b\.org", true)]);
    let message = set_error(&[a, b]);
    assert!(
        message.ends_with("both match `@irc_:a.org:b.org`"),
        "{message}"
    );
}

#[test]
fn a_non_exclusive_namespace_may_overlap_an_exclusive_one() {
    let a = service("a", &[("@irc_.*", true)]);
    let b = service("b", &[("@irc_.*", false)]);
    validate_set(&[a, b]).unwrap();
}

#[test]
fn a_services_own_exclusive_namespaces_may_overlap() {
    let a = service("a", &[("@irc_.*", true), ("@irc_x.*", true)]);
    validate_set(&[a]).unwrap();
}

#[test]
fn overlap_is_only_checked_within_one_kind() {
    let a = service("a", &[("[@#]x_.*", true)]);
    let mut b = service("b", &[]);
    b.namespaces.aliases = vec![Namespace::new("[@#]x_.*", true).unwrap()];
    validate_set(&[a, b]).unwrap();
}

#[test]
fn overlapping_exclusive_alias_namespaces_are_refused() {
    let mut a = service("a", &[]);
    a.namespaces.aliases = vec![Namespace::new("#irc_.*", true).unwrap()];
    let mut b = service("b", &[]);
    b.namespaces.aliases = vec![Namespace::new(r"#irc_.*:example\.org", true).unwrap()];
    let message = set_error(&[a, b]);
    assert!(
        message.starts_with("b.yaml: field `namespaces.aliases[0].regex`: exclusive namespace"),
        "{message}"
    );
    assert!(
        message.ends_with("both match `#irc_:example.org`"),
        "{message}"
    );
}

#[test]
fn an_exclusive_namespace_claiming_another_services_sender_is_refused() {
    let a = service("a", &[]);
    let b = service("b", &[("@a_.*", true)]);
    assert_eq!(
        set_error(&[a, b]),
        "b.yaml: field `namespaces.users[0].regex`: exclusive namespace `@a_.*` overlaps the \
         sender `@a_bot:…` of appservice `a` (a.yaml, field `sender_localpart`): both match \
         `@a_bot:`"
    );
}

#[test]
fn two_services_with_the_same_sender_are_refused() {
    let a = service("a", &[]);
    let mut b = service("b", &[]);
    b.sender_localpart = "a_bot".into();
    let message = set_error(&[a, b]);
    assert!(
        message.starts_with(
            "b.yaml: field `sender_localpart`: the sender `@a_bot:…` overlaps the sender `@a_bot:…`"
        ),
        "{message}"
    );
}

#[test]
fn regexes_without_a_dfa_fall_back_to_witnesses() {
    // A Unicode word boundary has no DFA; the literal prefix `@irc_` plus `a` shows it.
    assert!(prefix_dfa(r"@irc_\w+\b").is_none());
    let a = service("a", &[(r"@irc_\w+\b", true)]);
    let b = service("b", &[("@irc_.*", true)]);
    let message = set_error(&[a, b]);
    assert!(message.ends_with("both match `@irc_a`"), "{message}");

    let a = service("a", &[(r"^@x\b.*$", true)]);
    let b = service("b", &[(r"@x\b", true)]);
    let message = set_error(&[a, b]);
    assert!(message.ends_with("they are the same regex"), "{message}");

    let a = service("a", &[(r"@x\b", true)]);
    let b = service("b", &[(r"@y\b", true)]);
    validate_set(&[a, b]).unwrap();
}

#[test]
fn the_literal_prefix_stops_at_the_first_metacharacter() {
    assert_eq!(literal_prefix(r"@irc_.*:example\.org"), "@irc_");
    assert_eq!(literal_prefix(r"^@a\.b[0-9]"), "@a.b");
    assert_eq!(literal_prefix("@ab?c"), "@a");
    assert_eq!(literal_prefix(r"\w+"), "");
}

#[test]
fn a_clash_tells_by_its_origins_whether_it_names_a_runtime_registration() {
    let mut a = service("a", &[("@x_.*", true)]);
    a.origin = Origin::Runtime("a".into());
    let b = service("b", &[("@x_.*", true)]);
    let e = validate_set(&[a, b]).unwrap_err();
    let origins: Vec<&Origin> = e.origins().collect();
    assert_eq!(
        origins,
        [&Origin::File("b.yaml".into()), &Origin::Runtime("a".into())]
    );
    assert!(e.names_runtime_registration());

    let a = service("a", &[("@x_.*", true)]);
    let b = service("b", &[("@x_.*", true)]);
    assert!(!validate_set(&[a, b])
        .unwrap_err()
        .names_runtime_registration());
}
