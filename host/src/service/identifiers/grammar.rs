//! The grammar of Matrix identifiers (user ids, room ids, aliases, event ids, device ids,
//! server names, event types, mxc URIs): the checks, and the messages a bad one is refused
//! with. It depends on nothing else here; `typed.rs` builds the id types on it.

use crate::service::{Error, Result};

/// The longest localpart a user made here (registered, or an application service's or a
/// plugin's sender) may have: with the server name, the user id stays within 255 bytes.
pub(crate) const MAX_LOCALPART_BYTES: usize = 200;

/// Localparts we create: the spec's historical-compatible lower-case set.
pub(crate) fn valid_localpart(localpart: &str) -> bool {
    !localpart.is_empty()
        && localpart.len() <= MAX_LOCALPART_BYTES
        && localpart
            .chars()
            .all(|c| matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '=' | '-' | '/' | '+'))
}

/// The longest identifier the spec allows (user ids, room ids, aliases, event ids, device ids).
pub(crate) const MAX_ID_BYTES: usize = 255;

/// Splits `sigil localpart : server`; the server name follows the spec's grammar and the whole
/// id is at most 255 bytes. The localpart's rules differ per kind of id and are the caller's.
fn split<'a>(id: &'a str, sigil: char, what: &str) -> Result<(&'a str, &'a str)> {
    let bad = || Error::InvalidParam(format!("'{}' is not a valid {what}", shown(id)));
    if id.len() > MAX_ID_BYTES || !id.starts_with(sigil) {
        return Err(bad());
    }
    let rest = &id[sigil.len_utf8()..];
    let (local, server) = rest.split_once(':').ok_or_else(bad)?;
    if !valid_server_name(server) || local.chars().any(|c| c.is_control()) {
        return Err(bad());
    }
    Ok((local, server))
}

/// An id as it is quoted back in an error: at most 100 characters, control characters
/// escaped, so that a refused id cannot flood or garble the message.
pub(super) fn shown(id: &str) -> String {
    let mut out: String = id.chars().take(100).flat_map(char::escape_debug).collect();
    if id.chars().nth(100).is_some() {
        out.push('…');
    }
    out
}

/// The spec's server name grammar (appendices, "Server Name"): a DNS name, an IPv4 address
/// or a bracketed IPv6 address, then an optional port of one to five digits.
/// The server part of a user, room or alias id: everything after the first `:` (a server
/// name may hold a port, so never after the last), `""` when there is none.
pub(crate) fn server_of(id: &str) -> &str {
    id.split_once(':').map_or("", |(_, s)| s)
}

pub fn valid_server_name(name: &str) -> bool {
    let (host, port) = match name.rfind(':') {
        // A colon inside brackets belongs to the IPv6 address, not to a port.
        Some(i) if !name[i..].contains(']') => (&name[..i], Some(&name[i + 1..])),
        _ => (name, None),
    };
    if let Some(port) = port {
        if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    if let Some(inner) = host.strip_prefix('[') {
        let Some(v6) = inner.strip_suffix(']') else {
            return false;
        };
        return (2..=45).contains(&v6.len())
            && v6
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
    }
    // A DNS name's characters cover the IPv4 dotted form as well.
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// A user id: `@localpart:server`. The localpart may use the historical set the spec still
/// asks servers to accept (printable ASCII but `:`), not only the set we create.
pub fn parse_user_id(id: &str) -> Result<(&str, &str)> {
    let (local, server) = split(id, '@', "user id")?;
    if local.is_empty()
        || !local
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b':')
    {
        return Err(Error::InvalidParam(format!(
            "'{}' is not a valid user id",
            shown(id)
        )));
    }
    Ok((local, server))
}

/// A room id: `!opaque:server`, or from room version 12 `!` and the create event's reference
/// hash, with no server part (answered as an empty server name).
pub fn parse_room_id(id: &str) -> Result<(&str, &str)> {
    let (local, server) = match id.strip_prefix('!') {
        Some(hash) if !hash.contains(':') => (hash, ""),
        _ => split(id, '!', "room id")?,
    };
    if local.is_empty() || (server.is_empty() && !is_reference_hash(local)) {
        return Err(Error::InvalidParam(format!(
            "'{}' is not a valid room id",
            shown(id)
        )));
    }
    Ok((local, server))
}

/// Whether `text` is an event's reference hash as room version 12 room ids carry it: a
/// SHA-256 in unpadded URL-safe base64, 43 characters. Anything else without a server part is
/// not a room id (it would name no server to ask and no event to check it against).
fn is_reference_hash(text: &str) -> bool {
    text.len() == 43
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub fn parse_alias(alias: &str) -> Result<(&str, &str)> {
    let (local, server) = split(alias, '#', "room alias")?;
    if local.is_empty() || local.chars().any(char::is_whitespace) {
        return Err(Error::InvalidParam(format!(
            "'{}' is not a valid room alias",
            shown(alias)
        )));
    }
    Ok((local, server))
}

pub(crate) fn check_event_type(kind: &str) -> Result<()> {
    if kind.is_empty() || kind.len() > MAX_ID_BYTES || kind.chars().any(char::is_control) {
        return Err(Error::InvalidParam(format!(
            "'{}' is not a valid event type",
            shown(kind)
        )));
    }
    Ok(())
}

/// An event id: `$` and an opaque part (the hash of room versions 4 and later, or
/// `local:server` before them).
pub fn check_event_id(id: &str) -> Result<()> {
    if id.len() < 2
        || !id.starts_with('$')
        || id.len() > MAX_ID_BYTES
        || id.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(Error::InvalidParam(format!(
            "'{}' is not a valid event id",
            shown(id)
        )));
    }
    Ok(())
}

/// A device id, ours or one a client chose: an opaque, non-empty string of at most 255
/// bytes without control characters or white space (it is shown in device lists and keyed
/// on in every end-to-end encryption message).
pub(crate) fn check_device_id(id: &str) -> Result<()> {
    if id.is_empty()
        || id.len() > MAX_ID_BYTES
        || id.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(Error::InvalidParam(format!(
            "'{}' is not a valid device id: 1 to {MAX_ID_BYTES} bytes without control \
             characters or spaces",
            shown(id)
        )));
    }
    Ok(())
}

/// An `mxc://server/media-id` URI, as profiles and room avatars carry it: the server name
/// of the spec's grammar, a media id of `A-Z a-z 0-9 _ -`.
pub(crate) fn check_mxc_uri(uri: &str) -> Result<()> {
    let valid = uri
        .strip_prefix("mxc://")
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(server, media)| {
            valid_server_name(server)
                && !media.is_empty()
                && media
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
    if !valid {
        return Err(Error::InvalidParam(format!(
            "'{}' is not an mxc://server/media-id URI",
            shown(uri)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localparts() {
        assert!(valid_localpart("alice.b-c_d=e/f+g"));
        assert!(!valid_localpart("Alice"));
        assert!(!valid_localpart(""));
        assert!(!valid_localpart("a b"));
        assert!(!valid_localpart("ü"));
    }

    #[test]
    fn ids() {
        assert_eq!(parse_user_id("@a:x.org").unwrap(), ("a", "x.org"));
        assert_eq!(
            parse_user_id("@a:127.0.0.1:8008").unwrap(),
            ("a", "127.0.0.1:8008")
        );
        assert!(parse_user_id("a:x").is_err());
        assert!(parse_user_id("@a").is_err());
        assert!(parse_user_id("@:x").is_err());
        assert!(parse_room_id("!r:x").is_ok());
        assert!(parse_room_id("#r:x").is_err());
        assert!(parse_alias("#r:x").is_ok());
        assert!(parse_alias("#r x:x").is_err());
        assert!(parse_user_id(&format!("@{}:x", "a".repeat(300))).is_err());
    }

    #[test]
    fn user_id_localparts_are_printable_ascii_without_colons() {
        assert!(parse_user_id("@Old.Style!user~:x.org").is_ok());
        assert!(parse_user_id("@a\u{0}b:x").is_err());
        assert!(parse_user_id("@ü:x").is_err());
        assert!(parse_user_id("@a b:x").is_err());
    }

    #[test]
    fn server_names_follow_the_spec_grammar() {
        for ok in [
            "x",
            "matrix.org",
            "matrix.org:8448",
            "1.2.3.4",
            "1.2.3.4:1",
            "[1234:5678::abcd]",
            "[1234:5678::abcd]:5678",
            "[::1]",
            "127.0.0.1:65535",
        ] {
            assert!(valid_server_name(ok), "{ok}");
        }
        for bad in [
            "",
            ":80",
            "x:",
            "x:123456",
            "x:8a",
            "x:1:2",
            "[::1",
            "::1]",
            "[]",
            "[::1]x",
            "ex ample.org",
            "ex_ample.org",
            "exämple.org",
            "x\u{0}",
        ] {
            assert!(!valid_server_name(bad), "{bad}");
        }
        assert!(parse_room_id("!r:x:y").is_err());
        // Room version 12: the create event's hash, no server.
        assert_eq!(
            parse_room_id("!31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM").ok(),
            Some(("31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM", ""))
        );
        assert!(parse_room_id("!").is_err());
        assert!(parse_room_id("!a b").is_err());
        // Without a server part, only a reference hash is a room id (a fuzz finding: "!r#x").
        for bad in [
            "!r#x",
            "!abc",
            "!31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogL",
            "!31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogL+",
        ] {
            assert!(parse_room_id(bad).is_err(), "{bad}");
        }
        assert!(parse_alias("#a:[[").is_err());
    }

    #[test]
    fn event_ids_need_an_opaque_part_without_control_characters() {
        assert!(check_event_id("$abc").is_ok());
        assert!(check_event_id("$a:x").is_ok());
        assert!(check_event_id("$").is_err());
        assert!(check_event_id("$a\u{0}").is_err());
        assert!(check_event_id("$a b").is_err());
    }

    #[test]
    fn device_ids_refuse_nul_spaces_and_overlong_ids() {
        assert!(check_device_id("ABCDEFGH").is_ok());
        assert!(check_device_id("").is_err());
        assert!(check_device_id("A\u{0}B").is_err());
        assert!(check_device_id("A B").is_err());
        assert!(check_device_id(&"D".repeat(256)).is_err());
    }

    #[test]
    fn mxc_uris_name_a_server_and_a_media_id() {
        assert!(check_mxc_uri("mxc://localhost/AbC_-9").is_ok());
        assert!(check_mxc_uri("mxc://127.0.0.1:8008/x").is_ok());
        assert!(check_mxc_uri("mxc://localhost/").is_err());
        assert!(check_mxc_uri("mxc://localhost/a/b").is_err());
        assert!(check_mxc_uri("mxc:///x").is_err());
        assert!(check_mxc_uri("https://localhost/x").is_err());
        assert!(check_mxc_uri("mxc://localhost/a\u{0}").is_err());
    }

    #[test]
    fn errors_quote_at_most_a_hundred_characters_escaped() {
        let long = format!("@{}\u{0}:x", "a".repeat(300));
        let Err(Error::InvalidParam(msg)) = parse_user_id(&long) else {
            panic!("accepted");
        };
        assert!(msg.len() < 150, "{msg}");
        let Err(Error::InvalidParam(msg)) = parse_user_id("@a\u{0}:x") else {
            panic!("accepted");
        };
        assert!(msg.contains("\\0"), "{msg}");
    }
}
