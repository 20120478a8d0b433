//! The application services as the admin sees them: each registration with where it came
//! from, its delivery status and its queue's backlog, read through [`Appservices`]' own
//! accessors.

use super::delivery::Status;
use super::registered::Appservices;
use super::registration::{CompiledService, Origin};
use crate::storage::queue::{Backlog, QueueKind};
use crate::storage::{Storage, StorageError};

/// One service as the admin sees it.
#[derive(Debug, Clone)]
pub(crate) struct Overview {
    pub(crate) service: CompiledService,
    pub(crate) origin: Origin,
    /// Its delivery status; `None` when it has no URL (nothing is pushed to it).
    pub(crate) status: Option<Status>,
    /// Its queue; `None` before its worker made one (or without a URL).
    pub(crate) backlog: Option<Backlog>,
}

impl Appservices {
    /// Every service as the admin sees it, in registration order.
    pub(crate) async fn overview(&self, storage: &Storage) -> Result<Vec<Overview>, StorageError> {
        let registry = self.registry();
        let mut out = Vec::with_capacity(registry.services().len());
        for service in registry.services() {
            out.push(self.overview_of_service(storage, service).await?);
        }
        Ok(out)
    }

    /// Service `id` as the admin sees it.
    pub(crate) async fn overview_of(
        &self,
        storage: &Storage,
        id: &str,
    ) -> Result<Option<Overview>, StorageError> {
        let registry = self.registry();
        match registry.get(id) {
            Some(service) => Ok(Some(self.overview_of_service(storage, service).await?)),
            None => Ok(None),
        }
    }

    async fn overview_of_service(
        &self,
        storage: &Storage,
        service: &CompiledService,
    ) -> Result<Overview, StorageError> {
        let has_url = service.registration.url.is_some()
            || matches!(service.registration.origin, Origin::Plugin(_));
        let backlog = if has_url {
            let kind = match self.origin(&service.id) {
                Origin::Plugin(_) => QueueKind::Plugin,
                _ => QueueKind::Appservice,
            };
            storage.queue_backlog(kind, &service.id).await?
        } else {
            None
        };
        Ok(Overview {
            service: service.clone(),
            origin: self.origin(&service.id),
            status: if has_url {
                self.status(&service.id)
            } else {
                None
            },
            backlog,
        })
    }
}
