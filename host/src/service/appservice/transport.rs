//! How a transaction reaches an application service. One trait, so that the HTTP push of
//! classic appservices ([`HttpTransport`], here) and the call into a WASM plugin
//! (`plugins::transport::WasmTransport`) sit behind the same durable queue.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde_json::Value;

use super::retry::{Failure, Probe};
use crate::storage::queue::{QueueKind, QueueWrite};

/// Why a push did not count as delivered; the queue keeps the transaction and retries it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DeliveryError {
    #[error("cannot connect: {0}")]
    Connection(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("{0}")]
    Other(String),
}

impl DeliveryError {
    /// A request that got no answer, sent with `timeout`: timed out, not connected, or failed
    /// on the way (which may have reached the destination, so it counts as answered).
    pub(crate) fn of_request(e: reqwest::Error, timeout: Duration) -> DeliveryError {
        if e.is_timeout() {
            DeliveryError::Timeout(timeout)
        } else if e.is_connect() {
            DeliveryError::Connection(e.to_string())
        } else {
            DeliveryError::Other(e.to_string())
        }
    }

    /// What the failure shows of the destination. A 502, 503 or 504 is what a proxy answers
    /// for a service behind it that is down (and what a service says when it cannot take
    /// anything now): as good as no answer. A timeout is not: the push may have reached a
    /// service that is merely slow.
    pub(crate) fn failure(&self) -> Failure {
        match self {
            DeliveryError::Connection(_) | DeliveryError::Status(502..=504) => Failure::Unreachable,
            DeliveryError::Timeout(_) | DeliveryError::Status(_) | DeliveryError::Other(_) => {
                Failure::Answered
            }
        }
    }
}

pub(crate) type PushFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Pushed, DeliveryError>> + Send + 'a>>;

/// How a push that went through ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// The service took it; the delivery worker writes the acknowledgement.
    Delivered,
    /// The service took it and the transport committed the acknowledgement it was handed,
    /// with what the service wrote while handling it.
    Acknowledged,
}
pub(crate) type QueryFuture<'a> = Pin<Box<dyn Future<Output = bool> + Send + 'a>>;
pub(crate) type ProbeFuture<'a> = Pin<Box<dyn Future<Output = Probe> + Send + 'a>>;

/// What a query asks a service for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueryKind {
    User,
    Alias,
}

pub(crate) trait Transport: Send + Sync {
    /// Delivers transaction `txn_id` (its body: `events`, `ephemeral`); `Ok` only once the
    /// service has acknowledged it. `ack` is the queue steps that acknowledge it, for a
    /// transport that commits what the service wrote to commit them together.
    fn push<'a>(
        &'a self,
        txn_id: &'a str,
        body: &'a Value,
        ack: &'a [QueueWrite],
    ) -> PushFuture<'a>;

    /// Asks the service for a user or alias in its namespace that does not exist; `true`
    /// when it says it has made it. HTTP services are asked on the request path by
    /// [`Services::query_user`](crate::service::Services::query_user) instead.
    fn query<'a>(&'a self, kind: QueryKind, id: &'a str) -> QueryFuture<'a> {
        let _ = (kind, id);
        Box::pin(async { false })
    }

    /// Whether the transport has a probe: a request that costs the destination nothing and
    /// says whether it is there, sent during long pauses after failed pushes (see
    /// [`retry`](super::retry)). An HTTP service is pinged; a plugin in this process has
    /// nothing to probe (its pushes are retried on the backoff alone). A push gateway or a
    /// remote server would be asked for something as cheap (a server's
    /// `/_matrix/federation/v1/version`).
    fn can_probe(&self) -> bool {
        false
    }

    /// Probes the destination, giving up after `timeout` (counted as down).
    fn probe(&self, timeout: Duration) -> ProbeFuture<'_> {
        let _ = timeout;
        Box::pin(async { Probe::Down })
    }

    /// Whether a push takes less time than a commit (a plugin in this process). A lone
    /// event's transaction then goes out before its record is even queued, and is recorded
    /// with its acknowledgement, so that what the service writes in reply shares that
    /// commit; an HTTP push rather overlaps the record's commit.
    fn in_process(&self) -> bool {
        false
    }

    /// The kind of queue the destination's transactions wait in.
    fn queue_kind(&self) -> QueueKind {
        QueueKind::Appservice
    }
}

/// `PUT {url}/_matrix/app/v1/transactions/{txnId}` with `Authorization: Bearer hs_token`;
/// a 2xx answer counts as delivered.
pub(crate) struct HttpTransport {
    client: reqwest::Client,
    url: String,
    hs_token: String,
    /// Also send `?access_token=`, for services written against the old spec.
    legacy_query_token: bool,
    timeout: Duration,
}

impl HttpTransport {
    pub(crate) fn new(
        url: &str,
        hs_token: &str,
        legacy_query_token: bool,
        timeout: Duration,
    ) -> Self {
        HttpTransport {
            client: reqwest::Client::new(),
            url: url.trim_end_matches('/').to_string(),
            hs_token: hs_token.to_string(),
            legacy_query_token,
            timeout,
        }
    }
}

impl Transport for HttpTransport {
    fn push<'a>(
        &'a self,
        txn_id: &'a str,
        body: &'a Value,
        _ack: &'a [QueueWrite],
    ) -> PushFuture<'a> {
        Box::pin(async move {
            let mut url = format!(
                "{}/_matrix/app/v1/transactions/{}",
                self.url,
                percent_encoding::utf8_percent_encode(txn_id, percent_encoding::NON_ALPHANUMERIC)
            );
            if self.legacy_query_token {
                url.push_str("?access_token=");
                url.extend(percent_encoding::utf8_percent_encode(
                    &self.hs_token,
                    percent_encoding::NON_ALPHANUMERIC,
                ));
            }
            let resp = self
                .client
                .put(url)
                .bearer_auth(&self.hs_token)
                .json(body)
                .timeout(self.timeout)
                .send()
                .await
                .map_err(|e| DeliveryError::of_request(e, self.timeout))?;
            if resp.status().is_success() {
                Ok(Pushed::Delivered)
            } else {
                Err(DeliveryError::Status(resp.status().as_u16()))
            }
        })
    }

    fn can_probe(&self) -> bool {
        true
    }

    /// `POST {url}/_matrix/app/v1/ping` with `{}`, the spec's call for checking that the
    /// service is there, which it answers without doing anything. Any answer counts as
    /// alive, a 404 of a service too old to know the ping included, except a 502, 503 or
    /// 504 (a proxy whose service is down).
    fn probe(&self, timeout: Duration) -> ProbeFuture<'_> {
        Box::pin(async move {
            let mut url = format!("{}/_matrix/app/v1/ping", self.url);
            if self.legacy_query_token {
                url.push_str("?access_token=");
                url.extend(percent_encoding::utf8_percent_encode(
                    &self.hs_token,
                    percent_encoding::NON_ALPHANUMERIC,
                ));
            }
            let answer = self
                .client
                .post(url)
                .bearer_auth(&self.hs_token)
                .json(&serde_json::json!({}))
                .timeout(timeout)
                .send()
                .await;
            match answer {
                Ok(resp) if !matches!(resp.status().as_u16(), 502..=504) => Probe::Alive,
                _ => Probe::Down,
            }
        })
    }
}
