//! Third-party identifiers (email addresses, phone numbers): this server keeps none and sends
//! no validation emails or texts, and `/capabilities` says so (`m.3pid_changes` off). The
//! routes answer that honestly: an empty list, nothing to delete, and a clear refusal for
//! whatever would need a validated address or an identity server.

use axum::Json as Reply;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::error::{ApiResult, MatrixError};
use crate::api::extract::{Auth, Json};
use crate::service::Error;

/// GET /account/3pid
pub(crate) async fn list(Auth(_): Auth) -> Reply<Value> {
    Reply(json!({ "threepids": [] }))
}

/// POST /account/3pid/add and /account/3pid/bind
pub(crate) async fn add_or_bind(Auth(_): Auth, Json(_): Json<Value>) -> ApiResult<Reply<Value>> {
    Err(Error::Forbidden(
        "this server does not support third-party identifiers (m.3pid_changes is off): \
         it validates no email address or phone number and uses no identity server"
            .into(),
    )
    .into())
}

/// What `delete` and `unbind` name: checked, though there is nothing it could name.
#[derive(Deserialize)]
pub(crate) struct Removal {
    medium: String,
    address: String,
}

/// POST /account/3pid/delete and /account/3pid/unbind: the account has no third-party
/// identifier, so there is nothing to remove, and no identity server it was bound through.
pub(crate) async fn remove(Auth(session): Auth, Json(r): Json<Removal>) -> Reply<Value> {
    tracing::debug!(user = %session.user_id, medium = %r.medium, address = %r.address,
        "removal of a third-party identifier, of which none are kept");
    Reply(json!({ "id_server_unbind_result": "no-support" }))
}

/// POST …/email/requestToken and …/msisdn/requestToken (registration, password reset,
/// adding an identifier): 403 `M_THREEPID_DENIED`, as the spec has a server that does not
/// permit the identifier as a contact answer.
pub(crate) async fn request_token() -> MatrixError {
    MatrixError::new(
        axum::http::StatusCode::FORBIDDEN,
        "M_THREEPID_DENIED",
        "this server sends no validation emails or text messages: third-party identifiers \
         are not supported",
    )
}
