//! Server-side key backups: `/room_keys/version[/{version}]` and
//! `/room_keys/keys[/{roomId}[/{sessionId}]]?version=…`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::Method;
use axum::Json as Reply;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::error::ApiResult;
use crate::api::extract::{Auth, Json, Path, Query};
use crate::api::AppState;
use crate::service::e2ee::backup::{KeyData, Upload, VersionBody};
use crate::service::identifiers::RoomId;
use crate::service::users::Session;
use crate::service::Error;

/// POST /room_keys/version
pub(crate) async fn create_version(
    State(s): State<AppState>,
    Auth(session): Auth,
    Json(body): Json<VersionBody>,
) -> ApiResult<Reply<Value>> {
    Ok(Reply(s.create_backup(&session.user_id, body).await?))
}

/// GET /room_keys/version
pub(crate) async fn current_version(
    State(s): State<AppState>,
    Auth(session): Auth,
) -> ApiResult<Reply<Value>> {
    Ok(Reply(s.backup(&session.user_id, None).await?))
}

/// GET /room_keys/version/{version}
pub(crate) async fn get_version(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(version): Path<String>,
) -> ApiResult<Reply<Value>> {
    Ok(Reply(s.backup(&session.user_id, Some(&version)).await?))
}

/// PUT /room_keys/version/{version}
pub(crate) async fn put_version(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(version): Path<String>,
    Json(body): Json<VersionBody>,
) -> ApiResult<Reply<Value>> {
    s.update_backup(&session.user_id, &version, body).await?;
    Ok(Reply(json!({})))
}

/// DELETE /room_keys/version/{version}
pub(crate) async fn delete_version(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(version): Path<String>,
) -> ApiResult<Reply<Value>> {
    s.delete_backup(&session.user_id, &version).await?;
    Ok(Reply(json!({})))
}

/// `?version=` of the key routes, which every one of them needs.
#[derive(Deserialize)]
pub(crate) struct Version {
    version: Option<String>,
}

impl Version {
    fn required(self) -> Result<String, Error> {
        self.version
            .ok_or_else(|| Error::MissingParam("the 'version' query parameter is required".into()))
    }
}

#[derive(Deserialize)]
pub(crate) struct RoomKeys {
    sessions: BTreeMap<String, KeyData>,
}

#[derive(Deserialize)]
pub(crate) struct AllKeys {
    rooms: BTreeMap<String, RoomKeys>,
}

/// The upload with its room ids checked.
fn upload(
    rooms: impl IntoIterator<Item = (String, BTreeMap<String, KeyData>)>,
) -> ApiResult<Upload> {
    let mut out = Upload::new();
    for (room, sessions) in rooms {
        out.insert(RoomId::parse(room)?, sessions);
    }
    Ok(out)
}

/// PUT /room_keys/keys
pub(crate) async fn put_all(
    State(s): State<AppState>,
    Auth(session): Auth,
    Query(v): Query<Version>,
    Json(body): Json<AllKeys>,
) -> ApiResult<Reply<Value>> {
    let keys = upload(body.rooms.into_iter().map(|(r, k)| (r, k.sessions)))?;
    let version = v.required()?;
    Ok(Reply(
        s.store_backup_keys(&session.user_id, &version, keys)
            .await?,
    ))
}

/// PUT /room_keys/keys/{roomId}
pub(crate) async fn put_room(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(room_id): Path<String>,
    Query(v): Query<Version>,
    Json(body): Json<RoomKeys>,
) -> ApiResult<Reply<Value>> {
    let keys = upload([(room_id, body.sessions)])?;
    let version = v.required()?;
    Ok(Reply(
        s.store_backup_keys(&session.user_id, &version, keys)
            .await?,
    ))
}

/// PUT /room_keys/keys/{roomId}/{sessionId}
pub(crate) async fn put_session(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path((room_id, session_id)): Path<(String, String)>,
    Query(v): Query<Version>,
    Json(body): Json<KeyData>,
) -> ApiResult<Reply<Value>> {
    let keys = upload([(room_id, BTreeMap::from([(session_id, body)]))])?;
    let version = v.required()?;
    Ok(Reply(
        s.store_backup_keys(&session.user_id, &version, keys)
            .await?,
    ))
}

/// The key routes' GET and DELETE: the keys of the whole backup, of `room`, or of its session
/// `key_session`, in the version the query names; read, or deleted.
async fn keys(
    (s, session, method): (&AppState, &Session, Method),
    v: Version,
    room: Option<String>,
    key_session: Option<String>,
) -> ApiResult<Reply<Value>> {
    let room = room.map(RoomId::parse).transpose()?;
    let version = v.required()?;
    let (user, room, key_session) = (&session.user_id, room.as_ref(), key_session.as_deref());
    Ok(Reply(if method == Method::DELETE {
        s.delete_backup_keys(user, &version, room, key_session)
            .await?
    } else {
        s.backup_keys(user, &version, room, key_session).await?
    }))
}

/// GET and DELETE /room_keys/keys
pub(crate) async fn all(
    method: Method,
    State(s): State<AppState>,
    Auth(session): Auth,
    Query(v): Query<Version>,
) -> ApiResult<Reply<Value>> {
    keys((&s, &session, method), v, None, None).await
}

/// GET and DELETE /room_keys/keys/{roomId}
pub(crate) async fn room(
    method: Method,
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(room_id): Path<String>,
    Query(v): Query<Version>,
) -> ApiResult<Reply<Value>> {
    keys((&s, &session, method), v, Some(room_id), None).await
}

/// GET and DELETE /room_keys/keys/{roomId}/{sessionId}
pub(crate) async fn session(
    method: Method,
    State(s): State<AppState>,
    Auth(session): Auth,
    Path((room_id, session_id)): Path<(String, String)>,
    Query(v): Query<Version>,
) -> ApiResult<Reply<Value>> {
    keys((&s, &session, method), v, Some(room_id), Some(session_id)).await
}
