//! The authenticated routes that name a room in their path, one table for the modules that
//! walk them: `identifiers` with a malformed room id, `tokens` with a real room and a bad
//! token. Each body would be fine for a real room.

use super::*;

/// A request: method, path under `/_matrix/client/v3` (or absolute), body.
pub(crate) type Route = (Method, String, Option<Value>);

/// The routes with room `r` (percent-encoded) in their path; `a` is a user and `e` an event
/// of that room, both percent-encoded.
pub(crate) fn room_routes(r: &str, a: &str, e: &str) -> Vec<Route> {
    let kick = || Some(json!({"user_id": "@bob:localhost"}));
    vec![
        (
            Method::PUT,
            format!("/rooms/{r}/send/m.room.message/{}", txn()),
            Some(json!({"body": "x"})),
        ),
        (
            Method::PUT,
            format!("/_matrix/client/r0/rooms/{r}/send/m.room.message/{}", txn()),
            Some(json!({"body": "x"})),
        ),
        (
            Method::POST,
            format!("/_matrix/client/api/v1/rooms/{r}/send/m.room.message"),
            Some(json!({"body": "x"})),
        ),
        (Method::GET, format!("/rooms/{r}/state/m.room.name"), None),
        (
            Method::PUT,
            format!("/rooms/{r}/state/m.room.name"),
            Some(json!({"name": "x"})),
        ),
        (Method::GET, format!("/rooms/{r}/state/m.room.name/"), None),
        (
            Method::PUT,
            format!("/rooms/{r}/state/m.room.name/"),
            Some(json!({"name": "x"})),
        ),
        (Method::GET, format!("/rooms/{r}/state"), None),
        (Method::POST, format!("/rooms/{r}/join"), Some(json!({}))),
        (
            Method::POST,
            format!("/rooms/{r}/invite"),
            Some(json!({"user_id": "@carol:localhost"})),
        ),
        (Method::POST, format!("/rooms/{r}/leave"), Some(json!({}))),
        (Method::POST, format!("/rooms/{r}/forget"), Some(json!({}))),
        (Method::POST, format!("/rooms/{r}/kick"), kick()),
        (Method::POST, format!("/rooms/{r}/ban"), kick()),
        (Method::POST, format!("/rooms/{r}/unban"), kick()),
        (Method::GET, format!("/rooms/{r}/joined_members"), None),
        (Method::GET, format!("/rooms/{r}/members"), None),
        (Method::GET, format!("/rooms/{r}/messages"), None),
        (Method::GET, format!("/rooms/{r}/event/{e}"), None),
        (Method::GET, format!("/rooms/{r}/aliases"), None),
        (
            Method::PUT,
            format!("/rooms/{r}/redact/{e}/{}", txn()),
            Some(json!({})),
        ),
        (
            Method::PUT,
            format!("/rooms/{r}/typing/{a}"),
            Some(json!({"typing": true})),
        ),
        (
            Method::POST,
            format!("/rooms/{r}/receipt/m.read/{e}"),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/rooms/{r}/read_markers"),
            Some(json!({})),
        ),
        (
            Method::PUT,
            format!("/user/{a}/rooms/{r}/account_data/org.example.x"),
            Some(json!({})),
        ),
        (
            Method::GET,
            format!("/user/{a}/rooms/{r}/account_data/org.example.x"),
            None,
        ),
        (
            Method::PUT,
            format!("/directory/list/room/{r}"),
            Some(json!({"visibility": "private"})),
        ),
    ]
}
