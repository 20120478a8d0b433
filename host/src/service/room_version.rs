//! Room versions as data: one description per version the server supports, which the code
//! that creates, authorizes, redacts and hashes events consults instead of branching on a
//! version string. A new version is a new entry here (and new rules where it brings some).

/// What survives of an event once redacted, by the version's redaction algorithm.
#[derive(Debug)]
pub struct Redaction {
    /// The top-level keys kept.
    pub(crate) top_level: &'static [&'static str],
    /// The content keys kept, by event type; other types keep no content.
    pub(crate) content: &'static [(&'static str, &'static [&'static str])],
}

impl Redaction {
    /// The content keys an event of `event_type` keeps.
    pub(crate) fn kept_content(&self, event_type: &str) -> &'static [&'static str] {
        self.content
            .iter()
            .find(|(kind, _)| *kind == event_type)
            .map_or(&[], |(_, keys)| keys)
    }
}

/// One room version's rules.
#[derive(Debug)]
pub struct RoomVersion {
    pub id: &'static str,
    /// Advertised as "stable" (or "unstable") in `/capabilities`.
    pub(crate) stable: bool,
    pub redaction: Redaction,
    /// Whether `m.room.create` must name its `creator` in its content (and the creator's
    /// power comes from there): up to version 10; version 11 takes the sender.
    pub(crate) create_names_creator: bool,
    /// Whether users may knock (the `knock` membership and join rule, from version 7).
    pub(crate) knocking: bool,
}

/// The redaction algorithm of versions 9 and 10.
const REDACTION_V9: Redaction = Redaction {
    top_level: &[
        "event_id",
        "type",
        "room_id",
        "sender",
        "state_key",
        "content",
        "hashes",
        "signatures",
        "depth",
        "prev_events",
        "prev_state",
        "auth_events",
        "origin",
        "origin_server_ts",
        "membership",
    ],
    content: &[
        (
            "m.room.member",
            &["membership", "join_authorised_via_users_server"],
        ),
        ("m.room.create", &["creator"]),
        ("m.room.join_rules", &["join_rule", "allow"]),
        (
            "m.room.power_levels",
            &[
                "ban",
                "events",
                "events_default",
                "kick",
                "redact",
                "state_default",
                "users",
                "users_default",
            ],
        ),
        ("m.room.history_visibility", &["history_visibility"]),
    ],
};

pub(crate) const V10: RoomVersion = RoomVersion {
    id: "10",
    stable: true,
    redaction: REDACTION_V9,
    create_names_creator: true,
    knocking: true,
};

/// Every version this server can create and take part in, in the order advertised.
pub const SUPPORTED: &[&RoomVersion] = &[&V10];

/// The version of rooms created without one asked for.
pub const DEFAULT: &RoomVersion = &V10;

impl RoomVersion {
    /// The description of version `id`, if the server supports it.
    pub(crate) fn get(id: &str) -> Option<&'static RoomVersion> {
        SUPPORTED.iter().copied().find(|v| v.id == id)
    }

    /// The version a room's create event content names; a content without `room_version`
    /// is version 1 (the spec's default), which this server does not support.
    pub(crate) fn of_create(content: &serde_json::Value) -> Result<&'static RoomVersion, String> {
        let id = content["room_version"].as_str().unwrap_or("1");
        RoomVersion::get(id).ok_or_else(|| format!("room version {id} is not supported"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn supported_versions_are_found_by_id_and_others_are_not() {
        assert_eq!(RoomVersion::get("10").map(|v| v.id), Some("10"));
        assert!(RoomVersion::get("1").is_none());
        assert!(RoomVersion::get("").is_none());
        assert!(SUPPORTED.iter().any(|v| v.id == DEFAULT.id));
    }

    #[test]
    fn a_create_event_without_a_version_is_version_one() {
        assert_eq!(
            RoomVersion::of_create(&json!({"room_version": "10"})).map(|v| v.id),
            Ok("10")
        );
        assert_eq!(
            RoomVersion::of_create(&json!({})).map(|v| v.id),
            Err("room version 1 is not supported".into())
        );
    }

    #[test]
    fn redaction_keeps_the_content_keys_of_its_event_type_only() {
        let r = &V10.redaction;
        assert_eq!(
            r.kept_content("m.room.history_visibility"),
            ["history_visibility"]
        );
        assert!(r.kept_content("m.room.message").is_empty());
        assert!(r.kept_content("m.room.power_levels").contains(&"users"));
    }
}
