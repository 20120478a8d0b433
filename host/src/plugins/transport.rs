//! [`WasmTransport`]: the second implementation of the delivery queue's transport. A push is
//! a call of the plugin's `on-transaction`; a query a call of `query-user` / `query-alias`.
//! Any failure (an error answer, a trap, a deadline) leaves the transaction in the queue,
//! which retries it with the same txn id after a pause.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::convert;
use super::lane::inside_call_of;
use super::plugin::Plugin;
use super::stats::CallKind;
use crate::service::appservice::transport::{
    DeliveryError, PushFuture, Pushed, QueryFuture, QueryKind, Transport,
};
use crate::storage::queue::{QueueKind, QueueWrite};

pub(crate) struct WasmTransport {
    plugin: Arc<Plugin>,
    /// How long a query may wait for the plugin (its lane may be busy with a transaction).
    query_timeout: Duration,
}

impl WasmTransport {
    pub(crate) fn new(plugin: Arc<Plugin>, query_timeout: Duration) -> WasmTransport {
        WasmTransport {
            plugin,
            query_timeout,
        }
    }
}

impl Transport for WasmTransport {
    fn push<'a>(
        &'a self,
        txn_id: &'a str,
        body: &'a Value,
        ack: &'a [QueueWrite],
    ) -> PushFuture<'a> {
        Box::pin(async move {
            let own = self.plugin.namespaces();
            let txn = convert::transaction(txn_id, body, &own);
            let extras = convert::extras(body);
            let events = txn.events.len();
            let result = self
                .plugin
                .call_acknowledging(
                    CallKind::Transaction { events },
                    None,
                    ack.to_vec(),
                    move |p, store| {
                        // What `e2ee.transaction-extras` answers during this call.
                        store.data_mut().e2ee.set_extras(Some(extras));
                        let answer = p.call_on_transaction(&mut *store, &txn);
                        store.data_mut().e2ee.set_extras(None);
                        answer
                    },
                )
                .await;
            result.map(|((), acked)| if acked { Pushed::Acknowledged } else { Pushed::Delivered }).map_err(|e| {
                tracing::warn!(plugin = %self.plugin.id(), txn_id, error = %e, "plugin transaction failed");
                DeliveryError::Other(e.to_string())
            })
        })
    }

    fn query<'a>(&'a self, kind: QueryKind, id: &'a str) -> QueryFuture<'a> {
        Box::pin(async move {
            // A query from inside one of this plugin's own calls (it invites or joins what
            // its namespace holds and does not exist yet) would wait for the lane it holds.
            if inside_call_of(self.plugin.id()) {
                return false;
            }
            let id_owned = id.to_string();
            let call = self.plugin.call(CallKind::Query, None, move |p, store| {
                match kind {
                    QueryKind::User => p.call_query_user(store, &id_owned),
                    QueryKind::Alias => p.call_query_alias(store, &id_owned),
                }
                .map(Ok)
            });
            match tokio::time::timeout(self.query_timeout, call).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(e)) => {
                    tracing::warn!(plugin = %self.plugin.id(), query = id, error = %e, "plugin query failed");
                    false
                }
                Err(_) => {
                    tracing::warn!(plugin = %self.plugin.id(), query = id, "plugin query timed out");
                    false
                }
            }
        })
    }

    fn in_process(&self) -> bool {
        true
    }

    fn queue_kind(&self) -> QueueKind {
        QueueKind::Plugin
    }
}
