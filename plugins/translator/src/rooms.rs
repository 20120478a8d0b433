//! Which rooms are translated automatically, and into what: `!translate on LANG` stores the
//! language (once the backend has confirmed it knows it), `!translate off` forgets it.

use plugboard_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// What a translated room is translated into.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomTarget {
    /// The language's code as the backend spells it.
    pub code: String,
    /// Its name.
    pub name: String,
}

fn key(room: &str) -> String {
    format!("room/{room}")
}

/// The language `room` is translated into, if it is.
pub fn target(room: &str) -> Result<Option<RoomTarget>, Error> {
    Ok(kv::get(&key(room))?.and_then(|b| serde_json::from_slice(&b).ok()))
}

/// Translates `room` into `target` from now on.
pub fn set(room: &str, target: &RoomTarget) -> Result<(), Error> {
    kv::set_json(&key(room), target)
}

/// Stops translating `room`; answers whether it was.
pub fn clear(room: &str) -> Result<bool, Error> {
    kv::delete(&key(room))
}
