//! The web endpoints under `/_plugboard/plugins/indexer/`: `GET /search?q=…&room=…&limit=…`
//! answers JSON hits from the rooms the caller (by access token) may read, and `GET /status`
//! the index's counts, to server admins. Who may read what is the server's answer
//! ([`access`]), not the indexer's: it asks the host, with one call for every room and one
//! for the hits to check.

use plugboard_sdk::homeserver::RoomAccess;
use plugboard_sdk::prelude::*;
use serde_json::json;

use crate::answer;
use crate::index::Index;
use crate::query;
use crate::rejected;
use crate::search::Reach;

/// Hits the endpoint answers unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 10;
/// Rooms of the plugin's user looked at for one search without `room`.
const MAX_ROOMS: usize = 1000;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Answers a request to the plugin's endpoints. The host has refused a token it does not
/// know before the request came here: no user means no token.
pub fn handle(index: &mut Index, max_limit: usize, req: &HttpRequest) -> HttpResponse {
    let known = matches!(req.path.as_str(), "/search" | "/status");
    if !known {
        return HttpResponse::not_found();
    }
    if req.method != "GET" {
        return HttpResponse::error(405, "M_UNRECOGNIZED", "only GET is supported here");
    }
    let Some(user) = req.user_id.as_deref() else {
        return HttpResponse::error(401, "M_MISSING_TOKEN", "an access token is required");
    };
    let answer = match req.path.as_str() {
        "/search" => search(index, max_limit, user, req),
        _ => status(index, user),
    };
    answer.unwrap_or_else(|e| {
        log::error(&format!("search endpoint: {}: {}", e.errcode, e.message));
        HttpResponse::error(500, "M_UNKNOWN", "the search failed")
    })
}

/// How far `access` lets its user into a room's messages; `None`: not at all.
pub fn reach(access: &RoomAccess) -> Option<Reach> {
    match (access.readable, access.whole_history) {
        (false, _) => None,
        (true, true) => Some(Reach::Whole),
        (true, false) => Some(Reach::Checked),
    }
}

/// The rooms a search of `user` covers, with how far they reach into each: the one asked
/// for, or without one every room both the indexer and the user have joined. The indexer
/// answers only about rooms it is in (a room it left keeps its messages in the index, and
/// they stay unanswered), and only what the server says the user may read now. `None`: the
/// room asked for is not one of them.
fn access(room: Option<&str>, user: &str) -> Result<Option<Vec<(String, Reach)>>, Error> {
    let mine = homeserver::joined_rooms(None)?;
    match room {
        Some(room) => {
            if !mine.iter().any(|r| r == room) {
                return Ok(None);
            }
            Ok(reach(&homeserver::room_access(user, room)?).map(|r| vec![(room.to_string(), r)]))
        }
        None => {
            let mine: Vec<String> = mine.into_iter().take(MAX_ROOMS).collect();
            let answers = homeserver::access_to_rooms(user, &mine)?;
            Ok(Some(
                mine.into_iter()
                    .zip(answers)
                    .filter(|(_, a)| a.joined)
                    .filter_map(|(room, a)| reach(&a).map(|r| (room, r)))
                    .collect(),
            ))
        }
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
    let room = req.query_param("room");
    if let Some(room) = &room {
        if !plugboard_sdk::types::is_room_id(room) {
            return Ok(HttpResponse::error(
                400,
                "M_INVALID_PARAM",
                "`room` must be a room id",
            ));
        }
    }
    let Some(rooms) = access(room.as_deref(), user)? else {
        return Ok(HttpResponse::error(
            403,
            "M_FORBIDDEN",
            "you may not read that room, or the indexer is not in it",
        ));
    };
    let results = index.search(&query, &rooms, limit, &mut |ids| {
        homeserver::visible_events(user, ids)
    })?;
    let hits: Vec<_> = results
        .hits
        .iter()
        .map(|h| answer::hit_json(h, &query.terms))
        .collect();
    let mut answer = json!({ "count": results.total, "limit": limit, "results": hits });
    if !results.exact {
        answer["count_exact"] = json!(false);
    }
    Ok(HttpResponse::json(200, &answer))
}

/// The index's counts: server-wide, so for server admins only (they tell how much is said in
/// rooms the caller may not read, and when).
fn status(index: &mut Index, user: &str) -> Result<HttpResponse, Error> {
    if !homeserver::is_server_admin(user)? {
        return Ok(HttpResponse::error(
            403,
            "M_FORBIDDEN",
            "the index's counts are for server admins",
        ));
    }
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
