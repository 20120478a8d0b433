//! The server's configuration: one TOML file in which every key has a default, overridden by
//! `PLUGBOARD_<KEY>` environment variables (nested keys joined with `__`) and then by CLI flags.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

mod load;
mod sections;
#[cfg(test)]
mod tests;

pub use sections::*;

/// A configuration problem that stops start-up; the message names the key and its source.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub(crate) String);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server_name: String,
    pub listen: SocketAddr,
    /// The URL clients and the web reach this server at (`https://matrix.example.org`): what
    /// `/.well-known/matrix/client` names and plugins build their public links from. Empty
    /// means derived ([`Config::public_baseurl`]).
    pub public_baseurl: String,
    pub data_dir: PathBuf,
    /// `sqlite://…`; empty means `data_dir/plugboard.sqlite`.
    pub database_url: String,
    /// Unset means `open` on a loopback `listen` address and `closed` elsewhere.
    pub registration: Option<RegistrationMode>,
    pub registration_tokens: Vec<String>,
    /// How long an access token lives when its client asked for a refresh token
    /// (`refresh_token: true` at registration or login); other tokens never expire.
    pub access_token_lifetime_ms: u64,
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
    pub turn: TurnConfig,
    pub support: SupportConfig,
    pub federation: FederationConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationMode {
    Open,
    Token,
    Closed,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server_name: "localhost".into(),
            listen: "127.0.0.1:8008".parse().expect("literal address"),
            public_baseurl: String::new(),
            data_dir: PathBuf::from("./data"),
            database_url: String::new(),
            registration: None,
            registration_tokens: Vec::new(),
            access_token_lifetime_ms: 5 * 60 * 1000,
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
            turn: TurnConfig::default(),
            support: SupportConfig::default(),
            federation: FederationConfig::default(),
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
