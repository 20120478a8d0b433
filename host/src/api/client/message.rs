//! Sending and reading room events: send, state, redact, a single event, /messages.

use axum::extract::State;
use axum::Json as Reply;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::error::ApiResult;
use crate::api::extract::{Auth, ClientIp, Json, Path, Query};
use crate::api::AppState;
use crate::service::identifiers::{EventId, RoomId};
use crate::service::ratelimit::Action;
use crate::service::sync::filter::EventFilter;
use crate::service::sync::messages::{Direction, MessagesRequest};
use crate::service::users::Session;
use crate::service::{Error, Services};

/// `?ts=`: the `origin_server_ts` an application service asserts; ignored for anyone else.
#[derive(Deserialize)]
pub(crate) struct TsQuery {
    ts: Option<String>,
}

/// PUT /rooms/{roomId}/send/{eventType}/{txnId}
pub(crate) async fn send(
    State(s): State<AppState>,
    Auth(session): Auth,
    ClientIp(ip): ClientIp,
    Path((room_id, event_type, txn_id)): Path<(String, String, String)>,
    Query(q): Query<TsQuery>,
    Json(content): Json<Value>,
) -> ApiResult<Reply<Value>> {
    let ts = session.asserted_ts(q.ts.as_deref())?;
    s.ratelimit.check_request(Action::Message, &session, &ip)?;
    let room_id = RoomId::parse(room_id)?;
    let event_id = s
        .send_message(&session, &room_id, &event_type, Some(&txn_id), ts, content)
        .await?;
    Ok(Reply(json!({ "event_id": event_id })))
}

async fn set_state(
    s: &Services,
    (session, ip): (&Session, &str),
    (room_id, event_type, state_key): (String, &str, &str),
    ts: Option<&str>,
    content: Value,
) -> ApiResult<Reply<Value>> {
    let ts = session.asserted_ts(ts)?;
    s.ratelimit.check_request(Action::StateEvent, session, ip)?;
    let at = (&RoomId::parse(room_id)?, event_type, state_key);
    let event_id = s.send_state(session, at, ts, content).await?;
    Ok(Reply(json!({ "event_id": event_id })))
}

/// PUT /rooms/{roomId}/state/{eventType}/{stateKey}
pub(crate) async fn put_state(
    State(s): State<AppState>,
    Auth(session): Auth,
    ClientIp(ip): ClientIp,
    Path((room_id, event_type, state_key)): Path<(String, String, String)>,
    Query(q): Query<TsQuery>,
    Json(content): Json<Value>,
) -> ApiResult<Reply<Value>> {
    let at = (room_id, event_type.as_str(), state_key.as_str());
    set_state(&s, (&session, &ip), at, q.ts.as_deref(), content).await
}

/// PUT /rooms/{roomId}/state/{eventType}
pub(crate) async fn put_state_empty_key(
    State(s): State<AppState>,
    Auth(session): Auth,
    ClientIp(ip): ClientIp,
    Path((room_id, event_type)): Path<(String, String)>,
    Query(q): Query<TsQuery>,
    Json(content): Json<Value>,
) -> ApiResult<Reply<Value>> {
    let at = (room_id, event_type.as_str(), "");
    set_state(&s, (&session, &ip), at, q.ts.as_deref(), content).await
}

#[derive(Deserialize)]
pub(crate) struct StateQuery {
    /// `event` asks for the whole event instead of its content (spec v1.16; mautrix uses it).
    format: Option<String>,
}

async fn read_state(
    s: &Services,
    session: &Session,
    room_id: String,
    event_type: &str,
    state_key: &str,
    format: Option<&str>,
) -> ApiResult<Reply<Value>> {
    let room_id = RoomId::parse(room_id)?;
    let whole_event = match format {
        None | Some("content") => false,
        Some("event") => true,
        Some(other) => {
            return Err(Error::InvalidParam(format!(
                "format must be content or event, not '{other}'"
            ))
            .into())
        }
    };
    match s
        .rooms
        .readable_state_event(&room_id, &session.user_id, event_type, state_key)
        .await?
    {
        Some(p) if whole_event => Ok(Reply(
            s.rooms
                .client_event(&p, Some((&session.user_id, &session.device_id)), true)
                .await?,
        )),
        Some(p) => Ok(Reply(p.content().clone())),
        None => {
            Err(Error::NotFound(format!("no {event_type} state with key '{state_key}'")).into())
        }
    }
}

/// GET /rooms/{roomId}/state/{eventType}/{stateKey}
pub(crate) async fn get_state(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path((room_id, event_type, state_key)): Path<(String, String, String)>,
    Query(q): Query<StateQuery>,
) -> ApiResult<Reply<Value>> {
    read_state(
        &s,
        &session,
        room_id,
        &event_type,
        &state_key,
        q.format.as_deref(),
    )
    .await
}

/// GET /rooms/{roomId}/state/{eventType}
pub(crate) async fn get_state_empty_key(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path((room_id, event_type)): Path<(String, String)>,
    Query(q): Query<StateQuery>,
) -> ApiResult<Reply<Value>> {
    read_state(&s, &session, room_id, &event_type, "", q.format.as_deref()).await
}

/// GET /rooms/{roomId}/state
pub(crate) async fn all_state(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(room_id): Path<String>,
) -> ApiResult<Reply<Value>> {
    let room_id = RoomId::parse(room_id)?;
    let state = s.rooms.readable_state(&room_id, &session.user_id).await?;
    let mut events = Vec::with_capacity(state.len());
    for p in state.values() {
        events.push(
            s.rooms
                .client_event(p, Some((&session.user_id, &session.device_id)), true)
                .await?,
        );
    }
    events.sort_by(|a, b| {
        (a["type"].as_str(), a["state_key"].as_str())
            .cmp(&(b["type"].as_str(), b["state_key"].as_str()))
    });
    Ok(Reply(Value::Array(events)))
}

#[derive(Deserialize)]
pub(crate) struct RedactBody {
    reason: Option<String>,
}

/// PUT /rooms/{roomId}/redact/{eventId}/{txnId}
pub(crate) async fn redact(
    State(s): State<AppState>,
    Auth(session): Auth,
    ClientIp(ip): ClientIp,
    Path((room_id, event_id, txn_id)): Path<(String, String, String)>,
    Json(body): Json<RedactBody>,
) -> ApiResult<Reply<Value>> {
    s.ratelimit.check_request(Action::Message, &session, &ip)?;
    let (room_id, event_id) = (RoomId::parse(room_id)?, EventId::parse(event_id)?);
    let event_id = s
        .redact(
            &session,
            &room_id,
            &event_id,
            body.reason.as_deref(),
            Some(&txn_id),
        )
        .await?;
    Ok(Reply(json!({ "event_id": event_id })))
}

/// GET /rooms/{roomId}/event/{eventId}
pub(crate) async fn get_event(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path((room_id, event_id)): Path<(String, String)>,
) -> ApiResult<Reply<Value>> {
    let (room_id, event_id) = (RoomId::parse(room_id)?, EventId::parse(event_id)?);
    Ok(Reply(s.visible_event(&session, &room_id, &event_id).await?))
}

#[derive(Deserialize)]
pub(crate) struct MessagesQuery {
    from: Option<String>,
    to: Option<String>,
    dir: Option<String>,
    limit: Option<usize>,
    filter: Option<String>,
}

/// GET /rooms/{roomId}/messages
pub(crate) async fn messages(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(room_id): Path<String>,
    Query(q): Query<MessagesQuery>,
) -> ApiResult<Reply<Value>> {
    let room_id = RoomId::parse(room_id)?;
    let dir = direction(q.dir.as_deref())?;
    let filter = event_filter(q.filter.as_deref())?;
    let limit = q.limit.or(filter.limit).unwrap_or(10);
    let body = s
        .messages(
            &session,
            &room_id,
            MessagesRequest {
                from: q.from,
                to: q.to,
                dir,
                limit,
                filter,
            },
        )
        .await?;
    Ok(Reply(body))
}

/// `?dir=`: `b` (the default) or `f`.
pub(crate) fn direction(dir: Option<&str>) -> Result<Direction, Error> {
    match dir {
        Some("b") | None => Ok(Direction::Backward),
        Some("f") => Ok(Direction::Forward),
        Some(other) => Err(Error::InvalidParam(format!(
            "dir must be b or f, not '{}'",
            other.escape_debug()
        ))),
    }
}

/// `?filter=`: a RoomEventFilter as JSON text.
fn event_filter(filter: Option<&str>) -> Result<EventFilter, Error> {
    match filter {
        Some(f) => {
            let v: Value = serde_json::from_str(f)
                .map_err(|e| Error::NotJson(format!("filter is not JSON: {e}")))?;
            EventFilter::parse(&v)
        }
        None => Ok(EventFilter::default()),
    }
}

#[derive(Deserialize)]
pub(crate) struct ContextQuery {
    limit: Option<usize>,
    filter: Option<String>,
}

/// GET /rooms/{roomId}/context/{eventId}
pub(crate) async fn context(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path((room_id, event_id)): Path<(String, String)>,
    Query(q): Query<ContextQuery>,
) -> ApiResult<Reply<Value>> {
    let (room_id, event_id) = (RoomId::parse(room_id)?, EventId::parse(event_id)?);
    let filter = event_filter(q.filter.as_deref())?;
    let limit = q.limit.or(filter.limit).unwrap_or(10);
    let body = s
        .context(&session, &room_id, &event_id, limit, filter)
        .await?;
    Ok(Reply(body))
}

#[derive(Deserialize)]
pub(crate) struct TimestampQuery {
    ts: i64,
    dir: String,
}

/// GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event
pub(crate) async fn timestamp_to_event(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(room_id): Path<String>,
    Query(q): Query<TimestampQuery>,
) -> ApiResult<Reply<Value>> {
    let room_id = RoomId::parse(room_id)?;
    let dir = direction(Some(&q.dir))?;
    Ok(Reply(s.event_at_time(&session, &room_id, q.ts, dir).await?))
}

/// GET /rooms/{roomId}/initialSync
pub(crate) async fn room_initial_sync(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(room_id): Path<String>,
) -> ApiResult<Reply<Value>> {
    let room_id = RoomId::parse(room_id)?;
    Ok(Reply(s.room_initial_sync(&session, &room_id).await?))
}
