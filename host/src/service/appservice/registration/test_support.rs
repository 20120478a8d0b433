//! What the registration tests share: registration texts and the helpers that read them.

use super::{validate_set, Namespace, Origin, Registration};

pub(super) const FULL: &str = r#"
id: irc
url: "http://127.0.0.1:9999"
as_token: as-secret
hs_token: hs-secret
sender_localpart: _irc_bot
rate_limited: false
protocols: ["irc", "gitter"]
receive_ephemeral: true
namespaces:
  users:
    - exclusive: true
      regex: '@irc_.*:example\.org'
    - regex: '@freenode_.*'
  aliases:
    - exclusive: true
      regex: '#irc_.*'
  rooms:
    - exclusive: false
      regex: '!ops:example\.org'
some_key_we_do_not_know: 42
"#;

pub(super) fn minimal(id: &str, extra: &str) -> String {
    format!(
        "id: {id}\nurl: null\nas_token: as-{id}\nhs_token: hs-{id}\nsender_localpart: {id}_bot\n{extra}"
    )
}

pub(super) fn parse(text: &str) -> Registration {
    Registration::from_yaml(text, Origin::File("appservice.yaml".into())).unwrap()
}

pub(super) fn error(text: &str) -> String {
    Registration::from_yaml(text, Origin::File("appservice.yaml".into()))
        .unwrap_err()
        .to_string()
}

pub(super) fn service(id: &str, users: &[(&str, bool)]) -> Registration {
    let mut reg = parse(&minimal(id, ""));
    reg.origin = Origin::File(format!("{id}.yaml").into());
    reg.namespaces.users = users
        .iter()
        .map(|(regex, exclusive)| Namespace::new(regex, *exclusive).unwrap())
        .collect();
    reg
}

pub(super) fn set_error(regs: &[Registration]) -> String {
    validate_set(regs).unwrap_err().to_string()
}
