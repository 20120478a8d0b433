//! The application services this server runs: the compiled registry (shared with whatever
//! checks namespaces) and, per service with a URL, a delivery worker and its status.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use super::delivery::{RetryPolicy, Status, Worker};
use super::interest::Registry;
use super::transport::HttpTransport;
use crate::config::AppserviceDelivery;
use crate::service::Services;

pub struct Appservices {
    registry: RwLock<Arc<Registry>>,
    statuses: Mutex<BTreeMap<String, Arc<Mutex<Status>>>>,
    delivery: AppserviceDelivery,
}

impl Appservices {
    pub fn new(registry: Registry, delivery: AppserviceDelivery) -> Self {
        Appservices {
            registry: RwLock::new(Arc::new(registry)),
            statuses: Mutex::new(BTreeMap::new()),
            delivery,
        }
    }

    pub fn registry(&self) -> Arc<Registry> {
        self.registry
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Starts a delivery worker for every registered service that has a URL; the handles
    /// let the server stop them when it shuts down.
    pub fn start(services: &Arc<Services>) -> Vec<tokio::task::JoinHandle<()>> {
        let mut workers = Vec::new();
        let me = &services.appservices;
        let retry = RetryPolicy {
            base: Duration::from_millis(me.delivery.retry_base_ms.max(1)),
            cap: Duration::from_millis(me.delivery.retry_max_ms.max(1)),
        };
        let timeout = Duration::from_millis(me.delivery.timeout_ms.max(1));
        for service in me.registry().services() {
            let Some(url) = &service.registration.url else {
                continue;
            };
            let status = Arc::new(Mutex::new(Status {
                up: true,
                ..Status::default()
            }));
            me.statuses
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(service.id.clone(), status.clone());
            let worker = Worker {
                services: services.clone(),
                service: service.clone(),
                transport: Arc::new(HttpTransport::new(
                    url,
                    &service.registration.hs_token,
                    false,
                    timeout,
                )),
                status,
                retry,
            };
            workers.push(tokio::spawn(worker.run()));
        }
        workers
    }

    /// A service's delivery status, if it has a worker.
    pub fn status(&self, id: &str) -> Option<Status> {
        let statuses = self.statuses.lock().unwrap_or_else(|e| e.into_inner());
        statuses
            .get(id)
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }
}
