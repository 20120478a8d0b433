//! The HTTP edge's one error type: a status and a Matrix error body. Every service error is
//! mapped here, once; internal failures are logged and shown as a generic `M_UNKNOWN`.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::service::federation::FederationError;
use crate::service::Error;

#[derive(Debug)]
pub(crate) struct MatrixError {
    pub(crate) status: StatusCode,
    pub(crate) body: Value,
}

impl MatrixError {
    pub(crate) fn new(status: StatusCode, errcode: &str, message: impl Into<String>) -> Self {
        MatrixError {
            status,
            body: json!({ "errcode": errcode, "error": message.into() }),
        }
    }

    pub(crate) fn not_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "M_NOT_JSON", message)
    }

    pub(crate) fn bad_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "M_BAD_JSON", message)
    }

    pub(crate) fn invalid_param(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "M_INVALID_PARAM", message)
    }

    pub(crate) fn unrecognized() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "M_UNRECOGNIZED",
            "unrecognized request",
        )
    }
}

impl IntoResponse for MatrixError {
    fn into_response(self) -> Response {
        // A rate-limited answer also says when to come back in the standard HTTP header, in
        // whole seconds rounded up, for clients and proxies that know no Matrix.
        let retry_after = self.body["retry_after_ms"]
            .as_u64()
            .map(|ms| ms.div_ceil(1000).to_string());
        let mut resp = (self.status, axum::Json(self.body)).into_response();
        if let Some(v) = retry_after.and_then(|s| header::HeaderValue::from_str(&s).ok()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

impl From<Error> for MatrixError {
    fn from(e: Error) -> Self {
        use StatusCode as S;
        let e = match e {
            Error::Federation(f) => return f.into(),
            e => e,
        };
        let status = match &e {
            Error::Forbidden(_) | Error::GuestAccessForbidden(_) | Error::UserDeactivated(_) => {
                S::FORBIDDEN
            }
            Error::NotFound(_) => S::NOT_FOUND,
            Error::TooLarge(_) => S::PAYLOAD_TOO_LARGE,
            Error::UnknownToken(_) | Error::MissingToken(_) => S::UNAUTHORIZED,
            Error::SoftLogout(_) => {
                return MatrixError {
                    status: S::UNAUTHORIZED,
                    body: json!({
                        "errcode": "M_UNKNOWN_TOKEN",
                        "error": e.to_string(),
                        "soft_logout": true,
                    }),
                };
            }
            Error::Conflict(_) => S::CONFLICT,
            Error::ServerManaged(_) => S::METHOD_NOT_ALLOWED,
            Error::ConnectionFailed(_) => S::BAD_GATEWAY,
            Error::ConnectionTimeout(_) => S::GATEWAY_TIMEOUT,
            Error::BadStatus { status, body } => {
                return MatrixError {
                    status: S::BAD_GATEWAY,
                    body: json!({
                        "errcode": "M_BAD_STATUS",
                        "error": e.to_string(),
                        "status": status,
                        "body": body,
                    }),
                };
            }
            Error::IncompatibleRoomVersion(version) => {
                return MatrixError {
                    status: S::BAD_REQUEST,
                    body: json!({
                        "errcode": "M_INCOMPATIBLE_ROOM_VERSION",
                        "error": e.to_string(),
                        "room_version": version,
                    }),
                };
            }
            Error::WrongRoomKeysVersion { current_version } => {
                return MatrixError {
                    status: S::FORBIDDEN,
                    body: json!({
                        "errcode": "M_WRONG_ROOM_KEYS_VERSION",
                        "error": e.to_string(),
                        "current_version": current_version,
                    }),
                };
            }
            Error::LimitExceeded { retry_after_ms } => {
                return MatrixError {
                    status: S::TOO_MANY_REQUESTS,
                    body: json!({
                        "errcode": "M_LIMIT_EXCEEDED",
                        "error": "too many requests",
                        "retry_after_ms": retry_after_ms,
                    }),
                };
            }
            Error::AuthRequired(body) => {
                return MatrixError {
                    status: S::UNAUTHORIZED,
                    body: (**body).clone(),
                };
            }
            Error::Storage(_) | Error::Internal(_) => {
                tracing::error!(error = %e, "internal error");
                return Self::new(
                    S::INTERNAL_SERVER_ERROR,
                    "M_UNKNOWN",
                    "internal server error",
                );
            }
            _ => S::BAD_REQUEST,
        };
        Self::new(status, e.errcode(), e.to_string())
    }
}

impl From<FederationError> for MatrixError {
    fn from(e: FederationError) -> Self {
        use FederationError as F;
        use StatusCode as S;
        let status = match &e {
            F::Unauthorized(_) => S::UNAUTHORIZED,
            F::Disabled | F::DeniedServer(_) | F::DeniedAddress { .. } => S::FORBIDDEN,
            F::BadServerName(_) => S::BAD_REQUEST,
            // What the other server refused, the client is told as it was: not found, forbidden.
            F::Remote {
                status: status @ (400 | 403 | 404),
                errcode,
                error,
                ..
            } => {
                let status = S::from_u16(*status).unwrap_or(S::BAD_GATEWAY);
                return Self::new(status, errcode, error.clone());
            }
            F::Remote { .. } | F::Unreachable { .. } | F::BadResponse { .. } => S::BAD_GATEWAY,
            F::Timeout(_) => S::GATEWAY_TIMEOUT,
            F::Storage(_) => {
                tracing::error!(error = %e, "internal error");
                return Self::new(
                    S::INTERNAL_SERVER_ERROR,
                    "M_UNKNOWN",
                    "internal server error",
                );
            }
        };
        Self::new(status, e.errcode(), e.to_string())
    }
}

pub(crate) type ApiResult<T> = Result<T, MatrixError>;
