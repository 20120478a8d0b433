//! Ping: an application service asks the server to call it back
//! (`POST {url}/_matrix/app/v1/ping` with its `hs_token`), to check that both sides can reach
//! and authenticate each other. A successful ping also ends the backoff pause of a service
//! that was marked down: its backlog goes out at once instead of after the pause.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::service::{Error, Result, Services};

/// How much of a failed ping's answer goes back to the caller in `M_BAD_STATUS`.
const MAX_ERROR_BODY: usize = 64 * 1024;

impl Services {
    /// Pings service `id` for `caller` (the service a request authenticated as, if any: only
    /// the service itself may ping it) and answers how long the call took, in milliseconds.
    /// `transaction_id` is passed on to the service.
    pub(crate) async fn ping_appservice(
        &self,
        caller: Option<&str>,
        id: &str,
        transaction_id: Option<&str>,
    ) -> Result<u64> {
        let registry = self.appservices.registry();
        let service = match (caller, registry.get(id)) {
            (Some(caller), Some(service)) if caller == id => service,
            (Some(caller), _) => {
                return Err(Error::Forbidden(format!(
                    "this access token belongs to the application service '{caller}', not '{id}'"
                )))
            }
            (None, _) => {
                return Err(Error::Forbidden(
                    "only an application service may ping itself, with its as_token".into(),
                ))
            }
        };
        let Some(url) = service.registration.url.as_deref() else {
            return Err(Error::UrlNotSet(format!(
                "the application service '{id}' has no URL"
            )));
        };
        let timeout = Duration::from_millis(self.appservices.delivery.ping_timeout_ms.max(1));
        let body = match transaction_id {
            Some(t) => json!({ "transaction_id": t }),
            None => json!({}),
        };
        let started = Instant::now();
        let outcome = call(
            &self.appservices.http,
            url,
            &service.registration.hs_token,
            &body,
            timeout,
        )
        .await;
        let took = started.elapsed();
        outcome?;
        // Poked even when it looks up: the worker may be marking it down right now, after a
        // push that failed just before this ping; the poke then ends that pause.
        let was_down = self.appservices.status(id).is_some_and(|s| !s.up);
        if self.appservices.poke(id) && was_down {
            tracing::info!(appservice = id, "ping succeeded: retrying delivery at once");
        }
        Ok(u64::try_from(took.as_millis()).unwrap_or(u64::MAX))
    }
}

/// `POST {url}/_matrix/app/v1/ping`; the errors are the spec's.
async fn call(
    http: &reqwest::Client,
    url: &str,
    hs_token: &str,
    body: &Value,
    timeout: Duration,
) -> Result<()> {
    let failed = |e: reqwest::Error| {
        if e.is_timeout() {
            Error::ConnectionTimeout(format!(
                "the application service did not answer within {timeout:?}"
            ))
        } else {
            Error::ConnectionFailed(format!("cannot reach the application service: {e}"))
        }
    };
    let mut resp = http
        .post(format!("{}/_matrix/app/v1/ping", url.trim_end_matches('/')))
        .bearer_auth(hs_token)
        .json(body)
        .timeout(timeout)
        .send()
        .await
        .map_err(failed)?;
    if resp.status().is_success() {
        return Ok(());
    }
    let status = resp.status().as_u16();
    let mut answer = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(failed)? {
        let room = MAX_ERROR_BODY - answer.len();
        answer.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if answer.len() == MAX_ERROR_BODY {
            break;
        }
    }
    Err(Error::BadStatus {
        status,
        body: String::from_utf8_lossy(&answer).into_owned(),
    })
}
