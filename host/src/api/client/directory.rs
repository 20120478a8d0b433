//! Room aliases and the public room directory.

use axum::extract::State;
use axum::Json as Reply;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::error::ApiResult;
use crate::api::extract::{Auth, Json, MaybeAuth, Path, Query};
use crate::api::AppState;
use crate::service::identifiers::{RoomAlias, RoomId};
use crate::service::Error;

/// GET /directory/room/{roomAlias}
pub(crate) async fn get_alias(
    State(s): State<AppState>,
    Path(alias): Path<String>,
) -> ApiResult<Reply<Value>> {
    let (room_id, servers) = s.lookup_alias(&RoomAlias::parse(alias)?).await?;
    Ok(Reply(json!({ "room_id": room_id, "servers": servers })))
}

#[derive(Deserialize)]
pub(crate) struct AliasBody {
    room_id: String,
}

/// PUT /directory/room/{roomAlias}
pub(crate) async fn put_alias(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(alias): Path<String>,
    Json(body): Json<AliasBody>,
) -> ApiResult<Reply<Value>> {
    let room_id = RoomId::parse(body.room_id)?;
    s.create_alias_as(&session, &RoomAlias::parse(alias)?, &room_id)
        .await?;
    Ok(Reply(json!({})))
}

/// DELETE /directory/room/{roomAlias}
pub(crate) async fn delete_alias(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(alias): Path<String>,
) -> ApiResult<Reply<Value>> {
    let admin = s.users.is_admin(&session.user_id).await?;
    s.rooms
        .delete_alias(&session.user_id, admin, &RoomAlias::parse(alias)?)
        .await?;
    Ok(Reply(json!({})))
}

/// GET /rooms/{roomId}/aliases
pub(crate) async fn room_aliases(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(room_id): Path<String>,
) -> ApiResult<Reply<Value>> {
    let room_id = RoomId::parse(room_id)?;
    s.rooms.require_joined(&room_id, &session.user_id).await?;
    Ok(Reply(
        json!({ "aliases": s.rooms.room_aliases(&room_id).await? }),
    ))
}

/// GET /directory/list/room/{roomId}
pub(crate) async fn get_visibility(
    State(s): State<AppState>,
    Path(room_id): Path<String>,
) -> ApiResult<Reply<Value>> {
    let room_id = RoomId::parse(room_id)?;
    let public = s.rooms.is_public(&room_id).await?;
    Ok(Reply(
        json!({ "visibility": if public { "public" } else { "private" } }),
    ))
}

#[derive(Deserialize)]
pub(crate) struct VisibilityBody {
    visibility: String,
}

/// PUT /directory/list/room/{roomId}
pub(crate) async fn put_visibility(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(room_id): Path<String>,
    Json(body): Json<VisibilityBody>,
) -> ApiResult<Reply<Value>> {
    let room_id = RoomId::parse(room_id)?;
    let public = match body.visibility.as_str() {
        "public" => true,
        "private" => false,
        other => return Err(Error::InvalidParam(format!("unknown visibility '{other}'")).into()),
    };
    s.rooms
        .set_public(&session.user_id, &room_id, public)
        .await?;
    Ok(Reply(json!({})))
}

#[derive(Deserialize)]
pub(crate) struct PublicRoomsQuery {
    limit: Option<usize>,
    since: Option<String>,
    /// Another server, whose directory is asked for.
    server: Option<String>,
}

/// GET /publicRooms
///
/// Anyone may read this server's directory; asking another server's (`?server=`) makes this
/// server send a request, which only a user may have it do.
pub(crate) async fn public_rooms(
    State(s): State<AppState>,
    MaybeAuth(session): MaybeAuth,
    Query(q): Query<PublicRoomsQuery>,
) -> ApiResult<Reply<Value>> {
    if let Some(server) = q.server.as_deref().filter(|s2| *s2 != s.server_name()) {
        if session.is_none() {
            return Err(Error::MissingToken(
                "another server's directory is for users of this one: log in".into(),
            )
            .into());
        }
        return Ok(Reply(
            s.remote_public_rooms(server, q.limit, q.since.as_deref(), None)
                .await?,
        ));
    }
    Ok(Reply(
        s.rooms
            .public_rooms_page(q.limit, q.since.as_deref(), None)
            .await?,
    ))
}

#[derive(Deserialize)]
pub(crate) struct PublicRoomsServer {
    server: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct PublicRoomsBody {
    limit: Option<usize>,
    since: Option<String>,
    filter: Option<PublicRoomsFilter>,
}

#[derive(Deserialize)]
pub(crate) struct PublicRoomsFilter {
    generic_search_term: Option<String>,
}

/// POST /publicRooms
pub(crate) async fn public_rooms_post(
    State(s): State<AppState>,
    Auth(_): Auth,
    Query(q): Query<PublicRoomsServer>,
    Json(body): Json<PublicRoomsBody>,
) -> ApiResult<Reply<Value>> {
    let term = body
        .filter
        .and_then(|f| f.generic_search_term)
        .map(|t| t.to_lowercase());
    if let Some(server) = q.server.as_deref().filter(|s2| *s2 != s.server_name()) {
        return Ok(Reply(
            s.remote_public_rooms(server, body.limit, body.since.as_deref(), term.as_deref())
                .await?,
        ));
    }
    Ok(Reply(
        s.rooms
            .public_rooms_page(body.limit, body.since.as_deref(), term.as_deref())
            .await?,
    ))
}
