//! [`PluginRuntime`]: the registry of plugins. It holds the loaded set and the ones that
//! could not be loaded, installs and removes plugins, loads the plugins directory at
//! start-up, and answers lookups (a plugin, its overview). The admin's other operations are
//! in [`admin`](super::admin); calls into a plugin in [`plugin`](super::plugin).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};

use super::component::{ComponentError, Loader, Prepared};
use super::guest::{Capabilities, Guest};
use super::host::kv::KvShared;
use super::lane::Lane;
use super::lifecycle::{
    admin_config, io, parse_config, query_timeout, start_timers, write_plugin_dir, Install,
    LifecycleError, Overview, Replay, Start, State, COMPONENT_FILE, MANIFEST_FILE,
};
use super::manifest::Manifest;
use super::plugin::{Plugin, PluginInfo};
use super::schedule::TimerBook;
use super::transport::WasmTransport;
use crate::config::{Config, PluginsConfig};
use crate::lock::lock;
use crate::service::appservice::registered::{Appservices, ChangeError};
use crate::service::appservice::registration::CompiledNamespaces;
use crate::service::appservice::registration::RegistrationError;
use crate::service::appservice::takeover::Takeovers;
use crate::service::{now_ms, Services};
use crate::storage::plugins::PluginRow;
use crate::storage::queue::QueueKind;

pub struct PluginRuntime {
    loader: Loader,
    config: PluginsConfig,
    dir: PathBuf,
    server_config: Arc<Config>,
    plugins: Mutex<BTreeMap<String, Arc<Plugin>>>,
    /// Plugins found at start-up that could not be loaded, with why.
    broken: Mutex<BTreeMap<String, String>>,
    /// Held by a lifecycle change (install, upgrade, …) so that changes are serial.
    changes: tokio::sync::Mutex<()>,
}

impl PluginRuntime {
    pub fn new(config: Arc<Config>) -> wasmtime::Result<PluginRuntime> {
        Ok(PluginRuntime {
            loader: Loader::new(&config)?,
            config: config.plugins.clone(),
            dir: config.plugins_dir(),
            server_config: config,
            plugins: Mutex::new(BTreeMap::new()),
            broken: Mutex::new(BTreeMap::new()),
            changes: tokio::sync::Mutex::new(()),
        })
    }

    fn lock_plugins(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<Plugin>>> {
        lock(&self.plugins)
    }

    pub(crate) fn get(&self, id: &str) -> Option<Arc<Plugin>> {
        self.lock_plugins().get(id).cloned()
    }

    /// Compiles (or loads from the cache) `bytes` and checks it against the plugin world:
    /// every import provided, every export there with its type.
    pub fn prepare(&self, bytes: &[u8]) -> Result<Prepared, ComponentError> {
        self.loader.prepare(bytes)
    }

    /// Waits for the change running (install, upgrade, …) and holds off the next one while
    /// the guard lives: changes are serial.
    pub(super) async fn change(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.changes.lock().await
    }

    /// The directory holding every installed plugin's own.
    pub(super) fn plugins_dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the bundled plugins are installed at start-up (`plugins.bundled`).
    pub(super) fn bundled_on(&self) -> bool {
        self.config.bundled
    }

    /// The capabilities and `init` configuration of a plugin: its manifest, then the admin's
    /// file (`install --config`), then the server config's settings.
    pub(super) fn settle(
        &self,
        manifest: &Manifest,
        admin_config: &toml::Table,
    ) -> (Capabilities, String) {
        let settings = self.config.settings.get(&manifest.id);
        let capabilities = manifest.capabilities_with(settings, self.config.max_memory_mb);
        let mut layers = vec![admin_config];
        if let Some(s) = settings {
            layers.push(&s.config);
        }
        (capabilities, manifest.config_with(&layers).to_string())
    }

    /// A guest for `manifest` with `capabilities`: who its host calls act for.
    pub(super) fn guest(
        &self,
        manifest: &Manifest,
        capabilities: Capabilities,
    ) -> Result<Arc<Guest>, RegistrationError> {
        let namespaces =
            CompiledNamespaces::compile(&manifest.registration(), &self.server_config.server_name)?;
        Ok(Arc::new(Guest::new(
            manifest.id.clone(),
            tokio::runtime::Handle::current(),
            capabilities,
            namespaces,
        )))
    }

    pub(super) fn plugin_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    pub(super) fn require(&self, id: &str) -> Result<Arc<Plugin>, LifecycleError> {
        self.get(id)
            .ok_or_else(|| LifecycleError::NotFound(id.to_owned()))
    }

    /// Installs a plugin: checks the manifest, the component and the namespaces, writes its
    /// directory, makes its queue (at the stream's head, or back in history for a replay)
    /// and starts it.
    pub(crate) async fn install(
        &self,
        services: &Arc<Services>,
        req: Install,
    ) -> Result<Overview, LifecycleError> {
        let _change = self.change().await;
        let manifest = Manifest::parse(&req.manifest, MANIFEST_FILE)?;
        let id = manifest.id.clone();
        if self.get(&id).is_some() || self.plugin_dir(&id).exists() {
            return Err(LifecycleError::Exists(id));
        }
        let admin_config = parse_config(req.config.as_deref())?;
        let prepared = self.prepare(&req.component)?;
        Appservices::check_plugin(services, &manifest.registration(), false, req.takeovers).await?;
        let head = services.notifier.position().stream;
        let (position, replay_until) = match &req.start {
            Start::Live => (head, None),
            Start::Beginning => (0, Some(head)),
            Start::From(event_id) => match services.storage.event(event_id).await? {
                Some(row) => (row.stream - 1, Some(head)),
                None => {
                    return Err(LifecycleError::Invalid(format!(
                        "there is no event {event_id} to replay from"
                    )))
                }
            },
        };
        let dir = self.plugin_dir(&id);
        write_plugin_dir(&dir, &req.component, &req.manifest, req.config.as_deref())?;
        let loaded = async {
            services
                .storage
                .insert_plugin(&id, position, replay_until, now_ms())
                .await?;
            let row = services
                .storage
                .plugin_row(&id)
                .await?
                .ok_or_else(|| LifecycleError::NotFound(id.clone()))?;
            self.load(services, manifest, prepared, admin_config, row)
                .await
        }
        .await;
        if let Err(e) = loaded {
            // Nothing of a refused install stays behind.
            let _ = std::fs::remove_dir_all(&dir);
            let _ = services.storage.delete_plugin(&id, true).await;
            return Err(e);
        }
        tracing::info!(plugin = %id, ?req.start, "plugin installed");
        self.overview_of(services, &id).await
    }

    /// Makes a loaded plugin of a checked manifest and component, registers it with the
    /// delivery queue and starts it if enabled.
    async fn load(
        &self,
        services: &Arc<Services>,
        manifest: Manifest,
        prepared: Prepared,
        admin_config: toml::Table,
        row: PluginRow,
    ) -> Result<(), LifecycleError> {
        let id = manifest.id.clone();
        let (capabilities, config) = self.settle(&manifest, &admin_config);
        let guest = self
            .guest(&manifest, capabilities.clone())
            .map_err(ChangeError::from)?;
        let storage = &services.storage;
        let kv_bytes = storage.kv_usage(&id).await?;
        let timers = Arc::new(TimerBook::new(storage.plugin_timers(&id).await?));
        let lane = Lane::new(
            guest,
            prepared.pre,
            config,
            Arc::downgrade(services),
            Arc::new(KvShared::new(kv_bytes)),
            Arc::new(AtomicI64::new(storage.max_timer_seq(&id).await? + 1)),
            timers.clone(),
        );
        let info = PluginInfo {
            manifest: manifest.clone(),
            capabilities,
            content_hash: prepared.content_hash,
            enabled: row.enabled,
            endpoints: row.endpoints,
            replay: row.replay_from.zip(row.replay_until),
            installed_ts: row.installed_ts,
            updated_ts: row.updated_ts,
        };
        let plugin = Arc::new(Plugin::new(
            info,
            lane,
            timers,
            Arc::downgrade(services),
            kv_bytes,
        ));
        Appservices::set_plugin(
            services,
            manifest.registration(),
            Arc::new(WasmTransport::new(plugin.clone(), query_timeout(services))),
            row.enabled,
        )
        .await?;
        self.lock_plugins().insert(id, plugin.clone());
        if row.enabled {
            start_timers(services, &plugin);
        }
        Ok(())
    }

    /// Removes the plugin with everything it had: queue, store, timers, directory.
    pub(crate) async fn remove(
        &self,
        services: &Arc<Services>,
        id: &str,
    ) -> Result<(), LifecycleError> {
        let _change = self.change().await;
        let dir = self.plugin_dir(id);
        let loaded = match self.get(id) {
            Some(plugin) => {
                plugin.stop_scheduler();
                plugin.close().await;
                Appservices::remove_plugin(services, id).await?;
                self.lock_plugins().remove(id);
                true
            }
            // One that could not be loaded at start-up can still be removed.
            None if self.lock_broken().contains_key(id) => false,
            None => return Err(LifecycleError::NotFound(id.to_owned())),
        };
        // A broken plugin whose id an appservice has (the clash is why it did not load)
        // leaves that service's queue alone.
        let owns_queue = loaded || services.appservices.registry().get(id).is_none();
        services.storage.delete_plugin(id, owns_queue).await?;
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io("cannot remove", &dir))?;
        }
        self.lock_broken().remove(id);
        tracing::info!(plugin = %id, "plugin removed");
        Ok(())
    }

    fn lock_broken(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, String>> {
        lock(&self.broken)
    }

    /// Plugins found at start-up that could not be loaded, with why.
    pub(crate) fn broken(&self) -> Vec<(String, String)> {
        self.lock_broken()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Loads every plugin directory at start-up. One that cannot be loaded is logged and
    /// listed with its error; the others and the server go on.
    pub(crate) async fn load_all(&self, services: &Arc<Services>) {
        let _change = self.change().await;
        let mut dirs: Vec<PathBuf> = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .collect(),
            Err(_) => return,
        };
        dirs.sort();
        for dir in dirs {
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.starts_with('.') {
                continue;
            }
            if let Err(e) = self.load_dir(services, &name, &dir).await {
                tracing::error!(plugin = %name, dir = %dir.display(), error = %e, "cannot load plugin");
                self.lock_broken().insert(name, e.to_string());
            }
        }
    }

    async fn load_dir(
        &self,
        services: &Arc<Services>,
        name: &str,
        dir: &Path,
    ) -> Result<(), LifecycleError> {
        let manifest_path = dir.join(MANIFEST_FILE);
        let text =
            std::fs::read_to_string(&manifest_path).map_err(io("cannot read", &manifest_path))?;
        let manifest = Manifest::parse(&text, &manifest_path.display().to_string())?;
        if manifest.id != name {
            return Err(LifecycleError::Invalid(format!(
                "{}: the manifest's id is `{}` but its directory is `{name}`",
                manifest_path.display(),
                manifest.id
            )));
        }
        let component_path = dir.join(COMPONENT_FILE);
        let component =
            std::fs::read(&component_path).map_err(io("cannot read", &component_path))?;
        let admin_config = admin_config(dir)?;
        let prepared = self.prepare(&component)?;
        // Before anything is stored for it: a clash must not touch another service's queue.
        // Installed before, it was checked then: what it acts as is only logged.
        Appservices::check_plugin(services, &manifest.registration(), false, Takeovers::Keep)
            .await?;
        let row = match services.storage.plugin_row(name).await? {
            Some(row) => row,
            None => {
                // Put there by hand: it starts live.
                let head = services.notifier.position().stream;
                services
                    .storage
                    .insert_plugin(name, head, None, now_ms())
                    .await?;
                services
                    .storage
                    .plugin_row(name)
                    .await?
                    .ok_or_else(|| LifecycleError::NotFound(name.to_owned()))?
            }
        };
        self.load(services, manifest, prepared, admin_config, row)
            .await
    }

    /// Every loaded plugin as the admin sees it, in id order.
    pub(crate) async fn overviews(
        &self,
        services: &Arc<Services>,
    ) -> Result<Vec<Overview>, LifecycleError> {
        let ids: Vec<String> = self.lock_plugins().keys().cloned().collect();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            match self.overview_of(services, &id).await {
                Ok(o) => out.push(o),
                Err(LifecycleError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    pub(crate) async fn overview_of(
        &self,
        services: &Arc<Services>,
        id: &str,
    ) -> Result<Overview, LifecycleError> {
        let plugin = self.require(id)?;
        let info = plugin.info();
        let stats = plugin.stats();
        let backlog = services
            .storage
            .queue_backlog(QueueKind::Plugin, id)
            .await?;
        let replay = match (info.replay, backlog) {
            (Some((from, until)), Some(b)) if b.position < until => {
                let storage = &services.storage;
                Some(Replay {
                    done: storage.count_events_between(from, b.position).await?,
                    total: storage.count_events_between(from, until).await?,
                })
            }
            _ => None,
        };
        let state = if !info.enabled {
            State::Disabled
        } else if stats.failing() {
            State::Failing
        } else if replay.is_some() {
            State::Replaying
        } else {
            State::Running
        };
        Ok(Overview {
            sender: format!(
                "@{}:{}",
                info.manifest.sender_localpart,
                services.server_name()
            ),
            delivery: services.appservices.status(id),
            info,
            state,
            stats,
            backlog,
            replay,
        })
    }
}
