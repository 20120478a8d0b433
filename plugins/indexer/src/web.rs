//! The web endpoints under `/_plugboard/plugins/indexer/`: `GET /search?q=…&room=…&limit=…`
//! answers JSON hits from the rooms the caller (by access token) is joined to, and
//! `GET /status` the index's counts.

use plugboard_sdk::prelude::*;
use serde_json::json;

use crate::answer;
use crate::index::Index;
use crate::query;
use crate::rejected;
use crate::visibility;

/// Hits the endpoint answers unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 10;
/// Rooms of the plugin's user looked at for one search without `room`.
const MAX_ROOMS: usize = 1000;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Answers a request to the plugin's endpoints.
pub fn handle(index: &mut Index, max_limit: usize, req: &HttpRequest) -> HttpResponse {
    let known = matches!(req.path.as_str(), "/search" | "/status");
    if !known {
        return HttpResponse::not_found();
    }
    if req.method != "GET" {
        return HttpResponse::error(405, "M_UNRECOGNIZED", "only GET is supported here");
    }
    let Some(user) = req.user_id.as_deref() else {
        return if req.header("authorization").is_some() {
            HttpResponse::error(401, "M_UNKNOWN_TOKEN", "the access token is not known")
        } else {
            HttpResponse::error(401, "M_MISSING_TOKEN", "an access token is required")
        };
    };
    let answer = match req.path.as_str() {
        "/search" => search(index, max_limit, user, req),
        _ => status(index),
    };
    answer.unwrap_or_else(|e| {
        log::error(&format!("search endpoint: {}: {}", e.errcode, e.message));
        HttpResponse::error(500, "M_UNKNOWN", "the search failed")
    })
}

/// Whether `user` has joined `room`, as the plugin's user can tell (it must be in the room
/// too: the index answers only for rooms it is in).
fn member(room: &str, user: &str) -> Result<bool, Error> {
    match homeserver::room_members(None, room) {
        Ok(members) => Ok(members
            .iter()
            .any(|m| m.user_id == user && m.membership == "join")),
        Err(e)
            if ["M_FORBIDDEN", "M_NOT_FOUND", "M_INVALID_PARAM"].contains(&e.errcode.as_str()) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

fn search(
    index: &mut Index,
    max_limit: usize,
    user: &str,
    req: &HttpRequest,
) -> Result<HttpResponse, Error> {
    let Some(q) = req.query_param("q") else {
        return Ok(HttpResponse::error(
            400,
            "M_MISSING_PARAM",
            "`q` is required",
        ));
    };
    let limit = match req.query_param("limit") {
        None => DEFAULT_LIMIT.min(max_limit),
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=max_limit).contains(&n) => n,
            _ => {
                rejected::count("web_limit");
                return Ok(HttpResponse::error(
                    400,
                    "M_INVALID_PARAM",
                    &format!("`limit` must be a whole number from 1 to {max_limit}"),
                ));
            }
        },
    };
    let query = match query::parse(&q, now_ms()) {
        Ok(query) => query,
        Err(why) => {
            rejected::count("query");
            return Ok(HttpResponse::error(400, "M_INVALID_PARAM", &why));
        }
    };
    let rooms = match req.query_param("room") {
        Some(room) => {
            if !room.starts_with('!') || room.len() > 255 || !room.contains(':') {
                return Ok(HttpResponse::error(
                    400,
                    "M_INVALID_PARAM",
                    "`room` must be a room id (!id:server)",
                ));
            }
            if !member(&room, user)? {
                return Ok(HttpResponse::error(
                    403,
                    "M_FORBIDDEN",
                    "you are not in that room, or the indexer is not",
                ));
            }
            vec![room]
        }
        None => {
            let mut mine = Vec::new();
            for room in homeserver::joined_rooms(None)?.into_iter().take(MAX_ROOMS) {
                if member(&room, user)? {
                    mine.push(room);
                }
            }
            mine
        }
    };
    let rooms = rooms
        .into_iter()
        .map(|room| visibility::since(&room, user).map(|since| (room, since)))
        .collect::<Result<Vec<_>, _>>()?;
    let results = index.search(&query, &rooms, limit)?;
    let hits: Vec<_> = results
        .hits
        .iter()
        .map(|h| answer::hit_json(h, &query.terms))
        .collect();
    Ok(HttpResponse::json(
        200,
        &json!({ "count": results.total, "limit": limit, "results": hits }),
    ))
}

fn status(index: &mut Index) -> Result<HttpResponse, Error> {
    let s = index.status()?;
    Ok(HttpResponse::json(
        200,
        &json!({
            "docs": s.docs,
            "in_log": s.in_log,
            "segments": s.segments,
            "dead": s.dead,
            "rejected": rejected::all()?,
        }),
    ))
}
