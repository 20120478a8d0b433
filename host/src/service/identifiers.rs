//! Matrix identifiers: user ids, room ids, aliases, event types; parsed and checked here so
//! that a bad one is refused with a clear error before it reaches storage.

use super::{Error, Result};

/// Localparts we create: the spec's historical-compatible lower-case set.
pub fn valid_localpart(localpart: &str) -> bool {
    !localpart.is_empty()
        && localpart.len() <= 200
        && localpart
            .chars()
            .all(|c| matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '=' | '-' | '/' | '+'))
}

/// Splits `sigil localpart : server` and checks both parts loosely (as the spec allows for
/// ids made elsewhere); the whole id is at most 255 bytes.
fn split<'a>(id: &'a str, sigil: char, what: &str) -> Result<(&'a str, &'a str)> {
    let bad = || Error::InvalidParam(format!("'{id}' is not a valid {what}"));
    if id.len() > 255 || !id.starts_with(sigil) {
        return Err(bad());
    }
    let rest = &id[sigil.len_utf8()..];
    let (local, server) = rest.split_once(':').ok_or_else(bad)?;
    if server.is_empty()
        || !server
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
    {
        return Err(bad());
    }
    if local.chars().any(|c| c.is_control()) {
        return Err(bad());
    }
    Ok((local, server))
}

pub fn parse_user_id(id: &str) -> Result<(&str, &str)> {
    let (local, server) = split(id, '@', "user id")?;
    if local.is_empty() || local.chars().any(|c| c.is_whitespace() || c == ':') {
        return Err(Error::InvalidParam(format!(
            "'{id}' is not a valid user id"
        )));
    }
    Ok((local, server))
}

pub fn parse_room_id(id: &str) -> Result<(&str, &str)> {
    let (local, server) = split(id, '!', "room id")?;
    if local.is_empty() {
        return Err(Error::InvalidParam(format!(
            "'{id}' is not a valid room id"
        )));
    }
    Ok((local, server))
}

pub fn parse_alias(alias: &str) -> Result<(&str, &str)> {
    let (local, server) = split(alias, '#', "room alias")?;
    if local.is_empty() || local.chars().any(char::is_whitespace) {
        return Err(Error::InvalidParam(format!(
            "'{alias}' is not a valid room alias"
        )));
    }
    Ok((local, server))
}

pub fn check_event_type(kind: &str) -> Result<()> {
    if kind.is_empty() || kind.len() > 255 || kind.chars().any(char::is_control) {
        return Err(Error::InvalidParam(format!(
            "'{kind}' is not a valid event type"
        )));
    }
    Ok(())
}

pub fn check_event_id(id: &str) -> Result<()> {
    if !id.starts_with('$') || id.len() > 255 || id.chars().any(char::is_control) {
        return Err(Error::InvalidParam(format!(
            "'{id}' is not a valid event id"
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
}
