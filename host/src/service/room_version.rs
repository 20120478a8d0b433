//! Room versions as data: one description per version the server supports, which the code
//! that creates, authorizes, redacts and hashes events consults instead of branching on a
//! version string. A new version is a new entry here (and new rules where it brings some).

use ruma_common::room_version_rules::RoomVersionRules;

/// What survives of an event once redacted, by the version's redaction algorithm.
#[derive(Debug)]
pub struct Redaction {
    /// The top-level keys kept.
    pub(crate) top_level: &'static [&'static str],
    /// The content keys kept, by event type; other types keep no content.
    pub(crate) content: &'static [(&'static str, &'static [&'static str])],
    /// The event types that keep their whole content (`m.room.create` from version 11).
    pub(crate) whole_content: &'static [&'static str],
    /// Keys kept inside an object of the content, as `(type, key, inner key)`: version 11's
    /// `third_party_invite.signed` of member events.
    pub(crate) nested: &'static [(&'static str, &'static str, &'static str)],
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

/// How forks of a room's state are merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateResolution {
    /// State resolution v2 (room versions 2 to 11).
    V2,
    /// v2.1 (room version 12, MSC4297): the first iterative auth checks start from an empty
    /// state, and the conflicted state subgraph joins the full conflicted set.
    V2_1,
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
    /// Whether a redaction names the event it redacts in its content (version 11) rather
    /// than at the top level of the PDU.
    pub(crate) redacts_in_content: bool,
    /// Version 12: the room id is `!` and the create event's reference hash, the create event
    /// has no `room_id`, and it is not among other events' `auth_events` (the room id names it).
    pub(crate) room_id_is_create_hash: bool,
    /// Version 12: the creators (the create event's sender and its `additional_creators`)
    /// have infinite power, and may not be named in `m.room.power_levels` `users`.
    pub(crate) privileged_creators: bool,
    pub(crate) state_resolution: StateResolution,
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
    whole_content: &[],
    nested: &[],
};

/// The redaction algorithm of versions 11 and 12: `origin`, `membership` and `prev_state` go;
/// the create event keeps its whole content, power levels keep `invite`, a redaction keeps
/// `redacts`, a member event keeps `third_party_invite.signed`.
const REDACTION_V11: Redaction = Redaction {
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
        "auth_events",
        "origin_server_ts",
    ],
    content: &[
        (
            "m.room.member",
            &["membership", "join_authorised_via_users_server"],
        ),
        ("m.room.join_rules", &["join_rule", "allow"]),
        (
            "m.room.power_levels",
            &[
                "ban",
                "events",
                "events_default",
                "invite",
                "kick",
                "redact",
                "state_default",
                "users",
                "users_default",
            ],
        ),
        ("m.room.history_visibility", &["history_visibility"]),
        ("m.room.redaction", &["redacts"]),
    ],
    whole_content: &["m.room.create"],
    nested: &[("m.room.member", "third_party_invite", "signed")],
};

pub(crate) const V10: RoomVersion = RoomVersion {
    id: "10",
    stable: true,
    redaction: REDACTION_V9,
    create_names_creator: true,
    knocking: true,
    redacts_in_content: false,
    room_id_is_create_hash: false,
    privileged_creators: false,
    state_resolution: StateResolution::V2,
};

pub(crate) const V11: RoomVersion = RoomVersion {
    id: "11",
    redaction: REDACTION_V11,
    create_names_creator: false,
    redacts_in_content: true,
    ..V10
};

pub(crate) const V12: RoomVersion = RoomVersion {
    id: "12",
    room_id_is_create_hash: true,
    privileged_creators: true,
    state_resolution: StateResolution::V2_1,
    ..V11
};

/// Every version this server can create and take part in, in the order advertised.
pub const SUPPORTED: &[&RoomVersion] = &[&V10, &V11, &V12];

/// The version of rooms created without one asked for: 12, as the spec recommends.
pub const DEFAULT: &RoomVersion = &V12;

impl RoomVersion {
    /// The description of version `id`, if the server supports it.
    pub(crate) fn get(id: &str) -> Option<&'static RoomVersion> {
        SUPPORTED.iter().copied().find(|v| v.id == id)
    }

    /// ruma's description of this version, for its state resolution and auth checks.
    pub(crate) fn ruma_rules(&self) -> RoomVersionRules {
        match self.state_resolution {
            StateResolution::V2_1 => RoomVersionRules::V12,
            StateResolution::V2 if self.redacts_in_content => RoomVersionRules::V11,
            StateResolution::V2 => RoomVersionRules::V10,
        }
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
    fn each_version_agrees_with_rumas_description_of_it() {
        for v in SUPPORTED {
            let id = ruma_common::RoomVersionId::try_from(v.id).unwrap();
            let theirs = id.rules().unwrap();
            let ours = v.ruma_rules();
            assert_eq!(format!("{theirs:?}"), format!("{ours:?}"), "{}", v.id);
            let auth = &theirs.authorization;
            assert_eq!(
                v.create_names_creator, !auth.use_room_create_sender,
                "{}",
                v.id
            );
            assert_eq!(v.knocking, auth.knocking, "{}", v.id);
            assert_eq!(
                v.privileged_creators,
                auth.explicitly_privilege_room_creators
            );
            assert_eq!(
                v.room_id_is_create_hash,
                auth.room_create_event_id_as_room_id
            );
            assert_eq!(v.redacts_in_content, theirs.redaction.content_field_redacts);
            assert_eq!(
                v.redaction.top_level.contains(&"origin"),
                theirs.redaction.keep_origin_membership_prev_state
            );
            assert_eq!(
                v.redaction
                    .kept_content("m.room.power_levels")
                    .contains(&"invite"),
                theirs.redaction.keep_room_power_levels_invite
            );
            assert_eq!(
                v.redaction.whole_content.contains(&"m.room.create"),
                theirs.redaction.keep_room_create_content
            );
        }
    }

    #[test]
    fn new_rooms_are_version_12_and_every_supported_version_is_stable() {
        assert_eq!(DEFAULT.id, "12");
        let ids: Vec<_> = SUPPORTED.iter().map(|v| (v.id, v.stable)).collect();
        assert_eq!(ids, [("10", true), ("11", true), ("12", true)]);
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
