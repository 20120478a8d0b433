//! The admin's operations on an installed plugin while the server runs: upgrade (a new
//! component or manifest), reload (its directory read again), enable, disable, web
//! endpoints on or off, and skipping a poisoned transaction. Installing, removing and
//! looking plugins up are the registry's ([`registry`](super::registry)).

use std::sync::Arc;

use super::lifecycle::{
    admin_config, io, query_timeout, replace_file, start_timers, LifecycleError, Overview,
    COMPONENT_FILE, MANIFEST_FILE,
};
use super::manifest::Manifest;
use super::registry::PluginRuntime;
use super::transport::WasmTransport;
use crate::service::appservice::registered::{Appservices, ChangeError};
use crate::service::appservice::takeover::Takeovers;
use crate::service::{now_ms, Services};
use crate::storage::queue::QueueKind;

impl PluginRuntime {
    /// Swaps in a new component (and manifest, when given) between two calls: the queue and
    /// what is in flight stay, so the new version sees a transaction twice only as a retried
    /// txn id. A plugin that was failing is retried at once.
    pub(crate) async fn upgrade(
        &self,
        services: &Arc<Services>,
        id: &str,
        component: Vec<u8>,
        manifest_text: Option<String>,
        takeovers: Takeovers,
    ) -> Result<Overview, LifecycleError> {
        let _change = self.change().await;
        self.swap(services, id, component, manifest_text, true, takeovers)
            .await?;
        tracing::info!(plugin = %id, "plugin upgraded");
        self.overview_of(services, id).await
    }

    /// `write_files` is false when the component and manifest came from the plugin's
    /// directory (a reload), so they are not written back. A manifest whose sender or
    /// namespaces change is checked as a new one is (`takeovers` decides about accounts it
    /// would take over).
    async fn swap(
        &self,
        services: &Arc<Services>,
        id: &str,
        component: Vec<u8>,
        manifest_text: Option<String>,
        write_files: bool,
        takeovers: Takeovers,
    ) -> Result<(), LifecycleError> {
        let plugin = self.require(id)?;
        let old = plugin.info();
        let manifest = match &manifest_text {
            Some(text) => Manifest::parse(text, MANIFEST_FILE)?,
            None => old.manifest.clone(),
        };
        if manifest.id != id {
            return Err(LifecycleError::Invalid(format!(
                "the manifest is for plugin `{}`, not `{id}`",
                manifest.id
            )));
        }
        let prepared = self.prepare(&component)?;
        let registration_changes = !manifest.same_registration(&old.manifest);
        if registration_changes {
            Appservices::check_plugin(services, &manifest.registration(), true, takeovers).await?;
        }
        let dir = self.plugin_dir(id);
        let admin_config = admin_config(&dir)?;
        let (capabilities, config) = self.settle(&manifest, &admin_config);
        let guest = self
            .guest(&manifest, capabilities.clone())
            .map_err(ChangeError::from)?;
        if write_files {
            replace_file(&dir.join(COMPONENT_FILE), &component)?;
            if let Some(text) = &manifest_text {
                replace_file(&dir.join(MANIFEST_FILE), text.as_bytes())?;
            }
        }
        plugin.replace(guest, prepared.pre, config).await;
        if registration_changes {
            Appservices::set_plugin(
                services,
                manifest.registration(),
                Arc::new(WasmTransport::new(plugin.clone(), query_timeout(services))),
                old.enabled,
            )
            .await?;
        }
        let now = now_ms();
        services.storage.touch_plugin(id, now).await?;
        plugin.set_info(|info| {
            info.manifest = manifest;
            info.capabilities = capabilities;
            info.content_hash = prepared.content_hash;
            info.updated_ts = now;
        });
        services.appservices.poke(id);
        Ok(())
    }

    /// Reads the plugin's directory again (component, manifest, the admin's config) and
    /// swaps it in as `upgrade` does.
    pub(crate) async fn reload(
        &self,
        services: &Arc<Services>,
        id: &str,
        takeovers: Takeovers,
    ) -> Result<Overview, LifecycleError> {
        let _change = self.change().await;
        self.require(id)?;
        let dir = self.plugin_dir(id);
        let component = std::fs::read(dir.join(COMPONENT_FILE))
            .map_err(io("cannot read", &dir.join(COMPONENT_FILE)))?;
        let manifest = std::fs::read_to_string(dir.join(MANIFEST_FILE))
            .map_err(io("cannot read", &dir.join(MANIFEST_FILE)))?;
        self.swap(services, id, component, Some(manifest), false, takeovers)
            .await?;
        tracing::info!(plugin = %id, "plugin reloaded");
        self.overview_of(services, id).await
    }

    /// Stops delivering to the plugin (its queue grows meanwhile), its timers and its web
    /// endpoints, and frees its instance.
    pub(crate) async fn disable(
        &self,
        services: &Arc<Services>,
        id: &str,
    ) -> Result<Overview, LifecycleError> {
        let _change = self.change().await;
        let plugin = self.require(id)?;
        services
            .storage
            .set_plugin_enabled(id, false, now_ms())
            .await?;
        // First, so that a call waiting for the lane finds the plugin disabled.
        plugin.set_info(|i| i.enabled = false);
        services.appservices.pause(id).await;
        plugin.stop_scheduler();
        plugin.recycle().await;
        tracing::info!(plugin = %id, "plugin disabled");
        self.overview_of(services, id).await
    }

    /// Starts a disabled plugin again; it catches up with what came meanwhile.
    pub(crate) async fn enable(
        &self,
        services: &Arc<Services>,
        id: &str,
    ) -> Result<Overview, LifecycleError> {
        let _change = self.change().await;
        let plugin = self.require(id)?;
        services
            .storage
            .set_plugin_enabled(id, true, now_ms())
            .await?;
        plugin.set_info(|i| i.enabled = true);
        Appservices::resume(services, id).await;
        start_timers(services, &plugin);
        services.appservices.poke(id);
        tracing::info!(plugin = %id, "plugin enabled");
        self.overview_of(services, id).await
    }

    /// Turns the plugin's web endpoints on or off.
    pub(crate) async fn set_endpoints(
        &self,
        services: &Arc<Services>,
        id: &str,
        on: bool,
    ) -> Result<Overview, LifecycleError> {
        let _change = self.change().await;
        let plugin = self.require(id)?;
        services
            .storage
            .set_plugin_endpoints(id, on, now_ms())
            .await?;
        plugin.set_info(|i| i.endpoints = on);
        self.overview_of(services, id).await
    }

    /// Acknowledges the transaction in flight, `txn_id`, without delivering it: the admin's
    /// way past a transaction the plugin cannot take.
    pub(crate) async fn skip(
        &self,
        services: &Arc<Services>,
        id: &str,
        txn_id: i64,
    ) -> Result<Overview, LifecycleError> {
        let _change = self.change().await;
        let plugin = self.require(id)?;
        let skipped = Appservices::with_worker_stopped(
            services,
            id,
            services
                .storage
                .skip_pending_txn(QueueKind::Plugin, id, txn_id),
        )
        .await?;
        if !skipped {
            return Err(LifecycleError::Invalid(format!(
                "transaction {txn_id} is not the one plugin `{id}` has in flight"
            )));
        }
        plugin.reset_failures();
        tracing::warn!(plugin = %id, txn_id, "transaction skipped by the admin");
        self.overview_of(services, id).await
    }
}
