//! Who may find what. In a room whose history members see only from when they joined
//! (`history_visibility` `joined` or `invited`), a searcher finds the messages from their
//! latest join on; in a `shared` or `world_readable` room, all of them. The indexer keeps
//! each member's latest join time from the membership events it is handed, with the rest
//! of the room's history (a replay hands them over in order too).
//!
//! Leaving and joining again hides the earlier stretch as well: stricter than the rule for
//! events, never looser.

use plugboard_sdk::prelude::*;

/// The key of `user`'s latest join to `room`. Both ids at their longest would pass a key's
/// limit: a user id too long for what the room leaves is a digest here.
fn key(room: &str, user: &str) -> String {
    let prefix = format!("joined/{room}/");
    let user = kv::key_part(user, kv::MAX_KEY.saturating_sub(prefix.len()));
    format!("{prefix}{user}")
}

/// Notes `member` joining, when it is a join after something else (not a profile change).
pub fn record(event: &Event, member: &Membership) -> Result<(), Error> {
    let before = event.raw()["unsigned"]["prev_content"]["membership"].as_str();
    if member.membership == "join" && before != Some("join") {
        kv::set_json(
            &key(&event.room_id, &member.user_id),
            &event.origin_server_ts,
        )?;
    }
    Ok(())
}

/// The earliest `origin_server_ts` `user`, a member of `room`, may find there.
pub fn since(room: &str, user: &str) -> Result<u64, Error> {
    let visibility = match homeserver::get_state(None, room, "m.room.history_visibility", "") {
        Ok(content) => content["history_visibility"]
            .as_str()
            .unwrap_or("shared")
            .to_string(),
        Err(e) if e.is("M_NOT_FOUND") => "shared".to_string(),
        Err(e) => return Err(e),
    };
    if matches!(visibility.as_str(), "shared" | "world_readable") {
        return Ok(0);
    }
    // No join seen: the member was in the room before anything here was indexed.
    Ok(kv::get_json(&key(room, user))?.unwrap_or(0))
}
