//! Room creation and membership: createRoom, join, knock, invite, leave, forget, kick, ban, unban,
//! joined_rooms, joined_members, members.

use axum::extract::{RawQuery, State};
use axum::Json as Reply;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::error::ApiResult;
use crate::api::extract::{Auth, ClientIp, Json, Path, Query};
use crate::api::AppState;
use crate::service::identifiers::{RoomId, RoomOrAlias, UserId};
use crate::service::ratelimit::Action;
use crate::service::rooms::create::{CreateRoom, CreateRoomBody};
use crate::service::rooms::values::Membership;

/// POST /createRoom
pub(crate) async fn create_room(
    State(s): State<AppState>,
    Auth(session): Auth,
    ClientIp(ip): ClientIp,
    Json(body): Json<CreateRoomBody>,
) -> ApiResult<Reply<Value>> {
    let req = CreateRoom::try_from(body)?;
    let invitees: Vec<&str> = req.invite.iter().map(String::as_str).collect();
    s.ratelimit.check_room_creation(
        &session,
        &ip,
        invitees.len(),
        &s.counted_invitees(&invitees),
    )?;
    let room_id = s.create_room_as(&session, req).await?;
    Ok(Reply(json!({ "room_id": room_id })))
}

/// The servers a join names to join through: `via` and the older `server_name`, repeated.
fn join_via(raw: &Option<String>) -> Vec<String> {
    raw.as_deref()
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(k, _)| matches!(*k, "via" | "server_name"))
        .map(|(_, v)| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
        .filter(|v| !v.is_empty())
        .collect()
}

/// POST /join/{roomIdOrAlias}?via=…&server_name=…
pub(crate) async fn join(
    State(s): State<AppState>,
    Auth(session): Auth,
    ClientIp(ip): ClientIp,
    Path(room): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Reply<Value>> {
    s.ratelimit.check_request(Action::Join, &session, &ip)?;
    let target = RoomOrAlias::parse(&room)?;
    let room_id = s
        .join_room_as(&session.user_id, &target, join_via(&raw))
        .await?;
    Ok(Reply(json!({ "room_id": room_id })))
}

/// POST /rooms/{roomId}/join
pub(crate) async fn join_by_id(
    State(s): State<AppState>,
    Auth(session): Auth,
    ClientIp(ip): ClientIp,
    Path(room_id): Path<String>,
) -> ApiResult<Reply<Value>> {
    let room_id = RoomId::parse(room_id)?;
    s.ratelimit.check_request(Action::Join, &session, &ip)?;
    s.join_room_as(
        &session.user_id,
        &RoomOrAlias::Room(room_id.clone()),
        Vec::new(),
    )
    .await?;
    Ok(Reply(json!({ "room_id": room_id })))
}

/// POST /knock/{roomIdOrAlias}?via=…&server_name=…: on a room of another server, through
/// the servers named (and those the alias or room id names).
pub(crate) async fn knock(
    State(s): State<AppState>,
    Auth(session): Auth,
    ClientIp(ip): ClientIp,
    Path(room): Path<String>,
    RawQuery(raw): RawQuery,
    Json(body): Json<ReasonBody>,
) -> ApiResult<Reply<Value>> {
    s.ratelimit.check_request(Action::Join, &session, &ip)?;
    let target = RoomOrAlias::parse(&room)?;
    let room_id = s
        .knock_room_as(
            &session.user_id,
            &target,
            join_via(&raw),
            body.reason.as_deref(),
        )
        .await?;
    Ok(Reply(json!({ "room_id": room_id })))
}

#[derive(Deserialize)]
pub(crate) struct TargetBody {
    user_id: String,
    reason: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct ReasonBody {
    reason: Option<String>,
}

/// POST /rooms/{roomId}/invite
pub(crate) async fn invite(
    State(s): State<AppState>,
    Auth(session): Auth,
    ClientIp(ip): ClientIp,
    Path(room_id): Path<String>,
    Json(body): Json<TargetBody>,
) -> ApiResult<Reply<Value>> {
    let room_id = RoomId::parse(room_id)?;
    let counted = s.counted_invitees(&[body.user_id.as_str()]);
    s.ratelimit
        .check_invite(&session, &ip, &room_id, &counted)?;
    s.invite(
        &session.user_id,
        &room_id,
        &UserId::parse(body.user_id)?,
        body.reason.as_deref(),
    )
    .await?;
    Ok(Reply(json!({})))
}

/// POST /rooms/{roomId}/leave
pub(crate) async fn leave(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(room_id): Path<String>,
    Json(body): Json<ReasonBody>,
) -> ApiResult<Reply<Value>> {
    let room_id = RoomId::parse(room_id)?;
    s.leave_room(&session.user_id, &room_id, body.reason.as_deref())
        .await?;
    Ok(Reply(json!({})))
}

/// POST /rooms/{roomId}/forget
pub(crate) async fn forget(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(room_id): Path<String>,
) -> ApiResult<Reply<Value>> {
    let room_id = RoomId::parse(room_id)?;
    s.rooms.forget(&session.user_id, &room_id).await?;
    Ok(Reply(json!({})))
}

/// POST /rooms/{roomId}/kick
pub(crate) async fn kick(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(room_id): Path<String>,
    Json(body): Json<TargetBody>,
) -> ApiResult<Reply<Value>> {
    let room_id = RoomId::parse(room_id)?;
    s.rooms
        .kick(
            &session.user_id,
            &room_id,
            &UserId::parse(body.user_id)?,
            body.reason.as_deref(),
        )
        .await?;
    Ok(Reply(json!({})))
}

/// POST /rooms/{roomId}/ban
pub(crate) async fn ban(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(room_id): Path<String>,
    Json(body): Json<TargetBody>,
) -> ApiResult<Reply<Value>> {
    let room_id = RoomId::parse(room_id)?;
    s.rooms
        .set_membership(
            &session.user_id,
            &room_id,
            &UserId::parse(body.user_id)?,
            Membership::Ban,
            body.reason.as_deref(),
        )
        .await?;
    Ok(Reply(json!({})))
}

/// POST /rooms/{roomId}/unban
pub(crate) async fn unban(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(room_id): Path<String>,
    Json(body): Json<TargetBody>,
) -> ApiResult<Reply<Value>> {
    let room_id = RoomId::parse(room_id)?;
    s.rooms
        .unban(
            &session.user_id,
            &room_id,
            &UserId::parse(body.user_id)?,
            body.reason.as_deref(),
        )
        .await?;
    Ok(Reply(json!({})))
}

/// GET /joined_rooms
pub(crate) async fn joined_rooms(
    State(s): State<AppState>,
    Auth(session): Auth,
) -> ApiResult<Reply<Value>> {
    let rooms = s.rooms.joined_rooms(&session.user_id).await?;
    Ok(Reply(json!({ "joined_rooms": rooms })))
}

/// GET /rooms/{roomId}/joined_members
pub(crate) async fn joined_members(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(room_id): Path<String>,
) -> ApiResult<Reply<Value>> {
    let room_id = RoomId::parse(room_id)?;
    let joined = s.rooms.joined_members(&room_id, &session.user_id).await?;
    Ok(Reply(json!({ "joined": joined })))
}

#[derive(Deserialize)]
pub(crate) struct MembersQuery {
    membership: Option<String>,
    not_membership: Option<String>,
}

/// GET /rooms/{roomId}/members
pub(crate) async fn members(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(room_id): Path<String>,
    Query(q): Query<MembersQuery>,
) -> ApiResult<Reply<Value>> {
    let room_id = RoomId::parse(room_id)?;
    let members = s
        .member_events(
            &session,
            &room_id,
            q.membership.as_deref(),
            q.not_membership.as_deref(),
        )
        .await?;
    let viewer = Some((session.user_id.as_str(), session.device_id.as_str()));
    let mut chunk = Vec::with_capacity(members.len());
    for p in &members {
        chunk.push(s.rooms.client_event(p, viewer, true).await?);
    }
    Ok(Reply(json!({ "chunk": chunk })))
}
