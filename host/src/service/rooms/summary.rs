//! What a room is, for those who may look before joining: its summary
//! (`/room_summary/{roomIdOrAlias}`) and a space's tree of rooms (`/hierarchy`). Who may look
//! is [`previewable`]: members and invitees, and anyone when the room is public, knockable or
//! world readable. Only rooms this server knows are described (no federation yet).

use std::collections::HashSet;

use serde_json::{json, Value};

use super::alias::directory_entry;
use super::state::RoomState;
use super::values::Membership;
use super::RoomService;
use crate::service::identifiers::{RoomId, RoomOrAlias, UserId};
use crate::service::{Error, Result};

/// Rooms per hierarchy page unless asked otherwise, and the most a page holds.
pub(crate) const DEFAULT_HIERARCHY_LIMIT: usize = 50;
const MAX_HIERARCHY_LIMIT: usize = 100;
/// How deep a hierarchy goes unless asked otherwise, and at most.
const DEFAULT_MAX_DEPTH: usize = 5;
const MAX_DEPTH: usize = 10;

/// A room's summary from its state: the directory's fields and its type, version,
/// encryption and, for a restricted room, the rooms whose members may join it.
pub(crate) fn summary_entry(room_id: &str, state: &RoomState) -> Value {
    let mut entry = directory_entry(room_id, state);
    let content = |kind: &str| state.get(kind, "").map(|e| e.content());
    if let Some(create) = content("m.room.create") {
        if let Some(kind) = create["type"].as_str() {
            entry["room_type"] = json!(kind);
        }
        entry["room_version"] = json!(create["room_version"].as_str().unwrap_or("1"));
    }
    if let Some(algorithm) =
        content("m.room.encryption").and_then(|c| c["algorithm"].as_str().map(str::to_string))
    {
        entry["encryption"] = json!(algorithm);
    }
    if let Some(rules) = content("m.room.join_rules") {
        let allowed: Vec<&str> = rules["allow"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["type"] == "m.room_membership")
            .filter_map(|a| a["room_id"].as_str())
            .collect();
        if !allowed.is_empty() {
            entry["allowed_room_ids"] = json!(allowed);
        }
    }
    entry
}

/// Whether someone with `membership` may see the summary `entry`.
pub(crate) fn previewable(entry: &Value, membership: Option<Membership>) -> bool {
    matches!(
        membership,
        Some(Membership::Join | Membership::Invite | Membership::Knock)
    ) || matches!(
        entry["join_rule"].as_str(),
        Some("public" | "knock" | "knock_restricted")
    ) || entry["world_readable"] == true
}

/// What `/hierarchy` asks for.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct HierarchyRequest {
    pub(crate) suggested_only: bool,
    pub(crate) limit: Option<usize>,
    pub(crate) max_depth: Option<usize>,
    /// How many rooms earlier pages held.
    pub(crate) skip: usize,
}

impl RoomService {
    /// A room's summary as `user` (none: unauthenticated) may see it; `NotFound` otherwise.
    pub(crate) async fn room_summary(
        &self,
        user: Option<&UserId>,
        target: &RoomOrAlias,
    ) -> Result<Value> {
        let room_id = self.resolve_room(target).await?;
        let (entry, membership) = self.summary_for(&room_id, user).await?;
        if !previewable(&entry, membership) {
            return Err(Error::NotFound("room not found".into()));
        }
        let mut entry = entry;
        if let Some(m) = membership {
            entry["membership"] = json!(m.as_str());
        }
        Ok(entry)
    }

    async fn summary_for(
        &self,
        room_id: &str,
        user: Option<&UserId>,
    ) -> Result<(Value, Option<Membership>)> {
        let entry = self
            .read_state(room_id, |state| summary_entry(room_id, state))
            .await?;
        let membership = match user {
            Some(u) => self.membership(room_id, u).await?,
            None => None,
        };
        Ok((entry, membership))
    }

    /// The `m.space.child` events of a room that name a child (a non-empty `via`), stripped,
    /// with their `origin_server_ts`.
    async fn space_children(&self, room_id: &str, suggested_only: bool) -> Result<Vec<Value>> {
        let state = self.current_state(room_id).await?;
        let mut children: Vec<Value> = state
            .iter()
            .filter(|((kind, _), _)| kind == "m.space.child")
            .filter(|(_, p)| p.content()["via"].as_array().is_some_and(|v| !v.is_empty()))
            .filter(|(_, p)| !suggested_only || p.content()["suggested"] == true)
            .map(|((_, key), p)| {
                json!({
                    "type": "m.space.child",
                    "state_key": key,
                    "content": p.content(),
                    "sender": p.sender,
                    "origin_server_ts": p.origin_server_ts(),
                })
            })
            .collect();
        // The spec's order: by `order` when set, then by when the child was added, then by id.
        children.sort_by(|a, b| {
            let order = |v: &Value| v["content"]["order"].as_str().map(str::to_string);
            let key = |v: &Value| {
                (
                    order(v).is_none(),
                    order(v),
                    v["origin_server_ts"].as_i64(),
                    v["state_key"].as_str().map(str::to_string),
                )
            };
            key(a).cmp(&key(b))
        });
        Ok(children)
    }

    /// GET /hierarchy: the space tree under `root`, depth first, as `user` may see it.
    pub(crate) async fn hierarchy(
        &self,
        user: &UserId,
        root: &RoomId,
        req: HierarchyRequest,
    ) -> Result<Value> {
        let (entry, membership) = self.summary_for(root, Some(user)).await?;
        if !previewable(&entry, membership) {
            return Err(Error::Forbidden(format!(
                "you may not see the space {root}"
            )));
        }
        let limit = req
            .limit
            .unwrap_or(DEFAULT_HIERARCHY_LIMIT)
            .clamp(1, MAX_HIERARCHY_LIMIT);
        let max_depth = req.max_depth.unwrap_or(DEFAULT_MAX_DEPTH).min(MAX_DEPTH);
        let mut rooms = Vec::new();
        let mut seen = HashSet::new();
        let mut stack = vec![(root.to_string(), 0usize)];
        let mut index = 0usize;
        while let Some((room_id, depth)) = stack.pop() {
            if !seen.insert(room_id.clone()) {
                continue;
            }
            let described = match self.summary_for(&room_id, Some(user)).await {
                Ok(d) => d,
                // A child this server does not know: nothing to say of it without federation.
                Err(Error::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            let (mut entry, membership) = described;
            if !previewable(&entry, membership) {
                continue;
            }
            let children = self.space_children(&room_id, req.suggested_only).await?;
            if depth < max_depth {
                for child in children.iter().rev() {
                    if let Some(id) = child["state_key"].as_str() {
                        stack.push((id.to_string(), depth + 1));
                    }
                }
            }
            if index >= req.skip {
                entry["children_state"] = json!(children);
                rooms.push(entry);
            }
            index += 1;
            if rooms.len() == limit {
                break;
            }
        }
        let mut body = json!({ "rooms": rooms });
        if !stack.is_empty() && index == req.skip + limit {
            body["next_batch"] = json!(index.to_string());
        }
        Ok(body)
    }
}

/// Whether another server may see the summary `entry`: what anyone may, and a restricted
/// room too (its `allowed_room_ids` let that server decide for its users).
fn previewable_by_server(entry: &Value) -> bool {
    previewable(entry, None)
        || matches!(
            entry["join_rule"].as_str(),
            Some("restricted" | "knock_restricted")
        )
}

impl RoomService {
    /// GET /_matrix/federation/v1/hierarchy/{roomId}: the room and its direct children as
    /// another server may see them; children it may not see are named in
    /// `inaccessible_children`, children this server does not know are left out.
    pub(crate) async fn hierarchy_for_server(
        &self,
        root: &RoomId,
        suggested_only: bool,
    ) -> Result<Value> {
        let (mut room, _) = self.summary_for(root, None).await?;
        if !previewable_by_server(&room) {
            return Err(Error::NotFound(format!(
                "the space {root} is not visible from other servers"
            )));
        }
        let children_state = self.space_children(root, suggested_only).await?;
        let mut children = Vec::new();
        let mut inaccessible = Vec::new();
        for child in &children_state {
            let Some(id) = child["state_key"].as_str() else {
                continue;
            };
            match self.summary_for(id, None).await {
                Ok((entry, _)) if previewable_by_server(&entry) => children.push(entry),
                Ok(_) => inaccessible.push(id.to_string()),
                Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        room["children_state"] = json!(children_state);
        Ok(json!({
            "room": room,
            "children": children,
            "inaccessible_children": inaccessible,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_invitees_and_anyone_for_open_or_readable_rooms_may_look() {
        let private = json!({ "join_rule": "invite", "world_readable": false });
        assert!(!previewable(&private, None));
        assert!(!previewable(&private, Some(Membership::Leave)));
        assert!(!previewable(&private, Some(Membership::Ban)));
        assert!(previewable(&private, Some(Membership::Invite)));
        assert!(previewable(&private, Some(Membership::Join)));
        for rule in ["public", "knock", "knock_restricted"] {
            assert!(previewable(&json!({ "join_rule": rule }), None), "{rule}");
        }
        assert!(!previewable(&json!({ "join_rule": "restricted" }), None));
        let readable = json!({ "join_rule": "invite", "world_readable": true });
        assert!(previewable(&readable, None));
    }
}
