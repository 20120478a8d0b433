//! The room routes of the server-server API: transactions in (`/send`), joins and leaves
//! (`make_join`, `send_join` v2, `make_leave`, `send_leave` v2), and a room's history asked by
//! another server (`/event`, `/state`, `/state_ids`, `/event_auth`, `/get_missing_events`,
//! `/backfill`, `/timestamp_to_event`). Each handler checks the request's shape and calls the
//! federation service.

use axum::extract::{RawQuery, State};
use axum::Json as Reply;
use serde_json::{json, Map, Value};

use super::auth::Signed;
use crate::api::client::direction;
use crate::api::error::ApiResult;
use crate::api::extract::Path;
use crate::api::AppState;
use crate::service::federation::membership::RemoteMembership;
use crate::service::rooms::pdu::listed_ids;
use crate::service::rooms::remote::Verdict;
use crate::service::{now_ms, Error};

/// The spec's limits on one transaction.
const MAX_TXN_PDUS: usize = 50;
const MAX_TXN_EDUS: usize = 100;

fn body(signed: &Signed) -> Result<&Value, Error> {
    signed
        .body
        .as_ref()
        .filter(|b| b.is_object())
        .ok_or_else(|| Error::BadJson("the request needs a JSON object body".into()))
}

/// The values of a repeated query parameter (`ver=10&ver=11`, `v=$a&v=$b`).
fn query_values(raw: &Option<String>, name: &str) -> Vec<String> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    raw.as_deref()
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(k, _)| decode(k) == name)
        .map(|(_, v)| decode(v))
        .collect()
}

/// PUT /_matrix/federation/v1/send/{txnId}
pub(crate) async fn send_transaction(
    State(s): State<AppState>,
    Path(_txn_id): Path<String>,
    signed: Signed,
) -> ApiResult<Reply<Value>> {
    let body = body(&signed)?;
    let pdus = body["pdus"].as_array().cloned().unwrap_or_default();
    let edus = body["edus"].as_array().cloned().unwrap_or_default();
    if pdus.len() > MAX_TXN_PDUS || edus.len() > MAX_TXN_EDUS {
        return Err(Error::TooLarge(format!(
            "a transaction carries at most {MAX_TXN_PDUS} PDUs and {MAX_TXN_EDUS} EDUs"
        ))
        .into());
    }
    let mut results = Map::new();
    for pdu in pdus {
        let id_hint = pdu["event_id"].as_str().map(str::to_string);
        let outcome = s.receive_pdu(&signed.origin, pdu.clone()).await;
        let event_id = match &outcome {
            Ok(Verdict::Timeline(p)) => Some(p.event_id.clone()),
            _ => id_hint.or_else(|| reference_id(&s, &pdu)),
        };
        let entry = match outcome {
            Ok(Verdict::Timeline(_) | Verdict::Known) => json!({}),
            Ok(Verdict::SoftFailed(_)) => json!({}),
            Ok(Verdict::Rejected(why)) => json!({ "error": why }),
            Err(e) if e.is_internal() => {
                tracing::warn!(origin = %signed.origin, error = %e, "a PDU could not be taken");
                json!({ "error": "internal error" })
            }
            Err(e) => json!({ "error": e.to_string() }),
        };
        if let Some(id) = event_id {
            results.insert(id, entry);
        }
    }
    for edu in &edus {
        if let Err(e) = s.receive_edu(&signed.origin, edu).await {
            tracing::info!(origin = %signed.origin, error = %e, "an EDU could not be taken");
        }
    }
    Ok(Reply(json!({ "pdus": results })))
}

/// The event id of a PDU that could not be taken, for reporting on it: by the rules of the
/// newest version, which all that this server supports share for event ids.
fn reference_id(_s: &AppState, pdu: &Value) -> Option<String> {
    pdu.is_object().then(|| {
        crate::service::keys::signing::reference_event_id(
            pdu,
            crate::service::room_version::DEFAULT,
        )
    })
}

/// A `make_*` answer: the template of the member event and the room's version. `versions`
/// are the `ver` the asking server named (`None` for `make_leave`, which has none).
async fn make(
    s: &AppState,
    origin: &str,
    (room_id, user_id): (String, String),
    membership: RemoteMembership,
    versions: Option<Vec<String>>,
) -> ApiResult<Reply<Value>> {
    // A server that names no version supports only version 1, which no room here has.
    let (event, version) = s
        .make_membership(origin, &room_id, &user_id, membership, versions.as_deref())
        .await?;
    Ok(Reply(json!({ "room_version": version.id, "event": event })))
}

/// A `send_*` answer: the signed member event taken in.
async fn send(
    s: &AppState,
    signed: &Signed,
    (room_id, event_id): (String, String),
    membership: RemoteMembership,
) -> ApiResult<Reply<Value>> {
    let pdu = body(signed)?.clone();
    let answer = s
        .send_membership(&signed.origin, &room_id, &event_id, membership, pdu)
        .await?;
    Ok(Reply(answer))
}

/// GET /_matrix/federation/v1/make_join/{roomId}/{userId}?ver=…
pub(crate) async fn make_join(
    State(s): State<AppState>,
    Path(ids): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    signed: Signed,
) -> ApiResult<Reply<Value>> {
    let versions = Some(query_values(&raw, "ver"));
    make(&s, &signed.origin, ids, RemoteMembership::Join, versions).await
}

/// GET /_matrix/federation/v1/make_knock/{roomId}/{userId}?ver=…
pub(crate) async fn make_knock(
    State(s): State<AppState>,
    Path(ids): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    signed: Signed,
) -> ApiResult<Reply<Value>> {
    let versions = Some(query_values(&raw, "ver"));
    make(&s, &signed.origin, ids, RemoteMembership::Knock, versions).await
}

/// GET /_matrix/federation/v1/make_leave/{roomId}/{userId}
pub(crate) async fn make_leave(
    State(s): State<AppState>,
    Path(ids): Path<(String, String)>,
    signed: Signed,
) -> ApiResult<Reply<Value>> {
    make(&s, &signed.origin, ids, RemoteMembership::Leave, None).await
}

/// PUT /_matrix/federation/v2/send_join/{roomId}/{eventId}
pub(crate) async fn send_join(
    State(s): State<AppState>,
    Path(ids): Path<(String, String)>,
    signed: Signed,
) -> ApiResult<Reply<Value>> {
    send(&s, &signed, ids, RemoteMembership::Join).await
}

/// PUT /_matrix/federation/v1/send_knock/{roomId}/{eventId}
pub(crate) async fn send_knock(
    State(s): State<AppState>,
    Path(ids): Path<(String, String)>,
    signed: Signed,
) -> ApiResult<Reply<Value>> {
    send(&s, &signed, ids, RemoteMembership::Knock).await
}

/// PUT /_matrix/federation/v2/send_leave/{roomId}/{eventId}
pub(crate) async fn send_leave(
    State(s): State<AppState>,
    Path(ids): Path<(String, String)>,
    signed: Signed,
) -> ApiResult<Reply<Value>> {
    send(&s, &signed, ids, RemoteMembership::Leave).await
}

/// PUT /_matrix/federation/v2/invite/{roomId}/{eventId}
pub(crate) async fn invite(
    State(s): State<AppState>,
    Path((room_id, event_id)): Path<(String, String)>,
    signed: Signed,
) -> ApiResult<Reply<Value>> {
    let answer = s
        .receive_invite(&signed.origin, &room_id, &event_id, body(&signed)?)
        .await?;
    Ok(Reply(answer))
}

fn transaction(s: &AppState, pdus: Vec<Value>) -> Value {
    json!({
        "origin": s.server_name(),
        "origin_server_ts": now_ms(),
        "pdus": pdus,
    })
}

/// GET /_matrix/federation/v1/event/{eventId}
pub(crate) async fn event(
    State(s): State<AppState>,
    Path(event_id): Path<String>,
    signed: Signed,
) -> ApiResult<Reply<Value>> {
    let pdu = s.event_for_server(&signed.origin, &event_id).await?;
    Ok(Reply(transaction(&s, vec![pdu])))
}

/// The query parameter `name`, which the route requires (the last, if given twice).
fn required_param(raw: &Option<String>, name: &str) -> Result<String, Error> {
    query_values(raw, name)
        .pop()
        .ok_or_else(|| Error::MissingParam(format!("{name} is required")))
}

/// GET /_matrix/federation/v1/state_ids/{roomId}?event_id=…
pub(crate) async fn state_ids(
    State(s): State<AppState>,
    Path(room_id): Path<String>,
    RawQuery(raw): RawQuery,
    signed: Signed,
) -> ApiResult<Reply<Value>> {
    let event_id = required_param(&raw, "event_id")?;
    let (pdu_ids, auth_chain_ids) = s.state_ids_at(&signed.origin, &room_id, &event_id).await?;
    Ok(Reply(
        json!({ "pdu_ids": pdu_ids, "auth_chain_ids": auth_chain_ids }),
    ))
}

/// GET /_matrix/federation/v1/state/{roomId}?event_id=…
pub(crate) async fn state(
    State(s): State<AppState>,
    Path(room_id): Path<String>,
    RawQuery(raw): RawQuery,
    signed: Signed,
) -> ApiResult<Reply<Value>> {
    let event_id = required_param(&raw, "event_id")?;
    let (pdu_ids, auth_chain_ids) = s.state_ids_at(&signed.origin, &room_id, &event_id).await?;
    Ok(Reply(json!({
        "pdus": s.federation_pdus(&pdu_ids).await?,
        "auth_chain": s.federation_pdus(&auth_chain_ids).await?,
    })))
}

/// GET /_matrix/federation/v1/event_auth/{roomId}/{eventId}
pub(crate) async fn event_auth(
    State(s): State<AppState>,
    Path((room_id, event_id)): Path<(String, String)>,
    signed: Signed,
) -> ApiResult<Reply<Value>> {
    s.require_server_in_room(&room_id, &signed.origin).await?;
    let chain = s.auth_chain_ids(&[event_id]).await?;
    Ok(Reply(
        json!({ "auth_chain": s.federation_pdus(&chain).await? }),
    ))
}

/// POST /_matrix/federation/v1/get_missing_events/{roomId}
pub(crate) async fn get_missing_events(
    State(s): State<AppState>,
    Path(room_id): Path<String>,
    signed: Signed,
) -> ApiResult<Reply<Value>> {
    let body = body(&signed)?;
    let ids = |key: &str| listed_ids(body, key);
    let limit = body["limit"].as_u64().unwrap_or(10) as usize;
    let min_depth = body["min_depth"].as_i64().unwrap_or(0);
    let events = s
        .missing_events(
            &signed.origin,
            &room_id,
            &ids("earliest_events"),
            &ids("latest_events"),
            limit,
            min_depth,
        )
        .await?;
    Ok(Reply(json!({ "events": events })))
}

/// GET /_matrix/federation/v1/backfill/{roomId}?v=…&limit=…
pub(crate) async fn backfill(
    State(s): State<AppState>,
    Path(room_id): Path<String>,
    RawQuery(raw): RawQuery,
    signed: Signed,
) -> ApiResult<Reply<Value>> {
    let from = query_values(&raw, "v");
    if from.is_empty() {
        return Err(Error::MissingParam("v is required".into()).into());
    }
    let limit = query_values(&raw, "limit")
        .pop()
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(10);
    let pdus = s.backfill(&signed.origin, &room_id, &from, limit).await?;
    Ok(Reply(transaction(&s, pdus)))
}

/// GET /_matrix/federation/v1/timestamp_to_event/{roomId}?ts=…&dir=f|b
pub(crate) async fn timestamp_to_event(
    State(s): State<AppState>,
    Path(room_id): Path<String>,
    RawQuery(raw): RawQuery,
    signed: Signed,
) -> ApiResult<Reply<Value>> {
    let ts = required_param(&raw, "ts")?;
    let ts: i64 = ts.parse().map_err(|_| {
        Error::InvalidParam(format!("ts must be a number, not '{}'", ts.escape_debug()))
    })?;
    // Required here; a client's `dir` defaults to `b`.
    let dir = direction(Some(&required_param(&raw, "dir")?))?;
    let found = s
        .event_near_time_for_server(&signed.origin, &room_id, ts, dir)
        .await?;
    Ok(Reply(found))
}
