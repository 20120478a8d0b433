//! The plugin's web endpoint, `GET /_plugboard/plugins/midi-logger/rooms/{roomId}.mid`: a
//! room's whole recording as a Standard MIDI File, for a caller the server says may read the
//! room now and all of its history (the host's `access-to-rooms`). Errors are Matrix error
//! bodies.

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
    // The host refuses a token it does not know before the request comes here.
    let Some(user) = request.user_id.as_deref() else {
        return HttpResponse::error(401, "M_MISSING_TOKEN", "an access token is required");
    };
    if let Some(refusal) = check_access(&room, user) {
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
    plugboard_sdk::types::is_room_id(&id).then(|| id.into_owned())
}

/// `None` when `user` may have the room's recording; else the refusal. The logger answers
/// only for rooms it is in (what it recorded in a room it left stays unserved), and only to
/// someone the server says may read the room now and every event of it: the file holds all
/// of its notes, which cannot be cut to the events a caller may see.
fn check_access(room: &str, user: &str) -> Option<HttpResponse> {
    let refused =
        |status: u16, errcode: &str, why: &str| Some(HttpResponse::error(status, errcode, why));
    let checked = (|| -> Result<Option<HttpResponse>, Error> {
        if !homeserver::joined_rooms(None)?.iter().any(|r| r == room) {
            return Ok(refused(
                404,
                "M_NOT_FOUND",
                "midi-logger is not in this room",
            ));
        }
        let access = homeserver::room_access(user, room)?;
        Ok(if !access.readable {
            refused(403, "M_FORBIDDEN", "you may not read this room")
        } else if !access.whole_history {
            refused(
                403,
                "M_FORBIDDEN",
                "part of this room's history is hidden from you, and the recording holds all of it",
            )
        } else {
            None
        })
    })();
    checked.unwrap_or_else(|e| {
        log::warn(&format!(
            "cannot check {user} in {room}: {}: {}",
            e.errcode, e.message
        ));
        refused(500, "M_UNKNOWN", "access to the room could not be checked")
    })
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
