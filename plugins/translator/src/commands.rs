//! The translator's commands: `!translate on LANG | off | languages` (alone: how things
//! stand), `!tr LANG TEXT` and `!glossary add TERM = TRANSLATION | remove TERM` (alone: the
//! list). What needs the backend is queued; what does not is answered at once. Turning
//! translation on or off and changing the glossary is for members who may change the room's
//! state, as for any room setting.

use plugboard_sdk::prelude::*;

use crate::backend::is_code;
use crate::glossary;
use crate::outage;
use crate::queue::{self, Job, Kind};
use crate::rooms;
use crate::work;
use crate::Translator;

/// The command router with `prefix`. Unknown commands are left alone: they are likely for
/// another bot of the room.
pub fn router(prefix: &str) -> Commands<Translator> {
    Commands::new(prefix)
        .command(
            "translate",
            "on LANG | off | languages",
            "translates every message of this room not already in LANG into LANG, or stops; \
             alone, says how things stand",
            translate,
        )
        .command("tr", "LANG TEXT", "translates TEXT into LANG once", tr)
        .command(
            "glossary",
            "add TERM = TRANSLATION | remove TERM",
            "this room's glossary: TERM is always translated as TRANSLATION; alone, lists it",
            glossary_command,
        )
        .quiet_unknown()
}

fn answer(event: &Event, text: &str) -> Result<(), Error> {
    homeserver::reply(event, MsgType::Notice, text).map(drop)
}

/// Refuses bad input: counted under `reason`, answered with `text`.
fn refuse(event: &Event, reason: &str, text: &str) -> Result<(), Error> {
    kv::increment(&format!("counts/rejected/{reason}"), 1)?;
    answer(event, text)
}

/// Whether the sender may change this room's settings; answers them when not.
fn may_configure(event: &Event) -> Result<bool, Error> {
    let allowed = homeserver::can_change_state(&event.room_id, &event.sender).unwrap_or_else(|e| {
        log::warn(&format!(
            "cannot read the power levels of {}: {e:?}",
            event.room_id
        ));
        false
    });
    if !allowed {
        refuse(
            event,
            "not_allowed",
            "Only members who may change this room's settings can do that.",
        )?;
    }
    Ok(allowed)
}

/// The backend's URL, or the not-configured answer given.
fn configured<'a>(p: &'a Translator, event: &Event) -> Result<Option<&'a str>, Error> {
    match p.settings.backend_url() {
        Ok(url) => Ok(Some(url)),
        Err(why) => {
            answer(event, &why)?;
            Ok(None)
        }
    }
}

fn bad_code(event: &Event, code: &str) -> Result<(), Error> {
    let shown: String = code.chars().take(20).collect();
    refuse(
        event,
        "bad_language",
        &format!("`{shown}` is not a language code (like en, fr, pt-BR)."),
    )
}

fn job(event: &Event, kind: Kind) -> Job {
    Job {
        room: event.room_id.clone(),
        event_id: event.event_id.clone(),
        sender: event.sender.clone(),
        kind,
    }
}

fn submit(p: &Translator, event: &Event, kind: Kind) -> Result<(), Error> {
    if !work::submit(&job(event, kind), &p.settings)? {
        answer(
            event,
            "Too many translations are waiting; try again once they are done.",
        )?;
    }
    Ok(())
}

fn translate(p: &mut Translator, event: &Event, args: &Args) -> Result<(), Error> {
    let usage = format!(
        "Usage: {0}translate on LANG | {0}translate off | {0}translate languages | {0}translate",
        p.settings.prefix
    );
    let words = args.words();
    match words.first().map(|w| w.to_ascii_lowercase()).as_deref() {
        None | Some("status") => answer(event, &status(p, &event.room_id)?),
        Some("on") => {
            let [_, lang] = words[..] else {
                return refuse(event, "usage", &usage);
            };
            if configured(p, event)?.is_none() || !may_configure(event)? {
                return Ok(());
            }
            if !is_code(lang) {
                return bad_code(event, lang);
            }
            submit(
                p,
                event,
                Kind::Enable {
                    target: lang.to_string(),
                },
            )
        }
        Some("off") if words.len() == 1 => {
            if !may_configure(event)? {
                return Ok(());
            }
            let text = if rooms::clear(&event.room_id)? {
                "Stopped translating this room."
            } else {
                "This room was not being translated."
            };
            answer(event, text)
        }
        Some("languages") if words.len() == 1 => {
            if configured(p, event)?.is_none() {
                return Ok(());
            }
            submit(p, event, Kind::Languages)
        }
        _ => refuse(event, "usage", &usage),
    }
}

fn tr(p: &mut Translator, event: &Event, args: &Args) -> Result<(), Error> {
    let (Some(lang), text) = (args.word(0), args.after_words(1)) else {
        return refuse(
            event,
            "usage",
            &format!("Usage: {}tr LANG TEXT", p.settings.prefix),
        );
    };
    if text.is_empty() {
        return refuse(
            event,
            "usage",
            &format!("Usage: {}tr LANG TEXT", p.settings.prefix),
        );
    }
    if configured(p, event)?.is_none() {
        return Ok(());
    }
    if !is_code(lang) {
        return bad_code(event, lang);
    }
    let max = p.settings.max_chars;
    if text.len() > max * 4 || text.chars().count() > max {
        return refuse(
            event,
            "too_long",
            &format!("That is too long: I translate at most {max} characters at a time."),
        );
    }
    submit(
        p,
        event,
        Kind::Once {
            text: text.to_string(),
            target: lang.to_string(),
        },
    )
}

fn glossary_command(p: &mut Translator, event: &Event, args: &Args) -> Result<(), Error> {
    let room = &event.room_id;
    let usage = format!(
        "Usage: {0}glossary add TERM = TRANSLATION | {0}glossary remove TERM | {0}glossary",
        p.settings.prefix
    );
    match args.word(0).map(str::to_ascii_lowercase).as_deref() {
        None | Some("list") => {
            let g = glossary::load(room)?;
            if g.is_empty() {
                return answer(event, "This room's glossary is empty.");
            }
            let lines: Vec<String> = g.iter().map(|(t, r)| format!("{t} = {r}")).collect();
            answer(event, &format!("Glossary:\n{}", lines.join("\n")))
        }
        Some("add") => {
            if !may_configure(event)? {
                return Ok(());
            }
            let (term, translation) = match glossary::parse_entry(args.after_words(1)) {
                Ok(entry) => entry,
                Err(why) => return refuse(event, "bad_glossary", &format!("{why}. {usage}")),
            };
            let mut g = glossary::load(room)?;
            let same = g.keys().find(|t| t.eq_ignore_ascii_case(&term)).cloned();
            if let Some(old) = &same {
                g.remove(old);
            } else if g.len() >= p.settings.max_glossary_terms {
                return refuse(
                    event,
                    "glossary_full",
                    &format!(
                        "The glossary is full ({} terms); remove one first.",
                        p.settings.max_glossary_terms
                    ),
                );
            }
            g.insert(term.clone(), translation.clone());
            glossary::save(room, &g)?;
            answer(
                event,
                &format!(
                    "Glossary: {term} is translated as {translation} ({} terms).",
                    g.len()
                ),
            )
        }
        Some("remove") => {
            if !may_configure(event)? {
                return Ok(());
            }
            let term = args.after_words(1);
            let mut g = glossary::load(room)?;
            match g.keys().find(|t| t.eq_ignore_ascii_case(term)).cloned() {
                Some(t) => {
                    g.remove(&t);
                    glossary::save(room, &g)?;
                    answer(
                        event,
                        &format!("Glossary: {t} removed ({} terms).", g.len()),
                    )
                }
                None => refuse(event, "bad_glossary", "The glossary has no such term."),
            }
        }
        _ => refuse(event, "usage", &usage),
    }
}

/// How things stand in `room` and with the backend.
fn status(p: &Translator, room: &str) -> Result<String, Error> {
    let here = match rooms::target(room)? {
        Some(t) => format!("Translating this room into {} ({}).", t.name, t.code),
        None => "This room is not translated.".to_string(),
    };
    let backend = match p.settings.backend_url() {
        Err(why) => format!("Backend: {why}"),
        Ok(url) => {
            let h = outage::load()?;
            if h.down {
                format!(
                    "Backend {url}: unavailable ({}), {} failures in a row; next try within {} s.",
                    h.reason,
                    h.failures,
                    outage::backoff_ms(h.failures, &p.settings).div_ceil(1000)
                )
            } else {
                format!("Backend {url}: up.")
            }
        }
    };
    let count =
        |k: &str| -> Result<u64, Error> { Ok(kv::get_json(&format!("counts/{k}"))?.unwrap_or(0)) };
    let mut refused = Vec::new();
    for key in kv::list_keys("counts/rejected/", None, 50)? {
        let n: u64 = kv::get_json(&key)?.unwrap_or(0);
        refused.push(format!(
            "{} {n}",
            key.trim_start_matches("counts/rejected/")
        ));
    }
    Ok(format!(
        "{here}\n{backend}\nWaiting: {} here, {} in all. Glossary: {} terms.\n\
         Translated {}, cache hits {}, backend requests {}, refused: {}.",
        queue::pending_in(room)?,
        queue::total()?,
        glossary::load(room)?.len(),
        count("translated")?,
        count("cache_hits")?,
        count("backend_requests")?,
        if refused.is_empty() {
            "none".to_string()
        } else {
            refused.join(", ")
        }
    ))
}
