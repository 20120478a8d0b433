//! The words of the admin's plugin operations: what `install` is given and where its queue
//! starts, why a change is refused ([`LifecycleError`]), and a plugin as the admin sees it
//! ([`Overview`]); with the files of a plugin's directory. Each installed plugin is a
//! directory `{plugins_dir}/{id}/` holding `plugin.wasm`, `plugin.toml` and the admin's
//! `config.toml` if any; what the server decided about it (enabled, endpoints, replay) is in
//! the database. The operations are the registry's ([`registry`](super::registry): install,
//! remove, load at start-up) and the admin's ([`admin`](super::admin): upgrade, enable, …).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::component::ComponentError;
use super::manifest::ManifestError;
use super::plugin::{Plugin, PluginInfo};
use super::stats::PluginStats;
use crate::service::appservice::delivery::Status;
use crate::service::appservice::registered::ChangeError;
use crate::service::appservice::takeover::Takeovers;
use crate::service::Services;
use crate::storage::queue::Backlog;
use crate::storage::StorageError;

pub(crate) const COMPONENT_FILE: &str = "plugin.wasm";
pub(crate) const MANIFEST_FILE: &str = "plugin.toml";
pub(crate) const CONFIG_FILE: &str = "config.toml";

/// Where a newly installed plugin's queue starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Start {
    /// With what happens from now on.
    Live,
    /// With the stored history of the rooms it is interested in, then live.
    Beginning,
    /// With the stored history from this event on, then live.
    From(String),
}

/// Why a change was refused; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LifecycleError {
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

pub(super) fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> LifecycleError {
    let path = path.display().to_string();
    move |e| LifecycleError::Io {
        what,
        path,
        error: e.to_string(),
    }
}

/// What `install` is given.
pub(crate) struct Install {
    pub(crate) component: Vec<u8>,
    /// The text of `plugin.toml`.
    pub(crate) manifest: String,
    /// The admin's configuration for the plugin, a TOML table text (`--config FILE`).
    pub(crate) config: Option<String>,
    pub(crate) start: Start,
    /// Whether it may act as existing accounts it did not create (its sender, or in an
    /// exclusive users namespace).
    pub(crate) takeovers: Takeovers,
}

/// A plugin's state as the admin sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Running,
    /// Its last calls failed; it is retried with backoff and keeps its queue.
    Failing,
    Disabled,
    /// Still delivering the history it was installed with.
    Replaying,
}

impl State {
    pub(crate) fn name(self) -> &'static str {
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
pub(crate) struct Replay {
    pub(crate) done: i64,
    pub(crate) total: i64,
}

/// One plugin as the admin sees it.
#[derive(Debug, Clone)]
pub(crate) struct Overview {
    pub(crate) info: PluginInfo,
    /// The plugin's own user id.
    pub(crate) sender: String,
    pub(crate) state: State,
    pub(crate) stats: PluginStats,
    pub(crate) delivery: Option<Status>,
    pub(crate) backlog: Option<Backlog>,
    pub(crate) replay: Option<Replay>,
}

pub(super) fn parse_config(text: Option<&str>) -> Result<toml::Table, LifecycleError> {
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
pub(super) fn query_timeout(services: &Services) -> Duration {
    Duration::from_millis(services.config.appservice_delivery.query_timeout_ms.max(1))
}

/// The admin's configuration in a plugin's directory (`config.toml`), empty when it has none.
pub(super) fn admin_config(dir: &Path) -> Result<toml::Table, LifecycleError> {
    match std::fs::read_to_string(dir.join(CONFIG_FILE)) {
        Ok(text) => parse_config(Some(&text)),
        Err(_) => Ok(toml::Table::new()),
    }
}

/// Starts (or restarts) `plugin`'s timers, retried as the delivery settings say.
pub(super) fn start_timers(services: &Services, plugin: &Arc<Plugin>) {
    let d = &services.config.appservice_delivery;
    let base = Duration::from_millis(d.retry_base_ms.max(1));
    let cap = Duration::from_millis(d.retry_max_ms.max(1));
    plugin.start_scheduler(base, cap);
}

/// Writes a new plugin directory whole: into a sibling first, then renamed into place.
pub(super) fn write_plugin_dir(
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
pub(super) fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), LifecycleError> {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, bytes).map_err(io("cannot write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("cannot replace", path))
}
