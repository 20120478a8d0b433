//! What the server does, independent of HTTP: accounts, rooms and their events, sync, the
//! per-user data (account data, tags, push rules), media, reports, rate limits, application
//! services and their delivery. The API layer and the plugin runtime's host calls both call in
//! here; this layer calls storage.

pub mod account_data;
pub mod actions;
pub mod appservice;
pub mod e2ee;
pub mod ephemeral;
pub mod error;
pub mod identifiers;
pub mod keys;
pub mod media;
pub mod mutual_rooms;
pub mod openid;
pub mod profile;
pub mod push;
pub mod ratelimit;
pub mod reports;
pub mod room_version;
pub mod rooms;
pub mod samples;
pub mod sync;
pub mod tags;
pub mod text;
pub mod users;
pub mod voip;

use std::sync::Arc;

pub use error::{Error, Result};

use crate::config::Config;
use crate::storage::writer::Writer;
use crate::storage::Storage;

/// Every service, built once at start-up and shared (as an `Arc`) by the routers.
pub struct Services {
    pub config: Arc<Config>,
    pub storage: Storage,
    pub writer: Writer,
    pub key: Arc<keys::ServerKey>,
    pub notifier: sync::Notifier,
    pub changes: Arc<sync::changes::Changes>,
    pub users: users::UserService,
    pub rooms: rooms::RoomService,
    pub typing: ephemeral::Typing,
    pub ratelimit: ratelimit::RateLimiter,
    pub media: media::MediaService,
    pub appservices: appservice::registered::Appservices,
    pub plugins: crate::plugins::PluginRuntime,
    pub admin_token: String,
    /// Held while account data is read, changed and written back (tags, push rules).
    pub account_data_updates: tokio::sync::Mutex<()>,
}

impl Services {
    pub fn server_name(&self) -> &str {
        &self.config.server_name
    }
}

/// Milliseconds since the UNIX epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
