//! The plugins built into this binary (the crates of `plugins/`, built by `build.rs`), and
//! installing them at start-up: each once, live, unless the admin removed it since (a marker
//! `.bundled-{id}` in the plugins directory remembers that it was installed) or
//! `plugins.bundled` is off.

use std::sync::Arc;

use super::lifecycle::{Install, LifecycleError, Start};
use super::PluginRuntime;
use crate::service::appservice::registered::ChangeError;
use crate::service::appservice::takeover::Takeovers;
use crate::service::Services;

include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

impl PluginRuntime {
    /// Installs the bundled plugins that were never installed here.
    pub(crate) async fn install_bundled(&self, services: &Arc<Services>) {
        if !self.bundled_on() {
            return;
        }
        for (id, manifest, component) in BUNDLED {
            let marker = self.plugins_dir().join(format!(".bundled-{id}"));
            if marker.exists() || self.get(id).is_some() || self.plugins_dir().join(id).exists() {
                continue;
            }
            let req = Install {
                component: component.to_vec(),
                manifest: manifest.to_string(),
                config: None,
                start: Start::Live,
                // A bundled plugin never takes over an account someone has (a user named
                // like its bot before a release brought the plugin).
                takeovers: Takeovers::Refuse,
            };
            match self.install(services, req).await {
                Ok(_) => {
                    if let Err(e) = std::fs::write(&marker, b"installed with the server\n") {
                        tracing::warn!(plugin = %id, error = %e, "cannot write the bundled marker");
                    }
                }
                Err(LifecycleError::Registration(ChangeError::Takeover(t))) => {
                    tracing::warn!(
                        plugin = %id,
                        "bundled plugin not installed: {t}; it is tried again at the next start"
                    );
                }
                Err(LifecycleError::Registration(e)) => {
                    tracing::warn!(plugin = %id, error = %e, "bundled plugin not installed: its namespaces clash");
                }
                Err(e) => tracing::error!(plugin = %id, error = %e, "bundled plugin not installed"),
            }
        }
    }
}
