//! What the admin does with plugins while the server runs — install, upgrade, enable,
//! disable, reload, remove, skip a poisoned transaction — and loading the plugins directory
//! at start-up. Each installed plugin is a directory `{plugins_dir}/{id}/` holding
//! `plugin.wasm`, `plugin.toml` and the admin's `config.toml` if any; what the server decided
//! about it (enabled, endpoints, replay) is in the database. Changes are serial.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::Duration;

use super::host::kv::KvShared;
use super::lane::Lane;
use super::manifest::{Manifest, ManifestError};
use super::runtime::{ComponentError, Plugin, PluginInfo, PluginRuntime, PluginStats, Prepared};
use super::schedule::{self, TimerBook};
use super::transport::WasmTransport;
use crate::service::appservice::delivery::Status;
use crate::service::appservice::registered::{Appservices, ChangeError};
use crate::service::appservice::takeover::Takeovers;
use crate::service::{now_ms, Services};
use crate::storage::plugins::PluginRow;
use crate::storage::queue::{Backlog, QueueKind};
use crate::storage::StorageError;

pub const COMPONENT_FILE: &str = "plugin.wasm";
pub const MANIFEST_FILE: &str = "plugin.toml";
pub const CONFIG_FILE: &str = "config.toml";

/// Where a newly installed plugin's queue starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// With what happens from now on.
    Live,
    /// With the stored history of the rooms it is interested in, then live.
    Beginning,
    /// With the stored history from this event on, then live.
    From(String),
}

/// Why a change was refused; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Component(#[from] ComponentError),
    /// The manifest's namespaces or id clash with another service's.
    #[error(transparent)]
    Registration(#[from] ChangeError),
    #[error("plugin `{0}` is installed already: use `plugboard plugin upgrade` to replace it")]
    Exists(String),
    #[error("there is no plugin `{0}`")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{what} {path}: {error}")]
    Io {
        what: &'static str,
        path: String,
        error: String,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> LifecycleError {
    let path = path.display().to_string();
    move |e| LifecycleError::Io {
        what,
        path,
        error: e.to_string(),
    }
}

/// What `install` is given.
pub struct Install {
    pub component: Vec<u8>,
    /// The text of `plugin.toml`.
    pub manifest: String,
    /// The admin's configuration for the plugin, a TOML table text (`--config FILE`).
    pub config: Option<String>,
    pub start: Start,
    /// Whether it may act as existing accounts it did not create (its sender, or in an
    /// exclusive users namespace).
    pub takeovers: Takeovers,
}

/// A plugin's state as the admin sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Running,
    /// Its last calls failed; it is retried with backoff and keeps its queue.
    Failing,
    Disabled,
    /// Still delivering the history it was installed with.
    Replaying,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Failing => "failing",
            State::Disabled => "disabled",
            State::Replaying => "replaying",
        }
    }
}

/// How far a history replay has come, in events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replay {
    pub done: i64,
    pub total: i64,
}

/// One plugin as the admin sees it.
#[derive(Debug, Clone)]
pub struct Overview {
    pub info: PluginInfo,
    /// The plugin's own user id.
    pub sender: String,
    pub state: State,
    pub stats: PluginStats,
    pub delivery: Option<Status>,
    pub backlog: Option<Backlog>,
    pub replay: Option<Replay>,
}

fn parse_config(text: Option<&str>) -> Result<toml::Table, LifecycleError> {
    match text {
        None => Ok(toml::Table::new()),
        Some(t) => toml::from_str(t).map_err(|e| {
            LifecycleError::Invalid(format!(
                "the plugin configuration is not TOML: {}",
                e.message()
            ))
        }),
    }
}

/// How long a query of a plugin may take (`appservice_delivery.query_timeout_ms`).
fn query_timeout(services: &Services) -> Duration {
    Duration::from_millis(services.config.appservice_delivery.query_timeout_ms.max(1))
}

/// The admin's configuration in a plugin's directory (`config.toml`), empty when it has none.
fn admin_config(dir: &Path) -> Result<toml::Table, LifecycleError> {
    match std::fs::read_to_string(dir.join(CONFIG_FILE)) {
        Ok(text) => parse_config(Some(&text)),
        Err(_) => Ok(toml::Table::new()),
    }
}

impl PluginRuntime {
    fn plugin_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    fn require(&self, id: &str) -> Result<Arc<Plugin>, LifecycleError> {
        self.get(id)
            .ok_or_else(|| LifecycleError::NotFound(id.to_owned()))
    }

    /// Installs a plugin: checks the manifest, the component and the namespaces, writes its
    /// directory, makes its queue (at the stream's head, or back in history for a replay)
    /// and starts it.
    pub async fn install(
        &self,
        services: &Arc<Services>,
        req: Install,
    ) -> Result<Overview, LifecycleError> {
        let _change = self.changes.lock().await;
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
            self.start_scheduler(services, &plugin);
        }
        Ok(())
    }

    fn start_scheduler(&self, services: &Arc<Services>, plugin: &Arc<Plugin>) {
        let d = &services.config.appservice_delivery;
        let base = Duration::from_millis(d.retry_base_ms.max(1));
        let cap = Duration::from_millis(d.retry_max_ms.max(1));
        let task = tokio::spawn(schedule::run(plugin.clone(), base, cap));
        if let Some(old) = plugin
            .scheduler
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(task)
        {
            old.abort();
        }
    }

    /// Swaps in a new component (and manifest, when given) between two calls: the queue and
    /// what is in flight stay, so the new version sees a transaction twice only as a retried
    /// txn id. A plugin that was failing is retried at once.
    pub async fn upgrade(
        &self,
        services: &Arc<Services>,
        id: &str,
        component: Vec<u8>,
        manifest_text: Option<String>,
        takeovers: Takeovers,
    ) -> Result<Overview, LifecycleError> {
        let _change = self.changes.lock().await;
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
    pub async fn reload(
        &self,
        services: &Arc<Services>,
        id: &str,
        takeovers: Takeovers,
    ) -> Result<Overview, LifecycleError> {
        let _change = self.changes.lock().await;
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
    pub async fn disable(
        &self,
        services: &Arc<Services>,
        id: &str,
    ) -> Result<Overview, LifecycleError> {
        let _change = self.changes.lock().await;
        let plugin = self.require(id)?;
        services
            .storage
            .set_plugin_enabled(id, false, now_ms())
            .await?;
        // First, so that a call waiting for the lane finds the plugin disabled.
        plugin.set_info(|i| i.enabled = false);
        services.appservices.pause(id).await;
        plugin.stop_scheduler();
        plugin.lane.lock().await.recycle();
        tracing::info!(plugin = %id, "plugin disabled");
        self.overview_of(services, id).await
    }

    /// Starts a disabled plugin again; it catches up with what came meanwhile.
    pub async fn enable(
        &self,
        services: &Arc<Services>,
        id: &str,
    ) -> Result<Overview, LifecycleError> {
        let _change = self.changes.lock().await;
        let plugin = self.require(id)?;
        services
            .storage
            .set_plugin_enabled(id, true, now_ms())
            .await?;
        plugin.set_info(|i| i.enabled = true);
        Appservices::resume(services, id).await;
        self.start_scheduler(services, &plugin);
        services.appservices.poke(id);
        tracing::info!(plugin = %id, "plugin enabled");
        self.overview_of(services, id).await
    }

    /// Turns the plugin's web endpoints on or off.
    pub async fn set_endpoints(
        &self,
        services: &Arc<Services>,
        id: &str,
        on: bool,
    ) -> Result<Overview, LifecycleError> {
        let _change = self.changes.lock().await;
        let plugin = self.require(id)?;
        services
            .storage
            .set_plugin_endpoints(id, on, now_ms())
            .await?;
        plugin.set_info(|i| i.endpoints = on);
        self.overview_of(services, id).await
    }

    /// Removes the plugin with everything it had: queue, store, timers, directory.
    pub async fn remove(&self, services: &Arc<Services>, id: &str) -> Result<(), LifecycleError> {
        let _change = self.changes.lock().await;
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

    /// Acknowledges the transaction in flight, `txn_id`, without delivering it: the admin's
    /// way past a transaction the plugin cannot take.
    pub async fn skip(
        &self,
        services: &Arc<Services>,
        id: &str,
        txn_id: i64,
    ) -> Result<Overview, LifecycleError> {
        let _change = self.changes.lock().await;
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
        plugin
            .stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .consecutive_failures = 0;
        tracing::warn!(plugin = %id, txn_id, "transaction skipped by the admin");
        self.overview_of(services, id).await
    }

    fn lock_broken(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, String>> {
        self.broken.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Plugins found at start-up that could not be loaded, with why.
    pub fn broken(&self) -> Vec<(String, String)> {
        self.lock_broken()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Loads every plugin directory at start-up. One that cannot be loaded is logged and
    /// listed with its error; the others and the server go on.
    pub async fn load_all(&self, services: &Arc<Services>) {
        let _change = self.changes.lock().await;
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
    pub async fn overviews(
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

    pub async fn overview_of(
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

/// Writes a new plugin directory whole: into a sibling first, then renamed into place.
fn write_plugin_dir(
    dir: &Path,
    component: &[u8],
    manifest: &str,
    config: Option<&str>,
) -> Result<(), LifecycleError> {
    let parent = dir.parent().unwrap_or(dir);
    std::fs::create_dir_all(parent).map_err(io("cannot create", parent))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.installing"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(io("cannot create", &tmp))?;
    let write = |file: &str, bytes: &[u8]| {
        let path = tmp.join(file);
        std::fs::write(&path, bytes).map_err(io("cannot write", &path))
    };
    write(COMPONENT_FILE, component)?;
    write(MANIFEST_FILE, manifest.as_bytes())?;
    if let Some(config) = config {
        write(CONFIG_FILE, config.as_bytes())?;
    }
    std::fs::rename(&tmp, dir).map_err(io("cannot move into place", dir))
}

/// Replaces one file: written aside, then renamed over it.
fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), LifecycleError> {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, bytes).map_err(io("cannot write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("cannot replace", path))
}
