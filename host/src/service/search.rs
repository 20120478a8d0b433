//! `POST /search`: full-text search of the events of the rooms a user is joined to (the
//! `room_events` category), ranked or newest first, with the events around each result when
//! asked, and only what the user may see. The search term becomes an FTS5 query by
//! [`fts_query`]: each word must appear, as a word or the start of one. The index follows the
//! timeline in batches, off the send path ([`Services::follow_search_index`]), and catches up
//! before each search.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::service::identifiers::RoomId;
use crate::service::rooms::pdu::Pdu;
use crate::service::rooms::visibility::Viewer;
use crate::service::sync::filter::EventFilter;
use crate::service::sync::messages::{Direction, MessagesRequest};
use crate::service::sync::token::pagination_token;
use crate::service::users::Session;
use crate::service::{Error, Result, Services};
use crate::storage::search::{SearchOrder, SearchQuery};

/// How often the index follows the timeline when events were sent.
const INDEX_EVERY: Duration = Duration::from_millis(500);

impl Services {
    /// Keeps the search index close behind the timeline: every [`INDEX_EVERY`], when events
    /// were stored since it last looked, indexes them in one transaction. Runs until aborted.
    pub(crate) async fn follow_search_index(&self) {
        let mut tick = tokio::time::interval(INDEX_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seen = -1;
        loop {
            tick.tick().await;
            let now = self.notifier.position().stream;
            if now == seen {
                continue;
            }
            match self.storage.index_search().await {
                Ok(_) => seen = now,
                Err(e) => tracing::warn!(error = %e, "cannot bring the search index up to date"),
            }
        }
    }
}

/// The keys searched unless the request names some, and all it may name.
const KEYS: [&str; 3] = ["content.body", "content.name", "content.topic"];
/// Results per page unless the filter says, and at most.
const DEFAULT_LIMIT: usize = 10;
const MAX_LIMIT: usize = 100;
/// Events around a result unless `event_context` says, and at most.
const DEFAULT_CONTEXT: usize = 5;
const MAX_CONTEXT: usize = 20;
/// The longest search term taken, in bytes.
const MAX_TERM_BYTES: usize = 1024;

/// The FTS5 query for a search term and the words it is made of: each word quoted (so that
/// none is read as an operator) and matched as a prefix, all of them required. `None` when
/// the term has no word.
pub(crate) fn fts_query(term: &str) -> Option<(String, Vec<String>)> {
    let words: Vec<String> = term
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    if words.is_empty() {
        return None;
    }
    let query = words
        .iter()
        .map(|w| format!("\"{w}\"*"))
        .collect::<Vec<_>>()
        .join(" ");
    Some((query, words))
}

/// The `room_events` criteria, parsed.
struct Criteria {
    term: String,
    keys: Vec<String>,
    order: SearchOrder,
    filter: EventFilter,
    rooms: Option<Vec<String>>,
    not_rooms: Vec<String>,
    /// `(before, after, include_profile)` when the events around each result are wanted.
    context: Option<(usize, usize, bool)>,
}

fn criteria(v: &Value) -> Result<Criteria> {
    let term = v["search_term"]
        .as_str()
        .ok_or_else(|| Error::BadJson("room_events needs a search_term string".into()))?;
    if term.len() > MAX_TERM_BYTES {
        return Err(Error::InvalidParam(format!(
            "search_term is longer than {MAX_TERM_BYTES} bytes"
        )));
    }
    let keys = match &v["keys"] {
        Value::Null => KEYS.iter().map(|k| k.to_string()).collect(),
        Value::Array(list) => {
            let mut keys = Vec::new();
            for k in list {
                match k.as_str() {
                    Some(k) if KEYS.contains(&k) => keys.push(k.to_string()),
                    _ => {
                        return Err(Error::InvalidParam(format!(
                            "keys may name only {}",
                            KEYS.join(", ")
                        )))
                    }
                }
            }
            keys
        }
        _ => return Err(Error::BadJson("keys must be a list".into())),
    };
    let order = match v["order_by"].as_str() {
        None | Some("rank") => SearchOrder::Rank,
        Some("recent") => SearchOrder::Recent,
        Some(other) => {
            return Err(Error::InvalidParam(format!(
                "order_by must be rank or recent, not '{}'",
                other.escape_debug()
            )))
        }
    };
    let filter_json = &v["filter"];
    let room_list = |key: &str| -> Result<Option<Vec<String>>> {
        match &filter_json[key] {
            Value::Null => Ok(None),
            Value::Array(list) => Ok(Some(
                list.iter()
                    .filter_map(|r| r.as_str().map(str::to_string))
                    .collect(),
            )),
            _ => Err(Error::BadJson(format!("filter.{key} must be a list"))),
        }
    };
    let rooms = room_list("rooms")?;
    let not_rooms = room_list("not_rooms")?.unwrap_or_default();
    let mut event_filter = filter_json.clone();
    if let Some(map) = event_filter.as_object_mut() {
        map.remove("rooms");
        map.remove("not_rooms");
    }
    let filter = EventFilter::parse(&event_filter)?;
    let context = match &v["event_context"] {
        Value::Null => None,
        c => {
            let limit = |key: &str| {
                c[key]
                    .as_u64()
                    .map_or(DEFAULT_CONTEXT, |n| (n as usize).min(MAX_CONTEXT))
            };
            Some((
                limit("before_limit"),
                limit("after_limit"),
                c["include_profile"] == true,
            ))
        }
    };
    Ok(Criteria {
        term: term.to_string(),
        keys,
        order,
        filter,
        rooms,
        not_rooms,
        context,
    })
}

impl Services {
    /// POST /search, from `next_batch` (a previous page's) when given.
    pub(crate) async fn search(
        &self,
        session: &Session,
        body: &Value,
        next_batch: Option<&str>,
    ) -> Result<Value> {
        let categories = &body["search_categories"];
        if !categories.is_object() {
            return Err(Error::BadJson(
                "the body needs a search_categories object".into(),
            ));
        }
        let room_events = &categories["room_events"];
        if room_events.is_null() {
            return Ok(json!({ "search_categories": {} }));
        }
        let c = criteria(room_events)?;
        let offset: i64 = match next_batch {
            None => 0,
            Some(t) => t.parse().map_err(|_| {
                Error::InvalidParam(format!("'{}' is not a valid next_batch", t.escape_debug()))
            })?,
        };
        let Some((fts, words)) = fts_query(&c.term) else {
            return Ok(json!({ "search_categories": { "room_events": {
                "count": 0, "highlights": [], "results": [] } } }));
        };
        let rooms: Vec<String> = self
            .rooms
            .joined_rooms(&session.user_id)
            .await?
            .into_iter()
            .filter(|r| c.rooms.as_ref().is_none_or(|only| only.contains(r)))
            .filter(|r| !c.not_rooms.contains(r))
            .collect();
        let limit = c.filter.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT) as i64;
        let query = SearchQuery {
            fts: &fts,
            rooms: &rooms,
            keys: &c.keys,
            order: c.order,
            offset,
            limit,
        };
        // Everything sent before the search is found: the index catches up first.
        self.storage.index_search().await?;
        let hits = self.storage.search_events(&query).await?;
        let count = self.storage.count_search_matches(&query).await?;
        let more = hits.len() as i64 == limit;
        let mut viewers: HashMap<String, Viewer> = HashMap::new();
        let mut results = Vec::new();
        for hit in hits {
            let pdu = Pdu::try_from(hit.event)?;
            if !c.filter.matches(&pdu.kind, &pdu.sender) {
                continue;
            }
            if !viewers.contains_key(&pdu.room_id) {
                let viewer = self.rooms.viewer(&pdu.room_id, &session.user_id).await?;
                viewers.insert(pdu.room_id.clone(), viewer);
            }
            if !viewers[&pdu.room_id].sees(&pdu) {
                continue;
            }
            let device = (session.user_id.as_str(), session.device_id.as_str());
            let event = self.rooms.client_event(&pdu, Some(device), true).await?;
            let mut result = json!({ "rank": hit.rank, "result": event });
            if let Some(around) = c.context {
                result["context"] = self.search_context(session, &pdu, around).await?;
            }
            results.push(result);
        }
        let mut out = json!({ "count": count, "highlights": words, "results": results });
        if more {
            out["next_batch"] = json!((offset + limit).to_string());
        }
        Ok(json!({ "search_categories": { "room_events": out } }))
    }

    /// The events around a result, with tokens, and the senders' profiles when asked.
    async fn search_context(
        &self,
        session: &Session,
        pdu: &Pdu,
        (before, after, with_profiles): (usize, usize, bool),
    ) -> Result<Value> {
        let room_id = RoomId::parse(pdu.room_id.as_str())?;
        let side = |dir, from: i64, limit| MessagesRequest {
            from: Some(pagination_token(from)),
            to: None,
            dir,
            limit,
            filter: EventFilter::default(),
        };
        let mut out = json!({ "events_before": [], "events_after": [] });
        if before > 0 {
            let page = self
                .messages(
                    session,
                    &room_id,
                    side(Direction::Backward, pdu.stream - 1, before),
                )
                .await?;
            out["events_before"] = page["chunk"].clone();
            out["start"] = page["end"].clone();
        }
        if after > 0 {
            let page = self
                .messages(
                    session,
                    &room_id,
                    side(Direction::Forward, pdu.stream, after),
                )
                .await?;
            out["events_after"] = page["chunk"].clone();
            out["end"] = page["end"].clone();
        }
        if with_profiles {
            let mut profiles = Map::new();
            let senders = out["events_before"]
                .as_array()
                .into_iter()
                .chain(out["events_after"].as_array())
                .flatten()
                .filter_map(|e| e["sender"].as_str())
                .chain([pdu.sender.as_str()])
                .map(str::to_string)
                .collect::<std::collections::BTreeSet<_>>();
            for sender in senders {
                if let Some(row) = self.storage.user(&sender).await? {
                    let mut p = json!({});
                    if let Some(name) = row.displayname {
                        p["displayname"] = json!(name);
                    }
                    if let Some(url) = row.avatar_url {
                        p["avatar_url"] = json!(url);
                    }
                    profiles.insert(sender, p);
                }
            }
            out["profile_info"] = Value::Object(profiles);
        }
        if let Some(map) = out.as_object_mut() {
            map.retain(|_, v| !v.is_null());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_term_becomes_quoted_prefixes_of_its_words_and_no_operator_survives() {
        let (q, words) = fts_query("Cheese  AND bread*").unwrap();
        assert_eq!(q, "\"cheese\"* \"and\"* \"bread\"*");
        assert_eq!(words, ["cheese", "and", "bread"]);
        let (q, _) = fts_query("\"x\" OR NEAR(y)").unwrap();
        assert_eq!(q, "\"x\"* \"or\"* \"near\"* \"y\"*");
        assert_eq!(fts_query("  --- ** "), None);
        assert_eq!(fts_query("Käse").unwrap().1, ["käse"]);
    }

    #[test]
    fn criteria_default_to_every_key_by_rank_and_refuse_what_the_spec_does_not_name() {
        let c = criteria(&json!({ "search_term": "x" })).unwrap();
        assert_eq!(c.keys, KEYS);
        assert_eq!(c.order, SearchOrder::Rank);
        assert!(c.context.is_none());
        let c = criteria(&json!({ "search_term": "x", "order_by": "recent",
            "event_context": { "before_limit": 1, "after_limit": 99, "include_profile": true } }))
        .unwrap();
        assert_eq!(c.order, SearchOrder::Recent);
        assert_eq!(c.context, Some((1, MAX_CONTEXT, true)));
        for bad in [
            json!({}),
            json!({ "search_term": "x", "keys": ["content.url"] }),
            json!({ "search_term": "x", "order_by": "oldest" }),
        ] {
            assert!(criteria(&bad).is_err(), "{bad}");
        }
    }
}
