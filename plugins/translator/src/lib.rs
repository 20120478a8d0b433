//! The translator: translates room messages through a LibreTranslate-compatible HTTP API.
//! `!translate on LANG` has every message of a room not already in LANG posted again in LANG
//! as an `m.notice` reply marked with the language pair; `!tr LANG TEXT` translates once; a
//! per-room glossary is applied around the backend. Work for the backend goes through a
//! durable queue done by a timer within a time budget, so that an outage or a slow backend
//! loses nothing and never holds up the plugin's queue past its deadline.

use plugboard_sdk::prelude::*;

mod backend;
mod budget;
mod cache;
mod commands;
mod glossary;
mod languages;
mod outage;
mod queue;
mod reply;
mod rooms;
mod settings;
mod work;

#[cfg(test)]
mod tests;

use queue::{Job, Kind, WORK};
use settings::Settings;

/// The plugin: its settings; everything else is in kv.
pub struct Translator {
    settings: Settings,
}

impl Plugin for Translator {
    fn init(config: &Config) -> Result<Self, Error> {
        Ok(Translator {
            settings: Settings::from_config(config)?,
        })
    }

    fn commands(&self) -> Commands<Self> {
        commands::router(&self.settings.prefix)
    }

    fn on_message(&mut self, event: &Event, message: &Message) -> Result<(), Error> {
        // Notices are what bots post: translating them would have bots answer each other.
        if !matches!(message.msgtype, MsgType::Text | MsgType::Emote)
            || message.replaces().is_some()
        {
            return Ok(());
        }
        let text = message.text_without_fallback().trim();
        if text.is_empty()
            || text.starts_with(self.settings.prefix.as_str())
            || !text.chars().any(char::is_alphabetic)
        {
            return Ok(());
        }
        let Some(target) = rooms::target(&event.room_id)? else {
            return Ok(());
        };
        if self.settings.backend_url().is_err() {
            return Ok(());
        }
        let max = self.settings.max_chars;
        if text.len() > max * 4 || text.chars().count() > max {
            kv::increment("counts/rejected/too_long", 1)?;
            return Ok(());
        }
        let job = Job {
            room: event.room_id.clone(),
            event_id: event.event_id.clone(),
            sender: event.sender.clone(),
            kind: Kind::Auto {
                text: text.to_string(),
                target: target.code,
            },
        };
        if !work::submit(&job, &self.settings)? {
            log::warn(&format!(
                "the queue is full: {} in {} is not translated",
                event.event_id, event.room_id
            ));
        }
        Ok(())
    }

    fn on_malformed(&mut self, event: &Event, why: &str) -> Result<(), Error> {
        log::debug(&format!(
            "ignoring a malformed {} ({}): {why}",
            event.event_type, event.event_id
        ));
        kv::increment("counts/rejected/malformed", 1).map(drop)
    }

    fn on_timer(&mut self, key: &str, _payload: &str) -> Result<(), Error> {
        if key == WORK {
            work::run(&self.settings)
        } else {
            Ok(())
        }
    }
}

export_plugin!(Translator);
