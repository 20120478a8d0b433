//! How a transaction reaches an application service. One trait, so that the HTTP push of
//! classic appservices and (next) the call into a WASM plugin sit behind the same durable
//! queue; [`HttpTransport`] is the first implementation.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde_json::Value;

use crate::storage::writer::QueueWrite;

/// Why a push did not count as delivered; the queue keeps the transaction and retries it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    #[error("cannot connect: {0}")]
    Connection(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("{0}")]
    Other(String),
}

pub type PushFuture<'a> = Pin<Box<dyn Future<Output = Result<Pushed, DeliveryError>> + Send + 'a>>;

/// How a push that went through ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// The service took it; the delivery worker writes the acknowledgement.
    Delivered,
    /// The service took it and the transport committed the acknowledgement it was handed,
    /// with what the service wrote while handling it.
    Acknowledged,
}
pub type QueryFuture<'a> = Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

/// What a query asks a service for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryKind {
    User,
    Alias,
}

pub trait Transport: Send + Sync {
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

    /// Whether a push takes less time than a commit (a plugin in this process). A lone
    /// event's transaction then goes out before its record is even queued, and is recorded
    /// with its acknowledgement, so that what the service writes in reply shares that
    /// commit; an HTTP push rather overlaps the record's commit.
    fn in_process(&self) -> bool {
        false
    }
}

/// `PUT {url}/_matrix/app/v1/transactions/{txnId}` with `Authorization: Bearer hs_token`;
/// a 2xx answer counts as delivered.
pub struct HttpTransport {
    client: reqwest::Client,
    url: String,
    hs_token: String,
    /// Also send `?access_token=`, for services written against the old spec.
    legacy_query_token: bool,
    timeout: Duration,
}

impl HttpTransport {
    pub fn new(url: &str, hs_token: &str, legacy_query_token: bool, timeout: Duration) -> Self {
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
                .map_err(|e| {
                    if e.is_timeout() {
                        DeliveryError::Timeout(self.timeout)
                    } else if e.is_connect() {
                        DeliveryError::Connection(e.to_string())
                    } else {
                        DeliveryError::Other(e.to_string())
                    }
                })?;
            if resp.status().is_success() {
                Ok(Pushed::Delivered)
            } else {
                Err(DeliveryError::Status(resp.status().as_u16()))
            }
        })
    }
}
