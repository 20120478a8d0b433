//! Room creation and membership: createRoom, join, invite, leave, forget, kick, ban, unban,
//! joined_rooms, joined_members, members.

use axum::extract::State;
use axum::Json as Reply;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::api::error::ApiResult;
use crate::api::extract::{Auth, Json, Path, Query};
use crate::api::AppState;
use crate::service::identifiers::{check_event_type, parse_room_id};
use crate::service::rooms::create::CreateRoom;
use crate::service::Error;

#[derive(Deserialize)]
pub struct InitialState {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    state_key: String,
    content: Value,
}

#[derive(Deserialize)]
pub struct CreateRoomBody {
    preset: Option<String>,
    visibility: Option<String>,
    name: Option<String>,
    topic: Option<String>,
    room_alias_name: Option<String>,
    #[serde(default)]
    invite: Vec<String>,
    #[serde(default)]
    initial_state: Vec<InitialState>,
    power_level_content_override: Option<Map<String, Value>>,
    creation_content: Option<Map<String, Value>>,
    #[serde(default)]
    is_direct: bool,
    room_version: Option<String>,
}

/// POST /createRoom
pub async fn create_room(
    State(s): State<AppState>,
    Auth(session): Auth,
    Json(body): Json<CreateRoomBody>,
) -> ApiResult<Reply<Value>> {
    let visibility_public = match body.visibility.as_deref() {
        None | Some("private") => false,
        Some("public") => true,
        Some(other) => {
            return Err(Error::InvalidParam(format!("unknown visibility '{other}'")).into())
        }
    };
    let mut initial_state = Vec::new();
    for st in body.initial_state {
        check_event_type(&st.kind)?;
        initial_state.push((st.kind, st.state_key, st.content));
    }
    if let Some(name) = &body.room_alias_name {
        s.check_alias_claim(&session, &format!("#{name}:{}", s.server_name()))?;
    }
    for user_id in &body.invite {
        s.require_namespaced_user(user_id).await?;
    }
    let room_id = s
        .rooms
        .create_room(
            &session.user_id,
            CreateRoom {
                preset: body.preset,
                visibility_public,
                name: body.name,
                topic: body.topic,
                room_alias_name: body.room_alias_name,
                invite: body.invite,
                initial_state,
                power_level_content_override: body.power_level_content_override,
                creation_content: body.creation_content,
                is_direct: body.is_direct,
                room_version: body.room_version,
            },
        )
        .await?;
    Ok(Reply(json!({ "room_id": room_id })))
}

/// POST /join/{roomIdOrAlias}
pub async fn join(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(room): Path<String>,
) -> ApiResult<Reply<Value>> {
    let room_id = s.resolve_room(&room).await?;
    s.rooms.join(&session.user_id, &room_id).await?;
    Ok(Reply(json!({ "room_id": room_id })))
}

/// POST /rooms/{roomId}/join
pub async fn join_by_id(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(room_id): Path<String>,
) -> ApiResult<Reply<Value>> {
    parse_room_id(&room_id)?;
    s.rooms.join(&session.user_id, &room_id).await?;
    Ok(Reply(json!({ "room_id": room_id })))
}

#[derive(Deserialize)]
pub struct TargetBody {
    user_id: String,
    reason: Option<String>,
}

#[derive(Deserialize)]
pub struct ReasonBody {
    reason: Option<String>,
}

/// POST /rooms/{roomId}/invite
pub async fn invite(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(room_id): Path<String>,
    Json(body): Json<TargetBody>,
) -> ApiResult<Reply<Value>> {
    parse_room_id(&room_id)?;
    s.invite(&session.user_id, &room_id, &body.user_id).await?;
    Ok(Reply(json!({})))
}

/// POST /rooms/{roomId}/leave
pub async fn leave(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(room_id): Path<String>,
    Json(body): Json<ReasonBody>,
) -> ApiResult<Reply<Value>> {
    parse_room_id(&room_id)?;
    s.rooms
        .set_membership(
            &session.user_id,
            &room_id,
            &session.user_id,
            "leave",
            body.reason.as_deref(),
        )
        .await?;
    Ok(Reply(json!({})))
}

/// POST /rooms/{roomId}/forget
pub async fn forget(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(room_id): Path<String>,
) -> ApiResult<Reply<Value>> {
    parse_room_id(&room_id)?;
    s.rooms.forget(&session.user_id, &room_id).await?;
    Ok(Reply(json!({})))
}

/// POST /rooms/{roomId}/kick
pub async fn kick(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(room_id): Path<String>,
    Json(body): Json<TargetBody>,
) -> ApiResult<Reply<Value>> {
    parse_room_id(&room_id)?;
    s.rooms
        .kick(
            &session.user_id,
            &room_id,
            &body.user_id,
            body.reason.as_deref(),
        )
        .await?;
    Ok(Reply(json!({})))
}

/// POST /rooms/{roomId}/ban
pub async fn ban(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(room_id): Path<String>,
    Json(body): Json<TargetBody>,
) -> ApiResult<Reply<Value>> {
    parse_room_id(&room_id)?;
    s.rooms
        .set_membership(
            &session.user_id,
            &room_id,
            &body.user_id,
            "ban",
            body.reason.as_deref(),
        )
        .await?;
    Ok(Reply(json!({})))
}

/// POST /rooms/{roomId}/unban
pub async fn unban(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(room_id): Path<String>,
    Json(body): Json<TargetBody>,
) -> ApiResult<Reply<Value>> {
    parse_room_id(&room_id)?;
    s.rooms
        .unban(
            &session.user_id,
            &room_id,
            &body.user_id,
            body.reason.as_deref(),
        )
        .await?;
    Ok(Reply(json!({})))
}

/// GET /joined_rooms
pub async fn joined_rooms(
    State(s): State<AppState>,
    Auth(session): Auth,
) -> ApiResult<Reply<Value>> {
    let rooms = s.rooms.joined_rooms(&session.user_id).await?;
    Ok(Reply(json!({ "joined_rooms": rooms })))
}

/// GET /rooms/{roomId}/joined_members
pub async fn joined_members(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(room_id): Path<String>,
) -> ApiResult<Reply<Value>> {
    parse_room_id(&room_id)?;
    let joined = s.rooms.joined_members(&room_id, &session.user_id).await?;
    Ok(Reply(json!({ "joined": joined })))
}

#[derive(Deserialize)]
pub struct MembersQuery {
    membership: Option<String>,
    not_membership: Option<String>,
}

/// GET /rooms/{roomId}/members
pub async fn members(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(room_id): Path<String>,
    Query(q): Query<MembersQuery>,
) -> ApiResult<Reply<Value>> {
    parse_room_id(&room_id)?;
    let state = s.rooms.readable_state(&room_id, &session.user_id).await?;
    let mut chunk = Vec::new();
    for ((kind, _), p) in &state {
        if kind != "m.room.member" {
            continue;
        }
        let m = p.membership().unwrap_or("");
        if q.membership.as_deref().is_some_and(|want| want != m)
            || q.not_membership.as_deref() == Some(m)
        {
            continue;
        }
        chunk.push(
            s.rooms
                .client_event(p, Some((&session.user_id, &session.device_id)), true)
                .await?,
        );
    }
    Ok(Reply(json!({ "chunk": chunk })))
}
