//! The direct chat between the plugin's sender and one user, where hook URLs go: a hook's
//! token is a secret, so it is never said in the room. One chat per user, made when first
//! needed and made again when the user has left it.

use plugboard_sdk::homeserver::{self, RoomOptions};
use plugboard_sdk::{kv, Error};

fn key(user: &str) -> String {
    format!("dm/{user}")
}

/// The direct chat with `user`, made if there is none they are still in (or invited to).
pub fn room_with(user: &str) -> Result<String, Error> {
    if let Some(room) = kv::get(&key(user))? {
        let room = String::from_utf8_lossy(&room).into_owned();
        if still_shared(&room, user) {
            return Ok(room);
        }
    }
    let room = homeserver::create_room(
        None,
        &RoomOptions {
            name: None,
            topic: None,
            alias_name: None,
            preset: Some("trusted_private_chat".into()),
            public: false,
            is_direct: true,
            invite: vec![user.to_string()],
            extra: None,
        },
    )?;
    kv::set(&key(user), room.as_bytes())?;
    Ok(room)
}

fn still_shared(room: &str, user: &str) -> bool {
    let Ok(members) = homeserver::room_members(None, room) else {
        return false;
    };
    let state = |who: &str| {
        members
            .iter()
            .find(|m| m.user_id == who)
            .map(|m| m.membership.as_str())
    };
    state(&homeserver::sender()) == Some("join")
        && matches!(state(user), Some("join") | Some("invite"))
}
