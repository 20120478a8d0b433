//! The sections of the configuration file, each with its defaults: rate limits, appservice
//! delivery, plugins, rooms, connections, media and logging.

use std::path::PathBuf;

use serde::Deserialize;

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
    /// `/sendToDevice` calls.
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
    pub(super) fn rates(&self) -> [(&'static str, f64); 13] {
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
    pub(super) fn bursts(&self) -> [(&'static str, u32); 13] {
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
            // State resolution logs every run at `info`: on a busy federated room, most lines.
            level: "info,ruma_state_res=warn".into(),
            format: LogFormat::Text,
        }
    }
}

/// TURN servers for VoIP calls (`/voip/turnServer`): their URIs, and either the secret they
/// share with this server (time-limited credentials, coturn's `use-auth-secret`) or a fixed
/// username and password. With no URIs, clients are told of no TURN server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TurnConfig {
    /// `turn:`, `turns:` or `stun:` URIs, e.g. `turn:turn.example.org:3478?transport=udp`.
    pub uris: Vec<String>,
    pub shared_secret: String,
    pub username: String,
    pub password: String,
    /// How long time-limited credentials last, in seconds.
    pub ttl_s: u64,
}

impl Default for TurnConfig {
    fn default() -> Self {
        TurnConfig {
            uris: Vec::new(),
            shared_secret: String::new(),
            username: String::new(),
            password: String::new(),
            ttl_s: 86_400,
        }
    }
}

/// Who runs this server and where its users find help, for `/.well-known/matrix/support`.
/// With neither, that answers 404, as the spec has a server with no support information.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SupportConfig {
    /// A page of help for this server's users (registration steps, rules, …).
    pub page: String,
    /// `[[support.contacts]]`: each a `role` (`m.role.admin`, `m.role.security`, …) and a
    /// `matrix_id`, an `email_address` or both.
    pub contacts: Vec<SupportContact>,
}

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SupportContact {
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_address: Option<String>,
}

/// The server-server API: the TLS listener other servers reach, and which servers and
/// addresses this server talks to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FederationConfig {
    /// Off: no federation listener and no outgoing federation requests.
    pub enabled: bool,
    /// Where the TLS listener for other servers binds. When the address is taken, the server
    /// logs a warning and runs without it rather than not starting.
    pub listen: std::net::SocketAddr,
    /// PEM certificate chain and private key. With neither, on a loopback `listen` address, a
    /// self-signed certificate is made in the data dir on first start.
    pub tls_certificate: Option<PathBuf>,
    pub tls_private_key: Option<PathBuf>,
    /// Check the certificates of the servers this one connects to; off only for tests.
    pub verify_tls: bool,
    /// Addresses (CIDR ranges) never connected to, whatever a server name resolves to:
    /// Synapse's default `ip_range_blacklist`.
    pub ip_range_denylist: Vec<String>,
    /// Ranges taken out of `ip_range_denylist` (a test's `127.0.0.1`).
    pub ip_range_allowlist: Vec<String>,
    /// Server name globs (`*`, `?`) this server talks to; empty means every server.
    pub allowed_servers: Vec<String>,
    /// Server name globs this server refuses, requests from them and to them.
    pub denied_servers: Vec<String>,
    /// Notary servers asked for other servers' keys before the servers themselves.
    pub trusted_key_servers: Vec<String>,
    /// `host[:port]` served at `/.well-known/matrix/server` on the client listener, when set:
    /// where other servers reach this one when the server name is not the host they connect to.
    pub well_known_server: String,
    /// How long an outgoing request may take, connection included.
    pub request_timeout_ms: u64,
}

/// Synapse's default `ip_range_blacklist`, with the unspecified addresses it always adds:
/// private, loopback, link-local, CGNAT, multicast and documentation/reserved ranges.
pub const DEFAULT_IP_RANGE_DENYLIST: &[&str] = &[
    "0.0.0.0/8",
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "192.0.0.0/24",
    "169.254.0.0/16",
    "192.88.99.0/24",
    "198.18.0.0/15",
    "192.0.2.0/24",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "::/128",
    "::1/128",
    "fe80::/10",
    "fc00::/7",
    "2001:db8::/32",
    "ff00::/8",
    "fec0::/10",
];

impl Default for FederationConfig {
    fn default() -> Self {
        FederationConfig {
            enabled: true,
            listen: "127.0.0.1:8448".parse().expect("literal address"),
            tls_certificate: None,
            tls_private_key: None,
            verify_tls: true,
            ip_range_denylist: DEFAULT_IP_RANGE_DENYLIST
                .iter()
                .map(|s| s.to_string())
                .collect(),
            ip_range_allowlist: Vec::new(),
            allowed_servers: Vec::new(),
            denied_servers: Vec::new(),
            trusted_key_servers: Vec::new(),
            well_known_server: String::new(),
            request_timeout_ms: 30_000,
        }
    }
}
