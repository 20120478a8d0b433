//! `/_plugboard/admin/v1/appservices`: the registered application services with their
//! delivery figures, and their registration at runtime.
//!
//! A registration is sent as its YAML text (the file Synapse and the spec use), or as JSON
//! `{"yaml": "<text>"}`; since JSON is YAML, a registration written as a JSON object is taken
//! as it is. An invalid one is `400 M_INVALID_PARAM` with the error naming the field.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::{Admin, TakeoverQuery};
use crate::api::error::{ApiResult, MatrixError};
use crate::api::extract::{read_body, Path, Query};
use crate::api::AppState;
use crate::service::appservice::overview::Overview;
use crate::service::appservice::registered::{Appservices, ChangeError};
use crate::service::appservice::registration::{NamespaceKind, Namespaces, Origin};
use crate::service::Error;

/// `GET /_plugboard/admin/v1/appservices`
pub(crate) async fn list(_: Admin, State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let overview = s
        .appservices
        .overview(&s.storage)
        .await
        .map_err(Error::from)?;
    Ok(Json(json!({
        "appservices": overview.iter().map(view).collect::<Vec<_>>(),
    })))
}

/// `GET /_plugboard/admin/v1/appservices/{id}`
pub(crate) async fn show(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    match s
        .appservices
        .overview_of(&s.storage, &id)
        .await
        .map_err(Error::from)?
    {
        Some(o) => Ok(Json(view(&o))),
        None => Err(ChangeError::NotFound(id).into()),
    }
}

/// `POST /_plugboard/admin/v1/appservices[?allow_takeover=true]`: adds a service; answers
/// its view.
pub(crate) async fn add(
    _: Admin,
    State(s): State<AppState>,
    Query(q): Query<TakeoverQuery>,
    req: Request,
) -> ApiResult<Json<Value>> {
    let text = registration_text(req, s.config.max_request_bytes).await?;
    let service = Appservices::add(&s, &text, Origin::AdminRequest, q.takeovers()).await?;
    shown(&s, &service.id).await
}

/// `PUT /_plugboard/admin/v1/appservices/{id}[?allow_takeover=true]`: replaces a runtime
/// service's registration (same id); its worker restarts, its queue is kept.
pub(crate) async fn update(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<TakeoverQuery>,
    req: Request,
) -> ApiResult<Json<Value>> {
    let text = registration_text(req, s.config.max_request_bytes).await?;
    Appservices::update(&s, &id, &text, Origin::AdminRequest, q.takeovers()).await?;
    shown(&s, &id).await
}

/// `DELETE /_plugboard/admin/v1/appservices/{id}`: removes a runtime service and its queue.
pub(crate) async fn remove(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Appservices::remove(&s, &id).await?;
    Ok(Json(json!({})))
}

/// `POST /_plugboard/admin/v1/appservices/{id}/retry`: ends the backoff pause of a service
/// marked down, so its queue is pushed again now.
pub(crate) async fn retry(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    if s.appservices.registry().get(&id).is_none() {
        return Err(ChangeError::NotFound(id).into());
    }
    if !s.appservices.poke(&id) {
        return Err(MatrixError::new(
            StatusCode::BAD_REQUEST,
            "M_URL_NOT_SET",
            format!("application service `{id}` has no URL: nothing is pushed to it"),
        ));
    }
    Ok(Json(json!({})))
}

async fn shown(s: &AppState, id: &str) -> ApiResult<Json<Value>> {
    match s
        .appservices
        .overview_of(&s.storage, id)
        .await
        .map_err(Error::from)?
    {
        Some(o) => Ok(Json(view(&o))),
        // Removed again by a concurrent request.
        None => Err(ChangeError::NotFound(id.to_owned()).into()),
    }
}

/// The registration text of a request body: the body itself, or its JSON field `yaml`.
async fn registration_text(req: Request, limit: usize) -> ApiResult<String> {
    let bytes = read_body(req, limit).await?;
    let text = String::from_utf8(bytes.to_vec())
        .map_err(|_| MatrixError::not_json("the registration is not UTF-8 text"))?;
    if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(&text) {
        if let Some(yaml) = fields.get("yaml") {
            return match yaml {
                Value::String(yaml) => Ok(yaml.clone()),
                _ => Err(MatrixError::bad_json(
                    "field `yaml` must be the registration's text, as a string",
                )),
            };
        }
    }
    Ok(text)
}

/// One service as the admin sees it. `events_behind` is the stream distance: the events
/// stored after the service's acknowledged position, wanted by it or not (an upper bound on
/// what it will be sent; the transaction in flight is part of it and shown apart).
pub(crate) fn view(o: &Overview) -> Value {
    let reg = &o.service.registration;
    let status = o.status.as_ref();
    let (origin, file) = match &o.origin {
        Origin::File(path) => ("file", Some(path.display().to_string())),
        Origin::Plugin(_) | Origin::Manifest(_) => ("plugin", None),
        Origin::Runtime(_) | Origin::AdminRequest | Origin::RegisterRequest => ("runtime", None),
    };
    let quantile_ms = |q: f64| {
        status
            .and_then(|s| s.push_times.quantile(q))
            .map(|d| d.as_secs_f64() * 1000.0)
    };
    json!({
        "id": o.service.id,
        "url": reg.url,
        "sender": o.service.namespaces.sender(),
        "origin": origin,
        "file": file,
        "namespaces": namespaces(&reg.namespaces),
        "rate_limited": reg.rate_limited,
        "receive_ephemeral": reg.receive_ephemeral,
        "msc3202": reg.msc3202,
        "protocols": reg.protocols,
        "up": status.map(|s| s.up),
        "events_behind": o.backlog.map(|b| b.events_after),
        "position": o.backlog.map(|b| b.position),
        "in_flight": o.backlog.and_then(|b| b.pending_txn_id.map(|txn_id| json!({
            "txn_id": txn_id.to_string(),
            "events": b.pending_events,
        }))),
        "last_success_ms": status.and_then(|s| s.last_success_ms),
        "last_error": status.and_then(|s| s.last_error.as_ref()).map(|(ts, error)| json!({
            "ts": ts,
            "error": error,
        })),
        "transactions_sent": status.map_or(0, |s| s.txns_sent),
        "events_sent": status.map_or(0, |s| s.events_sent),
        "retries": status.map_or(0, |s| s.retries),
        "probes": status.map_or(0, |s| s.probes),
        "delivery_ms": {
            "p50": quantile_ms(0.5),
            "p99": quantile_ms(0.99),
            "samples": status.map_or(0, |s| s.push_times.len()),
        },
    })
}

fn namespaces(ns: &Namespaces) -> Value {
    let mut out = serde_json::Map::new();
    for kind in NamespaceKind::ALL {
        let list: Vec<Value> = ns
            .get(kind)
            .iter()
            .map(|n| json!({"regex": n.regex, "exclusive": n.exclusive}))
            .collect();
        out.insert(kind.key().to_owned(), Value::Array(list));
    }
    Value::Object(out)
}

impl From<ChangeError> for MatrixError {
    fn from(e: ChangeError) -> Self {
        match e {
            ChangeError::Invalid(e) => MatrixError::invalid_param(e.to_string()),
            ChangeError::NotFound(_) => {
                MatrixError::new(StatusCode::NOT_FOUND, "M_NOT_FOUND", e.to_string())
            }
            ChangeError::FromFile { .. } | ChangeError::IsPlugin(_) => {
                MatrixError::new(StatusCode::FORBIDDEN, "M_FORBIDDEN", e.to_string())
            }
            ChangeError::Takeover(ref t) => {
                // M_EXCLUSIVE: the spec's code for a resource "the application service making
                // the request has not created"; the accounts are named for the admin.
                let mut m = MatrixError::new(StatusCode::BAD_REQUEST, "M_EXCLUSIVE", e.to_string());
                m.body["users"] = json!(t.named.iter().map(|u| &u.user_id).collect::<Vec<_>>());
                m.body["count"] = json!(t.count);
                m
            }
            ChangeError::Storage(e) => Error::from(e).into(),
        }
    }
}
