//! The HTTP edge's one error type: a status and a Matrix error body. Every service error is
//! mapped here, once; internal failures are logged and shown as a generic `M_UNKNOWN`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::service::Error;

#[derive(Debug)]
pub struct MatrixError {
    pub status: StatusCode,
    pub body: Value,
}

impl MatrixError {
    pub fn new(status: StatusCode, errcode: &str, message: impl Into<String>) -> Self {
        MatrixError {
            status,
            body: json!({ "errcode": errcode, "error": message.into() }),
        }
    }

    pub fn not_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "M_NOT_JSON", message)
    }

    pub fn bad_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "M_BAD_JSON", message)
    }

    pub fn invalid_param(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "M_INVALID_PARAM", message)
    }

    pub fn unrecognized() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "M_UNRECOGNIZED",
            "unrecognized request",
        )
    }
}

impl IntoResponse for MatrixError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

impl From<Error> for MatrixError {
    fn from(e: Error) -> Self {
        use StatusCode as S;
        let (status, code) = match &e {
            Error::Forbidden(_) => (S::FORBIDDEN, "M_FORBIDDEN"),
            Error::NotFound(_) => (S::NOT_FOUND, "M_NOT_FOUND"),
            Error::BadJson(_) => (S::BAD_REQUEST, "M_BAD_JSON"),
            Error::NotJson(_) => (S::BAD_REQUEST, "M_NOT_JSON"),
            Error::InvalidParam(_) => (S::BAD_REQUEST, "M_INVALID_PARAM"),
            Error::MissingParam(_) => (S::BAD_REQUEST, "M_MISSING_PARAM"),
            Error::UserInUse(_) => (S::BAD_REQUEST, "M_USER_IN_USE"),
            Error::InvalidUsername(_) => (S::BAD_REQUEST, "M_INVALID_USERNAME"),
            Error::RoomInUse(_) => (S::BAD_REQUEST, "M_ROOM_IN_USE"),
            Error::TooLarge(_) => (S::PAYLOAD_TOO_LARGE, "M_TOO_LARGE"),
            Error::UnknownToken(_) => (S::UNAUTHORIZED, "M_UNKNOWN_TOKEN"),
            Error::MissingToken(_) => (S::UNAUTHORIZED, "M_MISSING_TOKEN"),
            Error::Exclusive(_) => (S::BAD_REQUEST, "M_EXCLUSIVE"),
            Error::UnknownDevice(_) => (S::BAD_REQUEST, "M_UNKNOWN_DEVICE"),
            Error::UnsupportedRoomVersion(_) => (S::BAD_REQUEST, "M_UNSUPPORTED_ROOM_VERSION"),
            Error::InvalidRoomState(_) => (S::BAD_REQUEST, "M_INVALID_ROOM_STATE"),
            Error::GuestAccessForbidden(_) => (S::FORBIDDEN, "M_GUEST_ACCESS_FORBIDDEN"),
            Error::BadState(_) => (S::BAD_REQUEST, "M_UNKNOWN"),
            Error::Conflict(_) => (S::CONFLICT, "M_UNKNOWN"),
            Error::UrlNotSet(_) => (S::BAD_REQUEST, "M_URL_NOT_SET"),
            Error::ConnectionFailed(_) => (S::BAD_GATEWAY, "M_CONNECTION_FAILED"),
            Error::ConnectionTimeout(_) => (S::GATEWAY_TIMEOUT, "M_CONNECTION_TIMEOUT"),
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
        };
        Self::new(status, code, e.to_string())
    }
}

pub type ApiResult<T> = Result<T, MatrixError>;
