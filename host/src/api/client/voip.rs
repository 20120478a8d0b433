//! `GET /voip/turnServer`: the TURN servers calls may relay through, with credentials.

use axum::extract::State;
use axum::Json as Reply;
use serde_json::Value;

use crate::api::extract::Auth;
use crate::api::AppState;
use crate::service::{now_ms, voip};

/// GET /voip/turnServer
pub(crate) async fn turn_server(State(s): State<AppState>, Auth(session): Auth) -> Reply<Value> {
    Reply(voip::turn_server(
        &s.config.turn,
        &session.user_id,
        now_ms(),
    ))
}
