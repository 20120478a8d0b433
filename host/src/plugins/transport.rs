//! [`WasmTransport`]: the second implementation of the delivery queue's transport. A push is
//! a call of the plugin's `on-transaction`; a query a call of `query-user` / `query-alias`.
//! Any failure (an error answer, a trap, a deadline) leaves the transaction in the queue,
//! which retries it with the same txn id after a pause.

use std::sync::Arc;

use serde_json::Value;

use super::convert;
use super::runtime::{CallKind, Plugin};
use crate::service::appservice::transport::{
    DeliveryError, PushFuture, QueryFuture, QueryKind, Transport,
};

pub struct WasmTransport {
    plugin: Arc<Plugin>,
}

impl WasmTransport {
    pub fn new(plugin: Arc<Plugin>) -> WasmTransport {
        WasmTransport { plugin }
    }
}

impl Transport for WasmTransport {
    fn push<'a>(&'a self, txn_id: &'a str, body: &'a Value) -> PushFuture<'a> {
        Box::pin(async move {
            let own = self.plugin.namespaces().await;
            let txn = convert::transaction(txn_id, body, &own);
            let events = txn.events.len();
            let result = self
                .plugin
                .call(CallKind::Transaction { events }, None, move |p, store| {
                    p.call_on_transaction(store, &txn)
                })
                .await;
            result.map_err(|e| {
                tracing::warn!(plugin = %self.plugin.id(), txn_id, error = %e, "plugin transaction failed");
                DeliveryError::Other(e.to_string())
            })
        })
    }

    fn query<'a>(&'a self, kind: QueryKind, id: &'a str) -> QueryFuture<'a> {
        Box::pin(async move {
            let id_owned = id.to_string();
            let result = self
                .plugin
                .call(CallKind::Query, None, move |p, store| {
                    match kind {
                        QueryKind::User => p.call_query_user(store, &id_owned),
                        QueryKind::Alias => p.call_query_alias(store, &id_owned),
                    }
                    .map(Ok)
                })
                .await;
            match result {
                Ok(answer) => answer,
                Err(e) => {
                    tracing::warn!(plugin = %self.plugin.id(), query = id, error = %e, "plugin query failed");
                    false
                }
            }
        })
    }
}
