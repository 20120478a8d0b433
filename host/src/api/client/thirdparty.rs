//! The third-party lookups (`/thirdparty/*`), answered by the bridges that declare each
//! protocol.

use axum::extract::State;
use axum::Json as Reply;
use serde_json::Value;

use crate::api::error::ApiResult;
use crate::api::extract::{Auth, Path, Query};
use crate::api::AppState;
use crate::service::appservice::thirdparty::Lookup;

type Fields = Query<Vec<(String, String)>>;

/// GET /thirdparty/protocols
pub(crate) async fn protocols(State(s): State<AppState>, Auth(_): Auth) -> ApiResult<Reply<Value>> {
    Ok(Reply(s.thirdparty_protocols().await?))
}

/// GET /thirdparty/protocol/{protocol}
pub(crate) async fn protocol(
    State(s): State<AppState>,
    Auth(_): Auth,
    Path(protocol): Path<String>,
) -> ApiResult<Reply<Value>> {
    Ok(Reply(s.thirdparty_protocol(&protocol).await?))
}

/// GET /thirdparty/location/{protocol}
pub(crate) async fn locations(
    State(s): State<AppState>,
    Auth(_): Auth,
    Path(protocol): Path<String>,
    Query(fields): Fields,
) -> ApiResult<Reply<Value>> {
    Ok(Reply(
        s.thirdparty_lookup(Lookup::Location, Some(&protocol), &fields)
            .await?,
    ))
}

/// GET /thirdparty/user/{protocol}
pub(crate) async fn users(
    State(s): State<AppState>,
    Auth(_): Auth,
    Path(protocol): Path<String>,
    Query(fields): Fields,
) -> ApiResult<Reply<Value>> {
    Ok(Reply(
        s.thirdparty_lookup(Lookup::User, Some(&protocol), &fields)
            .await?,
    ))
}

/// GET /thirdparty/location?alias=
pub(crate) async fn location_by_alias(
    State(s): State<AppState>,
    Auth(_): Auth,
    Query(fields): Fields,
) -> ApiResult<Reply<Value>> {
    Ok(Reply(
        s.thirdparty_lookup(Lookup::Location, None, &fields).await?,
    ))
}

/// GET /thirdparty/user?userid=
pub(crate) async fn user_by_id(
    State(s): State<AppState>,
    Auth(_): Auth,
    Query(fields): Fields,
) -> ApiResult<Reply<Value>> {
    Ok(Reply(
        s.thirdparty_lookup(Lookup::User, None, &fields).await?,
    ))
}
