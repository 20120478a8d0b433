//! The identifiers as types: a `UserId`, `RoomId`, `EventId`, `RoomAlias`, `ServerName` or
//! `DeviceId` can only be made by parsing, with the checks (and error messages) of the
//! grammar in `super`, so a function that takes one needs no check of its own. They are
//! parsed once where an id enters (the API handlers, the plugin host calls, registrations)
//! and read as `&str` below that (storage keeps strings: it is the bottom layer).

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::grammar::{
    check_device_id, check_event_id, parse_alias, parse_room_id, parse_user_id, shown,
    valid_server_name,
};
use crate::service::{Error, Result};

/// Declares an identifier newtype over a validated `Box<str>`: `parse` is the only way in;
/// it reads as a `str` (`Deref`, `AsRef`, `Borrow`, `Display`, comparisons with strings) and
/// serializes as one, deserializing through the same check.
macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Box<str>);

        impl $name {
            /// The id `s` is, if it is a valid one; `InvalidParam` saying why not otherwise.
            pub fn parse(s: impl AsRef<str> + Into<Box<str>>) -> Result<$name> {
                let check: fn(&str) -> Result<()> = $check;
                check(s.as_ref())?;
                Ok($name(s.into()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;

            fn try_from(s: String) -> Result<$name> {
                $name::parse(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = Error;

            fn try_from(s: &str) -> Result<$name> {
                $name::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0.into()
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                &*self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                &*self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                *self.0 == **other
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == &*other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == &*other.0
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                **self == *other.0
            }
        }

        impl PartialEq<&$name> for String {
            fn eq(&self, other: &&$name) -> bool {
                **self == *other.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<$name, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(s).map_err(|e| serde::de::Error::custom(e.to_string()))
            }
        }
    };
}

identifier! {
    /// A user id, `@localpart:server`, the localpart in the historical set the spec still
    /// asks servers to accept.
    UserId, |s| parse_user_id(s).map(drop)
}

identifier! {
    /// A room id, `!opaque:server`, or `!hash` from room version 12.
    RoomId, |s| parse_room_id(s).map(drop)
}

identifier! {
    /// A room alias, `#localpart:server`.
    RoomAlias, |s| parse_alias(s).map(drop)
}

identifier! {
    /// An event id, `$` and an opaque part.
    EventId, check_event_id
}

identifier! {
    /// A device id: opaque, 1 to 255 bytes without control characters or spaces.
    DeviceId, check_device_id
}

identifier! {
    /// A server name as the spec's grammar has it: a host and an optional port.
    ServerName, |s| {
        if valid_server_name(s) {
            Ok(())
        } else {
            Err(Error::InvalidParam(format!(
                "'{}' is not a valid server name",
                shown(s)
            )))
        }
    }
}

/// The parts of an id that has a sigil, a localpart and a server name.
fn parts(id: &str) -> (&str, &str) {
    // Valid by construction: a sigil, then the localpart up to the first colon (no
    // localpart holds one), then the server name (which may hold a port's colon); a version 12
    // room id has no server name.
    id[1..].split_once(':').unwrap_or((&id[1..], ""))
}

macro_rules! with_parts {
    ($($name:ident),+) => {
        $(impl $name {
            pub fn localpart(&self) -> &str {
                parts(&self.0).0
            }

            pub fn server_name(&self) -> &str {
                parts(&self.0).1
            }
        })+
    };
}

with_parts!(UserId, RoomId, RoomAlias);

/// A room id, or an alias to resolve to one: what `/join/{roomIdOrAlias}` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RoomOrAlias {
    Room(RoomId),
    Alias(RoomAlias),
}

impl fmt::Display for RoomOrAlias {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoomOrAlias::Room(id) => id.fmt(f),
            RoomOrAlias::Alias(alias) => alias.fmt(f),
        }
    }
}

impl RoomOrAlias {
    /// An alias when it starts with `#`, a room id otherwise, each with its own check.
    pub(crate) fn parse(s: &str) -> Result<RoomOrAlias> {
        if s.starts_with('#') {
            RoomAlias::parse(s).map(RoomOrAlias::Alias)
        } else {
            RoomId::parse(s).map(RoomOrAlias::Room)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_made_only_from_a_valid_string() {
        assert!(UserId::parse("@a:x").is_ok());
        assert!(UserId::parse("a:x").is_err());
        assert!(RoomId::parse("!r:x").is_ok());
        assert!(
            RoomId::parse("!31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM").is_ok(),
            "a version 12 room id"
        );
        assert!(RoomId::parse("!r").is_err(), "no server and not a hash");
        assert!(RoomId::parse("!").is_err());
        assert!(RoomAlias::parse("#a:x").is_ok());
        assert!(RoomAlias::parse("#a b:x").is_err());
        assert!(EventId::parse("$e").is_ok());
        assert!(EventId::parse("e").is_err());
        assert!(DeviceId::parse("D").is_ok());
        assert!(DeviceId::parse("").is_err());
        assert!(ServerName::parse("x.org:8448").is_ok());
        assert!(ServerName::parse("x_y").is_err());
    }

    #[test]
    fn a_refused_id_says_what_it_is_not_as_the_checks_do() {
        let Err(Error::InvalidParam(msg)) = UserId::parse("nope") else {
            panic!("accepted");
        };
        assert_eq!(msg, "'nope' is not a valid user id");
        let Err(Error::InvalidParam(msg)) = RoomId::parse("!no pe") else {
            panic!("accepted");
        };
        assert_eq!(msg, "'!no pe' is not a valid room id");
    }

    #[test]
    fn localpart_and_server_name_split_at_the_first_colon() {
        let user = UserId::parse("@a:127.0.0.1:8008").unwrap();
        assert_eq!(
            (user.localpart(), user.server_name()),
            ("a", "127.0.0.1:8008")
        );
        let room = RoomId::parse("!r:[::1]:80").unwrap();
        assert_eq!((room.localpart(), room.server_name()), ("r", "[::1]:80"));
        let alias = RoomAlias::parse("#a:x").unwrap();
        assert_eq!((alias.localpart(), alias.server_name()), ("a", "x"));
    }

    #[test]
    fn ids_read_and_serialize_as_their_strings() {
        let user = UserId::parse("@a:x").unwrap();
        assert_eq!(user, "@a:x");
        assert_eq!(user.to_string(), "@a:x");
        assert_eq!(serde_json::to_value(&user).unwrap(), "@a:x");
        assert_eq!(format!("{user:?}"), "\"@a:x\"");
        let set: std::collections::HashSet<UserId> = [user.clone()].into();
        assert!(set.contains("@a:x"));
    }

    #[test]
    fn deserializing_an_id_checks_it() {
        assert!(serde_json::from_str::<RoomId>("\"!r:x\"").is_ok());
        let err = serde_json::from_str::<RoomId>("\"r\"").unwrap_err();
        assert!(
            err.to_string().contains("'r' is not a valid room id"),
            "{err}"
        );
    }

    #[test]
    fn a_room_or_alias_is_told_apart_by_its_sigil() {
        assert!(matches!(
            RoomOrAlias::parse("#a:x"),
            Ok(RoomOrAlias::Alias(_))
        ));
        assert!(matches!(
            RoomOrAlias::parse("!r:x"),
            Ok(RoomOrAlias::Room(_))
        ));
        assert!(RoomOrAlias::parse("#a b:x").is_err());
        assert!(RoomOrAlias::parse("r:x").is_err());
    }
}
