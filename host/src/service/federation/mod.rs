//! The server-server API's transport: which servers and addresses this server talks to
//! ([`policy`]), how a server name becomes an address ([`resolve`]), signed requests out
//! ([`client`]) and their authentication in ([`xmatrix`]), other servers' keys fetched and
//! cached ([`server_keys`]) and served again as a notary ([`notary`]), the
//! `m.room.server_acl` rule ([`acl`]), and the durable queues of what goes out to each
//! server ([`sender`]).

pub(crate) mod acl;
pub(crate) mod backfill;
pub(crate) mod client;
pub(crate) mod directory;
pub(crate) mod e2ee;
pub(crate) mod edus;
pub(crate) mod history;
pub(crate) mod incoming;
pub(crate) mod invites;
pub(crate) mod joining;
pub(crate) mod media;
pub(crate) mod membership;
pub(crate) mod notary;
pub(crate) mod policy;
pub(crate) mod remote_membership;
pub(crate) mod resolve;
pub(crate) mod sender;
pub(crate) mod server_keys;
pub(crate) mod xmatrix;

use std::sync::{Arc, Mutex};

use crate::config::Config;
use crate::service::keys::ServerKey;
use crate::storage::{Storage, StorageError};
use policy::Policy;
use server_keys::RefetchGate;

/// The federation service: one per server, in `Services`.
pub(crate) struct Federation {
    enabled: bool,
    server_name: String,
    key: Arc<ServerKey>,
    policy: Arc<Policy>,
    notaries: Vec<String>,
    client: client::FederationClient,
    storage: Storage,
    refetch: Mutex<RefetchGate>,
    /// Held by a backfill (see [`backfill`]).
    pub(crate) backfill_lock: tokio::sync::Mutex<()>,
    /// The rooms being joined through another server now.
    pub(crate) joining: joining::Joining,
}

/// Why a federation request, or the check of one, failed.
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    #[error("federation is disabled on this server")]
    Disabled,
    #[error("this server does not federate with {0}")]
    DeniedServer(String),
    #[error("{server} resolves only to addresses this server does not connect to")]
    DeniedAddress { server: String },
    #[error("{0} is not a valid server name")]
    BadServerName(String),
    #[error("cannot reach {server}: {why}")]
    Unreachable { server: String, why: String },
    #[error("{0} did not answer in time")]
    Timeout(String),
    /// The remote server answered with an error status and (maybe) a Matrix error.
    #[error("{server} answered {status} {errcode}: {error}")]
    Remote {
        server: String,
        status: u16,
        errcode: String,
        error: String,
    },
    #[error("{server} sent an unusable answer: {why}")]
    BadResponse { server: String, why: String },
    /// The request's `Authorization` could not be checked or did not verify.
    #[error("{0}")]
    Unauthorized(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<sqlx::Error> for FederationError {
    fn from(e: sqlx::Error) -> Self {
        FederationError::Storage(StorageError::Database(e))
    }
}

impl FederationError {
    /// The Matrix errcode of this failure; a remote error keeps its own where it is passed on
    /// (see `api::error`).
    pub(crate) fn errcode(&self) -> &'static str {
        match self {
            FederationError::Unauthorized(_) => "M_UNAUTHORIZED",
            FederationError::Disabled
            | FederationError::DeniedServer(_)
            | FederationError::DeniedAddress { .. } => "M_FORBIDDEN",
            FederationError::BadServerName(_) => "M_INVALID_PARAM",
            _ => "M_UNKNOWN",
        }
    }
}

impl Federation {
    pub(crate) fn new(config: &Config, key: Arc<ServerKey>, storage: Storage) -> Federation {
        let policy = Arc::new(Policy::new(&config.federation));
        Federation {
            enabled: config.federation.enabled,
            server_name: config.server_name.clone(),
            client: client::FederationClient::new(
                &config.federation,
                &config.server_name,
                key.clone(),
                policy.clone(),
            ),
            key,
            policy,
            notaries: config.federation.trusted_key_servers.clone(),
            storage,
            refetch: Mutex::new(RefetchGate::default()),
            backfill_lock: tokio::sync::Mutex::new(()),
            joining: joining::Joining::default(),
        }
    }

    pub(crate) fn server_name(&self) -> &str {
        &self.server_name
    }

    pub(crate) fn policy(&self) -> &Policy {
        &self.policy
    }

    pub(crate) fn client(&self) -> Result<&client::FederationClient, FederationError> {
        if self.enabled {
            Ok(&self.client)
        } else {
            Err(FederationError::Disabled)
        }
    }
}
