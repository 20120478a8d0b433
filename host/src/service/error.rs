//! The service layer's one error type. Each variant is a kind of failure a client can act on;
//! the HTTP edge maps it once to a status and a Matrix errcode.

use super::federation::FederationError;
use crate::storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadJson(String),
    /// Text that should be JSON and does not parse (a query parameter; bodies are parsed in
    /// the API layer).
    #[error("{0}")]
    NotJson(String),
    #[error("{0}")]
    InvalidParam(String),
    #[error("{0}")]
    MissingParam(String),
    #[error("{0}")]
    UserInUse(String),
    /// A login to an account that was deactivated (403 `M_USER_DEACTIVATED`).
    #[error("{0}")]
    UserDeactivated(String),
    #[error("{0}")]
    InvalidUsername(String),
    #[error("{0}")]
    RoomInUse(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("too many requests")]
    LimitExceeded { retry_after_ms: u64 },
    #[error("{0}")]
    UnknownToken(String),
    /// An access token that has expired: `M_UNKNOWN_TOKEN` with `soft_logout: true`.
    #[error("{0}")]
    SoftLogout(String),
    #[error("{0}")]
    MissingToken(String),
    #[error("{0}")]
    Exclusive(String),
    /// An application service asserted a device its user does not have (`M_UNKNOWN_DEVICE`).
    #[error("{0}")]
    UnknownDevice(String),
    #[error("{0}")]
    UnsupportedRoomVersion(String),
    /// Another server asked to join a room whose version (held here) it does not support.
    #[error("the room's version {0} is not one the asking server supports")]
    IncompatibleRoomVersion(String),
    #[error("{0}")]
    InvalidRoomState(String),
    #[error("{0}")]
    GuestAccessForbidden(String),
    #[error("{0}")]
    BadState(String),
    #[error("{0}")]
    Conflict(String),
    /// Data the server keeps itself, which a client may not write (`m.push_rules` and
    /// `m.fully_read` account data): 405 `M_BAD_JSON`, as the spec says.
    #[error("{0}")]
    ServerManaged(String),
    /// Keys sent to a backup version that is not the current one (403
    /// `M_WRONG_ROOM_KEYS_VERSION`, with the current version).
    #[error("that backup version is not the current one ({current_version} is)")]
    WrongRoomKeysVersion { current_version: String },
    /// A key or object whose signature does not verify (`M_INVALID_SIGNATURE`, 400).
    #[error("{0}")]
    InvalidSignature(String),
    /// An application service has no URL to call (`M_URL_NOT_SET`).
    #[error("{0}")]
    UrlNotSet(String),
    /// An application service could not be reached (`M_CONNECTION_FAILED`).
    #[error("{0}")]
    ConnectionFailed(String),
    /// An application service did not answer in time (`M_CONNECTION_TIMEOUT`).
    #[error("{0}")]
    ConnectionTimeout(String),
    /// An application service answered with an error status (`M_BAD_STATUS`); its status and
    /// body go back to the caller.
    #[error("the application service answered HTTP {status}")]
    BadStatus { status: u16, body: String },
    /// User-interactive auth must go on: the body (flows, params, session) goes back with 401.
    #[error("additional authentication is required")]
    AuthRequired(Box<serde_json::Value>),
    /// A request to another server failed, or was refused by the federation policy.
    #[error(transparent)]
    Federation(#[from] FederationError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The Matrix errcode of this kind of failure: what a client (over HTTP) and a plugin
    /// (through the host imports) are told. Internal failures are `M_UNKNOWN`.
    pub fn errcode(&self) -> &'static str {
        match self {
            Error::Forbidden(_) => "M_FORBIDDEN",
            Error::NotFound(_) => "M_NOT_FOUND",
            Error::BadJson(_) | Error::ServerManaged(_) => "M_BAD_JSON",
            Error::NotJson(_) => "M_NOT_JSON",
            Error::InvalidParam(_) => "M_INVALID_PARAM",
            Error::MissingParam(_) => "M_MISSING_PARAM",
            Error::UserInUse(_) => "M_USER_IN_USE",
            Error::UserDeactivated(_) => "M_USER_DEACTIVATED",
            Error::InvalidUsername(_) => "M_INVALID_USERNAME",
            Error::RoomInUse(_) => "M_ROOM_IN_USE",
            Error::TooLarge(_) => "M_TOO_LARGE",
            Error::LimitExceeded { .. } => "M_LIMIT_EXCEEDED",
            Error::UnknownToken(_) | Error::SoftLogout(_) => "M_UNKNOWN_TOKEN",
            Error::MissingToken(_) => "M_MISSING_TOKEN",
            Error::Exclusive(_) => "M_EXCLUSIVE",
            Error::UnknownDevice(_) => "M_UNKNOWN_DEVICE",
            Error::UnsupportedRoomVersion(_) => "M_UNSUPPORTED_ROOM_VERSION",
            Error::IncompatibleRoomVersion(_) => "M_INCOMPATIBLE_ROOM_VERSION",
            Error::InvalidRoomState(_) => "M_INVALID_ROOM_STATE",
            Error::GuestAccessForbidden(_) => "M_GUEST_ACCESS_FORBIDDEN",
            Error::InvalidSignature(_) => "M_INVALID_SIGNATURE",
            Error::UrlNotSet(_) => "M_URL_NOT_SET",
            Error::ConnectionFailed(_) => "M_CONNECTION_FAILED",
            Error::ConnectionTimeout(_) => "M_CONNECTION_TIMEOUT",
            Error::BadStatus { .. } => "M_BAD_STATUS",
            Error::WrongRoomKeysVersion { .. } => "M_WRONG_ROOM_KEYS_VERSION",
            Error::AuthRequired(_) => "M_FORBIDDEN",
            Error::Federation(e) => e.errcode(),
            Error::BadState(_) | Error::Conflict(_) | Error::Storage(_) | Error::Internal(_) => {
                "M_UNKNOWN"
            }
        }
    }

    /// Internal failures: logged where they surface, never shown in detail.
    pub(crate) fn is_internal(&self) -> bool {
        matches!(
            self,
            Error::Storage(_) | Error::Internal(_) | Error::Federation(FederationError::Storage(_))
        )
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Storage(StorageError::Database(e))
    }
}
