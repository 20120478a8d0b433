//! PDUs from other servers, before they reach a room: the checks of the PDU itself (its
//! size, room, signatures and content hash), then what it needs stored first: its missing
//! `prev_events` (asked with `/get_missing_events`, bounded) and auth events (asked with
//! `/event`, checked and kept as outliers). The room service then takes it into the graph.
//! Before asking anyone, an event waits for a join of its room in progress and for this
//! server's own queued writes, which it may name.

use std::collections::HashSet;

use serde_json::{json, Value};

use super::server_keys::signature_valid;
use super::FederationError;
use crate::service::identifiers::UserId;
use crate::service::keys::canonical_json::to_canonical;
use crate::service::keys::redaction;
use crate::service::keys::signing::{content_hash, reference_event_id};
use crate::service::room_version::RoomVersion;
use crate::service::rooms::pdu::listed_ids;
use crate::service::rooms::remote::{Incoming, Verdict};
use crate::service::rooms::timeline::MAX_EVENT_BYTES;
use crate::service::{Error, Result, Services};
use crate::storage::graph::{Standing, StoredPdu};

/// Missing events one `/get_missing_events` asks for.
const MISSING_PER_ASK: usize = 50;
/// Rounds of `/get_missing_events` for one incoming event: 10 × 50 events of history at most.
const MISSING_ROUNDS: usize = 10;
/// How long an event of a room being joined waits for the join to be stored.
const JOIN_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
/// Auth events fetched for one incoming event at most.
const MAX_FETCHED_AUTH: usize = 200;

impl Services {
    /// Checks a PDU of room version `version`: answers it with its event id, redacted if its
    /// content hash does not match; an error says why it is not a PDU at all (a bad size,
    /// shape or signature).
    pub(crate) async fn check_pdu(
        &self,
        mut json: Value,
        version: &'static RoomVersion,
    ) -> std::result::Result<Incoming, String> {
        if !json.is_object() {
            return Err("a PDU must be a JSON object".into());
        }
        if let Some(obj) = json.as_object_mut() {
            obj.remove("unsigned");
        }
        if to_canonical(&json).len() > MAX_EVENT_BYTES {
            return Err(format!("a PDU may be {MAX_EVENT_BYTES} bytes at most"));
        }
        let sender = json["sender"].as_str().ok_or("a PDU needs a sender")?;
        let sender = UserId::parse(sender).map_err(|e| e.to_string())?;
        for key in ["type", "origin_server_ts", "depth"] {
            if json.get(key).is_none() {
                return Err(format!("a PDU needs {key}"));
            }
        }
        for key in ["prev_events", "auth_events"] {
            if !json[key].is_array() {
                return Err(format!("a PDU needs {key}"));
            }
        }
        let event_id = reference_event_id(&json, version);
        // The sender's server signs every event; a restricted join is signed by the server
        // that authorised it too.
        let mut signers = vec![sender.server_name().to_string()];
        if json["type"] == "m.room.member" && json["content"]["membership"] == "join" {
            if let Some(via) = json["content"]["join_authorised_via_users_server"].as_str() {
                if let Ok(via) = UserId::parse(via) {
                    signers.push(via.server_name().to_string());
                }
            }
        }
        let redacted = redaction::redact(&json, &version.redaction);
        for server in signers {
            self.check_signed_by(&redacted, &server).await?;
        }
        let hash_matches = json["hashes"]["sha256"].as_str() == Some(&content_hash(&json));
        if !hash_matches {
            tracing::info!(%event_id, "an event's content hash does not match: storing it redacted");
            json = redacted;
        }
        Ok(Incoming {
            event_id,
            json,
            version,
        })
    }

    /// Whether `server` signed `redacted` (the redacted PDU) with a key of its that we have
    /// or can fetch.
    async fn check_signed_by(
        &self,
        redacted: &Value,
        server: &str,
    ) -> std::result::Result<(), String> {
        let Some(sigs) = redacted["signatures"][server].as_object() else {
            return Err(format!("the event is not signed by {server}"));
        };
        for key_id in sigs.keys().filter(|k| k.starts_with("ed25519:")) {
            match self.federation.verify_key(server, key_id).await {
                Ok(vk) if signature_valid(redacted, server, key_id, &vk) => return Ok(()),
                Ok(_) => return Err(format!("{server}'s signature {key_id} does not verify")),
                Err(e) => tracing::info!(server, key_id, error = %e, "no key to verify an event"),
            }
        }
        Err(format!("no signature of {server} could be verified"))
    }

    /// Takes one PDU that `origin` sent into its room (see the module); answers what became
    /// of it. `Err` is an event this server cannot take now (an unknown room, history it
    /// cannot get), which the sender may try again.
    pub(crate) async fn receive_pdu(&self, origin: &str, pdu: Value) -> Result<Verdict> {
        let room_id = pdu["room_id"]
            .as_str()
            .ok_or_else(|| Error::BadJson("a PDU needs a room_id".into()))?
            .to_string();
        // A room being joined is stored (or, joined again, stored anew) once the join is: its
        // events wait for that, rather than be refused or race the join's own writes.
        self.federation.joining.wait(&room_id, JOIN_WAIT).await;
        let version = self.room_version_of(&room_id).await?;
        self.check_acl(&room_id, origin).await?;
        let incoming = self.check_pdu(pdu, version).await.map_err(Error::BadJson)?;
        self.receive_checked(origin, &room_id, incoming).await
    }

    /// Takes a checked PDU of `origin` into the room `room_id`, once what it needs is stored.
    pub(crate) async fn receive_checked(
        &self,
        origin: &str,
        room_id: &str,
        incoming: Incoming,
    ) -> Result<Verdict> {
        if self.is_placed(&incoming.event_id).await? {
            return Ok(Verdict::Known);
        }
        self.fetch_missing_prevs(origin, room_id, &incoming).await?;
        self.fetch_missing_auth(origin, room_id, &incoming).await?;
        self.rooms.accept_remote(room_id, incoming).await
    }

    /// The version of a room this server has; `NotFound` for a room it does not have.
    pub(crate) async fn room_version_of(&self, room_id: &str) -> Result<&'static RoomVersion> {
        match self.rooms.read_state(room_id, |s| s.version()).await? {
            Some(version) => Ok(version),
            None if !self.storage.room_exists(room_id).await? => {
                Err(Error::NotFound(format!("this server is not in {room_id}")))
            }
            None => Err(Error::UnsupportedRoomVersion(
                "the room's version is not supported".into(),
            )),
        }
    }

    /// `Forbidden` when the room's `m.room.server_acl` denies `server`.
    pub(crate) async fn check_acl(&self, room_id: &str, server: &str) -> Result<()> {
        let acl = self
            .rooms
            .state_content(room_id, "m.room.server_acl", "")
            .await?;
        match acl {
            Some(content) if !super::acl::server_allowed(server, &content) => Err(
                Error::Forbidden(format!("the room's server ACL denies {server}")),
            ),
            _ => Ok(()),
        }
    }

    /// Asks `origin` for the events between the room's extremities and `event`, as long as
    /// some of its prev events are missing, and takes them in, oldest first.
    async fn fetch_missing_prevs(
        &self,
        origin: &str,
        room_id: &str,
        event: &Incoming,
    ) -> Result<()> {
        let mut latest = vec![event.event_id.clone()];
        let mut seen: HashSet<String> = HashSet::new();
        let prevs = listed_ids(&event.json, "prev_events");
        if self.lacking_after_flush(&prevs, placed).await?.is_empty() {
            return Ok(());
        }
        for _ in 0..MISSING_ROUNDS {
            if self.unplaced(&prevs).await?.is_empty() {
                return Ok(());
            }
            let extremities = self.rooms.extremities(room_id).await?;
            let body = json!({
                "earliest_events": extremities,
                "latest_events": latest,
                "limit": MISSING_PER_ASK,
                "min_depth": 0,
            });
            let uri = format!(
                "/_matrix/federation/v1/get_missing_events/{}",
                super::client::path_segment(room_id)
            );
            let answer = match self.federation.client()?.post(origin, &uri, &body).await {
                Ok(a) => a,
                Err(e) => {
                    tracing::info!(origin, room_id, error = %e, "get_missing_events failed");
                    break;
                }
            };
            let mut events: Vec<Value> = answer["events"].as_array().cloned().unwrap_or_default();
            if events.is_empty() {
                break;
            }
            events.sort_by_key(|e| e["depth"].as_i64().unwrap_or(0));
            let version = event.version;
            let mut oldest = None;
            for json in events {
                let incoming = match self.check_pdu(json, version).await {
                    Ok(i) => i,
                    Err(why) => {
                        tracing::info!(origin, why, "a missing event sent back is not valid");
                        continue;
                    }
                };
                if !seen.insert(incoming.event_id.clone()) {
                    continue;
                }
                if oldest.is_none() {
                    oldest = Some(incoming.event_id.clone());
                }
                if self.is_placed(&incoming.event_id).await? {
                    continue;
                }
                self.fetch_missing_auth(origin, room_id, &incoming).await?;
                if !self
                    .unplaced(&listed_ids(&incoming.json, "prev_events"))
                    .await?
                    .is_empty()
                {
                    // Older history is missing still: ask again from here next round.
                    continue;
                }
                self.rooms.accept_remote(room_id, incoming).await?;
            }
            match oldest {
                Some(o) => latest = vec![o],
                None => break,
            }
        }
        // Whatever is still missing: the event goes on with the prev events that are known.
        if self.unplaced(&prevs).await?.len() == prevs.len() {
            return Err(Error::NotFound(format!(
                "none of the prev_events of {} could be had from {origin}",
                event.event_id
            )));
        }
        Ok(())
    }

    /// Fetches the auth events of `event` this server does not have (and theirs), checks
    /// them and keeps them as outliers.
    pub(crate) async fn fetch_missing_auth(
        &self,
        origin: &str,
        room_id: &str,
        event: &Incoming,
    ) -> Result<()> {
        let mut todo = self
            .lacking_after_flush(&listed_ids(&event.json, "auth_events"), stored)
            .await?;
        let mut fetched: Vec<Incoming> = Vec::new();
        let mut seen = HashSet::new();
        while let Some(id) = todo.pop() {
            if !seen.insert(id.clone()) || seen.len() > MAX_FETCHED_AUTH {
                continue;
            }
            let uri = format!(
                "/_matrix/federation/v1/event/{}",
                super::client::path_segment(&id)
            );
            let answer = self.federation.client()?.get(origin, &uri).await?;
            let Some(json) = answer["pdus"].as_array().and_then(|p| p.first()).cloned() else {
                continue;
            };
            let incoming = self
                .check_pdu(json, event.version)
                .await
                .map_err(Error::BadJson)?;
            if incoming.event_id != id {
                return Err(Error::from(FederationError::BadResponse {
                    server: origin.to_string(),
                    why: format!("asked for {id}, got {}", incoming.event_id),
                }));
            }
            todo.extend(
                self.missing(&listed_ids(&incoming.json, "auth_events"))
                    .await?,
            );
            fetched.push(incoming);
        }
        // Oldest first, so that each one's auth events are stored before it.
        fetched.sort_by_key(|e| e.json["depth"].as_i64().unwrap_or(0));
        for incoming in fetched {
            if self.rooms.store_outlier(room_id, &incoming).await? == Standing::Rejected {
                tracing::info!(event_id = %incoming.event_id, "a fetched auth event was rejected");
            }
        }
        Ok(())
    }

    /// Whether `event_id` is stored with its place in the graph (see [`Standing::placed`]).
    async fn is_placed(&self, event_id: &str) -> Result<bool> {
        Ok(self
            .storage
            .stored_pdu(event_id)
            .await?
            .is_some_and(|s| s.standing.placed()))
    }

    /// The ids of `ids` that are not stored with their place in the graph.
    async fn unplaced(&self, ids: &[String]) -> Result<Vec<String>> {
        self.lacking(ids, placed).await
    }

    /// The ids of `ids` that are not stored.
    async fn missing(&self, ids: &[String]) -> Result<Vec<String>> {
        self.lacking(ids, stored).await
    }

    /// [`Services::lacking`], asked again after this server's queued writes are committed
    /// when some ids lack: an event built on a template of ours (a join on `make_join`'s)
    /// names the room's head as it was, whose newest events may be queued still. They are
    /// waited for rather than asked of the sender.
    async fn lacking_after_flush(
        &self,
        ids: &[String],
        enough: fn(&StoredPdu) -> bool,
    ) -> Result<Vec<String>> {
        let lacking = self.lacking(ids, enough).await?;
        if lacking.is_empty() {
            return Ok(lacking);
        }
        self.writer.flush().await?;
        self.lacking(&lacking, enough).await
    }

    /// The ids of `ids` not stored as `enough` asks.
    async fn lacking(&self, ids: &[String], enough: fn(&StoredPdu) -> bool) -> Result<Vec<String>> {
        let stored = self.storage.stored_pdus(ids).await?;
        Ok(ids
            .iter()
            .filter(|id| !stored.get(*id).is_some_and(enough))
            .cloned()
            .collect())
    }
}

/// Stored with its place in the graph (see [`Standing::placed`]): what a prev event must be.
fn placed(s: &StoredPdu) -> bool {
    s.standing.placed()
}

/// Stored at all: what an auth event must be.
fn stored(_: &StoredPdu) -> bool {
    true
}
