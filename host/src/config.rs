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
    pub rooms: RoomsConfig,
    pub connections: ConnectionsConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationMode {
    Open,
    Token,
    Closed,
}

/// Token buckets, in the manner of Synapse's `rc_*` settings: each action refills at
/// `…_per_second` up to `…_burst`. Actions a user does are limited per user and, with
/// `address_factor` times the allowance, per client address.
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
    /// The per-address bucket of a user action holds this many times the per-user rate and
    /// burst (one address may be many people behind one NAT); 0 leaves addresses unlimited,
    /// e.g. behind a reverse proxy, where every client has the proxy's address.
    pub address_factor: f64,
    pub room_creations_per_second: f64,
    pub room_creation_burst: u32,
    /// State events sent with `PUT /rooms/{roomId}/state/…`.
    pub state_events_per_second: f64,
    pub state_event_burst: u32,
    pub joins_per_second: f64,
    pub join_burst: u32,
    /// Invites a user sends.
    pub invites_per_second: f64,
    pub invite_burst: u32,
    /// Invites into one room, whoever sends them.
    pub room_invites_per_second: f64,
    pub room_invite_burst: u32,
    /// Invites one user receives (not counted for a user an application service holds).
    pub invites_received_per_second: f64,
    pub invites_received_burst: u32,
    /// Display name and avatar changes: each one is a member event in every joined room.
    pub profile_changes_per_second: f64,
    pub profile_change_burst: u32,
    /// Reports of events, rooms and users (`POST …/report`).
    pub reports_per_second: f64,
    pub report_burst: u32,
    pub media_uploads_per_second: f64,
    pub media_upload_burst: u32,
    /// `/sendToDevice` calls (ready for that endpoint).
    pub to_device_per_second: f64,
    pub to_device_burst: u32,
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

/// What the server keeps in memory per room.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoomsConfig {
    /// Rooms whose current state the write path keeps in memory; beyond it the least recently
    /// used are dropped and read again from the database when next used.
    pub state_cache_rooms: usize,
    /// What those rooms' states may take together, about (their text and a fixed cost per
    /// state event); past it the least recently used go as well.
    pub state_cache_bytes: usize,
    /// Newest events kept in memory for incremental /sync, in all rooms together (256 a room
    /// at most); the rooms written to longest ago lose theirs first and are read from the
    /// database.
    pub recent_events: usize,
}

impl Default for RoomsConfig {
    fn default() -> Self {
        RoomsConfig {
            state_cache_rooms: crate::service::rooms::DEFAULT_HEAD_CACHE_ROOMS,
            state_cache_bytes: crate::service::rooms::DEFAULT_HEAD_CACHE_BYTES,
            recent_events: crate::service::rooms::recent::DEFAULT_MAX_EVENTS,
        }
    }
}

/// Client connections: how many, and how long the server waits for a slow or silent client.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionsConfig {
    /// Connections open at once; 0 means what the file-descriptor limit leaves room for.
    pub max_total: usize,
    /// Connections open at once from one address (an IPv6 /64 counts as one address).
    pub max_per_address: usize,
    /// Addresses or CIDR ranges not held to `max_per_address` (only to `max_total`): a
    /// reverse proxy's, whose connections carry everyone's requests.
    pub per_address_exempt: Vec<String>,
    /// A request head (request line and headers) must arrive within this, counted from the
    /// connection's start or from the first byte of a later request.
    pub header_timeout_ms: u64,
    /// A keep-alive connection with no request in flight is closed after this.
    pub idle_timeout_ms: u64,
    /// A request body that sends nothing for this long closes the connection.
    pub body_timeout_ms: u64,
    /// A response the client reads nothing of for this long closes the connection.
    pub send_timeout_ms: u64,
}

impl Default for ConnectionsConfig {
    fn default() -> Self {
        ConnectionsConfig {
            max_total: 0,
            max_per_address: 1024,
            per_address_exempt: vec!["127.0.0.0/8".into(), "::1".into()],
            header_timeout_ms: 10_000,
            idle_timeout_ms: 75_000,
            body_timeout_ms: 60_000,
            send_timeout_ms: 60_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    pub max_upload_bytes: usize,
    /// What one user's stored uploads may add up to; 0 is no limit.
    pub max_bytes_per_user: u64,
    /// Uploads one user may have in progress at once; more get `429 M_LIMIT_EXCEEDED`.
    pub max_concurrent_uploads: u32,
    /// Images with more pixels get no thumbnail (`413 M_TOO_LARGE`): decoding one takes four
    /// bytes a pixel.
    pub max_image_pixels: u64,
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
            rooms: RoomsConfig::default(),
            connections: ConnectionsConfig::default(),
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
            // Synapse's defaults where it has the setting (rc_room_creation, rc_joins.local,
            // rc_invites, rc_reports, rc_media_create, rc_key_requests); state events and
            // profile changes get Synapse's rc_message, which it charges them to.
            address_factor: 10.0,
            room_creations_per_second: 0.016,
            room_creation_burst: 10,
            state_events_per_second: 0.2,
            state_event_burst: 10,
            joins_per_second: 0.1,
            join_burst: 10,
            invites_per_second: 0.3,
            invite_burst: 10,
            room_invites_per_second: 0.3,
            room_invite_burst: 10,
            invites_received_per_second: 0.003,
            invites_received_burst: 5,
            profile_changes_per_second: 0.2,
            profile_change_burst: 10,
            reports_per_second: 1.0,
            report_burst: 5,
            media_uploads_per_second: 10.0,
            media_upload_burst: 50,
            to_device_per_second: 20.0,
            to_device_burst: 100,
        }
    }
}

impl RateLimits {
    /// Every `…_per_second` key with its value, for validation.
    fn rates(&self) -> [(&'static str, f64); 13] {
        [
            ("messages_per_second", self.messages_per_second),
            ("registrations_per_second", self.registrations_per_second),
            ("logins_per_second", self.logins_per_second),
            ("room_creations_per_second", self.room_creations_per_second),
            ("state_events_per_second", self.state_events_per_second),
            ("joins_per_second", self.joins_per_second),
            ("invites_per_second", self.invites_per_second),
            ("room_invites_per_second", self.room_invites_per_second),
            (
                "invites_received_per_second",
                self.invites_received_per_second,
            ),
            (
                "profile_changes_per_second",
                self.profile_changes_per_second,
            ),
            ("reports_per_second", self.reports_per_second),
            ("media_uploads_per_second", self.media_uploads_per_second),
            ("to_device_per_second", self.to_device_per_second),
        ]
    }

    /// Every `…_burst` key with its value, for validation.
    fn bursts(&self) -> [(&'static str, u32); 13] {
        [
            ("message_burst", self.message_burst),
            ("registration_burst", self.registration_burst),
            ("login_burst", self.login_burst),
            ("room_creation_burst", self.room_creation_burst),
            ("state_event_burst", self.state_event_burst),
            ("join_burst", self.join_burst),
            ("invite_burst", self.invite_burst),
            ("room_invite_burst", self.room_invite_burst),
            ("invites_received_burst", self.invites_received_burst),
            ("profile_change_burst", self.profile_change_burst),
            ("report_burst", self.report_burst),
            ("media_upload_burst", self.media_upload_burst),
            ("to_device_burst", self.to_device_burst),
        ]
    }
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            max_upload_bytes: 50 * 1024 * 1024,
            max_bytes_per_user: 10 * 1024 * 1024 * 1024,
            max_concurrent_uploads: 4,
            max_image_pixels: 32 * 1024 * 1024,
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
        for (key, v) in rl.rates() {
            if !(v.is_finite() && v > 0.0) {
                return bad(&format!("rate_limits.{key}"), "must be a positive number");
            }
        }
        for (key, v) in rl.bursts() {
            if v == 0 {
                return bad(&format!("rate_limits.{key}"), "must be at least 1");
            }
        }
        if !(rl.address_factor.is_finite() && rl.address_factor >= 0.0) {
            return bad(
                "rate_limits.address_factor",
                "must be 0 (no per-address limits) or a positive number",
            );
        }
        if self.media.max_concurrent_uploads == 0 {
            return bad("media.max_concurrent_uploads", "must be at least 1");
        }
        if self.media.max_image_pixels == 0 {
            return bad("media.max_image_pixels", "must be at least 1");
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
        if self.rooms.state_cache_rooms == 0 {
            return bad("rooms.state_cache_rooms", "must be at least 1");
        }
        self.validate_connections(source)?;
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return bad("log.level", &e.to_string());
        }
        Ok(())
    }

    fn validate_connections(&self, source: &str) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| {
            Err(ConfigError(format!(
                "{source}: key `connections.{key}`: {why}"
            )))
        };
        let c = &self.connections;
        if c.max_per_address == 0 {
            return bad("max_per_address", "must be at least 1");
        }
        for (key, ms) in [
            ("header_timeout_ms", c.header_timeout_ms),
            ("idle_timeout_ms", c.idle_timeout_ms),
            ("body_timeout_ms", c.body_timeout_ms),
            ("send_timeout_ms", c.send_timeout_ms),
        ] {
            if ms == 0 {
                return bad(key, "must be at least 1");
            }
        }
        for range in &c.per_address_exempt {
            if let Err(e) = range.parse::<crate::net::address::AddressRange>() {
                return bad("per_address_exempt", &e.to_string());
            }
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
        || path == ["connections", "per_address_exempt"]
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
    fn a_limit_that_would_refuse_everything_is_refused_naming_its_key() {
        for (var, value, key) in [
            (
                "PLUGBOARD_RATE_LIMITS__JOIN_BURST",
                "0",
                "rate_limits.join_burst",
            ),
            (
                "PLUGBOARD_RATE_LIMITS__ROOM_CREATIONS_PER_SECOND",
                "-1",
                "rate_limits.room_creations_per_second",
            ),
            (
                "PLUGBOARD_RATE_LIMITS__ADDRESS_FACTOR",
                "-2",
                "rate_limits.address_factor",
            ),
            (
                "PLUGBOARD_MEDIA__MAX_CONCURRENT_UPLOADS",
                "0",
                "media.max_concurrent_uploads",
            ),
        ] {
            let err =
                Config::load_from(None, env(&[(var, value)]), &Overrides::default()).unwrap_err();
            assert!(err.0.contains(key), "{var}={value}: {err}");
        }
        let c = Config::load_from(
            None,
            env(&[
                ("PLUGBOARD_RATE_LIMITS__ADDRESS_FACTOR", "0"),
                ("PLUGBOARD_MEDIA__MAX_BYTES_PER_USER", "0"),
            ]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.rate_limits.address_factor, 0.0);
        assert_eq!(c.media.max_bytes_per_user, 0);
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
    fn the_room_state_cache_is_sized_from_the_environment_and_never_zero() {
        let c = Config::load_from(
            None,
            env(&[
                ("PLUGBOARD_ROOMS__STATE_CACHE_ROOMS", "250"),
                ("PLUGBOARD_ROOMS__STATE_CACHE_BYTES", "1048576"),
            ]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.rooms.state_cache_rooms, 250);
        assert_eq!(c.rooms.state_cache_bytes, 1 << 20);
        assert_eq!(
            Config::default().rooms.state_cache_bytes,
            crate::service::rooms::DEFAULT_HEAD_CACHE_BYTES
        );
        let err = Config::load_from(
            None,
            env(&[("PLUGBOARD_ROOMS__STATE_CACHE_ROOMS", "0")]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(err.0.contains("rooms.state_cache_rooms"), "{err}");
    }

    #[test]
    fn per_address_exemptions_come_comma_separated_and_may_be_emptied() {
        let c = Config::load_from(
            None,
            env(&[(
                "PLUGBOARD_CONNECTIONS__PER_ADDRESS_EXEMPT",
                "10.0.0.0/8,fd00::1",
            )]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.connections.per_address_exempt, ["10.0.0.0/8", "fd00::1"]);
        let c = Config::load_from(
            None,
            env(&[("PLUGBOARD_CONNECTIONS__PER_ADDRESS_EXEMPT", "")]),
            &Overrides::default(),
        )
        .unwrap();
        assert!(c.connections.per_address_exempt.is_empty());
    }

    #[test]
    fn a_bad_connection_setting_is_named() {
        let err = Config::load_from(
            None,
            env(&[("PLUGBOARD_CONNECTIONS__PER_ADDRESS_EXEMPT", "proxy.lan")]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(err.0.contains("connections.per_address_exempt"), "{err}");
        assert!(err.0.contains("proxy.lan"), "{err}");
        let err = Config::load_from(
            None,
            env(&[("PLUGBOARD_CONNECTIONS__HEADER_TIMEOUT_MS", "0")]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(err.0.contains("connections.header_timeout_ms"), "{err}");
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
