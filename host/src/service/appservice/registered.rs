//! The application services this server runs: the compiled registry (shared with whatever
//! checks namespaces), where each registration came from, and per service with a URL a
//! delivery worker and its status.
//!
//! The set changes while the server runs ([`Appservices::add`], [`Appservices::update`],
//! [`Appservices::remove`]). Each change is checked exactly as start-up checks the set
//! ([`Registry::new`], which runs `validate_set`), and for the existing accounts it would take
//! over ([`takeover`](super::takeover)); then stored in the database, swapped in as a new
//! registry, and then the affected service's worker is started, restarted or stopped. Changes
//! are serial; readers keep the registry they took until they take the next one.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::delivery::Status;
use super::registration::{
    validate_set, CompiledService, Origin, Registration, RegistrationError, Registry,
};
use super::retry::RetryPolicy;
use super::room_cache::RoomInterestCache;
use super::takeover::{self, Takeover, TakeoverError, Takeovers};
use super::transport::{HttpTransport, Transport};
use crate::config::AppserviceDelivery;
use crate::lock::{lock, read, write};
use crate::service::{now_ms, Services};
use crate::storage::StorageError;

/// Why a runtime change was refused; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChangeError {
    /// The registration is invalid alone or together with the others; the message names the
    /// field (and the other service it clashes with).
    #[error(transparent)]
    Invalid(#[from] RegistrationError),
    #[error("there is no application service `{0}`")]
    NotFound(String),
    /// Its sender or an exclusive users namespace covers accounts it did not make, and the
    /// admin did not say that this is meant.
    #[error(
        "{0}; if that is meant, say so: `--allow-takeover` on the command line, \
         `?allow_takeover=true` on the admin API"
    )]
    Takeover(Takeover),
    /// The service comes from a registration file, which would bring it back (or clash with
    /// the stored change) at the next start.
    #[error(
        "application service `{id}` is configured in the file {file} (appservice_config_files): \
         change or remove it there and restart the server; a change made at runtime would be \
         undone by the file at the next start"
    )]
    FromFile { id: String, file: String },
    /// The service is a plugin, changed through the plugin commands.
    #[error(
        "`{0}` is a plugin: change it with `plugboard plugin upgrade | remove` or the plugin \
         admin API"
    )]
    IsPlugin(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The delivery side of one service with a URL. The status and its counters survive a worker
/// restart (an update); they go when the service is removed.
struct Delivery {
    status: Arc<Mutex<Status>>,
    /// Ends the worker's backoff pause at once ([`Appservices::poke`]).
    poke: Arc<Notify>,
    worker: Option<JoinHandle<()>>,
    /// A plugin's transport (the call into its instance); HTTP services get theirs made
    /// from their URL at each start.
    plugin: Option<Arc<dyn Transport>>,
}

impl From<TakeoverError> for ChangeError {
    fn from(e: TakeoverError) -> Self {
        match e {
            TakeoverError::Refused(t) => ChangeError::Takeover(t),
            TakeoverError::Storage(e) => ChangeError::Storage(e),
        }
    }
}

impl Delivery {
    fn new(plugin: Option<Arc<dyn Transport>>) -> Delivery {
        Delivery {
            status: Arc::new(Mutex::new(Status {
                up: true,
                ..Status::default()
            })),
            poke: Arc::new(Notify::new()),
            worker: None,
            plugin,
        }
    }
}

pub(crate) struct Appservices {
    registry: RwLock<Arc<Registry>>,
    deliveries: Mutex<BTreeMap<String, Delivery>>,
    /// Held by a change from its validation until its worker runs, so changes are serial.
    changes: tokio::sync::Mutex<()>,
    /// Set at shutdown: no worker starts after it.
    stopped: AtomicBool,
    server_name: String,
    pub(super) delivery: AppserviceDelivery,
    /// For the request-path calls to services: pings and user / alias queries.
    pub(super) http: reqwest::Client,
    pub(crate) room_cache: Arc<RoomInterestCache>,
}

impl Appservices {
    /// The set loaded at start-up, checked together exactly as any later change is.
    pub(crate) fn new(
        registrations: Vec<Registration>,
        server_name: &str,
        delivery: AppserviceDelivery,
        room_cache: Arc<RoomInterestCache>,
    ) -> Result<Self, RegistrationError> {
        let registry = Registry::new(registrations, server_name)?;
        Ok(Appservices {
            registry: RwLock::new(Arc::new(registry)),
            deliveries: Mutex::new(BTreeMap::new()),
            changes: tokio::sync::Mutex::new(()),
            stopped: AtomicBool::new(false),
            server_name: server_name.to_owned(),
            delivery,
            http: reqwest::Client::new(),
            room_cache,
        })
    }

    pub(crate) fn registry(&self) -> Arc<Registry> {
        read(&self.registry).clone()
    }

    fn set_registry(&self, registry: Registry) {
        *write(&self.registry) = Arc::new(registry);
        self.room_cache.clear();
    }

    fn lock_deliveries(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Delivery>> {
        lock(&self.deliveries)
    }

    /// Where service `id` comes from (one that is not registered counts as added at
    /// runtime).
    pub(crate) fn origin(&self, id: &str) -> Origin {
        self.registry()
            .get(id)
            .map(|s| s.registration.origin.clone())
            .unwrap_or_else(|| Origin::Runtime(id.to_owned()))
    }

    /// Starts a delivery worker for every registered service that has a URL.
    pub(crate) fn start(services: &Arc<Services>) {
        for service in services.appservices.registry().services() {
            Self::start_worker(services, service);
        }
    }

    /// Stops every worker (at shutdown); none starts afterwards.
    pub(crate) async fn stop_all(&self) {
        let handles: Vec<JoinHandle<()>> = {
            // Under the lock that starting a worker takes, so none starts after this.
            let mut deliveries = self.lock_deliveries();
            self.stopped.store(true, Ordering::SeqCst);
            deliveries
                .values_mut()
                .filter_map(|d| d.worker.take())
                .collect()
        };
        for handle in handles {
            handle.abort();
            let _ = handle.await;
        }
    }

    /// Starts the worker of `service` if it has a URL or is a plugin, keeping the status of
    /// an earlier worker for the same id. Nothing happens when one runs already.
    fn start_worker(services: &Arc<Services>, service: &CompiledService) {
        let me = &services.appservices;
        let timeout = Duration::from_millis(me.delivery.timeout_ms.max(1));
        let mut deliveries = me.lock_deliveries();
        if me.stopped.load(Ordering::SeqCst) {
            return;
        }
        let plugin = deliveries.get(&service.id).and_then(|d| d.plugin.clone());
        let transport: Arc<dyn Transport> = match (plugin, &service.registration.url) {
            (Some(plugin), _) => plugin,
            (None, Some(url)) => Arc::new(HttpTransport::new(
                url,
                &service.registration.hs_token,
                service.registration.legacy_query_token,
                timeout,
            )),
            (None, None) => return,
        };
        let delivery = deliveries
            .entry(service.id.clone())
            .or_insert_with(|| Delivery::new(None));
        if delivery.worker.is_some() {
            return;
        }
        let retry = RetryPolicy {
            base: Duration::from_millis(me.delivery.retry_base_ms.max(1)),
            cap: Duration::from_millis(me.delivery.retry_max_ms.max(1)),
            probe_every: (me.delivery.probe_interval_ms > 0 && transport.can_probe())
                .then(|| Duration::from_millis(me.delivery.probe_interval_ms)),
        };
        delivery.worker = Some(super::delivery::spawn(
            services,
            service.clone(),
            transport,
            retry,
            delivery.status.clone(),
            delivery.poke.clone(),
        ));
    }

    /// Stops the worker of `id` and waits until it has stopped, so that no step of it runs
    /// beside a new worker (one transaction in flight per service) or after its queue is gone.
    /// A push cut off here is sent again, with the same txnId, by the next worker.
    async fn stop_worker(&self, id: &str) {
        let handle = self
            .lock_deliveries()
            .get_mut(id)
            .and_then(|d| d.worker.take());
        if let Some(handle) = handle {
            handle.abort();
            let _ = handle.await;
        }
    }

    /// Adds a service from its registration text (`origin` names the text in errors until
    /// its id is known). Stored in the database, it comes back at every start. One that would
    /// take over existing accounts is refused unless `takeovers` allows it.
    pub(crate) async fn add(
        services: &Arc<Services>,
        yaml: &str,
        origin: Origin,
        takeovers: Takeovers,
    ) -> Result<CompiledService, ChangeError> {
        let me = &services.appservices;
        let _change = me.changes.lock().await;
        let registration = Registration::from_yaml(yaml, origin.clone())?;
        let id = registration.id.clone();
        let current = me.registry();
        let mut registrations = registrations_of(&current);
        registrations.push(registration);
        let registry = accepted(registrations, &id, &me.server_name)?;
        let service = registry.get(&id).cloned().expect("just added");
        takeover::check(
            &services.storage,
            &service.registration,
            &me.server_name,
            takeovers,
        )
        .await?;
        services
            .storage
            .add_appservice_registration(&id, yaml, now_ms())
            .await?;
        me.set_registry(registry);
        // A status left by an earlier service of the same id is not this one's.
        me.lock_deliveries().remove(&id);
        Self::start_worker(services, &service);
        tracing::info!(appservice = %id, "application service added");
        Ok(service)
    }

    /// Replaces the registration of runtime service `id`. Its worker is restarted with the
    /// new registration; its queue (position and transaction in flight, which keeps its txnId
    /// and events) and its status counters are kept.
    pub(crate) async fn update(
        services: &Arc<Services>,
        id: &str,
        yaml: &str,
        origin: Origin,
        takeovers: Takeovers,
    ) -> Result<CompiledService, ChangeError> {
        let me = &services.appservices;
        let _change = me.changes.lock().await;
        let current = me.registry();
        me.changeable(&current, id)?;
        let registration = Registration::from_yaml(yaml, origin.clone())?;
        if registration.id != id {
            return Err(RegistrationError::Invalid {
                file: origin,
                field: "id".into(),
                message: format!(
                    "is `{}` but the service being updated is `{id}`: an id cannot change \
                     (remove the service and add the new one)",
                    registration.id
                ),
            }
            .into());
        }
        let registrations = current
            .services()
            .iter()
            .map(|s| {
                if s.id == id {
                    registration.clone()
                } else {
                    s.registration.clone()
                }
            })
            .collect();
        let registry = accepted(registrations, id, &me.server_name)?;
        let service = registry.get(id).cloned().expect("just updated");
        takeover::check(
            &services.storage,
            &service.registration,
            &me.server_name,
            takeovers,
        )
        .await?;
        services
            .storage
            .update_appservice_registration(id, yaml, now_ms())
            .await?;
        me.set_registry(registry);
        me.stop_worker(id).await;
        Self::start_worker(services, &service);
        tracing::info!(appservice = %id, "application service updated");
        Ok(service)
    }

    /// Removes runtime service `id`: its worker stops, and its registration and its queue
    /// (with any transaction in flight) are deleted. Adding the id again starts afresh.
    pub(crate) async fn remove(services: &Arc<Services>, id: &str) -> Result<(), ChangeError> {
        let me = &services.appservices;
        let _change = me.changes.lock().await;
        let current = me.registry();
        me.changeable(&current, id)?;
        let registry = Registry::new(registrations_without(&current, id), &me.server_name)?;
        // The worker goes first, or it could make its queue again after the delete.
        me.stop_worker(id).await;
        if let Err(e) = services.storage.remove_appservice_registration(id).await {
            if let Some(service) = current.get(id) {
                Self::start_worker(services, service);
            }
            return Err(e.into());
        }
        me.set_registry(registry);
        me.lock_deliveries().remove(id);
        tracing::info!(appservice = %id, "application service removed");
        Ok(())
    }

    /// Refuses a change to a service that does not exist or comes from a file.
    fn changeable(&self, registry: &Registry, id: &str) -> Result<(), ChangeError> {
        if registry.get(id).is_none() {
            return Err(ChangeError::NotFound(id.to_owned()));
        }
        match self.origin(id) {
            Origin::File(path) => Err(ChangeError::FromFile {
                id: id.to_owned(),
                file: path.display().to_string(),
            }),
            Origin::Plugin(_) | Origin::Manifest(_) => Err(ChangeError::IsPlugin(id.to_owned())),
            Origin::Runtime(_) | Origin::AdminRequest | Origin::RegisterRequest => Ok(()),
        }
    }

    /// Checks that `registration` (a plugin's) can join the set, replacing the service of the
    /// same id when `replacing`, and what accounts it would take over; nothing changes.
    pub(crate) async fn check_plugin(
        services: &Services,
        registration: &Registration,
        replacing: bool,
        takeovers: Takeovers,
    ) -> Result<(), ChangeError> {
        let me = &services.appservices;
        let current = me.registry();
        if !replacing && current.get(&registration.id).is_some() {
            return Err(RegistrationError::Conflict {
                other: None,
                file: registration.origin.clone(),
                field: "id".into(),
                message: format!(
                    "an application service or plugin `{}` exists already",
                    registration.id
                ),
            }
            .into());
        }
        let mut registrations = registrations_without(&current, &registration.id);
        registrations.push(registration.clone());
        validate_set(&registrations)?;
        takeover::check(&services.storage, registration, &me.server_name, takeovers).await?;
        Ok(())
    }

    /// Adds (or, for an id that is a plugin already, replaces) a plugin's registration with
    /// the transport into its instance, and starts its delivery if `run`. A replaced plugin
    /// keeps its queue and status; its worker restarts with the new registration.
    pub(crate) async fn set_plugin(
        services: &Arc<Services>,
        registration: Registration,
        transport: Arc<dyn Transport>,
        run: bool,
    ) -> Result<CompiledService, ChangeError> {
        let me = &services.appservices;
        let _change = me.changes.lock().await;
        let id = registration.id.clone();
        let current = me.registry();
        let replacing = current.get(&id).is_some();
        if replacing && !matches!(me.origin(&id), Origin::Plugin(_)) {
            return Err(RegistrationError::Conflict {
                other: None,
                file: registration.origin.clone(),
                field: "id".into(),
                message: format!("an application service `{id}` exists already"),
            }
            .into());
        }
        let mut registrations = registrations_without(&current, &id);
        registrations.push(registration);
        let registry = Registry::new(registrations, &me.server_name)?;
        let service = registry.get(&id).cloned().expect("just added");
        me.stop_worker(&id).await;
        me.set_registry(registry);
        me.lock_deliveries()
            .entry(id.clone())
            .or_insert_with(|| Delivery::new(None))
            .plugin = Some(transport);
        if run {
            Self::start_worker(services, &service);
        }
        Ok(service)
    }

    /// Removes a plugin's registration and stops its delivery (its stored queue is the
    /// plugin runtime's to delete).
    pub(crate) async fn remove_plugin(
        services: &Arc<Services>,
        id: &str,
    ) -> Result<(), ChangeError> {
        let me = &services.appservices;
        let _change = me.changes.lock().await;
        let current = me.registry();
        if current.get(id).is_none() {
            return Err(ChangeError::NotFound(id.to_owned()));
        }
        let registry = Registry::new(registrations_without(&current, id), &me.server_name)?;
        me.stop_worker(id).await;
        me.set_registry(registry);
        me.lock_deliveries().remove(id);
        Ok(())
    }

    /// Stops the delivery of `id` (a disabled plugin); its queue stays as it is.
    pub(crate) async fn pause(&self, id: &str) {
        let _change = self.changes.lock().await;
        self.stop_worker(id).await;
    }

    /// Starts the delivery of `id` again after [`Appservices::pause`].
    pub(crate) async fn resume(services: &Arc<Services>, id: &str) {
        let me = &services.appservices;
        let _change = me.changes.lock().await;
        if let Some(service) = me.registry().get(id) {
            Self::start_worker(services, service);
        }
    }

    /// Runs `f` while the worker of `id` is stopped (it holds the queue in memory), then
    /// starts it again if it ran before: how the queue is changed behind its back (an
    /// admin skipping a transaction).
    pub(crate) async fn with_worker_stopped<T, F>(services: &Arc<Services>, id: &str, f: F) -> T
    where
        F: std::future::Future<Output = T>,
    {
        let me = &services.appservices;
        let _change = me.changes.lock().await;
        let was_running = me
            .lock_deliveries()
            .get(id)
            .is_some_and(|d| d.worker.is_some());
        me.stop_worker(id).await;
        let out = f.await;
        if was_running {
            if let Some(service) = me.registry().get(id) {
                Self::start_worker(services, service);
            }
        }
        out
    }

    /// The transport of plugin `id`, for its queries.
    pub(crate) fn plugin_transport(&self, id: &str) -> Option<Arc<dyn Transport>> {
        self.lock_deliveries()
            .get(id)
            .and_then(|d| d.plugin.clone())
    }

    /// A service's delivery status, if it has a worker.
    pub(crate) fn status(&self, id: &str) -> Option<Status> {
        let deliveries = self.lock_deliveries();
        deliveries.get(id).map(|d| lock(&d.status).clone())
    }

    /// Makes a service's worker retry at once if it is pausing after a failed push (or
    /// skip its next pause if it is busy); `false` when the service has no worker.
    pub(crate) fn poke(&self, id: &str) -> bool {
        let deliveries = self.lock_deliveries();
        match deliveries.get(id) {
            Some(d) if d.worker.is_some() => {
                d.poke.notify_one();
                true
            }
            _ => false,
        }
    }
}

/// Checks a set in which the registration of `id` is new (its errors name it as the request
/// named it), then builds the registry with it named as a runtime registration, as later
/// errors and the next start will name it.
fn accepted(
    mut registrations: Vec<Registration>,
    id: &str,
    server_name: &str,
) -> Result<Registry, RegistrationError> {
    validate_set(&registrations)?;
    for registration in &mut registrations {
        if registration.id == id {
            registration.origin = Origin::Runtime(id.to_owned());
        }
    }
    Registry::new(registrations, server_name)
}

fn registrations_of(registry: &Registry) -> Vec<Registration> {
    registry
        .services()
        .iter()
        .map(|s| s.registration.clone())
        .collect()
}

/// The registrations of `registry` but the one of `id`: the set a removal leaves, or a
/// replacement starts from.
fn registrations_without(registry: &Registry, id: &str) -> Vec<Registration> {
    registry
        .services()
        .iter()
        .filter(|s| s.id != id)
        .map(|s| s.registration.clone())
        .collect()
}
