//! Application service registrations (`service/appservice/registration.rs`): any YAML text is
//! read into a registration or refused with an error naming the file, without a panic (YAML
//! anchors, deep nesting, huge or broken regexes included); a registration read is one the
//! server can use: its sender is a valid user id, its namespace regexes match without a
//! panic, and the overlap checks of a set decide on it.

use plugboard::service::appservice::registration::{
    validate_set, NamespaceKind, Origin, Registration,
};
use plugboard::service::identifiers::parse_user_id;

use crate::{text, Target};

pub const TARGET: Target = Target {
    name: "registration",
    check,
    dictionary: &[
        b"\nid: ",
        b"\nurl: ",
        b"\nas_token: ",
        b"\nhs_token: ",
        b"\nsender_localpart: ",
        b"\nnamespaces:\n  users:\n    - exclusive: true\n      regex: ",
        b"\n  aliases: []",
        b"\n  rooms:\n    - regex: ",
        b"\nrate_limited: ",
        b"\nprotocols: [",
        b"\nreceive_ephemeral: ",
        b"\nlegacy_query_token: ",
        b"'@.*'",
        b"\"@irc_.*:x\"",
        b"(?i)",
        b"a{1000}",
        b"\\p{L}",
        b"&a ",
        b"*a",
        b"!!binary ",
        b"~",
        b"null",
        b"true",
        b"- ",
        b": ",
        b"[",
        b"]",
        b"{",
        b"}",
        b"\n",
        b"  ",
        b"\"",
        b"'",
        b"#",
        b"|\n",
        b"\t",
        b"\x00",
    ],
    generate: None,
};

pub fn check(input: &[u8]) -> Result<(), String> {
    let Some(text) = text(input) else {
        return Ok(());
    };
    let reg = match Registration::from_yaml(text, Origin::File("fuzz.yaml".into())) {
        Ok(reg) => reg,
        Err(e) => {
            let message = e.to_string();
            if !message.starts_with("fuzz.yaml: ") {
                return Err(format!("an error that does not name the file: {message}"));
            }
            return Ok(());
        }
    };
    let sender = reg.sender("localhost");
    if parse_user_id(&sender).is_err() {
        return Err(format!("the sender {sender:?} is not a valid user id"));
    }
    let samples = [
        sender.as_str(),
        "@irc_alice:localhost",
        "#irc_room:localhost",
        "!room:localhost",
        "",
        "\u{0}",
    ];
    for kind in NamespaceKind::ALL {
        for ns in reg.namespaces.get(kind) {
            if !ns.anchored_pattern().starts_with("^(?:") {
                return Err(format!("{:?} is not anchored", ns.anchored_pattern()));
            }
            for s in samples {
                let _ = ns.is_match(s);
            }
        }
    }
    let _ = format!("{reg:?}");
    // Alone it clashes with nothing; beside a copy of itself under another id and other
    // tokens, the set checks decide (an exclusive namespace clashes) without a panic.
    validate_set(std::slice::from_ref(&reg))
        .map_err(|e| format!("a registration alone is refused: {e}"))?;
    let mut other = reg.clone();
    other.id.push_str("_other");
    other.as_token.push_str("_other");
    other.hs_token.push_str("_other");
    other.sender_localpart.push_str("_other");
    let _ = validate_set(&[reg, other]);
    Ok(())
}
