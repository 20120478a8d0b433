//! The `work` timer: does the queued jobs in order within the call's budget. A job that needs
//! more time than is left stays for the next call (set at once); a backend that fails stops
//! the round, marks the outage and sets the next try after the backoff pause. Detections and
//! translations go through the cache first, and the room's glossary around the backend.

use std::cell::Cell;

use plugboard_sdk::prelude::*;
use serde_json::json;

use crate::backend::{Backend, Detected, Failure, Language};
use crate::budget::Budget;
use crate::cache;
use crate::glossary;
use crate::languages;
use crate::outage;
use crate::queue::{self, Job, Kind, Stored, WORK};
use crate::reply::{self, Answered};
use crate::rooms::{self, RoomTarget};
use crate::settings::Settings;

/// Most jobs done in one call, however quick: what bounds a call's kv writes.
const JOBS_PER_CALL: usize = 50;

/// How a step that may need the backend went.
enum Step<T> {
    Ready(T),
    /// No time is left in this call for the request it needs.
    Later,
    /// The backend cannot serve now.
    Unavailable(String),
    /// The backend will not do it.
    Refused(String),
}

/// Moves `Step`s along: the value, or the step returned as it is.
macro_rules! step {
    ($e:expr) => {
        match $e {
            Step::Ready(v) => v,
            Step::Later => return Ok(Step::Later),
            Step::Unavailable(r) => return Ok(Step::Unavailable(r)),
            Step::Refused(r) => return Ok(Step::Refused(r)),
        }
    };
}

struct Round<'a> {
    settings: &'a Settings,
    backend: Backend<'a>,
    budget: Budget,
    /// Whether the backend answered a request of this round (even with a refusal).
    answered: Cell<bool>,
}

impl Round<'_> {
    /// Runs a backend request with what is left of the budget.
    fn ask<T>(
        &self,
        request: impl FnOnce(&Backend, std::time::Duration) -> Result<T, Failure>,
    ) -> Result<Step<T>, Error> {
        let Some(limit) = self.budget.next_request() else {
            return Ok(Step::Later);
        };
        kv::increment("counts/backend_requests", 1)?;
        let answer = request(&self.backend, limit);
        self.answered
            .set(self.answered.get() || !matches!(answer, Err(Failure::Unavailable(_))));
        Ok(match answer {
            Ok(v) => Step::Ready(v),
            Err(Failure::Unavailable(r)) => Step::Unavailable(r),
            Err(Failure::Refused(r)) => Step::Refused(r),
        })
    }

    fn detect(&self, text: &str) -> Result<Step<Detected>, Error> {
        let key = cache::detection_key(text);
        if let Some(d) = cache::get::<Detected>(&key)? {
            kv::increment("counts/cache_hits", 1)?;
            return Ok(Step::Ready(d));
        }
        let d = step!(self.ask(|b, t| b.detect(text, t))?);
        cache::put(&key, &d, self.settings.cache_entries)?;
        Ok(Step::Ready(d))
    }

    fn translate(
        &self,
        room: &str,
        text: &str,
        source: &str,
        target: &str,
    ) -> Result<Step<String>, Error> {
        let protected = glossary::protect(text, &glossary::load(room)?);
        let key = cache::translation_key(source, target, &protected.text);
        if let Some(t) = cache::get::<String>(&key)? {
            kv::increment("counts/cache_hits", 1)?;
            return Ok(Step::Ready(protected.restore(&t)));
        }
        let max = (protected.text.len() * 4 + 1024).min(32 * 1024);
        let t = step!(self.ask(|b, l| b.translate(&protected.text, source, target, max, l))?);
        cache::put(&key, &t, self.settings.cache_entries)?;
        Ok(Step::Ready(protected.restore(&t)))
    }

    /// The language `code` of the backend's list, asking it again when the list lacks it.
    fn language(&self, code: &str) -> Result<Step<Result<Language, Vec<Language>>>, Error> {
        let list = languages::cached()?;
        if let Some(l) = languages::find(&list, code) {
            return Ok(Step::Ready(Ok(l.clone())));
        }
        let list = step!(self.ask(|b, t| b.languages(t))?);
        languages::store(&list)?;
        Ok(Step::Ready(match languages::find(&list, code) {
            Some(l) => Ok(l.clone()),
            None => Err(list),
        }))
    }

    /// Does one job; `Ready(())` once it is done and may be removed.
    fn job(&self, job: &Job, seq: u64) -> Result<Step<()>, Error> {
        let to = Answered {
            room: &job.room,
            event_id: &job.event_id,
            sender: &job.sender,
        };
        let txn = format!("job-{seq}");
        match &job.kind {
            Kind::Auto { text, target } => {
                let still = rooms::target(&job.room)?.is_some_and(|t| t.code == *target);
                if !still {
                    return Ok(Step::Ready(()));
                }
                let detected = step!(self.detect(text)?);
                if detected.confidence < self.settings.min_confidence
                    || languages::same_language(&detected.language, target)
                {
                    return Ok(Step::Ready(()));
                }
                let t = step!(self.translate(&job.room, text, &detected.language, target)?);
                self.post_translation(&to, &detected.language, target, &t, &txn)?;
            }
            Kind::Once { text, target } => {
                let target = match step!(self.language(target)?) {
                    Ok(l) => l.code,
                    Err(known) => {
                        unknown_language(&to, target, &known, &txn)?;
                        return Ok(Step::Ready(()));
                    }
                };
                let detected = step!(self.detect(text)?);
                if languages::same_language(&detected.language, &target) {
                    let body = format!("That is already in {target}.");
                    reply::notice_reply(&to, &body, None, &txn)?;
                    return Ok(Step::Ready(()));
                }
                let t = step!(self.translate(&job.room, text, &detected.language, &target)?);
                self.post_translation(&to, &detected.language, &target, &t, &txn)?;
            }
            Kind::Enable { target } => match step!(self.language(target)?) {
                Ok(l) => {
                    rooms::set(
                        &job.room,
                        &RoomTarget {
                            code: l.code.clone(),
                            name: l.name.clone(),
                        },
                    )?;
                    let body = format!(
                        "Translating this room into {} ({}) from now on. `{}translate off` stops.",
                        l.name, l.code, self.settings.prefix
                    );
                    reply::notice_reply(&to, &body, None, &txn)?;
                }
                Err(known) => unknown_language(&to, target, &known, &txn)?,
            },
            Kind::Languages => {
                let list = step!(self.ask(|b, t| b.languages(t))?);
                languages::store(&list)?;
                let body = if list.is_empty() {
                    "The backend lists no languages.".to_string()
                } else {
                    let names: Vec<String> = list
                        .iter()
                        .map(|l| format!("{} ({})", l.code, l.name))
                        .collect();
                    format!("Languages: {}", names.join(", "))
                };
                reply::notice_reply(&to, &body, None, &txn)?;
            }
        }
        Ok(Step::Ready(()))
    }

    fn post_translation(
        &self,
        to: &Answered,
        source: &str,
        target: &str,
        text: &str,
        txn: &str,
    ) -> Result<(), Error> {
        let body = format!("[{source}→{target}] {text}");
        let mark = json!({ "source": source, "target": target, "event_id": to.event_id });
        reply::notice_reply(to, &body, Some(("org.plugboard.translation", mark)), txn)?;
        kv::increment("counts/translated", 1)?;
        Ok(())
    }
}

fn unknown_language(to: &Answered, code: &str, known: &[Language], txn: &str) -> Result<(), Error> {
    kv::increment("counts/rejected/unknown_language", 1)?;
    let body = if known.is_empty() {
        format!("The backend does not know the language `{code}` (it lists none).")
    } else {
        format!(
            "The backend does not know the language `{code}`. Known: {}.",
            languages::codes(known)
        )
    };
    reply::notice_reply(to, &body, None, txn)
}

/// What a refused job answers: the one-off requests are told why; automatic translations are
/// counted only, not to answer every message of a room.
fn refused(job: &Job, seq: u64, why: &str) -> Result<(), Error> {
    kv::increment("counts/rejected/backend_refused", 1)?;
    if matches!(job.kind, Kind::Auto { .. }) {
        log::info(&format!("the backend refused a translation: {why}"));
        return Ok(());
    }
    let to = Answered {
        room: &job.room,
        event_id: &job.event_id,
        sender: &job.sender,
    };
    let body = format!("The backend cannot do this: {why}");
    reply::notice_reply(
        &to,
        body.trim_end_matches(": "),
        None,
        &format!("job-{seq}"),
    )
}

/// Queues `job` and sees that it gets done: at once while the backend is up; while it is
/// down, at the next try already set, the room told once. Answers false when the queue is
/// full (counted).
pub fn submit(job: &Job, settings: &Settings) -> Result<bool, Error> {
    if !queue::push(job, settings.max_pending)? {
        kv::increment("counts/rejected/queue_full", 1)?;
        return Ok(false);
    }
    let health = outage::load()?;
    if health.down {
        outage::tell(&job.room, &health)?;
    } else {
        timers::set_timer(WORK, 0, "")?;
    }
    Ok(true)
}

/// One round of the `work` timer.
pub fn run(settings: &Settings) -> Result<(), Error> {
    let Ok(url) = settings.backend_url() else {
        // Jobs queued before the url was taken away wait for it to come back; a down
        // backend's next try must stay set, as nothing else would set it.
        if queue::total()? > 0 {
            timers::set_timer(WORK, settings.retry_max_ms, "")?;
        }
        return Ok(());
    };
    let round = Round {
        settings,
        backend: Backend {
            url,
            api_key: &settings.api_key,
        },
        budget: Budget::start(settings.call_budget_ms, settings.request_timeout_ms),
        answered: Cell::new(false),
    };
    for _ in 0..JOBS_PER_CALL {
        if !round.budget.has_time() {
            break;
        }
        let Some(stored) = queue::first()? else {
            queue::settle_empty()?;
            // Nothing waits any more; whether the backend is back is for the next request to
            // find out.
            return outage::nothing_waits();
        };
        let Stored { seq, job, .. } = &stored;
        let job = match job {
            Ok(job) => job,
            Err(why) => {
                log::warn(&format!("dropping a stored job that does not read: {why}"));
                kv::increment("counts/rejected/stored_job", 1)?;
                queue::remove(&stored)?;
                continue;
            }
        };
        match round.job(job, *seq)? {
            Step::Ready(()) => queue::remove(&stored)?,
            Step::Refused(why) => {
                refused(job, *seq, &why)?;
                queue::remove(&stored)?;
            }
            Step::Later => break,
            Step::Unavailable(reason) => {
                let pause = outage::failed(&reason, settings)?;
                return timers::set_timer(WORK, pause, "");
            }
        }
        if round.answered.get() {
            outage::recovered()?;
        }
    }
    timers::set_timer(WORK, 0, "")
}
