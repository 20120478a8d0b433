//! The plugin's web endpoint, `GET /_plugboard/plugins/midi-logger/rooms/{roomId}.mid`: a
//! room's whole recording as a Standard MIDI File, for a caller whose access token is valid
//! and who is joined to the room. Errors are Matrix error bodies.

use percent_encoding::percent_decode_str;
use plugboard_sdk::prelude::*;

use crate::export;
use crate::store;

/// What the endpoint needs of the plugin's configuration.
pub struct Limits {
    /// Records read at most.
    pub max_events: u64,
    /// The longest pause kept.
    pub max_gap_ms: u64,
}

/// The answer to `request`.
pub fn serve(request: &HttpRequest, limits: &Limits) -> HttpResponse {
    let Some(room) = request
        .path
        .strip_prefix("/rooms/")
        .and_then(|p| p.strip_suffix(".mid"))
    else {
        return HttpResponse::error(404, "M_UNRECOGNIZED", "no such endpoint");
    };
    if !matches!(request.method.as_str(), "GET" | "HEAD") {
        return HttpResponse::error(405, "M_UNRECOGNIZED", "only GET is supported here");
    }
    let Some(room) = room_id(room) else {
        return HttpResponse::error(400, "M_INVALID_PARAM", "not a room id");
    };
    let Some(user) = request.user_id.as_deref() else {
        let sent_one = request.header("authorization").is_some()
            || request.query_param("access_token").is_some();
        return if sent_one {
            HttpResponse::error(401, "M_UNKNOWN_TOKEN", "unknown access token")
        } else {
            HttpResponse::error(401, "M_MISSING_TOKEN", "an access token is required")
        };
    };
    if let Some(refusal) = check_member(&room, user) {
        return refusal;
    }
    match file(&room, limits) {
        Ok(Some(bytes)) => HttpResponse {
            status: 200,
            headers: vec![
                ("content-type".into(), "audio/midi".into()),
                (
                    "content-disposition".into(),
                    "attachment; filename=\"midi-all.mid\"".into(),
                ),
            ],
            body: bytes,
        },
        Ok(None) => HttpResponse::error(404, "M_NOT_FOUND", "no notes recorded in this room"),
        Err(e) => {
            log::warn(&format!(
                "cannot export {room}: {}: {}",
                e.errcode, e.message
            ));
            HttpResponse::error(500, "M_UNKNOWN", "the recording could not be read")
        }
    }
}

/// The room id of a path segment, percent-decoded; `None` for what is no room id.
fn room_id(segment: &str) -> Option<String> {
    let id = percent_decode_str(segment).decode_utf8().ok()?;
    let valid = id.len() <= 255
        && id.starts_with('!')
        && id.contains(':')
        && !id.contains('/')
        && !id.chars().any(char::is_control);
    valid.then(|| id.into_owned())
}

/// `None` when `user` is joined to `room`; else the refusal.
fn check_member(room: &str, user: &str) -> Option<HttpResponse> {
    let forbidden = || HttpResponse::error(403, "M_FORBIDDEN", "you are not in this room");
    // The logger reads the room as of its own leave once it has left, which would show a
    // member who left since as still in: so it answers only for rooms it is in.
    let me = homeserver::sender();
    match homeserver::get_state(None, room, "m.room.member", &me) {
        Ok(member) if member["membership"] == "join" => {}
        _ => {
            return Some(HttpResponse::error(
                404,
                "M_NOT_FOUND",
                "midi-logger is not in this room",
            ))
        }
    }
    match homeserver::get_state(None, room, "m.room.member", user) {
        Ok(member) if member["membership"] == "join" => None,
        Ok(_) => Some(forbidden()),
        Err(e) if e.is("M_NOT_FOUND") => Some(forbidden()),
        // The logger's own user cannot see the room: it has recorded nothing there.
        Err(e) if e.is("M_FORBIDDEN") => Some(HttpResponse::error(
            404,
            "M_NOT_FOUND",
            "midi-logger is not in this room",
        )),
        Err(e) => {
            log::warn(&format!(
                "cannot check {user} in {room}: {}: {}",
                e.errcode, e.message
            ));
            Some(HttpResponse::error(
                500,
                "M_UNKNOWN",
                "membership could not be checked",
            ))
        }
    }
}

fn file(room: &str, limits: &Limits) -> Result<Option<Vec<u8>>, Error> {
    let limit = usize::try_from(limits.max_events).unwrap_or(usize::MAX);
    let recording = store::read(room, None, limit)?;
    let name = format!("{room} (all)");
    let x = export::export(
        &recording.notes,
        &recording.senders,
        limits.max_gap_ms,
        &name,
    );
    Ok(x.map(|x| x.file))
}
