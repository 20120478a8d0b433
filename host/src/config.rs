//! The server's configuration: one TOML file in which every key has a default, overridden by
//! `PLUGBOARD_<KEY>` environment variables (nested keys joined with `__`) and then by CLI flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A configuration problem that stops start-up; the message names the key and its source.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server_name: String,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `sqlite://…`; empty means `data_dir/plugboard.sqlite`.
    pub database_url: String,
    /// Unset means `open` on a loopback `listen` address and `closed` elsewhere.
    pub registration: Option<RegistrationMode>,
    pub registration_tokens: Vec<String>,
    /// Synapse-format application service registration files, loaded at start-up.
    pub appservice_config_files: Vec<PathBuf>,
    /// Ids of services from `appservice_config_files` that may act as existing accounts they
    /// did not create (their sender, or accounts in an exclusive users namespace); any other
    /// that would stops start-up naming the accounts.
    pub appservice_allow_takeover: Vec<String>,
    pub appservice_delivery: AppserviceDelivery,
    pub rate_limits: RateLimits,
    pub max_request_bytes: usize,
    pub media: MediaConfig,
    pub log: LogConfig,
    pub plugins: PluginsConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationMode {
    Open,
    Token,
    Closed,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimits {
    pub enabled: bool,
    pub messages_per_second: f64,
    pub message_burst: u32,
    pub registrations_per_second: f64,
    pub registration_burst: u32,
    pub logins_per_second: f64,
    pub login_burst: u32,
}

/// How transactions are pushed to HTTP application services.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AppserviceDelivery {
    /// The first pause after a failed push; it doubles up to `retry_max_ms`.
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    /// During a pause after a failed push longer than this, an HTTP service is pinged this
    /// often; a ping that finds back a service that could not be reached ends the pause.
    /// 0 turns probing off.
    pub probe_interval_ms: u64,
    /// A push that takes longer fails and is retried.
    pub timeout_ms: u64,
    /// A ping (`/_matrix/app/v1/ping`) that takes longer answers `M_CONNECTION_TIMEOUT`.
    pub ping_timeout_ms: u64,
    /// A user or room alias query that takes longer counts as "no such user / room".
    pub query_timeout_ms: u64,
}

impl Default for AppserviceDelivery {
    fn default() -> Self {
        AppserviceDelivery {
            retry_base_ms: 500,
            retry_max_ms: 60_000,
            probe_interval_ms: 2_000,
            timeout_ms: 30_000,
            ping_timeout_ms: 10_000,
            query_timeout_ms: 10_000,
        }
    }
}

/// The WASM plugin runtime, and the admin's settings per plugin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// Where installed plugins live (a directory per plugin); empty means `data_dir/plugins`.
    pub dir: PathBuf,
    /// Install the plugins built into this binary at start-up, when not installed yet.
    pub bundled: bool,
    /// The largest memory any plugin may be given (`memory_mb`), and what the engine reserves
    /// address space for per instance.
    pub max_memory_mb: u64,
    /// Plugin instances the engine keeps room for at once.
    pub max_instances: u32,
    /// The largest request body a plugin's web endpoint receives.
    pub max_http_body_bytes: usize,
    /// The largest component the admin API accepts (a Python or JS plugin carries its
    /// interpreter: tens of MiB).
    pub max_component_bytes: usize,
    /// Settings by plugin id; they override the plugin's manifest.
    pub settings: std::collections::BTreeMap<String, PluginSettings>,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig {
            dir: PathBuf::new(),
            bundled: true,
            max_memory_mb: 512,
            max_instances: 200,
            max_http_body_bytes: 1024 * 1024,
            max_component_bytes: 256 * 1024 * 1024,
            settings: Default::default(),
        }
    }
}

/// The admin's settings for one plugin; what is unset comes from its manifest.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginSettings {
    pub deadline_ms: Option<u64>,
    pub memory_mb: Option<u64>,
    pub kv_quota_bytes: Option<u64>,
    /// Replaces the manifest's list of hosts the plugin may reach over HTTP.
    pub http_allow: Option<Vec<String>>,
    /// Merged over the manifest's `[config]`, key by key.
    pub config: toml::Table,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    pub max_upload_bytes: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter, e.g. `info` or `plugboard=debug,info`.
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server_name: "localhost".into(),
            listen: "127.0.0.1:8008".parse().expect("literal address"),
            data_dir: PathBuf::from("./data"),
            database_url: String::new(),
            registration: None,
            registration_tokens: Vec::new(),
            appservice_config_files: Vec::new(),
            appservice_allow_takeover: Vec::new(),
            appservice_delivery: AppserviceDelivery::default(),
            rate_limits: RateLimits::default(),
            max_request_bytes: 1024 * 1024,
            media: MediaConfig::default(),
            log: LogConfig::default(),
            plugins: PluginsConfig::default(),
        }
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            enabled: true,
            messages_per_second: 10.0,
            message_burst: 50,
            registrations_per_second: 0.5,
            registration_burst: 5,
            logins_per_second: 1.0,
            login_burst: 10,
        }
    }
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            max_upload_bytes: 50 * 1024 * 1024,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// Flags that override the file and the environment.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub server_name: Option<String>,
    pub data_dir: Option<PathBuf>,
}

const ENV_PREFIX: &str = "PLUGBOARD_";

impl Config {
    /// File (if any), then environment, then flags. Nothing falls back silently: an unknown
    /// key or a bad value is an error naming where it came from.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        Self::load_from(file, std::env::vars(), overrides)
    }

    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let (mut table, source) = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError(format!("cannot read config file {}: {e}", path.display()))
                })?;
                let table: toml::Table = toml::from_str(&text)
                    .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
                (table, path.display().to_string())
            }
            None => (toml::Table::new(), "defaults".to_string()),
        };
        let mut from_env = Vec::new();
        for (key, value) in env {
            let Some(name) = key.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let path: Vec<String> = name.split("__").map(|p| p.to_ascii_lowercase()).collect();
            set_path(&mut table, &path, parse_env_value(&path, &value))
                .map_err(|e| ConfigError(format!("environment variable {key}: {e}")))?;
            from_env.push(key);
        }
        let mut config: Config = toml::Value::Table(table).try_into().map_err(|e| {
            let origin = if from_env.is_empty() {
                source.clone()
            } else {
                format!("{source} (with {})", from_env.join(", "))
            };
            ConfigError(format!("{origin}: {e}"))
        })?;
        if let Some(listen) = overrides.listen {
            config.listen = listen;
        }
        if let Some(name) = &overrides.server_name {
            config.server_name = name.clone();
        }
        if let Some(dir) = &overrides.data_dir {
            config.data_dir = dir.clone();
        }
        config.validate(&source)?;
        Ok(config)
    }

    fn validate(&self, source: &str) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("{source}: key `{key}`: {why}")));
        if self.server_name.is_empty()
            || !self
                .server_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        {
            return bad("server_name", "not a valid server name");
        }
        if self.registration == Some(RegistrationMode::Token) && self.registration_tokens.is_empty()
        {
            return bad(
                "registration_tokens",
                "registration = \"token\" needs at least one token",
            );
        }
        if self.max_request_bytes < 1024 {
            return bad("max_request_bytes", "must be at least 1024");
        }
        if !self.database_url.is_empty() && !self.database_url.starts_with("sqlite:") {
            return bad(
                "database_url",
                "only sqlite: URLs are supported by this build",
            );
        }
        let rl = &self.rate_limits;
        for (key, v) in [
            ("rate_limits.messages_per_second", rl.messages_per_second),
            (
                "rate_limits.registrations_per_second",
                rl.registrations_per_second,
            ),
            ("rate_limits.logins_per_second", rl.logins_per_second),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return bad(key, "must be a positive number");
            }
        }
        if !(1..=4096).contains(&self.plugins.max_memory_mb) {
            return bad("plugins.max_memory_mb", "must be from 1 to 4096");
        }
        if self.plugins.max_instances == 0 {
            return bad("plugins.max_instances", "must be at least 1");
        }
        for (id, settings) in &self.plugins.settings {
            if settings
                .memory_mb
                .is_some_and(|mb| mb == 0 || mb > self.plugins.max_memory_mb)
            {
                return bad(
                    &format!("plugins.settings.{id}.memory_mb"),
                    "must be from 1 to plugins.max_memory_mb",
                );
            }
            if settings.deadline_ms == Some(0) {
                return bad(
                    &format!("plugins.settings.{id}.deadline_ms"),
                    "must be at least 1",
                );
            }
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return bad("log.level", &e.to_string());
        }
        Ok(())
    }

    pub fn registration_mode(&self) -> RegistrationMode {
        self.registration
            .unwrap_or(if self.listen.ip().is_loopback() {
                RegistrationMode::Open
            } else {
                RegistrationMode::Closed
            })
    }

    pub fn database_url(&self) -> String {
        if self.database_url.is_empty() {
            format!(
                "sqlite://{}",
                self.data_dir.join("plugboard.sqlite").display()
            )
        } else {
            self.database_url.clone()
        }
    }

    pub fn signing_key_path(&self) -> PathBuf {
        self.data_dir.join("signing.key")
    }

    pub fn admin_token_path(&self) -> PathBuf {
        self.data_dir.join("admin.token")
    }

    pub fn media_dir(&self) -> PathBuf {
        self.data_dir.join("media")
    }

    pub fn plugins_dir(&self) -> PathBuf {
        if self.plugins.dir.as_os_str().is_empty() {
            self.data_dir.join("plugins")
        } else {
            self.plugins.dir.clone()
        }
    }

    /// Compiled plugin components, by content and engine.
    pub fn plugin_cache_dir(&self) -> PathBuf {
        self.data_dir.join("cache").join("components")
    }
}

/// Environment values are typed by the key they set: lists are comma-separated, and the rest
/// is read as a TOML scalar when it parses as one, otherwise as a string.
fn parse_env_value(path: &[String], raw: &str) -> toml::Value {
    if path == ["registration_tokens"]
        || path == ["appservice_config_files"]
        || path == ["appservice_allow_takeover"]
    {
        return toml::Value::Array(
            raw.split(',')
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.trim().to_string()))
                .collect(),
        );
    }
    if path.len() == 4 && path[0] == "plugins" && path[1] == "settings" && path[3] == "http_allow" {
        return toml::Value::Array(
            raw.split(',')
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.trim().to_string()))
                .collect(),
        );
    }
    if path == ["server_name"]
        || path == ["listen"]
        || path == ["data_dir"]
        || path == ["plugins", "dir"]
    {
        return toml::Value::String(raw.to_string());
    }
    match format!("v = {raw}").parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("empty key")?;
    let mut current = table;
    for part in parents {
        let entry = current
            .entry(part.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry
            .as_table_mut()
            .ok_or_else(|| format!("`{part}` is not a table"))?;
    }
    current.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_need_no_file() {
        let c = Config::load_from(None, env(&[]), &Overrides::default()).unwrap();
        assert_eq!(c.server_name, "localhost");
        assert_eq!(c.listen.to_string(), "127.0.0.1:8008");
        assert_eq!(c.registration_mode(), RegistrationMode::Open);
        assert!(c.database_url().ends_with("data/plugboard.sqlite"));
    }

    #[test]
    fn registration_is_closed_off_loopback_by_default() {
        let c = Config::load_from(
            None,
            env(&[("PLUGBOARD_LISTEN", "0.0.0.0:8008")]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.registration_mode(), RegistrationMode::Closed);
    }

    #[test]
    fn nested_env_override_sets_rate_limits() {
        let c = Config::load_from(
            None,
            env(&[
                ("PLUGBOARD_RATE_LIMITS__ENABLED", "false"),
                ("PLUGBOARD_REGISTRATION_TOKENS", "a,b"),
            ]),
            &Overrides::default(),
        )
        .unwrap();
        assert!(!c.rate_limits.enabled);
        assert_eq!(c.registration_tokens, vec!["a", "b"]);
    }

    #[test]
    fn appservice_files_come_comma_separated_from_the_environment() {
        let c = Config::load_from(
            None,
            env(&[("PLUGBOARD_APPSERVICE_CONFIG_FILES", "/a.yaml,/b.yaml")]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(
            c.appservice_config_files,
            vec![PathBuf::from("/a.yaml"), PathBuf::from("/b.yaml")]
        );
    }

    #[test]
    fn services_allowed_to_take_over_come_comma_separated_from_the_environment() {
        let c = Config::load_from(
            None,
            env(&[("PLUGBOARD_APPSERVICE_ALLOW_TAKEOVER", "bridge,irc")]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.appservice_allow_takeover, ["bridge", "irc"]);
    }

    #[test]
    fn unknown_key_in_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "server_name = \"x\"\nbogus_key = 1\n").unwrap();
        let err = Config::load_from(Some(&path), env(&[]), &Overrides::default()).unwrap_err();
        assert!(err.0.contains("bogus_key"), "{err}");
        assert!(err.0.contains("c.toml"), "{err}");
    }

    #[test]
    fn unknown_env_key_is_named() {
        let err = Config::load_from(None, env(&[("PLUGBOARD_NOPE", "1")]), &Overrides::default())
            .unwrap_err();
        assert!(err.0.contains("nope"), "{err}");
        assert!(err.0.contains("PLUGBOARD_NOPE"), "{err}");
    }

    #[test]
    fn bad_value_is_refused() {
        let err = Config::load_from(
            None,
            env(&[("PLUGBOARD_REGISTRATION", "sometimes")]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(err.0.contains("sometimes"), "{err}");
    }

    #[test]
    fn flags_override_environment() {
        let c = Config::load_from(
            None,
            env(&[("PLUGBOARD_SERVER_NAME", "env.example")]),
            &Overrides {
                server_name: Some("flag.example".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(c.server_name, "flag.example");
    }

    #[test]
    fn unreadable_file_is_an_error() {
        let err = Config::load_from(
            Some(Path::new("/nonexistent/plugboard.toml")),
            env(&[]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(err.0.contains("/nonexistent/plugboard.toml"));
    }
}
