//! One call's state in kv, keyed by its call id, so that several calls run at once and a
//! restarted server or plugin picks each up where it was: the parties, the IVR's session
//! credentials, where the caller is in the menu, the events already handled. Beside it, an
//! index from room and caller to the call (typed digits find their call through it), and a
//! marker per ended call so that a late duplicate of its invite does not start it again.

use plugboard_sdk::prelude::*;
use serde::{Deserialize, Serialize};

use crate::credentials::Credentials;

const CALL: &str = "call/";
const BY_CALLER: &str = "caller/";
const ENDED: &str = "ended/";
const TIMEOUT: &str = "timeout/";
const SWEEP_TIMER: &str = "sweep-ended";
const SWEEP_ARMED: &str = "sweep-armed";

/// How many handled event ids a call remembers to drop duplicates.
const SEEN: usize = 32;
/// How many of the caller's ICE candidates a call keeps for a media server.
pub const MAX_CANDIDATES: usize = 64;
/// How long an ended call's id is remembered at most, when its invite lives longer.
const FORGET_MAX_MS: u64 = 60 * 60 * 1000;
/// How often the markers of ended calls are swept, and how many one sweep reads: one timer
/// for all of them, so that many short calls cannot run the plugin out of timers.
const SWEEP_EVERY_MS: u64 = 10 * 60 * 1000;
const SWEEP_BATCH: u32 = 500;
/// Keys are at most this long in the host's store.
const MAX_KEY: usize = 512;

/// Where the caller is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// In a menu, waiting for a key.
    Menu,
    /// Leaving a message: the caller's next message is the voicemail.
    Voicemail,
}

/// One ICE candidate of the caller, kept for a media server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCandidate {
    /// `candidate:…`, or empty for the end of candidates.
    pub candidate: String,
    /// Its stream.
    pub sdp_mid: Option<String>,
    /// Its m-line.
    pub sdp_m_line_index: Option<u32>,
}

/// A call in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// The caller's call id.
    pub call_id: String,
    /// Its room.
    pub room_id: String,
    /// The calling user.
    pub caller: String,
    /// The calling device's party id (none from a version 0 caller).
    pub caller_party: Option<String>,
    /// The IVR's party id in this call.
    pub party_id: String,
    /// The invite's `origin_server_ts` and `lifetime`: until when a duplicate of it matters.
    pub invite_ts: u64,
    /// The invite's lifetime.
    pub lifetime: u64,
    /// The IVR's ICE credentials and fingerprint.
    pub credentials: Credentials,
    /// The menu the caller is in.
    pub menu: String,
    /// How often the current menu's prompt was played since the last key.
    pub prompts: u32,
    /// Menu or voicemail.
    pub stage: Stage,
    /// One more each time the time-out is armed; a timer of an older one is stale.
    pub timer: u64,
    /// Whether the caller selected the IVR's answer (`m.call.select_answer`).
    pub selected: bool,
    /// The caller's ICE candidates.
    pub candidates: Vec<StoredCandidate>,
    /// Candidates past [`MAX_CANDIDATES`], counted, not kept.
    pub dropped_candidates: u64,
    /// The latest event ids handled for this call.
    pub seen: Vec<String>,
}

/// Where a time-out timer points: the call and the arming it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerPayload {
    /// The call.
    pub call_id: String,
    /// [`Call::timer`] when it was armed.
    pub generation: u64,
}

/// The grammar of call and party ids: 1 to 255 of `[0-9a-zA-Z._~-]`.
pub fn valid_voip_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 255
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b))
}

fn call_key(call_id: &str) -> String {
    format!("{CALL}{call_id}")
}

fn caller_key(room: &str, user: &str) -> String {
    format!("{BY_CALLER}{room}|{user}")
}

/// Whether a call of `user` in `room` fits the store's keys.
pub fn keys_fit(room: &str, user: &str) -> bool {
    caller_key(room, user).len() <= MAX_KEY
}

/// The timer key of a call's time-out.
pub fn timeout_key(call_id: &str) -> String {
    format!("{TIMEOUT}{call_id}")
}

/// The call id of a time-out timer key.
pub fn timeout_call(key: &str) -> Option<&str> {
    key.strip_prefix(TIMEOUT)
}

/// Whether a timer key is the sweep of ended calls.
pub fn is_sweep(key: &str) -> bool {
    key == SWEEP_TIMER
}

/// A JSON value of the store, or `None` if it is missing; one that no longer parses (written
/// by another version) is dropped with a warning rather than failing every transaction.
fn read<T: serde::de::DeserializeOwned>(key: &str) -> Result<Option<T>, Error> {
    let Some(bytes) = kv::get(key)? else {
        return Ok(None);
    };
    match serde_json::from_slice(&bytes) {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            log::warn(&format!("dropping {key}, which does not parse: {e}"));
            kv::delete(key)?;
            Ok(None)
        }
    }
}

impl Call {
    /// The call `call_id`, if it is in progress.
    pub fn load(call_id: &str) -> Result<Option<Call>, Error> {
        read(&call_key(call_id))
    }

    /// The call `user` has in `room`, if any.
    pub fn of_caller(room: &str, user: &str) -> Result<Option<Call>, Error> {
        match read::<String>(&caller_key(room, user))? {
            Some(id) => Ok(Call::load(&id)?.filter(|c| c.room_id == room && c.caller == user)),
            None => Ok(None),
        }
    }

    /// Stores the call and its index entry.
    pub fn save(&self) -> Result<(), Error> {
        kv::set_json(&call_key(&self.call_id), self)?;
        kv::set_json(&caller_key(&self.room_id, &self.caller), &self.call_id)
    }

    /// Whether `event_id` was handled for this call already; remembers it if not.
    pub fn seen_before(&mut self, event_id: &str) -> bool {
        if self.seen.iter().any(|e| e == event_id) {
            return true;
        }
        if self.seen.len() == SEEN {
            self.seen.remove(0);
        }
        self.seen.push(event_id.to_string());
        false
    }

    /// Arms the time-out for `after_ms`, replacing the one armed before.
    pub fn arm_timeout(&mut self, after_ms: u64) -> Result<(), Error> {
        self.timer += 1;
        let payload = TimerPayload {
            call_id: self.call_id.clone(),
            generation: self.timer,
        };
        timers::set_timer(
            &timeout_key(&self.call_id),
            after_ms,
            &serde_json::to_string(&payload)?,
        )
    }

    /// Forgets the call: its state, index entry and time-out go; its id is remembered as
    /// ended for as long as its invite could still come round as a duplicate.
    pub fn end(&self, now_ms: u64) -> Result<(), Error> {
        kv::delete(&call_key(&self.call_id))?;
        let index = caller_key(&self.room_id, &self.caller);
        if read::<String>(&index)?.as_deref() == Some(self.call_id.as_str()) {
            kv::delete(&index)?;
        }
        timers::cancel_timer(&timeout_key(&self.call_id));
        mark_ended(&self.call_id, self.invite_ts, self.lifetime, now_ms)
    }
}

/// Remembers `call_id` as ended until its invite (sent at `invite_ts`, living `lifetime`)
/// has expired, an hour at most.
pub fn mark_ended(call_id: &str, invite_ts: u64, lifetime: u64, now_ms: u64) -> Result<(), Error> {
    let until = invite_ts.saturating_add(lifetime).clamp(
        now_ms.saturating_add(1000),
        now_ms.saturating_add(FORGET_MAX_MS),
    );
    kv::set_json(&format!("{ENDED}{call_id}"), &until)?;
    if kv::get(SWEEP_ARMED)?.is_none() {
        kv::set(SWEEP_ARMED, b"1")?;
        timers::set_timer(SWEEP_TIMER, SWEEP_EVERY_MS, "")?;
    }
    Ok(())
}

/// Whether the marker at `key` still holds at `now_ms`; one past its time, or that does not
/// parse, is dropped.
fn marker_holds(key: &str, now_ms: u64) -> Result<bool, Error> {
    let Some(bytes) = kv::get(key)? else {
        return Ok(false);
    };
    match serde_json::from_slice::<u64>(&bytes) {
        Ok(until) if now_ms < until => Ok(true),
        _ => kv::delete(key).map(|_| false),
    }
}

/// Whether `call_id` ended a short while ago.
pub fn ended(call_id: &str, now_ms: u64) -> Result<bool, Error> {
    marker_holds(&format!("{ENDED}{call_id}"), now_ms)
}

/// Drops the markers of ended calls past their time, a batch at a time from after the key
/// `after` (empty: from the start); sweeps again soon while there are more to read, later
/// while markers are left, and stops when there are none.
pub fn sweep(after: &str, now_ms: u64) -> Result<(), Error> {
    let from = (!after.is_empty()).then_some(after);
    let keys = kv::list_keys(ENDED, from, SWEEP_BATCH)?;
    for key in &keys {
        marker_holds(key, now_ms)?;
    }
    match keys.last() {
        Some(last) if keys.len() == SWEEP_BATCH as usize => {
            timers::set_timer(SWEEP_TIMER, 1000, last)
        }
        _ if kv::list_keys(ENDED, None, 1)?.is_empty() => kv::delete(SWEEP_ARMED).map(drop),
        _ => timers::set_timer(SWEEP_TIMER, SWEEP_EVERY_MS, ""),
    }
}

/// How many calls are in progress, counting up to `limit`.
pub fn in_progress(limit: usize) -> Result<Vec<String>, Error> {
    let keys = kv::list_keys(CALL, None, limit.min(1000) as u32)?;
    Ok(keys
        .into_iter()
        .filter_map(|k| k.strip_prefix(CALL).map(str::to_string))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voip_ids_follow_the_spec_grammar() {
        assert!(valid_voip_id("1697723749000abc.DEF_~-"));
        assert!(!valid_voip_id(""));
        assert!(!valid_voip_id("a b"));
        assert!(!valid_voip_id("a/b"));
        assert!(!valid_voip_id(&"x".repeat(256)));
        assert!(valid_voip_id(&"x".repeat(255)));
    }

    #[test]
    fn timer_keys_lead_back_to_their_call() {
        assert_eq!(timeout_call(&timeout_key("c1")), Some("c1"));
        assert_eq!(timeout_call("sweep-ended"), None);
        assert!(is_sweep("sweep-ended"));
    }
}
