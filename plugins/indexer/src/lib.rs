//! The indexer: full-text search over the text of the rooms it sees. Every `m.room.message`
//! goes into an inverted index kept in the plugin's store (an LSM tree: a write-ahead log
//! flushed into immutable segments, merged in the background); edits replace a message's
//! text, redactions remove it (of an edit: the message shows the version before it again).
//! `!search WORDS` answers in a room with its best hits there, ranked by BM25;
//! `GET /_plugboard/plugins/indexer/search` answers JSON from the rooms the caller is
//! joined to. What each searcher may find is the server's to say: the host's
//! `access-to-rooms` and `visible-events`, asked for every search.

use plugboard_sdk::prelude::*;
use serde_json::Value;

mod answer;
mod blob;
mod catalog;
mod dates;
pub mod docs;
mod edits;
mod encoding;
pub mod index;
pub mod query;
mod rejected;
pub mod search;
pub mod segment;
mod snippet;
pub mod text;
mod wal;
mod web;

use index::{Edited, Index, NewDoc, COMPACT_TIMER};

/// The plugin: its settings and its view of the index.
pub struct Indexer {
    prefix: String,
    /// Hits `!search` shows.
    hits: usize,
    /// Most hits the web endpoint answers at once.
    max_limit: usize,
    index: Index,
}

fn setting(config: &Config, key: &str, default: u64, range: (u64, u64)) -> Result<usize, Error> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(default as usize),
        Some(v) => match v.as_u64() {
            Some(n) if (range.0..=range.1).contains(&n) => Ok(n as usize),
            _ => Err(Error::invalid(format!(
                "{key}: must be a whole number from {} to {}",
                range.0, range.1
            ))),
        },
    }
}

const HELP: &str = "\
{p}search WORDS — the best messages of this room that have all the WORDS. Also \"exact phrases\", \
from:@user (or @user:server), before:TIME and after:TIME, where TIME is YYYY-MM-DD, \
YYYY-MM-DDTHH:MM (UTC), today, yesterday, or a span back from now: 12h, 7d, 2w.
{p}index — what the index holds (for server admins)
{p}help — this list";

impl Indexer {
    /// Whether the plugin's user is in `room`: it answers only where it can.
    fn in_room(room: &str) -> Result<bool, Error> {
        Ok(homeserver::joined_rooms(None)?.iter().any(|r| r == room))
    }

    fn search(&mut self, event: &Event, args: &Args) -> Result<(), Error> {
        if !Self::in_room(&event.room_id)? {
            return Ok(());
        }
        let asked = args.rest();
        if asked.is_empty() {
            let usage = format!(
                "Usage: {}search WORDS (try {}help)",
                self.prefix, self.prefix
            );
            return say(event, &usage, None);
        }
        let q = match query::parse(asked, event.origin_server_ts) {
            Ok(q) => q,
            Err(why) => {
                rejected::count("query");
                return say(event, &format!("Cannot search for that: {why}."), None);
            }
        };
        // The answer is the asker's: what they may see of the room.
        let access = homeserver::room_access(&event.sender, &event.room_id)?;
        let Some(reach) = web::reach(&access) else {
            return Ok(());
        };
        let asker = event.sender.clone();
        let results = self.index.search(
            &q,
            &[(event.room_id.clone(), reach)],
            self.hits,
            &mut |ids| homeserver::visible_events(&asker, ids),
        )?;
        let (text, html) = answer::reply(asked, &q.terms, &results);
        say(event, &text, Some(&html))
    }

    fn status(&mut self, event: &Event) -> Result<(), Error> {
        if !Self::in_room(&event.room_id)? {
            return Ok(());
        }
        // Server-wide counts tell how much is said in rooms the asker may not read.
        if !homeserver::is_server_admin(&event.sender)? {
            return say(event, "The index's counts are for server admins.", None);
        }
        let s = self.index.status()?;
        let refused = rejected::all()?;
        let refused = if refused.is_empty() {
            "nothing".to_string()
        } else {
            refused
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let text = format!(
            "The index holds {} messages ({} in the write-ahead log) in {} segments; {} \
             replaced or redacted texts wait for a merge. Refused so far: {refused}.",
            s.docs, s.in_log, s.segments, s.dead
        );
        say(event, &text, None)
    }

    fn help(&mut self, event: &Event) -> Result<(), Error> {
        if !Self::in_room(&event.room_id)? {
            return Ok(());
        }
        say(event, &HELP.replace("{p}", &self.prefix), None)
    }
}

/// Answers `event` with a notice. A room the plugin's user cannot speak in is logged and
/// passed over: retrying would not help.
fn say(event: &Event, text: &str, html: Option<&str>) -> Result<(), Error> {
    let mut content = Content::notice(text);
    if let Some(h) = html {
        content = content.html(h);
    }
    match homeserver::send_message(None, &event.room_id, content.reply_to(event)) {
        Ok(_) => Ok(()),
        Err(e) if e.is("M_FORBIDDEN") || e.is("M_NOT_FOUND") => {
            log::warn(&format!(
                "cannot answer in {}: {}",
                event.room_id, e.message
            ));
            Ok(())
        }
        Err(e) => Err(e),
    }
}

impl Plugin for Indexer {
    fn init(config: &Config) -> Result<Self, Error> {
        let prefix = match config.get("prefix") {
            None | Some(Value::Null) => "!".to_string(),
            Some(Value::String(p)) if !p.trim().is_empty() && p.len() <= 16 => p.clone(),
            Some(_) => return Err(Error::invalid("prefix: must be a short, non-empty string")),
        };
        Ok(Indexer {
            prefix,
            hits: setting(config, "hits", 5, (1, 20))?,
            max_limit: setting(config, "max_limit", 50, (1, 200))?,
            index: Index::default(),
        })
    }

    fn commands(&self) -> Commands<Self> {
        Commands::new(&self.prefix)
            .command(
                "search",
                "WORDS",
                "searches this room",
                |me: &mut Indexer, e, a| me.search(e, a),
            )
            .command(
                "index",
                "",
                "what the index holds",
                |me: &mut Indexer, e, _| me.status(e),
            )
            .command("help", "", "the commands", |me: &mut Indexer, e, _| {
                me.help(e)
            })
            // Other bots' commands are messages like any other.
            .quiet_unknown()
    }

    fn on_message(&mut self, event: &Event, message: &Message) -> Result<(), Error> {
        if let Some(original) = message.replaces() {
            let body = message
                .new_content
                .as_ref()
                .and_then(|c| c.get("body"))
                .and_then(Value::as_str);
            let (Some(body), true) = (body, original.starts_with('$') && original.len() <= 255)
            else {
                rejected::count("bad_edit");
                return Ok(());
            };
            let (text, cut) = docs::bounded(body);
            if cut {
                rejected::count("truncated");
            }
            let edited = self.index.edit(&NewDoc {
                event_id: original,
                room: &event.room_id,
                sender: &event.sender,
                ts: event.origin_server_ts,
                text,
                source: &event.event_id,
            })?;
            match edited {
                Edited::Refused => rejected::count("foreign_edit"),
                Edited::OfAnEdit => rejected::count("bad_edit"),
                _ => {}
            }
            return Ok(());
        }
        let text = message.text_without_fallback();
        if text.trim().is_empty() {
            return Ok(());
        }
        let (text, cut) = docs::bounded(text);
        if cut {
            rejected::count("truncated");
        }
        self.index.add(&NewDoc {
            event_id: &event.event_id,
            room: &event.room_id,
            sender: &event.sender,
            ts: event.origin_server_ts,
            text,
            source: &event.event_id,
        })?;
        Ok(())
    }

    fn on_malformed(&mut self, event: &Event, why: &str) -> Result<(), Error> {
        // A history replay hands over redacted messages with their content stripped: there
        // is nothing to index, and nothing wrong with them.
        if event.event_type == "m.room.message" && !event.is_redacted() {
            rejected::count("malformed");
            log::debug(&format!("not indexing {}: {why}", event.event_id));
        }
        Ok(())
    }

    fn on_redaction(&mut self, event: &Event, redaction: &Redaction) -> Result<(), Error> {
        self.index
            .redact(&redaction.redacts, &event.room_id, &event.event_id)?;
        Ok(())
    }

    fn on_timer(&mut self, key: &str, _payload: &str) -> Result<(), Error> {
        if key == COMPACT_TIMER && self.index.compact()? {
            timers::set_timer(COMPACT_TIMER, 0, "")?;
        }
        Ok(())
    }

    fn handle_http(&mut self, request: &HttpRequest) -> HttpResponse {
        web::handle(&mut self.index, self.max_limit, request)
    }
}

export_plugin!(Indexer);

#[cfg(test)]
mod tests;
