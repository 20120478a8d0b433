//! Loading the configuration: the file, then `PLUGBOARD_…` environment variables, then flags,
//! and the checks that stop start-up with a message naming the key and where it came from.

use std::path::Path;

use super::*;

const ENV_PREFIX: &str = "PLUGBOARD_";

impl Config {
    /// File (if any), then environment, then flags. Nothing falls back silently: an unknown
    /// key or a bad value is an error naming where it came from.
    pub(crate) fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
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
        if !self.public_baseurl.is_empty() {
            if let Err(why) = check_public_baseurl(&self.public_baseurl) {
                return bad("public_baseurl", why);
            }
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
        self.validate_turn(source)?;
        self.validate_federation(source)?;
        for (i, c) in self.support.contacts.iter().enumerate() {
            if c.role.is_empty() || (c.matrix_id.is_none() && c.email_address.is_none()) {
                return bad(
                    &format!("support.contacts[{i}]"),
                    "a contact needs a role and a matrix_id or an email_address",
                );
            }
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return bad("log.level", &e.to_string());
        }
        Ok(())
    }

    fn validate_turn(&self, source: &str) -> Result<(), ConfigError> {
        let bad =
            |key: &str, why: &str| Err(ConfigError(format!("{source}: key `turn.{key}`: {why}")));
        let t = &self.turn;
        if let Some(uri) = t.uris.iter().find(|u| {
            !["turn:", "turns:", "stun:"]
                .iter()
                .any(|scheme| u.starts_with(scheme))
        }) {
            return bad(
                "uris",
                &format!("'{uri}' is not a turn:, turns: or stun: URI"),
            );
        }
        let fixed = !t.username.is_empty() || !t.password.is_empty();
        if !t.uris.is_empty() && t.shared_secret.is_empty() && !fixed {
            return bad(
                "shared_secret",
                "TURN URIs need a shared secret, or a username and password",
            );
        }
        if !t.shared_secret.is_empty() && fixed {
            return bad(
                "shared_secret",
                "give either a shared secret or a username and password, not both",
            );
        }
        if t.ttl_s == 0 {
            return bad("ttl_s", "must be at least 1");
        }
        Ok(())
    }

    fn validate_federation(&self, source: &str) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| {
            Err(ConfigError(format!(
                "{source}: key `federation.{key}`: {why}"
            )))
        };
        let f = &self.federation;
        for (key, ranges) in [
            ("ip_range_denylist", &f.ip_range_denylist),
            ("ip_range_allowlist", &f.ip_range_allowlist),
        ] {
            for range in ranges {
                if let Err(e) = range.parse::<crate::net::address::AddressRange>() {
                    return bad(key, &e.to_string());
                }
            }
        }
        if f.tls_certificate.is_some() != f.tls_private_key.is_some() {
            return bad(
                "tls_certificate",
                "give both tls_certificate and tls_private_key, or neither",
            );
        }
        if f.request_timeout_ms == 0 {
            return bad("request_timeout_ms", "must be at least 1");
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

    pub(crate) fn registration_mode(&self) -> RegistrationMode {
        self.registration
            .unwrap_or(if self.listen.ip().is_loopback() {
                RegistrationMode::Open
            } else {
                RegistrationMode::Closed
            })
    }

    /// The public base URL without a trailing slash: `public_baseurl` when set, else derived
    /// from where the server listens ([`derive_public_baseurl`]).
    pub(crate) fn public_baseurl(&self) -> String {
        if self.public_baseurl.is_empty() {
            derive_public_baseurl(self.listen, &self.server_name)
        } else {
            self.public_baseurl.trim_end_matches('/').to_string()
        }
    }

    /// Takes the address the listener is bound to as `listen` when `listen` left the port (0)
    /// to the system, so that a derived public base URL names the port clients can reach.
    pub(crate) fn bound_to(&mut self, addr: SocketAddr) {
        if self.listen.port() == 0 {
            self.listen = addr;
        }
    }

    pub(crate) fn database_url(&self) -> String {
        if self.database_url.is_empty() {
            format!(
                "sqlite://{}",
                self.data_dir.join("plugboard.sqlite").display()
            )
        } else {
            self.database_url.clone()
        }
    }

    pub(crate) fn signing_key_path(&self) -> PathBuf {
        self.data_dir.join("signing.key")
    }

    pub(crate) fn admin_token_path(&self) -> PathBuf {
        self.data_dir.join("admin.token")
    }

    pub(crate) fn media_dir(&self) -> PathBuf {
        self.data_dir.join("media")
    }

    pub(crate) fn plugins_dir(&self) -> PathBuf {
        if self.plugins.dir.as_os_str().is_empty() {
            self.data_dir.join("plugins")
        } else {
            self.plugins.dir.clone()
        }
    }

    /// Compiled plugin components, by content and engine.
    pub(crate) fn plugin_cache_dir(&self) -> PathBuf {
        self.data_dir.join("cache").join("components")
    }
}

/// The public base URL of a server that names none, as Synapse derives it: a loopback
/// listener is only reachable from this machine, so the URL is where it listens
/// (`http://127.0.0.1:8008`); any other serves the server's name over HTTPS, behind the usual
/// reverse proxy (`https://example.org`).
pub(crate) fn derive_public_baseurl(listen: SocketAddr, server_name: &str) -> String {
    if listen.ip().is_loopback() {
        format!("http://{listen}")
    } else {
        format!("https://{server_name}")
    }
}

/// A configured public base URL: an absolute http(s) URL of a host (and maybe a path), with
/// neither query nor fragment, since links are made by appending paths to it.
fn check_public_baseurl(url: &str) -> Result<(), &'static str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("must start with https:// or http://")?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || host.contains(char::is_whitespace) || host.contains('@') {
        return Err("must name a host after the scheme (https://matrix.example.org)");
    }
    if rest.contains(['?', '#']) || rest.contains(char::is_whitespace) {
        return Err("must have no query, fragment or spaces: paths are appended to it");
    }
    Ok(())
}

/// The `[federation]` keys that hold lists.
const FEDERATION_LISTS: &[&str] = &[
    "ip_range_denylist",
    "ip_range_allowlist",
    "allowed_servers",
    "denied_servers",
    "trusted_key_servers",
];

/// Environment values are typed by the key they set: lists are comma-separated, and the rest
/// is read as a TOML scalar when it parses as one, otherwise as a string.
fn parse_env_value(path: &[String], raw: &str) -> toml::Value {
    if path == ["registration_tokens"]
        || path == ["appservice_config_files"]
        || path == ["connections", "per_address_exempt"]
        || path == ["appservice_allow_takeover"]
        || path == ["turn", "uris"]
        || (path.len() == 2 && path[0] == "federation" && FEDERATION_LISTS.contains(&&*path[1]))
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
        || path == ["public_baseurl"]
        || path == ["listen"]
        || path == ["data_dir"]
        || path == ["plugins", "dir"]
        || path == ["federation", "listen"]
        || path == ["federation", "well_known_server"]
        || path == ["federation", "tls_certificate"]
        || path == ["federation", "tls_private_key"]
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
