//! Matrix identifiers, parsed and checked here so that a bad one is refused with a clear error
//! before it reaches storage: `grammar.rs` has the checks (and the messages), `typed.rs` the
//! id types (`UserId`, `RoomId`, …) that only those checks construct. Ids are parsed once
//! where they enter (the API handlers, the plugin host, registrations) and travel typed.

mod grammar;
mod typed;

pub(crate) use grammar::*;
// The checks the fuzz targets drive.
pub use grammar::{check_event_id, parse_alias, parse_room_id, parse_user_id, valid_server_name};
pub(crate) use typed::{EventId, RoomAlias, RoomId, RoomOrAlias, UserId};
