//! Room greetings: the text set with `!welcome on TEXT`, kept per room in kv, and the rule
//! for which membership events are arrivals worth greeting.

use plugboard_sdk::prelude::*;

/// The longest greeting, in characters.
pub const MAX_TEXT: usize = 1000;

/// The kv key of a room's greeting.
pub fn key(room: &str) -> String {
    format!("welcome/{room}")
}

/// The room's greeting, if one is on.
pub fn get(room: &str) -> Result<Option<String>, Error> {
    kv::get_json(&key(room))
}

/// Whether `event` is someone arriving: a join whose previous membership (the event's
/// `unsigned.prev_content`) was not a join, so profile changes are not greeted again.
pub fn is_arrival(event: &Event, member: &Membership) -> bool {
    member.membership == "join"
        && event.raw()["unsigned"]["prev_content"]["membership"].as_str() != Some("join")
}

/// The greeting for `member`: `{name}` in the text becomes their display name (or id).
pub fn greeting(text: &str, member: &Membership) -> String {
    let name = member.displayname.as_deref().unwrap_or(&member.user_id);
    text.replace("{name}", name)
}
