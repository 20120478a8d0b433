//! Event filters for /sync and /messages: the subset of the spec's filter language that
//! selects rooms, event types and senders and sets the timeline limit.

use serde_json::Value;

use crate::service::identifiers::{parse_room_id, parse_user_id, UserId};
use crate::service::{Error, Result};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    pub(crate) limit: Option<usize>,
    /// Unread counts per thread (`unread_thread_notifications`), for the timeline filter.
    pub(crate) unread_thread_notifications: bool,
    pub types: Option<Vec<String>>,
    pub not_types: Vec<String>,
    pub senders: Option<Vec<String>>,
    pub not_senders: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncFilter {
    pub(crate) rooms: Option<Vec<String>>,
    pub(crate) not_rooms: Vec<String>,
    pub timeline: EventFilter,
    pub state: EventFilter,
    pub ephemeral: EventFilter,
    pub account_data: EventFilter,
    pub room_account_data: EventFilter,
    pub presence: EventFilter,
    pub(crate) include_leave: bool,
}

/// Timeline events per room when the filter names no limit.
pub(crate) const DEFAULT_TIMELINE_LIMIT: usize = 10;
const MAX_LIMIT: usize = 1000;

/// Filters are checked against every event a sync reads: bound what one can ask for.
const MAX_FILTER_ITEMS: usize = 256;
const MAX_FILTER_ITEM_BYTES: usize = 512;

fn strings(v: &Value, key: &str) -> Result<Option<Vec<String>>> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) if items.len() > MAX_FILTER_ITEMS => Err(Error::BadJson(
            format!("`{key}` may list at most {MAX_FILTER_ITEMS} entries"),
        )),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .filter(|s| s.len() <= MAX_FILTER_ITEM_BYTES)
                    .map(str::to_string)
                    .ok_or_else(|| {
                        Error::BadJson(format!(
                            "`{key}` must list strings of at most {MAX_FILTER_ITEM_BYTES} bytes"
                        ))
                    })
            })
            .collect::<Result<Vec<_>>>()
            .map(Some),
        Some(_) => Err(Error::BadJson(format!("`{key}` must be a list of strings"))),
    }
}

/// A list of identifiers (room ids, user ids) that `valid` accepts, as Synapse's filter schema
/// has them: a filter naming something that cannot exist is a client's mistake.
fn ids(
    v: &Value,
    key: &str,
    valid: fn(&str) -> Result<(&str, &str)>,
    what: &str,
) -> Result<Option<Vec<String>>> {
    let list = strings(v, key)?;
    if let Some(bad) = list.iter().flatten().find(|id| valid(id).is_err()) {
        return Err(Error::BadJson(format!(
            "`{key}` must list {what}s, and '{}' is not one",
            bad.escape_debug()
        )));
    }
    Ok(list)
}

/// An optional boolean field.
fn flag(v: &Value, key: &str) -> Result<bool> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(Error::BadJson(format!("`{key}` must be true or false"))),
    }
}

impl EventFilter {
    pub fn parse(v: &Value) -> Result<EventFilter> {
        if v.is_null() {
            return Ok(EventFilter::default());
        }
        if !v.is_object() {
            return Err(Error::BadJson("a filter must be a JSON object".into()));
        }
        let limit = match v.get("limit") {
            None | Some(Value::Null) => None,
            Some(l) => Some(
                l.as_u64()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| Error::BadJson("`limit` must be a positive integer".into()))?
                    .min(MAX_LIMIT as u64) as usize,
            ),
        };
        // The room event filter's fields that are not applied here still have their types.
        for key in [
            "lazy_load_members",
            "include_redundant_members",
            "contains_url",
        ] {
            flag(v, key)?;
        }
        ids(v, "rooms", parse_room_id, "room id")?;
        ids(v, "not_rooms", parse_room_id, "room id")?;
        Ok(EventFilter {
            limit,
            unread_thread_notifications: flag(v, "unread_thread_notifications")?,
            types: strings(v, "types")?,
            not_types: strings(v, "not_types")?.unwrap_or_default(),
            senders: ids(v, "senders", parse_user_id, "user id")?,
            not_senders: ids(v, "not_senders", parse_user_id, "user id")?.unwrap_or_default(),
        })
    }

    /// Whether `kind` passes `types` and `not_types`; for ephemeral events, which have no sender.
    pub fn matches_type(&self, kind: &str) -> bool {
        !self.not_types.iter().any(|t| glob(t, kind))
            && self
                .types
                .as_ref()
                .is_none_or(|types| types.iter().any(|t| glob(t, kind)))
    }

    pub fn matches(&self, kind: &str, sender: &str) -> bool {
        if !self.matches_type(kind) {
            return false;
        }
        if self.not_senders.iter().any(|s| s == sender) {
            return false;
        }
        if let Some(senders) = &self.senders {
            if !senders.iter().any(|s| s == sender) {
                return false;
            }
        }
        true
    }
}

impl SyncFilter {
    pub fn parse(v: &Value) -> Result<SyncFilter> {
        if !v.is_object() {
            return Err(Error::BadJson("a filter must be a JSON object".into()));
        }
        let room = v.get("room").cloned().unwrap_or(Value::Null);
        if !room.is_null() && !room.is_object() {
            return Err(Error::BadJson("`room` must be an object".into()));
        }
        let sub = |key: &str| EventFilter::parse(room.get(key).unwrap_or(&Value::Null));
        strings(v, "event_fields")?;
        match v.get("event_format") {
            None | Some(Value::Null) => {}
            Some(Value::String(f)) if f == "client" || f == "federation" => {}
            Some(_) => {
                return Err(Error::BadJson(
                    "`event_format` must be \"client\" or \"federation\"".into(),
                ))
            }
        }
        Ok(SyncFilter {
            rooms: ids(&room, "rooms", parse_room_id, "room id")?,
            not_rooms: ids(&room, "not_rooms", parse_room_id, "room id")?.unwrap_or_default(),
            timeline: sub("timeline")?,
            state: sub("state")?,
            ephemeral: sub("ephemeral")?,
            room_account_data: sub("account_data")?,
            account_data: EventFilter::parse(v.get("account_data").unwrap_or(&Value::Null))?,
            presence: EventFilter::parse(v.get("presence").unwrap_or(&Value::Null))?,
            include_leave: flag(&room, "include_leave")?,
        })
    }

    pub fn includes_room(&self, room_id: &str) -> bool {
        if self.not_rooms.iter().any(|r| r == room_id) {
            return false;
        }
        self.rooms
            .as_ref()
            .is_none_or(|rooms| rooms.iter().any(|r| r == room_id))
    }

    pub fn timeline_limit(&self) -> usize {
        self.timeline.limit.unwrap_or(DEFAULT_TIMELINE_LIMIT)
    }
}

/// The spec's filter wildcard: `*` matches any run of characters. Linear in the value: the
/// pieces between stars are found left to right, which is enough for `*` (no `?`).
fn glob(pattern: &str, value: &str) -> bool {
    let mut pieces = pattern.split('*');
    let first = pieces.next().unwrap_or("");
    let Some(last) = pattern.rfind('*').map(|i| &pattern[i + 1..]) else {
        return pattern == value;
    };
    if value.len() < first.len() + last.len() || !value.starts_with(first) || !value.ends_with(last)
    {
        return false;
    }
    let mut rest = &value[first.len()..value.len() - last.len()];
    let middle: Vec<&str> = pieces.collect();
    for piece in &middle[..middle.len().saturating_sub(1)] {
        match rest.find(piece) {
            Some(i) => rest = &rest[i + piece.len()..],
            None => return false,
        }
    }
    true
}

impl crate::service::Services {
    /// Stores a filter after checking it parses; answers its id.
    pub(crate) async fn create_filter(&self, user_id: &UserId, filter: &Value) -> Result<String> {
        SyncFilter::parse(filter)?;
        let id = self
            .storage
            .create_filter(user_id, &filter.to_string())
            .await?;
        Ok(id.to_string())
    }

    pub(crate) async fn filter(&self, user_id: &UserId, filter_id: &str) -> Result<Value> {
        let not_found = || Error::NotFound(format!("unknown filter {filter_id}"));
        let id: i64 = filter_id.parse().map_err(|_| not_found())?;
        let text = self
            .storage
            .filter(user_id, id)
            .await?
            .ok_or_else(not_found)?;
        Ok(serde_json::from_str(&text).map_err(crate::storage::StorageError::from)?)
    }

    /// The sync filter a `/sync?filter=` names: inline JSON or an uploaded filter's id.
    pub(crate) async fn sync_filter(
        &self,
        user_id: &UserId,
        param: Option<&str>,
    ) -> Result<SyncFilter> {
        match param {
            None | Some("") => Ok(SyncFilter::default()),
            Some(f) if f.trim_start().starts_with('{') => {
                let v: Value = serde_json::from_str(f)
                    .map_err(|e| Error::NotJson(format!("filter is not JSON: {e}")))?;
                SyncFilter::parse(&v)
            }
            Some(id) => SyncFilter::parse(&self.filter(user_id, id).await?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn types_with_wildcards() {
        let f = EventFilter::parse(&json!({"types": ["m.room.*"], "not_types": ["m.room.member"]}))
            .unwrap();
        assert!(f.matches("m.room.message", "@a:x"));
        assert!(!f.matches("m.room.member", "@a:x"));
        assert!(!f.matches("org.x", "@a:x"));
    }

    #[test]
    fn senders() {
        let f = EventFilter::parse(&json!({"not_senders": ["@b:x"]})).unwrap();
        assert!(f.matches("m.room.message", "@a:x"));
        assert!(!f.matches("m.room.message", "@b:x"));
    }

    #[test]
    fn sync_filter_rooms_and_limit() {
        let f = SyncFilter::parse(&json!({"room": {"rooms": ["!a:x"], "timeline": {"limit": 3}}}))
            .unwrap();
        assert!(f.includes_room("!a:x"));
        assert!(!f.includes_room("!b:x"));
        assert_eq!(f.timeline_limit(), 3);
        assert_eq!(SyncFilter::default().timeline_limit(), 10);
    }

    #[test]
    fn bad_filters_are_refused() {
        assert!(SyncFilter::parse(&json!([])).is_err());
        assert!(SyncFilter::parse(&json!({"room": {"timeline": {"limit": "x"}}})).is_err());
        assert!(SyncFilter::parse(&json!({"room": {"rooms": [1]}})).is_err());
    }

    #[test]
    fn filter_fields_have_the_spec_types() {
        for bad in [
            json!({"event_format": "raw"}),
            json!({"event_format": 1}),
            json!({"event_fields": "content.body"}),
            json!({"event_fields": [1]}),
            json!({"presence": {"limit": -1}}),
            json!({"room": {"include_leave": "yes"}}),
            json!({"room": {"rooms": ["lobby"]}}),
            json!({"room": {"not_rooms": ["!a\u{0}:x"]}}),
            json!({"room": {"timeline": {"senders": ["bob"]}}}),
            json!({"room": {"timeline": {"lazy_load_members": 1}}}),
            json!({"room": {"state": {"contains_url": "true"}}}),
            json!({"room": {"timeline": {"rooms": ["x"]}}}),
        ] {
            let e = SyncFilter::parse(&bad).expect_err(&bad.to_string());
            assert_eq!(e.errcode(), "M_BAD_JSON", "{bad}");
        }
        let good = json!({
            "event_format": "client", "event_fields": ["content.body"],
            "presence": {"types": ["m.presence"]},
            "room": {"include_leave": true, "rooms": ["!a:x"],
                     "timeline": {"lazy_load_members": true, "senders": ["@b:x"], "limit": 5}},
        });
        let f = SyncFilter::parse(&good).unwrap();
        assert!(f.include_leave);
        assert_eq!(f.timeline_limit(), 5);
    }

    #[test]
    fn glob_matches_like_the_spec() {
        assert!(glob("*", "anything"));
        assert!(glob("a*c", "abbbc"));
        assert!(!glob("a*c", "abbb"));
        assert!(glob("m.*", "m.ü"));
        assert!(glob("a*b*c", "aXbYc"));
        assert!(!glob("a*b*c", "aXcYb"));
        assert!(glob("*.message", "m.room.message"));
        assert!(!glob("ab*ba", "aba"), "pieces may not overlap");
        assert!(glob("**", ""));
    }

    #[test]
    fn glob_is_linear_in_stars() {
        // Backtracking would not finish this in the lifetime of the test run.
        let pattern = format!("{}x", "*".repeat(200));
        assert!(!glob(&pattern, &"m".repeat(10_000)));
    }
}
