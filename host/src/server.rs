//! Start-up and the serve loop: open the data dir, the database and the signing key, build
//! the services, and serve HTTP until shutdown. Tests call [`run`] with a listener on
//! `127.0.0.1:0`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::plugins::PluginRuntime;
use crate::service::appservice::registered::Appservices;
use crate::service::appservice::registration::{Origin, Registration, RegistrationError};
use crate::service::appservice::room_cache::RoomInterestCache;
use crate::service::appservice::takeover::{self, Takeover, TakeoverError, Takeovers};
use crate::service::federation::Federation;
use crate::service::keys::signing::{random_alnum, write_private_file};
use crate::service::keys::ServerKey;
use crate::service::presence::KnownPresence;
use crate::service::push::counts::CountCache;
use crate::service::push::kept::KeptRules;
use crate::service::rooms::recent::RecentEvents;
use crate::service::sync::changes::Changes;
use crate::service::sync::token::Position;
use crate::service::sync::Notifier;
use crate::service::{ephemeral, media, ratelimit, rooms, users, Services};
use crate::storage::writer::{WriteOp, Writer};
use crate::storage::{Storage, StorageError};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The federation listener's certificate or key cannot be had.
    #[error("federation listener: {0}")]
    Tls(String),
    #[error(transparent)]
    Appservice(#[from] RegistrationError),
    #[error("cannot start the plugin runtime: {0}")]
    Plugins(String),
    /// A registration stored at runtime is invalid, or clashes with a file: the server cannot
    /// start to remove it, so the message says how to do it offline.
    #[error(
        "{0}\n(registrations added at runtime are kept in the database; to drop one, run \
         `plugboard appservice remove ID --offline` with the same --config / --data-dir while \
         the server is stopped, or change the file)"
    )]
    RuntimeAppservice(RegistrationError),
    /// A registration file would take over existing accounts, and the configuration does not
    /// allow it.
    #[error(
        "{0}.\nIf that is meant, add `{id}` to `appservice_allow_takeover` in the configuration \
         (or PLUGBOARD_APPSERVICE_ALLOW_TAKEOVER={id}); otherwise change its sender_localpart \
         or exclusive users namespaces.",
        id = .0.service
    )]
    Takeover(Takeover),
}

fn io(what: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> StartupError {
    let path = path.display().to_string();
    move |source| StartupError::Io { what, path, source }
}

/// Opens everything `config` names and builds the services. Creates the data dir, the
/// signing key and the admin token on first start.
pub async fn build_services(config: Config) -> Result<Arc<Services>, StartupError> {
    let config = Arc::new(config);
    std::fs::create_dir_all(&config.data_dir)
        .map_err(io("cannot create data dir", &config.data_dir))?;
    let key_path = config.signing_key_path();
    let key = Arc::new(
        ServerKey::load_or_create(&key_path, &config.server_name)
            .map_err(io("cannot load signing key", &key_path))?,
    );
    let admin_token = load_or_create_admin_token(&config)?;
    // The files are read first: a broken one stops start-up before the database is opened.
    let files = read_appservice_files(&config)?;
    let storage = Storage::open(&config.database_url()).await?;
    let room_cache = Arc::new(RoomInterestCache::default());
    let appservices = load_appservices(&config, files, &storage, room_cache.clone()).await?;
    settle_account_makers(&config, &storage, &appservices).await?;
    check_takeovers(&config, &storage, &appservices).await?;
    let start = storage.max_stream().await?;
    let typing = ephemeral::Typing::new();
    let notifier = Notifier::new(Position {
        stream: start,
        typing: typing.serial(),
    });
    let recent = Arc::new(RecentEvents::new(start).with_max_events(config.rooms.recent_events));
    let changes = Arc::new(Changes::new(start));
    let push_counts = Arc::new(CountCache::default());
    let known_presence = Arc::new(KnownPresence::default());
    let on_commit = {
        let notifier = notifier.clone();
        let recent = recent.clone();
        let changes = changes.clone();
        let room_cache = room_cache.clone();
        let push_counts = push_counts.clone();
        let known_presence = known_presence.clone();
        move |batch: &[(i64, &WriteOp)]| {
            for (stream, op) in batch {
                match op {
                    WriteOp::Event(e) => {
                        recent.record(*stream, e);
                        changes.record(*stream, op);
                        // Which services want the room follows its members, ours and
                        // (through state resolution) those another server's events change.
                        if e.changes_members() {
                            room_cache.forget_room(&e.room_id);
                        }
                        // Its event's notification rows are gone: counts kept are stale.
                        if e.redacts.is_some() {
                            push_counts.invalidate();
                        }
                    }
                    other => {
                        if let WriteOp::Presence(p) = other {
                            known_presence.committed(*stream, p);
                        }
                        changes.record(*stream, other);
                    }
                }
            }
            if let Some((last, _)) = batch.last() {
                notifier.committed(*last);
            }
        }
    };
    let writer = Writer::start(storage.clone(), start + 1, Box::new(on_commit));
    let rooms = rooms::RoomService::new(
        storage.clone(),
        writer.clone(),
        key.clone(),
        config.server_name.clone(),
        recent,
        {
            let room_cache = room_cache.clone();
            Arc::new(move |room_id: &str| room_cache.forget_room(room_id))
        },
        Arc::new(rooms::graph::StateGroups::new(
            storage.max_state_group().await?,
        )),
    )
    .with_head_cache(
        config.rooms.state_cache_rooms,
        config.rooms.state_cache_bytes,
    )
    .with_push_rules(KeptRules::load(&storage).await?);
    let plugins =
        PluginRuntime::new(config.clone()).map_err(|e| StartupError::Plugins(format!("{e:#}")))?;
    let services = Services {
        plugins,
        users: users::UserService::new(storage.clone(), config.clone()),
        media: media::MediaService::new(
            storage.clone(),
            config.media_dir(),
            config.server_name.clone(),
            config.media.clone(),
        ),
        ratelimit: ratelimit::RateLimiter::new(config.rate_limits.clone()),
        account_data_updates: Default::default(),
        typing,
        rooms,
        push_counts,
        known_presence,
        push_delivery: Default::default(),
        federation_sender: Default::default(),
        notifier,
        changes,
        writer,
        federation: Federation::new(&config, key.clone(), storage.clone()),
        key,
        storage,
        admin_token,
        appservices,
        config,
    };
    Ok(Arc::new(services))
}

/// Reads and parses every registration file the config lists; the first problem stops
/// start-up with the file and field it is about.
fn read_appservice_files(config: &Config) -> Result<Vec<Registration>, StartupError> {
    let mut sources = Vec::new();
    for path in &config.appservice_config_files {
        let text = std::fs::read_to_string(path)
            .map_err(io("cannot read appservice registration", path))?;
        sources.push(Registration::from_yaml(&text, Origin::File(path.clone()))?);
    }
    Ok(sources)
}

/// The registration files and, after them, the registrations added at runtime (stored in the
/// database), checked together as one set: a clash between them stops start-up with both
/// named.
async fn load_appservices(
    config: &Config,
    mut sources: Vec<Registration>,
    storage: &Storage,
    room_cache: Arc<RoomInterestCache>,
) -> Result<Appservices, StartupError> {
    let stored = storage.appservice_registrations().await?;
    for row in stored {
        let origin = Origin::Runtime(row.appservice_id);
        let registration =
            Registration::from_yaml(&row.yaml, origin).map_err(StartupError::RuntimeAppservice)?;
        sources.push(registration);
    }
    Appservices::new(
        sources,
        &config.server_name,
        config.appservice_delivery.clone(),
        room_cache,
    )
    .map_err(|e| {
        // Errors name both registrations of a clash; a runtime one is named by its source.
        if e.names_runtime_registration() {
            StartupError::RuntimeAppservice(e)
        } else {
            StartupError::Appservice(e)
        }
    })
}

/// At the first start that records who made each account, works out who made the accounts
/// that existed before, from the services registered now: files, runtime registrations and
/// the installed plugins' manifests ([`takeover::settle`]).
async fn settle_account_makers(
    config: &Config,
    storage: &Storage,
    appservices: &Appservices,
) -> Result<(), StartupError> {
    let mut registrations: Vec<Registration> = appservices
        .registry()
        .services()
        .iter()
        .map(|s| s.registration.clone())
        .collect();
    let plugins = crate::plugins::manifest::installed(&config.plugins_dir());
    registrations.extend(plugins.iter().map(|m| m.registration()));
    let (settled, by_services) =
        takeover::settle(storage, &registrations, &config.server_name).await?;
    if settled > 0 {
        tracing::info!(
            accounts = settled,
            made_by_services = by_services,
            "recorded who made the accounts that existed before this version"
        );
    }
    Ok(())
}

/// A registration file that would take over existing accounts stops start-up, unless
/// `appservice_allow_takeover` names it (then the takeover is logged at warn). Runtime
/// registrations were checked when they were added: what they act as is only logged (as the
/// plugins' is when they load).
async fn check_takeovers(
    config: &Config,
    storage: &Storage,
    appservices: &Appservices,
) -> Result<(), StartupError> {
    for service in appservices.registry().services() {
        let takeovers = match appservices.origin(&service.id) {
            Origin::File(_) if config.appservice_allow_takeover.contains(&service.id) => {
                Takeovers::Allow
            }
            Origin::File(_) => Takeovers::Refuse,
            _ => Takeovers::Keep,
        };
        let checked = takeover::check(
            storage,
            &service.registration,
            &config.server_name,
            takeovers,
        )
        .await;
        match checked {
            Ok(()) => {}
            Err(TakeoverError::Refused(t)) => return Err(StartupError::Takeover(t)),
            Err(TakeoverError::Storage(e)) => return Err(e.into()),
        }
    }
    Ok(())
}

fn load_or_create_admin_token(config: &Config) -> Result<String, StartupError> {
    let path = config.admin_token_path();
    if path.exists() {
        let t = std::fs::read_to_string(&path).map_err(io("cannot read admin token", &path))?;
        return Ok(t.trim().to_string());
    }
    let token = format!("pba_{}", random_alnum(40));
    write_private_file(&path, format!("{token}\n").as_bytes())
        .map_err(io("cannot write admin token", &path))?;
    Ok(token)
}

/// A listener on `addr` for [`run`], with the longest listen backlog the system allows.
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    crate::net::bind(addr)
}

/// Serves until `shutdown` resolves, then drains in-flight requests. Connections are held to
/// the `[connections]` caps and timeouts (see `net`). The federation listener binds
/// `[federation] listen` when federation is on; an address already taken is logged and the
/// server runs without it.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartupError> {
    let federation = bind_federation(&config);
    run_with_federation(listener, federation, config, shutdown).await
}

/// [`run`] with the federation listener bound by the caller (tests bind `127.0.0.1:0` and
/// name the server after it), or none.
pub async fn run_with_federation(
    listener: TcpListener,
    federation: Option<TcpListener>,
    mut config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartupError> {
    if let Ok(addr) = listener.local_addr() {
        config.bound_to(addr);
    }
    if let Some(addr) = federation.as_ref().and_then(|l| l.local_addr().ok()) {
        config.federation.listen = addr;
    }
    let services = build_services(config).await?;
    serve(listener, federation, services, shutdown).await
}

/// The federation listener `config` asks for, if it can be had.
fn bind_federation(config: &Config) -> Option<TcpListener> {
    if !config.federation.enabled {
        return None;
    }
    let addr = config.federation.listen;
    match crate::net::bind(addr) {
        Ok(listener) => Some(listener),
        Err(e) => {
            // Not `addr`: scripts and the test harness read the client listener's from the log.
            tracing::warn!(
                federation_listen = %addr,
                error = %e,
                "cannot listen for federation; running without the federation listener"
            );
            None
        }
    }
}

pub(crate) async fn serve(
    listener: TcpListener,
    federation: Option<TcpListener>,
    services: Arc<Services>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartupError> {
    let addr = listener.local_addr().map_err(io(
        "cannot read listener address",
        std::path::Path::new("-"),
    ))?;
    // Built before anything starts: a certificate that cannot be read stops start-up.
    let federation = match federation {
        Some(l) if services.config.federation.enabled => {
            let acceptor = crate::net::tls::acceptor(&services.config)
                .map_err(|e| StartupError::Tls(e.to_string()))?;
            Some((l, acceptor))
        }
        _ => None,
    };
    tracing::info!(%addr, server_name = services.server_name(), "plugboard listening");
    write_listening_addr(&services.config, addr);
    let expiry = tokio::spawn(expire_typing(services.clone()));
    let search_index = tokio::spawn({
        let services = services.clone();
        async move { services.follow_search_index().await }
    });
    Appservices::start(&services);
    if let Err(e) = services.start_push_delivery().await {
        tracing::error!(error = %e, "cannot start push delivery");
    }
    if let Err(e) = services.start_federation_sender().await {
        tracing::error!(error = %e, "cannot start the outgoing federation queues");
    }
    services.plugins.load_all(&services).await;
    services.plugins.install_bundled(&services).await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let federation = federation.map(|(l, acceptor)| {
        if let Ok(addr) = l.local_addr() {
            tracing::info!(federation_listen = %addr, "federation listening (TLS)");
        }
        tokio::spawn(crate::net::tls::serve(
            l,
            acceptor,
            crate::api::federation::router(services.clone()),
            Duration::from_millis(services.config.connections.header_timeout_ms),
            stop_rx.clone(),
        ))
    });
    let app = crate::api::router(services.clone());
    let stopped = crate::net::tls::stopped(stop_rx);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    crate::net::serve(listener, app, &services.config.connections, stopped).await;
    if let Some(task) = federation {
        let _ = task.await;
    }
    expiry.abort();
    search_index.abort();
    services.appservices.stop_all().await;
    services.stop_push_delivery().await;
    services.stop_federation_sender().await;
    Ok(())
}

/// The file in the data dir that holds the address the server listens on.
pub(crate) fn listening_addr_path(config: &Config) -> std::path::PathBuf {
    config.data_dir.join("listening.addr")
}

/// Where the server is listening, for the admin commands (`plugboard appservice …`) run with
/// the same data dir: `listen` may be port 0 or an unspecified address. A failure to write it
/// only costs those commands their default address.
fn write_listening_addr(config: &Config, addr: SocketAddr) {
    let path = listening_addr_path(config);
    if let Err(e) = std::fs::write(&path, format!("{addr}\n")) {
        tracing::warn!(path = %path.display(), error = %e, "cannot write the listening address");
    }
}

/// Typing notices time out even when nobody sends anything.
async fn expire_typing(services: Arc<Services>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        if let Some(serial) = services.typing.expire() {
            services.notifier.typing_changed(serial);
        }
    }
}
