//! Presence: whether a user is online, away (`unavailable`) or offline, their status message
//! and when they were last active. A user sets it with `PUT /presence/{userId}/status`, and a
//! syncing client with `/sync`'s `set_presence` (online unless it says otherwise); others see
//! it with `GET /presence/{userId}/status` and in their /sync when they share a room. What a
//! sync writes is [`on_sync`], a pure rule: a write wakes every waiting /sync, so an online
//! user's activity is written at most once a [`LAST_ACTIVE_GRANULARITY_MS`].

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{json, Value};

use crate::service::users::Session;
use crate::service::{now_ms, Error, Result, Services};
use crate::storage::presence::{PresenceRow, PresenceWrite};
use crate::storage::writer::WriteOp;

/// How stale a stored last activity may be before a sync writes it again; also how long
/// after it a user still counts as `currently_active`.
pub(crate) const LAST_ACTIVE_GRANULARITY_MS: i64 = 60_000;

/// The longest status message kept, in bytes.
pub(crate) const MAX_STATUS_MSG_BYTES: usize = 1024;

/// At most this many users' presence in one /sync.
pub(crate) const MAX_PRESENCE_PER_SYNC: usize = 500;

/// The spec's three states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PresenceState {
    Online,
    Unavailable,
    Offline,
}

impl PresenceState {
    pub(crate) fn parse(text: &str) -> Result<PresenceState> {
        match text {
            "online" => Ok(PresenceState::Online),
            "unavailable" => Ok(PresenceState::Unavailable),
            "offline" => Ok(PresenceState::Offline),
            other => Err(Error::InvalidParam(format!(
                "presence must be online, unavailable or offline, not '{}'",
                other.escape_debug()
            ))),
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PresenceState::Online => "online",
            PresenceState::Unavailable => "unavailable",
            PresenceState::Offline => "offline",
        }
    }
}

/// The presence rows last committed or read, by user, so that a /sync does not read its
/// user's row from the database on every request. The writer's commit hook, which sees every
/// presence write, overwrites; a database read only fills a gap, so a read that raced a newer
/// commit cannot put back the row that commit replaced.
#[derive(Default)]
pub(crate) struct KnownPresence {
    rows: Mutex<HashMap<String, PresenceRow>>,
}

impl KnownPresence {
    /// `write`, committed at `stream`.
    pub(crate) fn committed(&self, stream: i64, write: &PresenceWrite) {
        let row = PresenceRow {
            user_id: write.user_id.clone(),
            presence: write.presence.clone(),
            status_msg: write.status_msg.clone(),
            last_active_ts: write.last_active_ts,
            stream,
        };
        self.lock().insert(row.user_id.clone(), row);
    }

    fn get(&self, user: &str) -> Option<PresenceRow> {
        self.lock().get(user).cloned()
    }

    /// A row read from the database, kept unless a commit came first.
    fn fill(&self, row: PresenceRow) {
        self.lock().entry(row.user_id.clone()).or_insert(row);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, PresenceRow>> {
        self.rows.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a sync of `user` asking for `requested` writes, given what is stored: nothing for
/// `offline` (the spec's "not marked as online by this request"); the state when it changes;
/// for an online user, the time of activity once the stored one is a granule old.
pub(crate) fn on_sync(
    user: &str,
    stored: Option<&PresenceRow>,
    requested: PresenceState,
    now: i64,
) -> Option<PresenceWrite> {
    if requested == PresenceState::Offline {
        return None;
    }
    let changed = stored.is_none_or(|s| s.presence != requested.as_str());
    let stale = stored.is_none_or(|s| now - s.last_active_ts >= LAST_ACTIVE_GRANULARITY_MS);
    let active = requested == PresenceState::Online;
    if !(changed || (active && stale)) {
        return None;
    }
    Some(PresenceWrite {
        user_id: user.to_string(),
        presence: requested.as_str().to_string(),
        status_msg: stored.and_then(|s| s.status_msg.clone()),
        last_active_ts: match (active, stored) {
            (false, Some(s)) => s.last_active_ts,
            _ => now,
        },
    })
}

/// The content clients see (`GET …/status`, `m.presence` events).
pub(crate) fn content(row: &PresenceRow, now: i64) -> Value {
    let ago = (now - row.last_active_ts).max(0);
    let mut out = json!({
        "presence": row.presence,
        "last_active_ago": ago,
        "currently_active": row.presence == "online" && ago < 2 * LAST_ACTIVE_GRANULARITY_MS,
    });
    if let Some(msg) = &row.status_msg {
        out["status_msg"] = json!(msg);
    }
    out
}

impl Services {
    /// `user`'s stored presence, from [`KnownPresence`] when it has it.
    async fn stored_presence(&self, user: &str) -> Result<Option<PresenceRow>> {
        if let Some(row) = self.known_presence.get(user) {
            return Ok(Some(row));
        }
        let row = self.storage.presence(user).await?;
        if let Some(row) = &row {
            self.known_presence.fill(row.clone());
        }
        Ok(row)
    }

    /// PUT /presence/{userId}/status: a user sets their own.
    pub(crate) async fn set_presence(
        &self,
        session: &Session,
        user: &str,
        state: PresenceState,
        status_msg: Option<String>,
    ) -> Result<()> {
        if user != session.user_id.as_str() {
            return Err(Error::Forbidden(
                "you may set only your own presence".into(),
            ));
        }
        if status_msg
            .as_ref()
            .is_some_and(|m| m.len() > MAX_STATUS_MSG_BYTES)
        {
            return Err(Error::InvalidParam(format!(
                "status_msg is longer than {MAX_STATUS_MSG_BYTES} bytes"
            )));
        }
        let stored = self.stored_presence(user).await?;
        let now = now_ms();
        let last_active_ts = match (state, &stored) {
            (PresenceState::Online, _) | (_, None) => now,
            (_, Some(s)) => s.last_active_ts,
        };
        self.writer
            .write(WriteOp::Presence(PresenceWrite {
                user_id: user.to_string(),
                presence: state.as_str().to_string(),
                status_msg,
                last_active_ts,
            }))
            .await?;
        Ok(())
    }

    /// GET /presence/{userId}/status: for oneself and for users one shares a room with.
    pub(crate) async fn presence_status(&self, session: &Session, user: &str) -> Result<Value> {
        let me = session.user_id.as_str();
        if user != me {
            // A user of another server has no account here: sharing a room is what counts.
            if self.is_local_user(user) && self.storage.user(user).await?.is_none() {
                return Err(Error::NotFound(format!("no user {user}")));
            }
            let sharing = self.storage.users_sharing_a_room(me, &[user]).await?;
            if !sharing.contains(user) {
                return Err(Error::Forbidden(format!(
                    "you share no room with {user}: their presence is theirs"
                )));
            }
        }
        Ok(match self.storage.presence(user).await? {
            Some(row) => content(&row, now_ms()),
            None => json!({ "presence": "offline" }),
        })
    }

    /// What a /sync asking for `requested` does to its user's presence. The write (at most
    /// one a granule) is waited for, so that the sync's own response carries it and the
    /// client's next long-poll is not woken by its own presence.
    pub(crate) async fn presence_on_sync(
        &self,
        session: &Session,
        requested: PresenceState,
    ) -> Result<()> {
        if session.appservice.is_some() || requested == PresenceState::Offline {
            return Ok(());
        }
        let stored = self.stored_presence(&session.user_id).await?;
        if let Some(write) = on_sync(&session.user_id, stored.as_ref(), requested, now_ms()) {
            self.writer.write(WriteOp::Presence(write)).await?;
        }
        Ok(())
    }

    /// The `m.presence` events of a /sync of `user` between two positions.
    pub(crate) async fn presence_for_sync(
        &self,
        user: &str,
        after: i64,
        upto: i64,
        limit: usize,
    ) -> Result<Vec<Value>> {
        let rows = self
            .storage
            .presence_changes(user, after, upto, limit.min(MAX_PRESENCE_PER_SYNC) as i64)
            .await?;
        let now = now_ms();
        Ok(rows
            .iter()
            .map(|row| {
                json!({ "type": "m.presence", "sender": row.user_id, "content": content(row, now) })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(presence: &str, last_active_ts: i64) -> PresenceRow {
        PresenceRow {
            user_id: "@a:x".into(),
            presence: presence.into(),
            status_msg: Some("lunch".into()),
            last_active_ts,
            stream: 1,
        }
    }

    #[test]
    fn a_sync_writes_a_changed_state_and_an_online_users_activity_once_a_granule() {
        let now = 1_000_000;
        let first = on_sync("@a:x", None, PresenceState::Online, now).unwrap();
        assert_eq!(
            (first.presence.as_str(), first.last_active_ts),
            ("online", now)
        );
        let fresh = stored("online", now - 1_000);
        assert_eq!(
            on_sync("@a:x", Some(&fresh), PresenceState::Online, now),
            None
        );
        let stale = stored("online", now - LAST_ACTIVE_GRANULARITY_MS);
        let again = on_sync("@a:x", Some(&stale), PresenceState::Online, now).unwrap();
        assert_eq!(again.last_active_ts, now);
        assert_eq!(again.status_msg.as_deref(), Some("lunch"));
    }

    #[test]
    fn going_away_keeps_the_last_activity_and_offline_writes_nothing() {
        let now = 1_000_000;
        let online = stored("online", now - 5);
        let away = on_sync("@a:x", Some(&online), PresenceState::Unavailable, now).unwrap();
        assert_eq!(
            (away.presence.as_str(), away.last_active_ts),
            ("unavailable", now - 5)
        );
        let old_away = stored("unavailable", 0);
        assert_eq!(
            on_sync("@a:x", Some(&old_away), PresenceState::Unavailable, now),
            None
        );
        assert_eq!(
            on_sync("@a:x", Some(&online), PresenceState::Offline, now),
            None
        );
        assert_eq!(on_sync("@a:x", None, PresenceState::Offline, now), None);
    }

    #[test]
    fn a_user_is_currently_active_only_online_and_recently() {
        let now = 1_000_000;
        let c = content(&stored("online", now - 10), now);
        assert_eq!(c["currently_active"], true);
        assert_eq!(c["last_active_ago"], 10);
        assert_eq!(c["status_msg"], "lunch");
        let idle = content(&stored("online", now - 3 * LAST_ACTIVE_GRANULARITY_MS), now);
        assert_eq!(idle["currently_active"], false);
        assert_eq!(
            content(&stored("unavailable", now), now)["currently_active"],
            false
        );
    }

    #[test]
    fn only_the_three_states_parse() {
        assert_eq!(
            PresenceState::parse("unavailable").unwrap(),
            PresenceState::Unavailable
        );
        assert!(PresenceState::parse("busy").is_err());
    }

    #[test]
    fn a_commit_replaces_what_is_known_and_a_late_read_does_not_undo_it() {
        let known = KnownPresence::default();
        assert!(known.get("@a:x").is_none());
        known.fill(stored("online", 5));
        assert_eq!(known.get("@a:x").unwrap().presence, "online");
        let away = PresenceWrite {
            user_id: "@a:x".into(),
            presence: "unavailable".into(),
            status_msg: None,
            last_active_ts: 5,
        };
        known.committed(9, &away);
        // A read made before that commit, filled after it, is older than what is known.
        known.fill(stored("online", 5));
        let row = known.get("@a:x").unwrap();
        assert_eq!((row.presence.as_str(), row.stream), ("unavailable", 9));
    }
}
