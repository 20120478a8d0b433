//! `/_plugboard/admin/v1/reports`: what users reported (events, rooms, users), newest first,
//! a page at a time, and dismissing one.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::Admin;
use crate::api::error::ApiResult;
use crate::api::extract::{Path, Query};
use crate::api::AppState;
use crate::service::reports::Report;

#[derive(Deserialize)]
pub(crate) struct PageQuery {
    /// The `next_from` of the page before: reports older than this one.
    from: Option<i64>,
    limit: Option<u32>,
}

/// `GET /_plugboard/admin/v1/reports[?from=ID][&limit=N]`: `{"reports": […], "total": N}`,
/// with `next_from` when older reports follow.
pub(crate) async fn list(
    _: Admin,
    State(s): State<AppState>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Value>> {
    let page = s.reports(q.from, q.limit).await?;
    let mut body = json!({
        "reports": page.reports.iter().map(view).collect::<Vec<_>>(),
        "total": page.total,
    });
    if let Some(next) = page.next_from {
        body["next_from"] = json!(next);
    }
    Ok(Json(body))
}

/// `DELETE /_plugboard/admin/v1/reports/{id}`: dismisses a report.
pub(crate) async fn dismiss(
    admin: Admin,
    State(s): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    let by = match &admin {
        Admin::Token => "the admin token",
        Admin::User(user_id) => user_id.as_str(),
    };
    s.dismiss_report(id, by).await?;
    Ok(Json(json!({})))
}

/// A report as the admin API shows it: the ids its kind has, and no nulls for the others.
fn view(r: &Report) -> Value {
    let mut v = json!({
        "id": r.id,
        "kind": r.kind.as_str(),
        "reporter": r.reporter,
        "received_ts": r.received_ts,
    });
    for (key, value) in [
        ("room_id", &r.room_id),
        ("event_id", &r.event_id),
        ("user_id", &r.user_id),
        ("reason", &r.reason),
    ] {
        if let Some(value) = value {
            v[key] = json!(value);
        }
    }
    v
}
