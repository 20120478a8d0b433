//! Room creation: the create event, the creator's join, power levels, presets, initial state,
//! name and topic, alias and invites, in the order the spec gives, as one hold of a new room's
//! lock so nothing interleaves.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::timeline::{advance, Built, Draft};
use super::values::{GuestAccess, HistoryVisibility, JoinRule, Membership};
use super::{RoomHead, RoomService};
use crate::service::identifiers::parse_user_id;
use crate::service::keys::signing::random_alnum;
use crate::service::room_version::{self, RoomVersion};
use crate::service::{Error, Result};

/// The body of `POST /createRoom`, as the spec has it.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct CreateRoomBody {
    pub(crate) preset: Option<String>,
    pub(crate) visibility: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) topic: Option<String>,
    pub(crate) room_alias_name: Option<String>,
    #[serde(default)]
    pub(crate) invite: Vec<String>,
    #[serde(default)]
    pub(crate) initial_state: Vec<InitialState>,
    pub(crate) power_level_content_override: Option<Map<String, Value>>,
    pub(crate) creation_content: Option<Map<String, Value>>,
    #[serde(default)]
    pub(crate) is_direct: bool,
    pub(crate) room_version: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct InitialState {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) state_key: String,
    pub(crate) content: Value,
}

impl TryFrom<CreateRoomBody> for CreateRoom {
    type Error = Error;

    fn try_from(body: CreateRoomBody) -> Result<CreateRoom> {
        let visibility_public = match body.visibility.as_deref() {
            None | Some("private") => false,
            Some("public") => true,
            Some(other) => {
                return Err(Error::InvalidParam(format!("unknown visibility '{other}'")))
            }
        };
        Ok(CreateRoom {
            preset: body.preset,
            visibility_public,
            name: body.name,
            topic: body.topic,
            room_alias_name: body.room_alias_name,
            invite: body.invite,
            initial_state: body
                .initial_state
                .into_iter()
                .map(|st| (st.kind, st.state_key, st.content))
                .collect(),
            power_level_content_override: body.power_level_content_override,
            creation_content: body.creation_content,
            is_direct: body.is_direct,
            room_version: body.room_version,
        })
    }
}

/// A createRoom request, already parsed from JSON.
#[derive(Debug, Default, Clone)]
pub(crate) struct CreateRoom {
    pub(crate) preset: Option<String>,
    pub(crate) visibility_public: bool,
    pub(crate) name: Option<String>,
    pub(crate) topic: Option<String>,
    pub(crate) room_alias_name: Option<String>,
    pub(crate) invite: Vec<String>,
    pub(crate) initial_state: Vec<(String, String, Value)>,
    pub(crate) power_level_content_override: Option<Map<String, Value>>,
    pub(crate) creation_content: Option<Map<String, Value>>,
    pub(crate) is_direct: bool,
    pub(crate) room_version: Option<String>,
}

impl RoomService {
    /// Creates a room as `creator` and answers its id.
    pub(crate) async fn create_room(&self, creator: &str, req: CreateRoom) -> Result<String> {
        let version = match &req.room_version {
            None => room_version::DEFAULT,
            Some(id) => RoomVersion::get(id).ok_or_else(|| {
                Error::UnsupportedRoomVersion(format!("room version {id} is not supported"))
            })?,
        };
        let preset = req.preset.clone().unwrap_or_else(|| {
            if req.visibility_public {
                "public_chat".into()
            } else {
                "private_chat".into()
            }
        });
        if !matches!(
            preset.as_str(),
            "public_chat" | "private_chat" | "trusted_private_chat"
        ) {
            return Err(Error::InvalidParam(format!("unknown preset '{preset}'")));
        }
        for user in &req.invite {
            parse_user_id(user)?;
        }
        let alias = match &req.room_alias_name {
            Some(local) => {
                if !valid_alias_localpart(local) {
                    return Err(Error::InvalidParam(format!(
                        "'{local}' is not a valid alias name"
                    )));
                }
                Some(format!("#{local}:{}", self.server_name))
            }
            None => None,
        };

        // The create event is built first: from version 12 the room id is its hash.
        let create = self.build_create(creator, &req, version)?;
        let room_id = create.pdu.room_id.clone();
        // The alias is claimed first, so two creations asking for it cannot both build a room.
        if let Some(alias) = &alias {
            if !self.storage.create_alias(alias, &room_id, creator).await? {
                return Err(Error::RoomInUse(format!("{alias} is already in use")));
            }
        }
        let result = self
            .create_room_with_id(creator, &room_id, create, &req, &preset, &alias)
            .await;
        if result.is_err() {
            if let Some(alias) = &alias {
                self.storage.delete_alias(alias).await?;
            }
        }
        result.map(|()| room_id)
    }

    /// The create event of a new room, built on an empty head: version 12 makes the room id of
    /// its hash; earlier versions get a random one. Its timestamp is later than that of every
    /// other room created since start, so that two rooms created at once with the same
    /// content by the same user still get two ids.
    fn build_create(
        &self,
        creator: &str,
        req: &CreateRoom,
        version: &'static RoomVersion,
    ) -> Result<Built> {
        let mut content = req.creation_content.clone().unwrap_or_default();
        if version.create_names_creator {
            content.insert("creator".into(), json!(creator));
        } else {
            // Ignored from version 11 (the sender is the creator): not sent, as Synapse does.
            content.remove("creator");
        }
        content.insert("room_version".into(), json!(version.id));
        if let Some(additional) = content.get("additional_creators") {
            let valid = additional.as_array().is_some_and(|users| {
                users
                    .iter()
                    .all(|u| u.as_str().is_some_and(|u| parse_user_id(u).is_ok()))
            });
            if !valid {
                return Err(Error::InvalidParam(
                    "additional_creators must be a list of user ids".into(),
                ));
            }
        }
        let room_id = if version.room_id_is_create_hash {
            String::new()
        } else {
            format!("!{}:{}", random_alnum(18), self.server_name)
        };
        let mut draft = Draft::new(creator, "m.room.create", Some(""), Value::Object(content));
        draft.ts = Some(self.next_create_ts());
        let mut scratch = RoomHead::empty();
        self.build(
            &mut scratch,
            &room_id,
            draft,
            Some((version.id.to_string(), creator.to_string())),
        )
    }

    async fn create_room_with_id(
        &self,
        creator: &str,
        room_id: &str,
        create: Built,
        req: &CreateRoom,
        preset: &str,
        alias: &Option<String>,
    ) -> Result<()> {
        let mut guard = self.lock_new_head(room_id).await?;
        let result = self
            .build_room(&mut guard, room_id, create, creator, req, preset, alias)
            .await;
        let built = match result {
            Ok(b) => b,
            Err(e) => {
                self.invalidate(room_id);
                return Err(e);
            }
        };
        self.commit_all(&guard, room_id, built).await?;
        drop(guard);
        if req.visibility_public {
            self.storage.set_room_public(room_id, true).await?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn build_room(
        &self,
        head: &mut RoomHead,
        room_id: &str,
        create: Built,
        creator: &str,
        req: &CreateRoom,
        preset: &str,
        alias: &Option<String>,
    ) -> Result<Vec<Built>> {
        let version = create.pdu.version;
        advance(head, &create.pdu);
        let mut built = vec![create];

        let profile = self.storage.user(creator).await?;
        let mut join = json!({"membership": Membership::Join.as_str()});
        if let Some(p) = &profile {
            if let Some(d) = &p.displayname {
                join["displayname"] = json!(d);
            }
            if let Some(a) = &p.avatar_url {
                join["avatar_url"] = json!(a);
            }
        }
        built.push(self.build(
            head,
            room_id,
            Draft::new(creator, "m.room.member", Some(creator), join),
            None,
        )?);

        // Version 12's creators hold infinite power, and power levels may not name them.
        let creators = head.state.creators();
        let mut users = Map::new();
        if !version.privileged_creators {
            users.insert(creator.to_string(), json!(100));
        }
        if preset == "trusted_private_chat" {
            for u in req.invite.iter().filter(|u| !creators.contains(u)) {
                users.insert(u.clone(), json!(100));
            }
        }
        // Only a creator may upgrade a version 12 room unless its levels say otherwise.
        let tombstone = if version.privileged_creators {
            150
        } else {
            100
        };
        let mut pl = json!({
            "users": users,
            "users_default": 0,
            "events": {
                "m.room.name": 50,
                "m.room.power_levels": 100,
                "m.room.history_visibility": 100,
                "m.room.canonical_alias": 50,
                "m.room.avatar": 50,
                "m.room.tombstone": tombstone,
                "m.room.server_acl": 100,
                "m.room.encryption": 100
            },
            "events_default": 0,
            "state_default": 50,
            "ban": 50,
            "kick": 50,
            "redact": 50,
            "invite": 0
        });
        if let Some(o) = &req.power_level_content_override {
            for (k, v) in o {
                pl[k] = v.clone();
            }
        }
        built.push(self.build(
            head,
            room_id,
            Draft::new(creator, "m.room.power_levels", Some(""), pl),
            None,
        )?);

        if let Some(alias) = alias {
            built.push(self.build(
                head,
                room_id,
                Draft::new(
                    creator,
                    "m.room.canonical_alias",
                    Some(""),
                    json!({ "alias": alias }),
                ),
                None,
            )?);
        }

        let join_rule = if preset == "public_chat" {
            JoinRule::Public
        } else {
            JoinRule::Invite
        };
        let mut preset_state = vec![
            (
                "m.room.join_rules",
                json!({ "join_rule": join_rule.as_str() }),
            ),
            (
                "m.room.history_visibility",
                json!({"history_visibility": HistoryVisibility::Shared.as_str()}),
            ),
        ];
        if preset != "public_chat" {
            let guests = GuestAccess::CanJoin.as_str();
            preset_state.push(("m.room.guest_access", json!({ "guest_access": guests })));
        }
        for (kind, content) in preset_state {
            let overridden = req
                .initial_state
                .iter()
                .any(|(k, sk, _)| k == kind && sk.is_empty());
            if !overridden {
                built.push(self.build(
                    head,
                    room_id,
                    Draft::new(creator, kind, Some(""), content),
                    None,
                )?);
            }
        }
        for (kind, state_key, content) in &req.initial_state {
            if kind == "m.room.member" || kind == "m.room.create" || kind == "m.room.power_levels" {
                return Err(Error::InvalidParam(format!(
                    "initial_state may not set {kind}"
                )));
            }
            built.push(self.build(
                head,
                room_id,
                Draft::new(creator, kind, Some(state_key), content.clone()),
                None,
            )?);
        }
        if let Some(name) = &req.name {
            built.push(self.build(
                head,
                room_id,
                Draft::new(creator, "m.room.name", Some(""), json!({ "name": name })),
                None,
            )?);
        }
        if let Some(topic) = &req.topic {
            built.push(self.build(
                head,
                room_id,
                Draft::new(creator, "m.room.topic", Some(""), json!({ "topic": topic })),
                None,
            )?);
        }
        for user in &req.invite {
            let mut content = json!({"membership": Membership::Invite.as_str()});
            if req.is_direct {
                content["is_direct"] = json!(true);
            }
            if let Some(p) = self.storage.user(user).await? {
                if let Some(d) = p.displayname {
                    content["displayname"] = json!(d);
                }
            }
            built.push(self.build(
                head,
                room_id,
                Draft::new(creator, "m.room.member", Some(user), content),
                None,
            )?);
        }
        Ok(built)
    }
}

pub(crate) fn valid_alias_localpart(local: &str) -> bool {
    !local.is_empty()
        && local.len() <= 200
        && !local.contains(':')
        && !local
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '#')
}
