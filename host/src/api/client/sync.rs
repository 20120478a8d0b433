//! `GET /sync` and the filter endpoints.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json as Reply;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::api::error::ApiResult;
use crate::api::extract::{Auth, Json, Path, Query};
use crate::api::AppState;
use crate::service::identifiers::UserId;
use crate::service::presence::PresenceState;
use crate::service::sync::sync::{SyncBody, SyncRequest, SyncRest};
use crate::service::Error;

#[derive(Deserialize)]
pub(crate) struct SyncQuery {
    since: Option<String>,
    timeout: Option<u64>,
    #[serde(default)]
    full_state: Option<String>,
    filter: Option<String>,
    /// The presence the syncing client marks its user with: online unless it says.
    set_presence: Option<String>,
}

/// GET /sync
pub(crate) async fn sync(
    State(s): State<AppState>,
    Auth(session): Auth,
    Query(q): Query<SyncQuery>,
) -> ApiResult<Response> {
    let presence = match q.set_presence.as_deref() {
        None => PresenceState::Online,
        Some(p) => PresenceState::parse(p)?,
    };
    let filter = s.sync_filter(&session.user_id, q.filter.as_deref()).await?;
    let full_state = match q.full_state.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(Error::InvalidParam(format!(
                "full_state must be true or false, not '{other}'"
            ))
            .into())
        }
    };
    s.presence_on_sync(&session, presence).await?;
    let body = s
        .sync(
            &session,
            SyncRequest {
                since: q.since,
                timeout: Duration::from_millis(q.timeout.unwrap_or(0)),
                full_state,
                filter,
            },
        )
        .await?;
    let json = [(header::CONTENT_TYPE, "application/json")];
    Ok(match body {
        SyncBody::Whole(bytes) => (json, bytes).into_response(),
        SyncBody::Streamed { first, rest } => {
            (json, Body::from_stream(stream(first, rest))).into_response()
        }
    })
}

/// A large response's body: its pieces are written by a task as the client takes them (two
/// pieces ahead at most). An error after the first byte cannot become an error response:
/// the body is cut off, so the client sees a broken response, never a short one.
fn stream(first: Vec<u8>, mut rest: SyncRest) -> Pieces {
    let (tx, rx) = mpsc::channel(2);
    tokio::spawn(async move {
        let mut piece = Ok(Bytes::from(first));
        loop {
            let failed = piece.is_err();
            // The client went away: stop writing.
            if tx.send(piece).await.is_err() || failed {
                return;
            }
            piece = match rest.next_chunk().await {
                Ok(Some(p)) => Ok(Bytes::from(p)),
                Ok(None) => return,
                Err(e) => {
                    tracing::error!(error = %e, "a streamed /sync response failed; cutting it off");
                    Err(std::io::Error::other(
                        "the sync response could not be completed",
                    ))
                }
            };
        }
    });
    Pieces(rx)
}

/// What the writing task sends, as a body's stream.
struct Pieces(mpsc::Receiver<std::io::Result<Bytes>>);

impl futures_core::Stream for Pieces {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// POST /user/{userId}/filter
pub(crate) async fn create_filter(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(user_id): Path<String>,
    Json(filter): Json<Value>,
) -> ApiResult<Reply<Value>> {
    let user_id = UserId::parse(user_id)?;
    session.require_self(&user_id, "filters")?;
    let id = s.create_filter(&user_id, &filter).await?;
    Ok(Reply(json!({ "filter_id": id.to_string() })))
}

/// GET /user/{userId}/filter/{filterId}
pub(crate) async fn get_filter(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path((user_id, filter_id)): Path<(String, String)>,
) -> ApiResult<Reply<Value>> {
    let user_id = UserId::parse(user_id)?;
    session.require_self(&user_id, "filters")?;
    Ok(Reply(s.filter(&user_id, &filter_id).await?))
}
