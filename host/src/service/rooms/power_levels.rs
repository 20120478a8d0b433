//! A room's power levels with the spec's defaults, read from its `m.room.power_levels` event
//! (or the creator's implicit 100 before there is one), and the creators' infinite power of
//! room version 12.

use std::collections::BTreeMap;

use serde_json::Value;

/// The level of a creator of a version 12 room: above every level an event can name (those are
/// at most 2^53 - 1), so every "at least" and "above" of the rules holds for them, and equal
/// between two creators, so that neither outranks the other.
pub(crate) const CREATOR_LEVEL: i64 = i64::MAX;

/// Who created a room and what that gives them: up to version 11, 100 until the room has power
/// levels; from version 12, infinite power for good.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Creators {
    pub(crate) users: Vec<String>,
    pub(crate) privileged: bool,
}

impl Creators {
    pub fn new(users: Vec<String>, privileged: bool) -> Creators {
        Creators { users, privileged }
    }

    pub(crate) fn contains(&self, user: &str) -> bool {
        self.users.iter().any(|u| u == user)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PowerLevels {
    /// The creators of a version 12 room (empty in earlier versions): they outrank `users`.
    pub(crate) privileged: Vec<String>,
    pub(crate) users: BTreeMap<String, i64>,
    pub(crate) users_default: i64,
    pub(crate) events: BTreeMap<String, i64>,
    pub(crate) events_default: i64,
    pub(crate) state_default: i64,
    pub(crate) ban: i64,
    pub(crate) kick: i64,
    pub(crate) redact: i64,
    pub(crate) invite: i64,
    /// `notifications.room`: what the push rules ask of a sender for an `@room` mention.
    pub(crate) notifications_room: i64,
}

impl PowerLevels {
    /// From the content of a power levels event, or the defaults of a room without one, in
    /// which the creators have 100 (infinite power in version 12 either way).
    pub fn from_content(content: Option<&Value>, creators: &Creators) -> PowerLevels {
        let privileged = if creators.privileged {
            creators.users.clone()
        } else {
            Vec::new()
        };
        let Some(c) = content else {
            let users = creators.users.iter().map(|u| (u.clone(), 100)).collect();
            return PowerLevels {
                privileged,
                users,
                users_default: 0,
                events: BTreeMap::new(),
                events_default: 0,
                state_default: 0,
                ban: 50,
                kick: 50,
                redact: 50,
                invite: 0,
                notifications_room: 50,
            };
        };
        let int = |key: &str, default: i64| c.get(key).and_then(as_level).unwrap_or(default);
        let map = |key: &str| {
            c.get(key)
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| as_level(v).map(|l| (k.clone(), l)))
                        .collect()
                })
                .unwrap_or_default()
        };
        PowerLevels {
            privileged,
            users: map("users"),
            users_default: int("users_default", 0),
            events: map("events"),
            events_default: int("events_default", 0),
            state_default: int("state_default", 50),
            ban: int("ban", 50),
            kick: int("kick", 50),
            redact: int("redact", 50),
            invite: int("invite", 0),
            notifications_room: c
                .get("notifications")
                .and_then(|n| n.get("room"))
                .and_then(as_level)
                .unwrap_or(50),
        }
    }

    pub fn user_level(&self, user: &str) -> i64 {
        if self.privileged.iter().any(|u| u == user) {
            return CREATOR_LEVEL;
        }
        self.users.get(user).copied().unwrap_or(self.users_default)
    }

    /// The level needed to send an event of this type (state or not).
    pub fn event_level(&self, kind: &str, is_state: bool) -> i64 {
        self.events.get(kind).copied().unwrap_or(if is_state {
            self.state_default
        } else {
            self.events_default
        })
    }
}

/// Room version 10 takes integers only; strings of digits were legal before it.
fn as_level(v: &Value) -> Option<i64> {
    v.as_i64()
}

/// Why a power levels content is not valid for room version 10, if it is not.
pub(crate) fn invalid_content(c: &Value) -> Option<String> {
    let Some(obj) = c.as_object() else {
        return Some("content must be an object".into());
    };
    for key in [
        "users_default",
        "events_default",
        "state_default",
        "ban",
        "kick",
        "redact",
        "invite",
    ] {
        if let Some(v) = obj.get(key) {
            if v.as_i64().is_none() {
                return Some(format!("`{key}` must be an integer"));
            }
        }
    }
    if let Some(v) = obj.get("notifications") {
        match v.as_object() {
            Some(n) if n.values().all(|l| l.as_i64().is_some()) => {}
            _ => return Some("`notifications` must map to integers".into()),
        }
    }
    for key in ["users", "events"] {
        if let Some(v) = obj.get(key) {
            match v.as_object() {
                Some(m) if m.values().all(|l| l.as_i64().is_some()) => {
                    if key == "users"
                        && m.keys()
                            .any(|u| crate::service::identifiers::parse_user_id(u).is_err())
                    {
                        return Some("`users` keys must be user ids".into());
                    }
                }
                _ => return Some(format!("`{key}` must map to integers")),
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn creator(user: &str) -> Creators {
        Creators {
            users: vec![user.into()],
            privileged: false,
        }
    }

    #[test]
    fn creator_has_100_without_power_levels() {
        let pl = PowerLevels::from_content(None, &creator("@c:x"));
        assert_eq!(pl.user_level("@c:x"), 100);
        assert_eq!(pl.user_level("@o:x"), 0);
        assert_eq!(pl.event_level("m.room.name", true), 0);
    }

    #[test]
    fn defaults_apply_with_power_levels() {
        let pl = PowerLevels::from_content(Some(&json!({"users": {"@a:x": 75}})), &creator("@c:x"));
        assert_eq!(pl.user_level("@a:x"), 75);
        assert_eq!(pl.user_level("@c:x"), 0);
        assert_eq!(pl.event_level("m.room.name", true), 50);
        assert_eq!(pl.event_level("m.room.message", false), 0);
        assert_eq!(pl.ban, 50);
    }

    #[test]
    fn version_12_creators_outrank_every_level_and_tie_with_each_other() {
        let creators = Creators {
            users: vec!["@c:x".into(), "@d:x".into()],
            privileged: true,
        };
        let content = json!({"users": {"@a:x": 9007199254740991_i64}});
        for pl in [
            PowerLevels::from_content(Some(&content), &creators),
            PowerLevels::from_content(None, &creators),
        ] {
            assert_eq!(pl.user_level("@c:x"), CREATOR_LEVEL);
            assert_eq!(pl.user_level("@c:x"), pl.user_level("@d:x"));
            assert!(pl.user_level("@d:x") > 9007199254740991);
            assert!(pl.user_level("@a:x") < CREATOR_LEVEL);
        }
    }

    #[test]
    fn v10_refuses_string_levels() {
        assert!(invalid_content(&json!({"ban": "50"})).is_some());
        assert!(invalid_content(&json!({"users": {"@a:x": "5"}})).is_some());
        assert!(invalid_content(&json!({"users": {"nope": 5}})).is_some());
        assert!(invalid_content(&json!({"ban": 50, "users": {"@a:x": 5}})).is_none());
    }
}
