//! `/_plugboard/admin/v1/plugins`: the installed WASM plugins with their state and figures,
//! and their lifecycle while the server runs.
//!
//! Install and upgrade take JSON: `{"component": "<base64 of the .wasm>", "manifest":
//! "<plugin.toml text>", "config": "<TOML text>", "start": "live" | "beginning" |
//! {"from": "$event"}}` (upgrade: `component` and optionally `manifest`).

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::Json;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Admin, TakeoverQuery};
use crate::api::error::{ApiResult, MatrixError};
use crate::api::extract::{parse_json, read_body, Path, Query};
use crate::api::AppState;
use crate::plugins::lane::TrapKind;
use crate::plugins::lifecycle::{Install, LifecycleError, Overview, Start};
use crate::service::Error;

/// `GET /_plugboard/admin/v1/plugins`
pub(crate) async fn list(_: Admin, State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let plugins = s.plugins.overviews(&s).await?;
    let broken: Vec<Value> = s
        .plugins
        .broken()
        .into_iter()
        .map(|(id, error)| json!({"id": id, "state": "error", "error": error}))
        .collect();
    Ok(Json(json!({
        "plugins": plugins.iter().map(view).collect::<Vec<_>>(),
        "not_loaded": broken,
    })))
}

/// `GET /_plugboard/admin/v1/plugins/{id}`
pub(crate) async fn show(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(view(&s.plugins.overview_of(&s, &id).await?)))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StartBody {
    Named(String),
    From { from: String },
}

#[derive(Deserialize)]
struct InstallBody {
    component: String,
    manifest: String,
    config: Option<String>,
    start: Option<StartBody>,
}

#[derive(Deserialize)]
struct UpgradeBody {
    component: String,
    manifest: Option<String>,
}

fn component(b64: &str) -> ApiResult<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| MatrixError::bad_json(format!("`component` is not base64: {e}")))
}

async fn body<T: serde::de::DeserializeOwned>(s: &AppState, req: Request) -> ApiResult<T> {
    let bytes = read_body(req, s.config.plugins.max_component_bytes).await?;
    parse_json(&bytes)
}

/// `POST /_plugboard/admin/v1/plugins[?allow_takeover=true]`: installs a plugin; answers its
/// view.
pub(crate) async fn install(
    _: Admin,
    State(s): State<AppState>,
    Query(q): Query<TakeoverQuery>,
    req: Request,
) -> ApiResult<Json<Value>> {
    let b: InstallBody = body(&s, req).await?;
    let start = match b.start {
        None => Start::Live,
        Some(StartBody::Named(n)) if n == "live" => Start::Live,
        Some(StartBody::Named(n)) if n == "beginning" => Start::Beginning,
        Some(StartBody::Named(n)) => {
            return Err(MatrixError::invalid_param(format!(
                "`start` is \"live\", \"beginning\" or {{\"from\": EVENT_ID}}, not \"{n}\""
            )))
        }
        Some(StartBody::From { from }) => Start::From(from),
    };
    let req = Install {
        component: component(&b.component)?,
        manifest: b.manifest,
        config: b.config,
        start,
        takeovers: q.takeovers(),
    };
    Ok(Json(view(&s.plugins.install(&s, req).await?)))
}

/// `PUT /_plugboard/admin/v1/plugins/{id}[?allow_takeover=true]`: upgrades a plugin between
/// two transactions.
pub(crate) async fn upgrade(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<TakeoverQuery>,
    req: Request,
) -> ApiResult<Json<Value>> {
    let b: UpgradeBody = body(&s, req).await?;
    let overview = s
        .plugins
        .upgrade(&s, &id, component(&b.component)?, b.manifest, q.takeovers())
        .await?;
    Ok(Json(view(&overview)))
}

/// `DELETE /_plugboard/admin/v1/plugins/{id}`
pub(crate) async fn remove(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    s.plugins.remove(&s, &id).await?;
    Ok(Json(json!({})))
}

/// `POST /_plugboard/admin/v1/plugins/{id}/enable`
pub(crate) async fn enable(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(view(&s.plugins.enable(&s, &id).await?)))
}

/// `POST /_plugboard/admin/v1/plugins/{id}/disable`
pub(crate) async fn disable(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(view(&s.plugins.disable(&s, &id).await?)))
}

/// `POST /_plugboard/admin/v1/plugins/{id}/reload[?allow_takeover=true]`: reads its
/// directory again.
pub(crate) async fn reload(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<TakeoverQuery>,
) -> ApiResult<Json<Value>> {
    Ok(Json(view(&s.plugins.reload(&s, &id, q.takeovers()).await?)))
}

#[derive(Deserialize)]
pub(crate) struct EndpointsBody {
    enabled: bool,
}

/// `PUT /_plugboard/admin/v1/plugins/{id}/endpoints` `{"enabled": bool}`
pub(crate) async fn endpoints(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    crate::api::extract::Json(b): crate::api::extract::Json<EndpointsBody>,
) -> ApiResult<Json<Value>> {
    Ok(Json(view(
        &s.plugins.set_endpoints(&s, &id, b.enabled).await?,
    )))
}

/// `POST /_plugboard/admin/v1/plugins/{id}/skip/{txnId}`: acknowledges the transaction in
/// flight without delivering it.
pub(crate) async fn skip(
    _: Admin,
    State(s): State<AppState>,
    Path((id, txn)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let txn_id: i64 = txn
        .parse()
        .map_err(|_| MatrixError::invalid_param(format!("`{txn}` is not a transaction id")))?;
    Ok(Json(view(&s.plugins.skip(&s, &id, txn_id).await?)))
}

/// One plugin as the admin API shows it.
pub(crate) fn view(o: &Overview) -> Value {
    let info = &o.info;
    let m = &info.manifest;
    let stats = &o.stats;
    let ms = |q: f64| {
        stats
            .call_times
            .quantile(q)
            .map(|d| d.as_secs_f64() * 1000.0)
    };
    let traps: serde_json::Map<String, Value> = TrapKind::ALL
        .iter()
        .map(|k| {
            (
                k.name().to_string(),
                json!(stats.traps.get(k).copied().unwrap_or(0)),
            )
        })
        .collect();
    let delivery = o.delivery.as_ref();
    json!({
        "id": m.id,
        "version": m.version,
        "description": m.description,
        "state": o.state.name(),
        "enabled": info.enabled,
        "endpoints": info.endpoints,
        "sender": o.sender,
        "component_sha256": info.content_hash,
        "capabilities": {
            "http_allow": info.capabilities.http_allow,
            "kv_quota_bytes": info.capabilities.kv_quota_bytes,
            "memory_mb": info.capabilities.memory_mb,
            "deadline_ms": info.capabilities.deadline_ms,
        },
        "transactions": stats.transactions,
        "events": stats.events,
        "timers_fired": stats.timers_fired,
        "queries": stats.queries,
        "http_requests": stats.http_requests,
        "errors": stats.errors,
        "traps": traps,
        "retries": delivery.map_or(0, |d| d.retries),
        "call_ms": {
            "p50": ms(0.5),
            "p99": ms(0.99),
            "samples": stats.call_times.len(),
            "total": stats.call_times.total.as_secs_f64() * 1000.0,
            "calls": stats.call_times.count,
        },
        "memory_bytes": stats.memory_bytes,
        "kv_bytes": stats.kv_bytes,
        "consecutive_failures": stats.consecutive_failures,
        "last_error": stats.last_error.as_ref().map(|(ts, e)| json!({"ts": ts, "error": e})),
        "recent_errors": stats.recent_errors.iter().map(|(ts, e)| json!({"ts": ts, "error": e})).collect::<Vec<_>>(),
        "position": o.backlog.map(|b| b.position),
        "events_behind": o.backlog.map(|b| b.events_after),
        "in_flight": o.backlog.and_then(|b| b.pending_txn_id.map(|txn_id| json!({
            "txn_id": txn_id.to_string(),
            "events": b.pending_events,
        }))),
        "replay": o.replay.map(|r| json!({"done": r.done, "total": r.total})),
        "installed_ts": info.installed_ts,
        "updated_ts": info.updated_ts,
    })
}

impl From<LifecycleError> for MatrixError {
    fn from(e: LifecycleError) -> Self {
        match e {
            LifecycleError::NotFound(_) => {
                MatrixError::new(StatusCode::NOT_FOUND, "M_NOT_FOUND", e.to_string())
            }
            LifecycleError::Storage(e) => Error::from(e).into(),
            LifecycleError::Io { .. } => {
                tracing::error!(error = %e, "plugin files");
                MatrixError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "M_UNKNOWN",
                    e.to_string(),
                )
            }
            LifecycleError::Registration(inner) => inner.into(),
            LifecycleError::Manifest(_)
            | LifecycleError::Component(_)
            | LifecycleError::Exists(_)
            | LifecycleError::Invalid(_) => MatrixError::invalid_param(e.to_string()),
        }
    }
}
