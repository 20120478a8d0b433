//! Room tags: a user's `m.tag` room account data (`{"tags": {"u.work": {"order": 0.5}}}`),
//! read and changed one tag at a time through `/user/{userId}/rooms/{roomId}/tags`; /sync
//! carries the room's account data as it carries any other.

use serde_json::{json, Map, Value};

use super::identifiers::{RoomId, UserId, MAX_ID_BYTES};
use super::{Error, Result, Services};

/// The room account data type tags are kept under.
const TAGS: &str = "m.tag";

impl Services {
    /// `{"tags": {…}}`: the user's tags on the room, none when they have set none.
    pub(crate) async fn room_tags(&self, user_id: &UserId, room_id: &RoomId) -> Result<Value> {
        let kept = self
            .storage
            .account_data(user_id, room_id, TAGS)
            .await?
            .and_then(|text| serde_json::from_str::<Value>(&text).ok());
        Ok(json!({ "tags": tag_map(kept) }))
    }

    /// Adds `tag` to the room, with `content` (its `order`, and anything else the client keeps
    /// with it), or changes it.
    pub(crate) async fn set_room_tag(
        &self,
        user_id: &UserId,
        room_id: &RoomId,
        tag: &str,
        content: Value,
    ) -> Result<()> {
        check_tag(tag, &content)?;
        self.rooms.require_room(room_id).await?;
        self.update_account_data(user_id, Some(room_id), TAGS, |kept| {
            let mut tags = tag_map(kept);
            tags.insert(tag.to_string(), content);
            Ok(json!({ "tags": tags }))
        })
        .await
    }

    /// Removes `tag` from the room; removing a tag the room does not have is no error.
    pub(crate) async fn remove_room_tag(
        &self,
        user_id: &UserId,
        room_id: &RoomId,
        tag: &str,
    ) -> Result<()> {
        self.update_account_data(user_id, Some(room_id), TAGS, |kept| {
            let mut tags = tag_map(kept);
            tags.remove(tag);
            Ok(json!({ "tags": tags }))
        })
        .await
    }
}

/// The tags in kept `m.tag` content; none when it has no map of them.
fn tag_map(kept: Option<Value>) -> Map<String, Value> {
    match kept.and_then(|mut c| c.get_mut("tags").map(Value::take)) {
        Some(Value::Object(tags)) => tags,
        _ => Map::new(),
    }
}

/// A tag name is 1 to 255 bytes without control characters; its content an object whose
/// `order`, if any, is a number.
fn check_tag(tag: &str, content: &Value) -> Result<()> {
    if tag.is_empty() || tag.len() > MAX_ID_BYTES || tag.chars().any(char::is_control) {
        return Err(Error::InvalidParam(
            "a tag is 1 to 255 bytes without control characters".into(),
        ));
    }
    let Some(fields) = content.as_object() else {
        return Err(Error::BadJson("a tag's content is a JSON object".into()));
    };
    if fields.get("order").is_some_and(|o| !o.is_number()) {
        return Err(Error::BadJson("a tag's 'order' is a number".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_read_from_what_is_kept_and_nothing_else() {
        let kept = json!({"tags": {"u.work": {"order": 0.5}, "m.favourite": {}}});
        assert_eq!(tag_map(Some(kept)).len(), 2);
        assert!(tag_map(None).is_empty());
        assert!(tag_map(Some(json!({"tags": [1]}))).is_empty());
        assert!(tag_map(Some(json!({"other": {}}))).is_empty());
    }

    #[test]
    fn a_tag_needs_a_name_and_a_numeric_order() {
        assert!(check_tag("u.work", &json!({"order": 0.25})).is_ok());
        assert!(check_tag("m.lowpriority", &json!({})).is_ok());
        assert_eq!(
            check_tag("", &json!({})).unwrap_err().errcode(),
            "M_INVALID_PARAM"
        );
        assert_eq!(
            check_tag(&"t".repeat(256), &json!({}))
                .unwrap_err()
                .errcode(),
            "M_INVALID_PARAM"
        );
        assert_eq!(
            check_tag("u.a\nb", &json!({})).unwrap_err().errcode(),
            "M_INVALID_PARAM"
        );
        assert_eq!(
            check_tag("u.work", &json!({"order": "first"}))
                .unwrap_err()
                .errcode(),
            "M_BAD_JSON"
        );
        assert_eq!(
            check_tag("u.work", &json!([])).unwrap_err().errcode(),
            "M_BAD_JSON"
        );
    }
}
