//! The key server: `GET /_matrix/key/v2/server` (this server's verify key, self-signed) and
//! the notary, `GET /_matrix/key/v2/query/{serverName}` and `POST /_matrix/key/v2/query`
//! (other servers' key responses, with this server's signature added). None of them takes a
//! request signature: a server asks for keys before it can check any.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json as Reply;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::error::ApiResult;
use crate::api::extract::{Json, Path, Query};
use crate::api::AppState;
use crate::service::federation::notary::own_key_response;
use crate::service::now_ms;
use crate::service::Error;

/// The most servers one notary query may ask about.
const MAX_SERVERS_PER_QUERY: usize = 100;

/// GET /_matrix/key/v2/server
pub(crate) async fn server_keys(State(s): State<AppState>) -> Reply<Value> {
    Reply(own_key_response(&s.key, s.server_name()))
}

#[derive(Deserialize)]
pub(crate) struct MinimumValid {
    minimum_valid_until_ts: Option<i64>,
}

/// GET /_matrix/key/v2/query/{serverName}
pub(crate) async fn query_one(
    State(s): State<AppState>,
    Path(server): Path<String>,
    Query(q): Query<MinimumValid>,
) -> ApiResult<Reply<Value>> {
    let minimum = q.minimum_valid_until_ts.unwrap_or_else(now_ms);
    let keys = s.federation.notary_query(&server, &[], minimum).await?;
    Ok(Reply(json!({ "server_keys": keys })))
}

#[derive(Deserialize)]
pub(crate) struct BatchQuery {
    server_keys: BTreeMap<String, BTreeMap<String, Criteria>>,
}

#[derive(Deserialize)]
pub(crate) struct Criteria {
    minimum_valid_until_ts: Option<i64>,
}

/// POST /_matrix/key/v2/query
pub(crate) async fn query_batch(
    State(s): State<AppState>,
    Json(q): Json<BatchQuery>,
) -> ApiResult<Reply<Value>> {
    if q.server_keys.len() > MAX_SERVERS_PER_QUERY {
        return Err(
            Error::TooLarge(format!("at most {MAX_SERVERS_PER_QUERY} servers per query")).into(),
        );
    }
    let now = now_ms();
    let mut out = Vec::new();
    for (server, criteria) in &q.server_keys {
        let key_ids: Vec<String> = criteria.keys().cloned().collect();
        // The latest of the keys' minimums, so that every key asked for is fresh enough.
        let minimum = criteria
            .values()
            .filter_map(|c| c.minimum_valid_until_ts)
            .max()
            .unwrap_or(now);
        out.extend(s.federation.notary_query(server, &key_ids, minimum).await?);
    }
    Ok(Reply(json!({ "server_keys": out })))
}
