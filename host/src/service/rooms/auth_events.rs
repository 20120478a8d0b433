//! The auth events a new event names: the spec's selection ("Auth events selection" of the
//! server-server API) from the room's state before it, by the room's version.

use super::timeline::Draft;
use super::values::Membership;
use super::RoomHead;
use crate::service::room_version::RoomVersion;

/// The auth events of room versions 3+: create (up to version 11; from 12 the room id names
/// it), power levels, the sender's membership and, for member events, the target's membership
/// and the join rules.
pub(super) fn auth_event_ids(head: &RoomHead, draft: &Draft, version: &RoomVersion) -> Vec<String> {
    if draft.kind == "m.room.create" {
        return Vec::new();
    }
    let mut keys = Vec::with_capacity(5);
    if !version.room_id_is_create_hash {
        keys.push(("m.room.create", ""));
    }
    keys.extend([
        ("m.room.power_levels", ""),
        ("m.room.member", draft.sender.as_str()),
    ]);
    if draft.kind == "m.room.member" {
        if let Some(target) = &draft.state_key {
            keys.push(("m.room.member", target));
        }
        if matches!(
            draft.content["membership"]
                .as_str()
                .and_then(Membership::parse),
            Some(Membership::Join | Membership::Invite | Membership::Knock)
        ) {
            keys.push(("m.room.join_rules", ""));
        }
    }
    let mut ids: Vec<String> = keys
        .iter()
        .filter_map(|(kind, key)| head.state.get(kind, key).map(|p| p.event_id.to_string()))
        .collect();
    ids.dedup();
    ids
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::service::room_version::{V10, V11, V12};
    use crate::service::rooms::state::{RoomState, StateEntry};

    #[test]
    fn auth_events_are_the_ones_the_spec_selects_for_each_version() {
        let mut state = RoomState::default();
        for (kind, key, id) in [
            ("m.room.create", "", "$create"),
            ("m.room.power_levels", "", "$pl"),
            ("m.room.join_rules", "", "$rules"),
            ("m.room.member", "@a:x", "$a"),
            ("m.room.member", "@b:x", "$b"),
        ] {
            state.set(kind, key, StateEntry::new(id, "@a:x", &json!({})));
        }
        let head = RoomHead {
            state,
            depth: 5,
            ..RoomHead::empty()
        };
        for version in [&V10, &V11, &V12] {
            for (kind, key, content) in [
                ("m.room.message", None, json!({})),
                ("m.room.name", Some(""), json!({})),
                ("m.room.member", Some("@b:x"), json!({"membership": "join"})),
                (
                    "m.room.member",
                    Some("@b:x"),
                    json!({"membership": "invite"}),
                ),
                (
                    "m.room.member",
                    Some("@b:x"),
                    json!({"membership": "knock"}),
                ),
                (
                    "m.room.member",
                    Some("@b:x"),
                    json!({"membership": "leave"}),
                ),
                ("m.room.member", Some("@b:x"), json!({"membership": "ban"})),
            ] {
                let draft = Draft::new("@a:x", kind, key, content.clone());
                let mut ours = auth_event_ids(&head, &draft, version);
                let raw = serde_json::value::to_raw_value(&content).unwrap();
                let mut spec: Vec<String> = ruma_state_res::auth_types_for_event(
                    &kind.into(),
                    &ruma_common::UserId::parse("@a:x").unwrap(),
                    key,
                    &raw,
                    &version.ruma_rules().authorization,
                )
                .unwrap()
                .into_iter()
                .filter_map(|(t, k)| head.state.get(&t.to_string(), &k))
                .map(|e| e.event_id.to_string())
                .collect();
                ours.sort();
                spec.sort();
                spec.dedup();
                assert_eq!(ours, spec, "v{} {kind} {content}", version.id);
            }
        }
    }
}
