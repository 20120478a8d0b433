//! The closed sets of values that room state holds (a member's membership, the join rule, the
//! history visibility, guest access), parsed once from event content into enums so that the
//! rules that read them match on variants, not on strings.

use std::fmt;

/// Declares an enum of the spec's string values with `parse`, `as_str` and the list of names
/// (for content checks and their error messages).
macro_rules! spec_strings {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            /// Every value, as the spec spells it.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The value `s` names, if the spec has it.
            #[allow(dead_code, reason = "GuestAccess is only checked by its NAMES")]
            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

spec_strings! {
    /// A user's membership of a room (`m.room.member`'s `membership`).
    Membership {
        Invite => "invite",
        Join => "join",
        Leave => "leave",
        Ban => "ban",
        Knock => "knock",
    }
}

spec_strings! {
    /// Who may join a room (`m.room.join_rules`'s `join_rule`).
    JoinRule {
        Public => "public",
        Knock => "knock",
        Invite => "invite",
        Private => "private",
        Restricted => "restricted",
        KnockRestricted => "knock_restricted",
    }
}

spec_strings! {
    /// Who may read the events of a room sent while they were not joined
    /// (`m.room.history_visibility`).
    HistoryVisibility {
        Invited => "invited",
        Joined => "joined",
        Shared => "shared",
        WorldReadable => "world_readable",
    }
}

spec_strings! {
    /// Whether guests may join (`m.room.guest_access`).
    #[allow(
        dead_code,
        reason = "only its NAMES are read (the content check): no rule reads guest access yet"
    )]
    GuestAccess {
        CanJoin => "can_join",
        Forbidden => "forbidden",
    }
}

impl Membership {
    /// Whether a membership as stored (a row's `membership` column) is this one.
    pub(crate) fn is(self, stored: &str) -> bool {
        self.as_str() == stored
    }

    /// What a user who has no member event is: never in the room.
    pub(crate) fn of(event_membership: Option<Membership>) -> Membership {
        event_membership.unwrap_or(Membership::Leave)
    }
}

impl JoinRule {
    /// A room without `m.room.join_rules` is invite-only (the spec's default).
    pub(crate) fn of(content: Option<&serde_json::Value>) -> JoinRule {
        content
            .and_then(|c| c["join_rule"].as_str())
            .and_then(JoinRule::parse)
            .unwrap_or(JoinRule::Invite)
    }
}

impl HistoryVisibility {
    /// A room without `m.room.history_visibility`, or with a value the spec does not have,
    /// shares its history with members (the spec's default).
    pub(crate) fn of(value: Option<&str>) -> HistoryVisibility {
        value
            .and_then(HistoryVisibility::parse)
            .unwrap_or(HistoryVisibility::Shared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_name_parses_to_the_variant_that_prints_it() {
        for name in Membership::NAMES {
            assert_eq!(Membership::parse(name).unwrap().as_str(), *name);
        }
        for name in JoinRule::NAMES {
            assert_eq!(JoinRule::parse(name).unwrap().to_string(), *name);
        }
        for name in HistoryVisibility::NAMES {
            assert_eq!(HistoryVisibility::parse(name).unwrap().as_str(), *name);
        }
        for name in GuestAccess::NAMES {
            assert_eq!(GuestAccess::parse(name).unwrap().as_str(), *name);
        }
    }

    #[test]
    fn values_the_spec_does_not_have_are_not_parsed() {
        assert_eq!(Membership::parse("Join"), None);
        assert_eq!(Membership::parse(""), None);
        assert_eq!(JoinRule::parse("open"), None);
        assert_eq!(HistoryVisibility::parse("everyone"), None);
    }

    #[test]
    fn a_stored_membership_is_this_one_only_when_spelled_as_the_spec_does() {
        assert!(Membership::Join.is("join"));
        assert!(!Membership::Join.is("Join"));
        assert!(!Membership::Join.is("invite"));
        assert!(!Membership::Leave.is(""));
    }

    #[test]
    fn missing_values_take_the_spec_defaults() {
        assert_eq!(Membership::of(None), Membership::Leave);
        assert_eq!(JoinRule::of(None), JoinRule::Invite);
        assert_eq!(
            JoinRule::of(Some(&json!({"join_rule": 5}))),
            JoinRule::Invite
        );
        assert_eq!(
            JoinRule::of(Some(&json!({"join_rule": "public"}))),
            JoinRule::Public
        );
        assert_eq!(HistoryVisibility::of(None), HistoryVisibility::Shared);
        assert_eq!(
            HistoryVisibility::of(Some("bogus")),
            HistoryVisibility::Shared
        );
        assert_eq!(
            HistoryVisibility::of(Some("joined")),
            HistoryVisibility::Joined
        );
    }
}
