//! Sending and reading room events: send, state, redact, a single event, /messages.

use axum::extract::State;
use axum::Json as Reply;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::error::ApiResult;
use crate::api::extract::{Auth, Json, Path, Query};
use crate::api::AppState;
use crate::service::identifiers::{check_event_id, check_event_type, parse_room_id};
use crate::service::ratelimit::Action;
use crate::service::rooms::timeline::Draft;
use crate::service::sync::filter::EventFilter;
use crate::service::sync::messages::{Direction, MessagesRequest};
use crate::service::users::Session;
use crate::service::{Error, Services};

fn object(content: Value) -> Result<Value, Error> {
    if content.is_object() {
        Ok(content)
    } else {
        Err(Error::BadJson("event content must be a JSON object".into()))
    }
}

/// Sends one non-state event as `session`; the legacy paths share it.
pub async fn send_message(
    s: &Services,
    session: &Session,
    room_id: &str,
    event_type: &str,
    txn_id: Option<&str>,
    content: Value,
) -> Result<String, Error> {
    parse_room_id(room_id)?;
    check_event_type(event_type)?;
    s.ratelimit.check(Action::Message, &session.user_id)?;
    let mut draft = Draft::new(&session.user_id, event_type, None, object(content)?);
    draft.txn = txn_id.map(|t| (session.device_id.clone(), t.to_string()));
    Ok(s.rooms.append(room_id, draft).await?.event_id)
}

/// PUT /rooms/{roomId}/send/{eventType}/{txnId}
pub async fn send(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path((room_id, event_type, txn_id)): Path<(String, String, String)>,
    Json(content): Json<Value>,
) -> ApiResult<Reply<Value>> {
    let event_id =
        send_message(&s, &session, &room_id, &event_type, Some(&txn_id), content).await?;
    Ok(Reply(json!({ "event_id": event_id })))
}

async fn set_state(
    s: &Services,
    session: &Session,
    room_id: &str,
    event_type: &str,
    state_key: &str,
    content: Value,
) -> ApiResult<Reply<Value>> {
    parse_room_id(room_id)?;
    check_event_type(event_type)?;
    if event_type == "m.room.create" {
        return Err(
            Error::Forbidden("m.room.create cannot be sent to an existing room".into()).into(),
        );
    }
    let draft = Draft::new(
        &session.user_id,
        event_type,
        Some(state_key),
        object(content)?,
    );
    let pdu = s.rooms.append(room_id, draft).await?;
    Ok(Reply(json!({ "event_id": pdu.event_id })))
}

/// PUT /rooms/{roomId}/state/{eventType}/{stateKey}
pub async fn put_state(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path((room_id, event_type, state_key)): Path<(String, String, String)>,
    Json(content): Json<Value>,
) -> ApiResult<Reply<Value>> {
    set_state(&s, &session, &room_id, &event_type, &state_key, content).await
}

/// PUT /rooms/{roomId}/state/{eventType}
pub async fn put_state_empty_key(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path((room_id, event_type)): Path<(String, String)>,
    Json(content): Json<Value>,
) -> ApiResult<Reply<Value>> {
    set_state(&s, &session, &room_id, &event_type, "", content).await
}

async fn read_state(
    s: &Services,
    session: &Session,
    room_id: &str,
    event_type: &str,
    state_key: &str,
) -> ApiResult<Reply<Value>> {
    parse_room_id(room_id)?;
    match s
        .rooms
        .readable_state_event(room_id, &session.user_id, event_type, state_key)
        .await?
    {
        Some(p) => Ok(Reply(p.content().clone())),
        None => {
            Err(Error::NotFound(format!("no {event_type} state with key '{state_key}'")).into())
        }
    }
}

/// GET /rooms/{roomId}/state/{eventType}/{stateKey}
pub async fn get_state(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path((room_id, event_type, state_key)): Path<(String, String, String)>,
) -> ApiResult<Reply<Value>> {
    read_state(&s, &session, &room_id, &event_type, &state_key).await
}

/// GET /rooms/{roomId}/state/{eventType}
pub async fn get_state_empty_key(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path((room_id, event_type)): Path<(String, String)>,
) -> ApiResult<Reply<Value>> {
    read_state(&s, &session, &room_id, &event_type, "").await
}

/// GET /rooms/{roomId}/state
pub async fn all_state(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(room_id): Path<String>,
) -> ApiResult<Reply<Value>> {
    parse_room_id(&room_id)?;
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
pub struct RedactBody {
    reason: Option<String>,
}

/// PUT /rooms/{roomId}/redact/{eventId}/{txnId}
pub async fn redact(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path((room_id, event_id, txn_id)): Path<(String, String, String)>,
    Json(body): Json<RedactBody>,
) -> ApiResult<Reply<Value>> {
    parse_room_id(&room_id)?;
    check_event_id(&event_id)?;
    s.ratelimit.check(Action::Message, &session.user_id)?;
    let mut content = json!({});
    if let Some(r) = body.reason {
        content["reason"] = json!(r);
    }
    let mut draft = Draft::new(&session.user_id, "m.room.redaction", None, content);
    draft.redacts = Some(event_id);
    draft.txn = Some((session.device_id.clone(), txn_id));
    let pdu = s.rooms.append(&room_id, draft).await?;
    Ok(Reply(json!({ "event_id": pdu.event_id })))
}

/// GET /rooms/{roomId}/event/{eventId}
pub async fn get_event(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path((room_id, event_id)): Path<(String, String)>,
) -> ApiResult<Reply<Value>> {
    parse_room_id(&room_id)?;
    check_event_id(&event_id)?;
    Ok(Reply(s.visible_event(&session, &room_id, &event_id).await?))
}

#[derive(Deserialize)]
pub struct MessagesQuery {
    from: Option<String>,
    to: Option<String>,
    dir: Option<String>,
    limit: Option<usize>,
    filter: Option<String>,
}

/// GET /rooms/{roomId}/messages
pub async fn messages(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(room_id): Path<String>,
    Query(q): Query<MessagesQuery>,
) -> ApiResult<Reply<Value>> {
    parse_room_id(&room_id)?;
    let dir = match q.dir.as_deref() {
        Some("b") | None => Direction::Backward,
        Some("f") => Direction::Forward,
        Some(other) => {
            return Err(Error::InvalidParam(format!("dir must be b or f, not '{other}'")).into())
        }
    };
    let filter = match q.filter.as_deref() {
        Some(f) => {
            let v: Value = serde_json::from_str(f)
                .map_err(|e| Error::NotJson(format!("filter is not JSON: {e}")))?;
            EventFilter::parse(&v)?
        }
        None => EventFilter::default(),
    };
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
