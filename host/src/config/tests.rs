use std::path::Path;

use super::load::derive_public_baseurl;
use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_need_no_file() {
    let c = Config::load_from(None, env(&[]), &Overrides::default()).unwrap();
    assert_eq!(c.server_name, "localhost");
    assert_eq!(c.listen.to_string(), "127.0.0.1:8008");
    assert_eq!(c.registration_mode(), RegistrationMode::Open);
    assert!(c.database_url().ends_with("data/plugboard.sqlite"));
}

#[test]
fn registration_is_closed_off_loopback_by_default() {
    let c = Config::load_from(
        None,
        env(&[("PLUGBOARD_LISTEN", "0.0.0.0:8008")]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(c.registration_mode(), RegistrationMode::Closed);
}

#[test]
fn nested_env_override_sets_rate_limits() {
    let c = Config::load_from(
        None,
        env(&[
            ("PLUGBOARD_RATE_LIMITS__ENABLED", "false"),
            ("PLUGBOARD_REGISTRATION_TOKENS", "a,b"),
        ]),
        &Overrides::default(),
    )
    .unwrap();
    assert!(!c.rate_limits.enabled);
    assert_eq!(c.registration_tokens, vec!["a", "b"]);
}

#[test]
fn a_limit_that_would_refuse_everything_is_refused_naming_its_key() {
    for (var, value, key) in [
        (
            "PLUGBOARD_RATE_LIMITS__JOIN_BURST",
            "0",
            "rate_limits.join_burst",
        ),
        (
            "PLUGBOARD_RATE_LIMITS__ROOM_CREATIONS_PER_SECOND",
            "-1",
            "rate_limits.room_creations_per_second",
        ),
        (
            "PLUGBOARD_RATE_LIMITS__ADDRESS_FACTOR",
            "-2",
            "rate_limits.address_factor",
        ),
        (
            "PLUGBOARD_MEDIA__MAX_CONCURRENT_UPLOADS",
            "0",
            "media.max_concurrent_uploads",
        ),
    ] {
        let err = Config::load_from(None, env(&[(var, value)]), &Overrides::default()).unwrap_err();
        assert!(err.0.contains(key), "{var}={value}: {err}");
    }
    let c = Config::load_from(
        None,
        env(&[
            ("PLUGBOARD_RATE_LIMITS__ADDRESS_FACTOR", "0"),
            ("PLUGBOARD_MEDIA__MAX_BYTES_PER_USER", "0"),
        ]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(c.rate_limits.address_factor, 0.0);
    assert_eq!(c.media.max_bytes_per_user, 0);
}

#[test]
fn appservice_files_come_comma_separated_from_the_environment() {
    let c = Config::load_from(
        None,
        env(&[("PLUGBOARD_APPSERVICE_CONFIG_FILES", "/a.yaml,/b.yaml")]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(
        c.appservice_config_files,
        vec![PathBuf::from("/a.yaml"), PathBuf::from("/b.yaml")]
    );
}

#[test]
fn the_room_state_cache_is_sized_from_the_environment_and_never_zero() {
    let c = Config::load_from(
        None,
        env(&[
            ("PLUGBOARD_ROOMS__STATE_CACHE_ROOMS", "250"),
            ("PLUGBOARD_ROOMS__STATE_CACHE_BYTES", "1048576"),
        ]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(c.rooms.state_cache_rooms, 250);
    assert_eq!(c.rooms.state_cache_bytes, 1 << 20);
    assert_eq!(
        Config::default().rooms.state_cache_bytes,
        crate::service::rooms::DEFAULT_HEAD_CACHE_BYTES
    );
    let err = Config::load_from(
        None,
        env(&[("PLUGBOARD_ROOMS__STATE_CACHE_ROOMS", "0")]),
        &Overrides::default(),
    )
    .unwrap_err();
    assert!(err.0.contains("rooms.state_cache_rooms"), "{err}");
}

#[test]
fn per_address_exemptions_come_comma_separated_and_may_be_emptied() {
    let c = Config::load_from(
        None,
        env(&[(
            "PLUGBOARD_CONNECTIONS__PER_ADDRESS_EXEMPT",
            "10.0.0.0/8,fd00::1",
        )]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(c.connections.per_address_exempt, ["10.0.0.0/8", "fd00::1"]);
    let c = Config::load_from(
        None,
        env(&[("PLUGBOARD_CONNECTIONS__PER_ADDRESS_EXEMPT", "")]),
        &Overrides::default(),
    )
    .unwrap();
    assert!(c.connections.per_address_exempt.is_empty());
}

#[test]
fn a_bad_connection_setting_is_named() {
    let err = Config::load_from(
        None,
        env(&[("PLUGBOARD_CONNECTIONS__PER_ADDRESS_EXEMPT", "proxy.lan")]),
        &Overrides::default(),
    )
    .unwrap_err();
    assert!(err.0.contains("connections.per_address_exempt"), "{err}");
    assert!(err.0.contains("proxy.lan"), "{err}");
    let err = Config::load_from(
        None,
        env(&[("PLUGBOARD_CONNECTIONS__HEADER_TIMEOUT_MS", "0")]),
        &Overrides::default(),
    )
    .unwrap_err();
    assert!(err.0.contains("connections.header_timeout_ms"), "{err}");
}

#[test]
fn services_allowed_to_take_over_come_comma_separated_from_the_environment() {
    let c = Config::load_from(
        None,
        env(&[("PLUGBOARD_APPSERVICE_ALLOW_TAKEOVER", "bridge,irc")]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(c.appservice_allow_takeover, ["bridge", "irc"]);
}

#[test]
fn unknown_key_in_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "server_name = \"x\"\nbogus_key = 1\n").unwrap();
    let err = Config::load_from(Some(&path), env(&[]), &Overrides::default()).unwrap_err();
    assert!(err.0.contains("bogus_key"), "{err}");
    assert!(err.0.contains("c.toml"), "{err}");
}

#[test]
fn unknown_env_key_is_named() {
    let err = Config::load_from(None, env(&[("PLUGBOARD_NOPE", "1")]), &Overrides::default())
        .unwrap_err();
    assert!(err.0.contains("nope"), "{err}");
    assert!(err.0.contains("PLUGBOARD_NOPE"), "{err}");
}

#[test]
fn bad_value_is_refused() {
    let err = Config::load_from(
        None,
        env(&[("PLUGBOARD_REGISTRATION", "sometimes")]),
        &Overrides::default(),
    )
    .unwrap_err();
    assert!(err.0.contains("sometimes"), "{err}");
}

#[test]
fn flags_override_environment() {
    let c = Config::load_from(
        None,
        env(&[("PLUGBOARD_SERVER_NAME", "env.example")]),
        &Overrides {
            server_name: Some("flag.example".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(c.server_name, "flag.example");
}

#[test]
fn unreadable_file_is_an_error() {
    let err = Config::load_from(
        Some(Path::new("/nonexistent/plugboard.toml")),
        env(&[]),
        &Overrides::default(),
    )
    .unwrap_err();
    assert!(err.0.contains("/nonexistent/plugboard.toml"));
}

#[test]
fn turn_servers_come_from_the_environment_and_a_half_configured_one_is_named() {
    let c = Config::load_from(
        None,
        env(&[
            (
                "PLUGBOARD_TURN__URIS",
                "turn:t.example.org,turns:t.example.org:5349",
            ),
            ("PLUGBOARD_TURN__SHARED_SECRET", "s3cret"),
        ]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(c.turn.uris.len(), 2);
    assert_eq!(c.turn.ttl_s, 86_400);
    for (pairs, key) in [
        (vec![("PLUGBOARD_TURN__URIS", "t.example.org")], "turn.uris"),
        (
            vec![("PLUGBOARD_TURN__URIS", "turn:t.example.org")],
            "turn.shared_secret",
        ),
        (
            vec![
                ("PLUGBOARD_TURN__SHARED_SECRET", "s"),
                ("PLUGBOARD_TURN__USERNAME", "u"),
            ],
            "turn.shared_secret",
        ),
        (vec![("PLUGBOARD_TURN__TTL_S", "0")], "turn.ttl_s"),
    ] {
        let err = Config::load_from(None, env(&pairs), &Overrides::default()).unwrap_err();
        assert!(err.0.contains(key), "{pairs:?}: {err}");
    }
}

#[test]
fn support_contacts_need_a_role_and_a_way_to_reach_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.toml");
    std::fs::write(
        &file,
        "[support]\npage = \"https://example.org/help\"\n\
         [[support.contacts]]\nrole = \"m.role.admin\"\nmatrix_id = \"@admin:example.org\"\n",
    )
    .unwrap();
    let c = Config::load_from(Some(&file), env(&[]), &Overrides::default()).unwrap();
    assert_eq!(c.support.contacts.len(), 1);
    std::fs::write(&file, "[[support.contacts]]\nrole = \"m.role.admin\"\n").unwrap();
    let err = Config::load_from(Some(&file), env(&[]), &Overrides::default()).unwrap_err();
    assert!(err.0.contains("support.contacts[0]"), "{err}");
}

#[test]
fn the_public_base_url_is_the_loopback_listener_or_the_server_name_over_https() {
    let c = Config::load_from(None, env(&[]), &Overrides::default()).unwrap();
    assert_eq!(c.public_baseurl(), "http://127.0.0.1:8008");
    let c = Config::load_from(
        None,
        env(&[
            ("PLUGBOARD_LISTEN", "0.0.0.0:8008"),
            ("PLUGBOARD_SERVER_NAME", "example.org"),
        ]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(c.public_baseurl(), "https://example.org");
    let v6: SocketAddr = "[::1]:8448".parse().unwrap();
    assert_eq!(derive_public_baseurl(v6, "x"), "http://[::1]:8448");
}

#[test]
fn a_port_left_to_the_system_is_the_bound_one_in_the_public_base_url() {
    let mut c = Config::load_from(
        None,
        env(&[("PLUGBOARD_LISTEN", "127.0.0.1:0")]),
        &Overrides::default(),
    )
    .unwrap();
    c.bound_to("127.0.0.1:41234".parse().unwrap());
    assert_eq!(c.public_baseurl(), "http://127.0.0.1:41234");
    let mut fixed = Config::default();
    fixed.bound_to("127.0.0.1:41234".parse().unwrap());
    assert_eq!(fixed.public_baseurl(), "http://127.0.0.1:8008");
}

#[test]
fn a_configured_public_base_url_wins_loses_its_trailing_slash_and_must_be_a_base() {
    let c = Config::load_from(
        None,
        env(&[("PLUGBOARD_PUBLIC_BASEURL", "https://matrix.example.org/")]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(c.public_baseurl(), "https://matrix.example.org");
    for bad in [
        "matrix.example.org",
        "ftp://matrix.example.org",
        "https://",
        "https://m.example.org/?x=1",
        "https://m.example.org/#top",
    ] {
        let err = Config::load_from(
            None,
            env(&[("PLUGBOARD_PUBLIC_BASEURL", bad)]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(err.0.contains("public_baseurl"), "{bad}: {err}");
    }
}

#[test]
fn federation_lists_come_comma_separated_from_the_environment_and_bad_ranges_are_named() {
    let c = Config::load_from(
        None,
        env(&[
            ("PLUGBOARD_FEDERATION__IP_RANGE_ALLOWLIST", "127.0.0.1,::1"),
            ("PLUGBOARD_FEDERATION__DENIED_SERVERS", "*.evil.example"),
            ("PLUGBOARD_FEDERATION__LISTEN", "127.0.0.1:9448"),
        ]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(c.federation.ip_range_allowlist, ["127.0.0.1", "::1"]);
    assert_eq!(c.federation.denied_servers, ["*.evil.example"]);
    assert_eq!(c.federation.listen.to_string(), "127.0.0.1:9448");
    assert!(c.federation.enabled && c.federation.verify_tls);
    assert!(c
        .federation
        .ip_range_denylist
        .iter()
        .any(|r| r == "10.0.0.0/8"));
    let err = Config::load_from(
        None,
        env(&[("PLUGBOARD_FEDERATION__IP_RANGE_DENYLIST", "10.0.0.0/40")]),
        &Overrides::default(),
    )
    .unwrap_err();
    assert!(err.0.contains("federation.ip_range_denylist"), "{}", err.0);
    let err = Config::load_from(
        None,
        env(&[("PLUGBOARD_FEDERATION__TLS_CERTIFICATE", "/x.pem")]),
        &Overrides::default(),
    )
    .unwrap_err();
    assert!(err.0.contains("federation.tls_certificate"), "{}", err.0);
}
