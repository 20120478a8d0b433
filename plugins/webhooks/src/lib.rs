//! The webhook bridge: `!webhook new NAME` makes a Slack-compatible incoming hook whose
//! posts appear in the room as the virtual user `@_webhook_NAME`, and `!webhook out URL`
//! forwards the room's messages to a URL on the plugin's allow-list. This file connects the
//! plugin's handlers to the modules that do the work.

use plugboard_sdk::prelude::*;

mod commands;
mod dm;
mod hooks;
mod incoming;
mod markdown;
mod outgoing;
mod puppet;
mod settings;
mod token;
mod totals;

use settings::Settings;

/// The plugin: its settings; everything else lives in the store.
pub struct Webhooks {
    settings: Settings,
}

impl Plugin for Webhooks {
    fn init(config: &Config) -> Result<Self, Error> {
        Ok(Webhooks {
            settings: Settings::from_config(config)?,
        })
    }

    fn commands(&self) -> Commands<Self> {
        // Other bots share the prefix: their commands are messages to forward, not errors.
        Commands::new(&self.settings.prefix)
            .command(
                "webhook",
                commands::USAGE,
                "incoming hooks that post here, and forwarding of this room's messages",
                commands::webhook,
            )
            .quiet_unknown()
    }

    fn on_message(&mut self, event: &Event, message: &Message) -> Result<(), Error> {
        // Own users are filtered by the host already; this keeps hook posts from going
        // round a loop should the namespace ever be shared.
        if event.sender.starts_with("@_webhook_") {
            return Ok(());
        }
        outgoing::enqueue(&self.settings, event, message)
    }

    fn on_malformed(&mut self, event: &Event, why: &str) -> Result<(), Error> {
        log::debug(&format!(
            "ignoring a malformed {} ({}): {why}",
            event.event_type, event.event_id
        ));
        count("malformed_event");
        Ok(())
    }

    fn on_timer(&mut self, key: &str, _payload: &str) -> Result<(), Error> {
        match outgoing::timer_room(key) {
            Some(room) => outgoing::deliver(&self.settings, room),
            None => Ok(()),
        }
    }

    fn handle_http(&mut self, request: &HttpRequest) -> HttpResponse {
        incoming::handle(&self.settings, request)
    }
}

export_plugin!(Webhooks);

/// Whether a write went through: `Ok(false)` when the host refused it for its quota or its
/// limits on keys and timers. That error is not permanent to the SDK, so a handler that
/// returned it would have its transaction retried for ever, every room waiting behind it.
fn fits(written: Result<(), Error>) -> Result<bool, Error> {
    match written {
        Ok(()) => Ok(true),
        Err(e) if e.is("M_RESOURCE_LIMIT_EXCEEDED") => Ok(false),
        Err(e) => Err(e),
    }
}

/// Prefix of the counters of what was refused, by reason.
const REFUSED: &str = "counts/rejected/";

/// Counts one refusal of `reason` (a fixed word: the store keeps one counter per reason).
fn count(reason: &str) {
    if let Err(e) = kv::increment(&format!("{REFUSED}{reason}"), 1) {
        log::warn(&format!("cannot count a refusal ({reason}): {e:?}"));
    }
}

/// Counts one thing done (`posted`, `forwarded`).
fn count_done(what: &str) {
    if let Err(e) = kv::increment(&format!("counts/{what}"), 1) {
        log::warn(&format!("cannot count {what}: {e:?}"));
    }
}

/// The refusals counted so far, by reason.
fn refusals() -> Result<Vec<(String, u64)>, Error> {
    let mut out = Vec::new();
    for key in kv::list_keys(REFUSED, None, 100)? {
        let n = kv::get_json::<u64>(&key)?.unwrap_or(0);
        if let Some(reason) = key.strip_prefix(REFUSED) {
            out.push((reason.to_string(), n));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
