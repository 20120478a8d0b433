//! Room upgrades: a new room of the asked version that names its predecessor, carrying the
//! state the spec lists and the bans, the old room tombstoned and quietened, and its local
//! aliases moved over. Which state goes and how the old room is restricted are pure functions.

use serde_json::{json, Map, Value};

use super::auth::power_levels;
use super::create::CreateRoom;
use super::state::RoomState;
use super::timeline::Draft;
use super::values::{JoinRule, Membership};
use super::RoomService;
use crate::service::identifiers::{RoomId, UserId};
use crate::service::room_version::RoomVersion;
use crate::service::{Error, Result};

/// The state events (with an empty state key) an upgrade copies, as the spec lists them.
const CARRIED: &[&str] = &[
    "m.room.server_acl",
    "m.room.encryption",
    "m.room.name",
    "m.room.avatar",
    "m.room.topic",
    "m.room.guest_access",
    "m.room.history_visibility",
    "m.room.join_rules",
    "m.room.power_levels",
    "m.room.canonical_alias",
];

/// What of the old room's state the new room starts with: the carried events' contents by
/// type, and the banned users.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Carried {
    pub(crate) state: Vec<(&'static str, Value)>,
    pub(crate) banned: Vec<String>,
}

/// The old room's state the new one carries (the create event and members are made anew).
pub(crate) fn carried_state(state: &RoomState) -> Carried {
    let kept = CARRIED
        .iter()
        .filter_map(|kind| state.get(kind, "").map(|e| (*kind, e.content())))
        .filter(|(_, content)| content.as_object().is_some_and(|c| !c.is_empty()))
        .collect();
    let banned = state
        .of_kind("m.room.member")
        .filter(|(_, e)| e.membership() == Some(Membership::Ban))
        .map(|(user, _)| user.to_string())
        .collect();
    Carried {
        state: kept,
        banned,
    }
}

/// The old room's power levels once tombstoned: ordinary users may no longer talk or invite
/// (`events_default` and `invite` raised to `max(50, users_default + 1)`); `None` when they
/// already could not.
pub(crate) fn restricted_power_levels(content: Option<&Value>) -> Option<Value> {
    let mut content = content.cloned().unwrap_or_else(|| json!({}));
    let object = content.as_object_mut()?;
    let users_default = object
        .get("users_default")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let floor = 50.max(users_default.saturating_add(1));
    let mut changed = false;
    for (key, default) in [("events_default", 0), ("invite", 0)] {
        let level = object.get(key).and_then(Value::as_i64).unwrap_or(default);
        if level < floor {
            object.insert(key.to_string(), json!(floor));
            changed = true;
        }
    }
    changed.then_some(content)
}

/// The power levels the upgrader builds the new room under: the old ones, with the upgrader
/// raised above every level they name, so that each carried event and ban may be sent.
fn building_power_levels(old: &Value, upgrader: &str) -> Map<String, Value> {
    let mut levels = old.as_object().cloned().unwrap_or_default();
    let highest = old
        .as_object()
        .into_iter()
        .flat_map(|o| o.values())
        .flat_map(|v| match v {
            Value::Object(m) => m.values().filter_map(Value::as_i64).collect::<Vec<_>>(),
            other => other.as_i64().into_iter().collect(),
        })
        .fold(100, i64::max);
    let users = levels.entry("users").or_insert_with(|| json!({}));
    if let Some(users) = users.as_object_mut() {
        users.insert(upgrader.to_string(), json!(highest));
    }
    levels
}

/// The new room's power levels: the old room's. Version 12's creators may not be named in
/// them (they outrank every level); from a version 12 room into an earlier version, where the
/// upgrader's power comes from the levels, the upgrader (a creator of the old room, outside
/// its levels) gets 100.
fn final_power_levels(
    old: Option<Value>,
    upgrader: &str,
    version: &RoomVersion,
    creators: &[String],
    old_privileged: bool,
) -> Value {
    let mut levels = old.unwrap_or_else(|| json!({}));
    let Some(object) = levels.as_object_mut() else {
        return levels;
    };
    let users = object.entry("users").or_insert_with(|| json!({}));
    if let Some(users) = users.as_object_mut() {
        if version.privileged_creators {
            users.retain(|u, _| !creators.contains(u));
        } else if old_privileged {
            let level = users.get(upgrader).and_then(Value::as_i64).unwrap_or(0);
            if level < 100 {
                users.insert(upgrader.to_string(), json!(100));
            }
        }
    }
    levels
}

impl RoomService {
    /// Upgrades `room_id` to `version` for `user`, who needs the power to send
    /// `m.room.tombstone`, with `additional_creators` beside them where the version has
    /// creators (12); answers the new room's id.
    pub(crate) async fn upgrade(
        &self,
        user: &UserId,
        room_id: &RoomId,
        version: &str,
        additional_creators: &[UserId],
    ) -> Result<String> {
        let version = RoomVersion::get(version).ok_or_else(|| {
            Error::UnsupportedRoomVersion(format!("room version {version} is not supported"))
        })?;
        self.require_room(room_id).await?;
        let (allowed, carried, old_levels, create) = self
            .read_state(room_id, |s| {
                let pl = power_levels(s);
                let joined = s.get("m.room.member", user).and_then(|e| e.membership())
                    == Some(Membership::Join);
                let allowed =
                    joined && pl.user_level(user) >= pl.event_level("m.room.tombstone", true);
                let levels = s.get("m.room.power_levels", "").map(|e| e.content());
                let create = s.get("m.room.create", "").map(|e| e.content());
                let privileged = s.version().is_some_and(|v| v.privileged_creators);
                (allowed, carried_state(s), (levels, privileged), create)
            })
            .await?;
        let (old_levels, old_privileged) = old_levels;
        if !allowed {
            return Err(Error::Forbidden(format!(
                "{user} may not upgrade {room_id}: it takes the power to send m.room.tombstone"
            )));
        }

        let mut creation = Map::new();
        creation.insert("predecessor".into(), json!({ "room_id": room_id }));
        if let Some(kind) = create.as_ref().and_then(|c| c.get("type")) {
            creation.insert("type".into(), kind.clone());
        }
        let mut creators = vec![user.to_string()];
        if version.privileged_creators && !additional_creators.is_empty() {
            creation.insert("additional_creators".into(), json!(additional_creators));
            creators.extend(additional_creators.iter().map(ToString::to_string));
        }
        let public_join = carried.state.iter().any(|(kind, content)| {
            *kind == "m.room.join_rules" && JoinRule::of(Some(content)) == JoinRule::Public
        });
        // The old room's levels without a levels event: its creator's implicit 100 (a
        // version 12 creator's power needs none).
        let old_levels = old_levels
            .or_else(|| (!old_privileged).then(|| json!({"users": {user.as_str(): 100}})));
        let final_levels =
            final_power_levels(old_levels.clone(), user, version, &creators, old_privileged);
        // Version 12's creators need no raised level to build the room (and may not have one).
        let building = if version.privileged_creators {
            final_levels.as_object().cloned().unwrap_or_default()
        } else {
            building_power_levels(&final_levels, user)
        };
        let request = CreateRoom {
            preset: Some(
                if public_join {
                    "public_chat"
                } else {
                    "private_chat"
                }
                .into(),
            ),
            initial_state: carried
                .state
                .iter()
                .filter(|(kind, _)| *kind != "m.room.power_levels")
                .map(|(kind, content)| (kind.to_string(), String::new(), content.clone()))
                .collect(),
            power_level_content_override: Some(building),
            creation_content: Some(creation),
            room_version: Some(version.id.to_string()),
            ..CreateRoom::default()
        };
        let new_room = self.create_room(user, request).await?;
        for banned in &carried.banned {
            let content = json!({ "membership": Membership::Ban.as_str() });
            self.append(
                &new_room,
                Draft::new(user, "m.room.member", Some(banned), content),
            )
            .await?;
        }
        self.append(
            &new_room,
            Draft::new(user, "m.room.power_levels", Some(""), final_levels.clone()),
        )
        .await?;

        let tombstone = json!({
            "body": "This room has been replaced",
            "replacement_room": new_room,
        });
        self.append(
            room_id,
            Draft::new(user, "m.room.tombstone", Some(""), tombstone),
        )
        .await?;
        if let Some(restricted) = restricted_power_levels(old_levels.as_ref()) {
            self.append(
                room_id,
                Draft::new(user, "m.room.power_levels", Some(""), restricted),
            )
            .await?;
        }
        self.move_aliases(user, room_id, &new_room).await?;
        Ok(new_room)
    }

    /// Points the old room's local aliases at the new one, takes its canonical alias away
    /// (the new room carries it) and lists the new room instead of the old in the directory.
    async fn move_aliases(&self, user: &str, old: &str, new: &str) -> Result<()> {
        self.storage.move_aliases(old, new).await?;
        (self.alias_changed)(old);
        (self.alias_changed)(new);
        if self
            .state_content(old, "m.room.canonical_alias", "")
            .await?
            .is_some()
        {
            self.append(
                old,
                Draft::new(user, "m.room.canonical_alias", Some(""), json!({})),
            )
            .await?;
        }
        if self.storage.room_is_public(old).await? {
            self.storage.set_room_public(old, false).await?;
            self.storage.set_room_public(new, true).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::rooms::state::StateEntry;

    fn put(s: &mut RoomState, kind: &str, key: &str, content: Value) {
        s.set(
            kind,
            key,
            StateEntry::new(&format!("${kind}{key}"), "@c:x", &content),
        );
    }

    #[test]
    fn an_upgrade_carries_the_specs_state_and_the_bans_and_nothing_else() {
        let mut s = RoomState::default();
        put(
            &mut s,
            "m.room.create",
            "",
            json!({"creator": "@c:x", "room_version": "10"}),
        );
        put(&mut s, "m.room.name", "", json!({"name": "Cheese"}));
        put(&mut s, "m.room.topic", "", json!({"topic": "Tasty"}));
        put(
            &mut s,
            "m.room.join_rules",
            "",
            json!({"join_rule": "knock"}),
        );
        put(
            &mut s,
            "m.room.power_levels",
            "",
            json!({"users": {"@c:x": 100}}),
        );
        put(
            &mut s,
            "m.room.encryption",
            "",
            json!({"algorithm": "m.megolm.v1.aes-sha2"}),
        );
        put(&mut s, "m.room.canonical_alias", "", json!({}));
        put(
            &mut s,
            "m.room.message",
            "",
            json!({"body": "not state to carry"}),
        );
        put(&mut s, "org.example.custom", "", json!({"x": 1}));
        put(
            &mut s,
            "m.room.member",
            "@c:x",
            json!({"membership": "join"}),
        );
        put(
            &mut s,
            "m.room.member",
            "@b:x",
            json!({"membership": "ban"}),
        );
        put(
            &mut s,
            "m.room.member",
            "@l:x",
            json!({"membership": "leave"}),
        );

        let carried = carried_state(&s);
        let kinds: Vec<&str> = carried.state.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            kinds,
            [
                "m.room.encryption",
                "m.room.name",
                "m.room.topic",
                "m.room.join_rules",
                "m.room.power_levels"
            ],
            "an emptied canonical alias is not carried"
        );
        assert_eq!(carried.state[1].1, json!({"name": "Cheese"}));
        assert_eq!(carried.banned, ["@b:x"]);
    }

    #[test]
    fn the_old_room_is_closed_to_ordinary_users() {
        let restricted = restricted_power_levels(Some(&json!({"users": {"@c:x": 100}})));
        assert_eq!(
            restricted,
            Some(json!({"users": {"@c:x": 100}, "events_default": 50, "invite": 50}))
        );
        let generous = json!({"users_default": 60, "events_default": 10, "invite": 70});
        assert_eq!(
            restricted_power_levels(Some(&generous)),
            Some(json!({"users_default": 60, "events_default": 61, "invite": 70}))
        );
        let closed = json!({"events_default": 50, "invite": 50});
        assert_eq!(restricted_power_levels(Some(&closed)), None);
        assert_eq!(
            restricted_power_levels(None),
            Some(json!({"events_default": 50, "invite": 50}))
        );
    }

    #[test]
    fn creators_leave_the_levels_of_a_version_12_room_and_come_back_into_earlier_ones() {
        use crate::service::room_version::{V10, V12};
        let old = json!({"users": {"@c:x": 100, "@d:x": 100, "@m:x": 50}, "ban": 60});
        let creators = ["@c:x".to_string(), "@d:x".to_string()];
        let into_12 = final_power_levels(Some(old.clone()), "@c:x", &V12, &creators, false);
        assert_eq!(into_12, json!({"users": {"@m:x": 50}, "ban": 60}));
        let from_12 = json!({"users": {"@m:x": 50}});
        let into_10 = final_power_levels(Some(from_12), "@c:x", &V10, &creators, true);
        assert_eq!(into_10, json!({"users": {"@m:x": 50, "@c:x": 100}}));
        let unchanged = final_power_levels(Some(old.clone()), "@m:x", &V10, &creators, false);
        assert_eq!(unchanged, old);
    }

    #[test]
    fn the_upgrader_builds_the_new_room_above_every_level() {
        let old = json!({"users": {"@c:x": 100, "@m:x": 50}, "events": {"x.y": 150}, "ban": 50});
        let building = building_power_levels(&old, "@m:x");
        assert_eq!(building["users"]["@m:x"], 150);
        assert_eq!(building["users"]["@c:x"], 100);
        assert_eq!(building["ban"], 50);
    }
}
