//! Reporting content: an event, a room (v1.13) or a user (v1.14) to the server's admins.
//! Every report is rate limited (`Action::Report`) per user and per client address, after
//! its input is checked and before the server looks for what it names, so that probing for
//! events or rooms costs as much as reporting them.

use axum::extract::State;
use axum::Json as Reply;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::error::ApiResult;
use crate::api::extract::{Auth, ClientIp, Json, Path};
use crate::api::AppState;
use crate::service::ratelimit::Action;
use crate::service::reports::ReportRequest;
use crate::service::users::Session;

/// The body of an event report: its reason is optional.
#[derive(Deserialize)]
pub(crate) struct EventReportBody {
    reason: Option<String>,
}

/// The body of a room or user report: its reason is required, and may be blank.
#[derive(Deserialize)]
pub(crate) struct ReportBody {
    reason: String,
}

async fn file(
    s: &AppState,
    session: &Session,
    ip: &str,
    req: ReportRequest,
) -> ApiResult<Reply<Value>> {
    s.ratelimit.check_request(Action::Report, session, ip)?;
    s.report(session, req).await?;
    Ok(Reply(json!({})))
}

/// POST /rooms/{roomId}/report/{eventId}
pub(crate) async fn report_event(
    State(s): State<AppState>,
    Auth(session): Auth,
    ClientIp(ip): ClientIp,
    Path((room_id, event_id)): Path<(String, String)>,
    Json(body): Json<EventReportBody>,
) -> ApiResult<Reply<Value>> {
    let req = ReportRequest::event(room_id, event_id, body.reason)?;
    file(&s, &session, &ip, req).await
}

/// POST /rooms/{roomId}/report
pub(crate) async fn report_room(
    State(s): State<AppState>,
    Auth(session): Auth,
    ClientIp(ip): ClientIp,
    Path(room_id): Path<String>,
    Json(body): Json<ReportBody>,
) -> ApiResult<Reply<Value>> {
    let req = ReportRequest::room(room_id, body.reason)?;
    file(&s, &session, &ip, req).await
}

/// POST /users/{userId}/report
pub(crate) async fn report_user(
    State(s): State<AppState>,
    Auth(session): Auth,
    ClientIp(ip): ClientIp,
    Path(user_id): Path<String>,
    Json(body): Json<ReportBody>,
) -> ApiResult<Reply<Value>> {
    let req = ReportRequest::user(user_id, body.reason)?;
    file(&s, &session, &ip, req).await
}
