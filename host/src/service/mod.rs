//! What the server does, independent of HTTP: accounts, rooms and their events, sync, the
//! per-user data (account data, tags, push rules), media, reports, rate limits, application
//! services and their delivery. The API layer and the plugin runtime's host calls both call in
//! here; this layer calls storage.

pub(crate) mod account;
pub(crate) mod account_data;
pub(crate) mod actions;
pub mod appservice;
pub(crate) mod e2ee;
pub(crate) mod ephemeral;
pub(crate) mod error;
pub mod federation;
pub mod identifiers;
pub mod keys;
pub(crate) mod media;
pub(crate) mod mutual_rooms;
pub(crate) mod openid;
pub(crate) mod presence;
pub(crate) mod profile;
pub(crate) mod push;
pub(crate) mod ratelimit;
pub(crate) mod reports;
pub mod room_version;
pub mod rooms;
pub(crate) mod samples;
pub(crate) mod search;
pub mod sync;
pub(crate) mod tags;
pub(crate) mod text;
pub(crate) mod user_directory;
pub mod users;
pub(crate) mod voip;
pub(crate) mod whois;

use std::sync::Arc;

pub(crate) use error::Error;
pub use error::Result;

use crate::config::Config;
use crate::storage::writer::Writer;
use crate::storage::Storage;

/// Every service, built once at start-up and shared (as an `Arc`) by the routers.
pub struct Services {
    pub(crate) config: Arc<Config>,
    pub(crate) storage: Storage,
    pub(crate) writer: Writer,
    pub(crate) key: Arc<keys::ServerKey>,
    pub(crate) federation: federation::Federation,
    pub(crate) notifier: sync::Notifier,
    pub(crate) changes: Arc<sync::changes::Changes>,
    pub users: users::UserService,
    pub(crate) rooms: rooms::RoomService,
    /// Members' unread counts as last computed (see `push::counts`).
    pub(crate) push_counts: Arc<push::counts::CountCache>,
    /// Each user's presence as last written (see `presence::KnownPresence`).
    pub(crate) known_presence: Arc<presence::KnownPresence>,
    /// The pushers' delivery workers.
    pub(crate) push_delivery: push::delivery::PushDelivery,
    /// The destination servers' delivery workers.
    pub(crate) federation_sender: federation::sender::FederationSender,
    pub(crate) typing: ephemeral::Typing,
    pub(crate) ratelimit: ratelimit::RateLimiter,
    pub(crate) media: media::MediaService,
    pub(crate) appservices: appservice::registered::Appservices,
    pub(crate) plugins: crate::plugins::PluginRuntime,
    pub(crate) admin_token: String,
    /// Held while account data is read, changed and written back (tags, push rules).
    pub(crate) account_data_updates: tokio::sync::Mutex<()>,
}

impl Services {
    pub(crate) fn server_name(&self) -> &str {
        &self.config.server_name
    }
}

/// Milliseconds since the UNIX epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
