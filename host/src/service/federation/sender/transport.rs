//! How a transaction reaches a remote server: `PUT /_matrix/federation/v1/send/{txnId}`
//! through the signed federation client. A 200 acknowledges the whole transaction; the
//! per-PDU errors it may list are the receiver's verdicts on those PDUs, logged and not sent
//! again. The probe during long pauses is `GET /_matrix/federation/v1/version`, which costs
//! the server nothing.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::select;
use crate::service::appservice::retry::Probe;
use crate::service::appservice::transport::{
    DeliveryError, ProbeFuture, PushFuture, Pushed, Transport,
};
use crate::service::federation::FederationError;
use crate::service::Services;
use crate::storage::queue::{QueueKind, QueueWrite};

/// The transport of one remote server's queue.
pub(super) struct ServerTransport {
    pub(super) services: Arc<Services>,
    pub(super) destination: String,
}

/// What a failed request shows of the server, in the delivery machine's terms.
pub(super) fn delivery_error(e: FederationError, timeout: Duration) -> DeliveryError {
    match e {
        FederationError::Unreachable { .. } => DeliveryError::Connection(e.to_string()),
        FederationError::Timeout(_) => DeliveryError::Timeout(timeout),
        FederationError::Remote { status, .. } => DeliveryError::Status(status),
        other => DeliveryError::Other(other.to_string()),
    }
}

impl Transport for ServerTransport {
    fn push<'a>(
        &'a self,
        txn_id: &'a str,
        body: &'a Value,
        _ack: &'a [QueueWrite],
    ) -> PushFuture<'a> {
        Box::pin(async move {
            let timeout = Duration::from_millis(self.services.config.federation.request_timeout_ms);
            let client = self
                .services
                .federation
                .client()
                .map_err(|e| delivery_error(e, timeout))?;
            let uri = format!(
                "/_matrix/federation/v1/send/{}",
                percent_encoding::utf8_percent_encode(txn_id, percent_encoding::NON_ALPHANUMERIC)
            );
            let answer = client
                .put(&self.destination, &uri, body)
                .await
                .map_err(|e| delivery_error(e, timeout))?;
            for (event_id, error) in select::pdu_errors(&answer) {
                tracing::warn!(
                    destination = %self.destination,
                    %txn_id,
                    %event_id,
                    %error,
                    "the server refused a PDU of a transaction it acknowledged"
                );
            }
            Ok(Pushed::Delivered)
        })
    }

    fn can_probe(&self) -> bool {
        true
    }

    /// `GET /_matrix/federation/v1/version`: any answer but a gateway's 502, 503 or 504
    /// counts as alive.
    fn probe(&self, timeout: Duration) -> ProbeFuture<'_> {
        Box::pin(async move {
            let Ok(client) = self.services.federation.client() else {
                return Probe::Down;
            };
            let asked = client.get_unsigned(&self.destination, "/_matrix/federation/v1/version");
            match tokio::time::timeout(timeout, asked).await {
                Ok(Ok(_)) => Probe::Alive,
                Ok(Err(FederationError::Remote { status, .. }))
                    if !(502..=504).contains(&status) =>
                {
                    Probe::Alive
                }
                _ => Probe::Down,
            }
        })
    }

    fn queue_kind(&self) -> QueueKind {
        QueueKind::Federation
    }
}
