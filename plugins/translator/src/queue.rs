//! The durable queue of work that needs the backend, in kv: every translation, language check
//! and listing is a job stored under a growing sequence number, done in order by the `work`
//! timer and deleted only once done, so that nothing is lost to an outage, a trap or a
//! restart. The queue holds at most `max_pending` jobs; per-room counts say which rooms are
//! waiting, for the outage notices.

use plugboard_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// The timer that does the queued work.
pub const WORK: &str = "work";

/// What a job asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Kind {
    /// A message of a translated room, into the room's language.
    Auto {
        /// The message's text.
        text: String,
        /// The room's language when the message came.
        target: String,
    },
    /// `!tr LANG TEXT`.
    Once {
        /// What to translate.
        text: String,
        /// Into what.
        target: String,
    },
    /// `!translate on LANG`: the language is checked against the backend's list first.
    Enable {
        /// The language asked for.
        target: String,
    },
    /// `!translate languages`.
    Languages,
}

/// One job: what to do, and the message to answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The room.
    pub room: String,
    /// The message answered.
    pub event_id: String,
    /// Who sent it.
    pub sender: String,
    /// What to do.
    #[serde(flatten)]
    pub kind: Kind,
}

/// A job as stored: its key and number, and the job (or why it does not read).
pub struct Stored {
    /// Its kv key.
    pub key: String,
    /// Its sequence number: what its answers' txn ids are made of.
    pub seq: u64,
    /// The job, or why it could not be read.
    pub job: Result<Job, String>,
}

fn pending_key(room: &str) -> String {
    format!("pending/{room}")
}

/// Jobs waiting, over all rooms.
pub fn total() -> Result<u64, Error> {
    Ok(kv::get_json("q_count")?.unwrap_or(0))
}

/// Jobs waiting in `room`.
pub fn pending_in(room: &str) -> Result<u64, Error> {
    Ok(kv::get_json(&pending_key(room))?.unwrap_or(0))
}

/// Adds `job` unless `max` jobs are waiting; answers whether it did.
pub fn push(job: &Job, max: u64) -> Result<bool, Error> {
    let total = total()?;
    if total >= max {
        return Ok(false);
    }
    let seq: u64 = kv::get_json("q_next")?.unwrap_or(0);
    match kv::set_json(&format!("q/{seq:016x}"), job) {
        Err(e) if e.is("M_RESOURCE_LIMIT_EXCEEDED") => return Ok(false),
        other => other?,
    }
    kv::set_json("q_next", &(seq + 1))?;
    kv::set_json("q_count", &(total + 1))?;
    let room = pending_in(&job.room)?;
    kv::set_json(&pending_key(&job.room), &(room + 1))?;
    Ok(true)
}

/// The oldest job, if any.
pub fn first() -> Result<Option<Stored>, Error> {
    let Some(key) = kv::list_keys("q/", None, 1)?.into_iter().next() else {
        return Ok(None);
    };
    let seq = key
        .strip_prefix("q/")
        .and_then(|s| u64::from_str_radix(s, 16).ok())
        .unwrap_or(0);
    let job = match kv::get(&key)? {
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| e.to_string()),
        None => Err("gone".to_string()),
    };
    Ok(Some(Stored { key, seq, job }))
}

/// Removes a job that is done (or cannot be read), with its counts.
pub fn remove(stored: &Stored) -> Result<(), Error> {
    kv::delete(&stored.key)?;
    let total = total()?;
    kv::set_json("q_count", &total.saturating_sub(1))?;
    if let Ok(job) = &stored.job {
        let key = pending_key(&job.room);
        match pending_in(&job.room)? {
            0 | 1 => {
                kv::delete(&key)?;
            }
            n => kv::set_json(&key, &(n - 1))?,
        }
    }
    Ok(())
}

/// Resets the counts once the queue is empty, so that a job that could not be read (its room
/// unknown) leaves no room counted as waiting.
pub fn settle_empty() -> Result<(), Error> {
    if total()? != 0 {
        kv::set_json("q_count", &0u64)?;
    }
    for room in waiting_rooms(1000)? {
        kv::delete(&pending_key(&room))?;
    }
    Ok(())
}

/// The rooms with jobs waiting, at most `limit` of them.
pub fn waiting_rooms(limit: u32) -> Result<Vec<String>, Error> {
    Ok(kv::list_keys("pending/", None, limit)?
        .into_iter()
        .filter_map(|k| k.strip_prefix("pending/").map(str::to_string))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugboard_sdk::testing::{Bare, Harness};
    use serde_json::json;

    fn job(room: &str, text: &str) -> Job {
        Job {
            room: room.into(),
            event_id: "$e".into(),
            sender: "@a:test".into(),
            kind: Kind::Auto {
                text: text.into(),
                target: "fr".into(),
            },
        }
    }

    #[test]
    fn jobs_come_out_in_order_with_their_counts_and_the_queue_is_bounded() {
        let h = Harness::<Bare>::new(json!({})).unwrap();
        assert!(push(&job("!a", "one"), 3).unwrap());
        assert!(push(&job("!b", "two"), 3).unwrap());
        assert!(push(&job("!a", "three"), 3).unwrap());
        assert!(!push(&job("!a", "four"), 3).unwrap(), "full");
        assert_eq!((total().unwrap(), pending_in("!a").unwrap()), (3, 2));
        assert_eq!(waiting_rooms(10).unwrap(), ["!a", "!b"]);
        let mut texts = Vec::new();
        while let Some(s) = first().unwrap() {
            if let Ok(Job {
                kind: Kind::Auto { text, .. },
                ..
            }) = &s.job
            {
                texts.push((s.seq, text.clone()));
            }
            remove(&s).unwrap();
        }
        assert_eq!(
            texts,
            [(0, "one".into()), (1, "two".into()), (2, "three".into())]
        );
        assert_eq!(total().unwrap(), 0);
        assert!(waiting_rooms(10).unwrap().is_empty());
        assert!(h.kv_keys().iter().all(|k| !k.starts_with("pending/")));
    }

    #[test]
    fn a_job_that_does_not_read_is_reported_and_removable() {
        let h = Harness::<Bare>::new(json!({})).unwrap();
        assert!(push(&job("!a", "one"), 3).unwrap());
        kv::set("q/0000000000000000", b"{not json").unwrap();
        let s = first().unwrap().unwrap();
        assert!(s.job.is_err());
        remove(&s).unwrap();
        assert!(first().unwrap().is_none());
        assert_eq!(total().unwrap(), 0);
        drop(h);
    }
}
