//! `!webhook …`, the room's commands: `new NAME` and `revoke NAME` for incoming hooks,
//! `out URL` and `out off` for forwarding, `list` for what the room has. Everything but
//! `list` is for members who may change the room's state.

use plugboard_sdk::message::escape_html;
use plugboard_sdk::prelude::*;

use crate::hooks::{self, localpart};
use crate::outgoing;
use crate::token;
use crate::totals;
use crate::{dm, Webhooks};

/// The usage line `!help` and a bare `!webhook` show.
pub const USAGE: &str = "new NAME | revoke NAME | list | out URL | out off";

/// `!webhook …`.
pub fn webhook(plugin: &mut Webhooks, event: &Event, args: &Args) -> Result<(), Error> {
    let sub = args.word(0).map(str::to_ascii_lowercase);
    let arg = args.word(1);
    let extra = args.words().len() > 2;
    match (sub.as_deref(), arg, extra) {
        (Some("new"), Some(name), false) => new(plugin, event, name),
        (Some("revoke"), Some(name), false) => revoke(event, name),
        (Some("list"), None, _) => list(event),
        (Some("out"), Some(target), false) if target.eq_ignore_ascii_case("off") => off(event),
        (Some("out"), Some(url), false) => out(plugin, event, url),
        _ => {
            crate::count("command_usage");
            let p = &plugin.settings.prefix;
            say(event, &format!("Usage: {p}webhook {USAGE}"))
        }
    }
}

fn say(event: &Event, text: &str) -> Result<(), Error> {
    homeserver::reply(event, MsgType::Notice, text).map(drop)
}

/// Whether the sender may configure the room's hooks; tells them when not.
fn may_configure(event: &Event) -> Result<bool, Error> {
    match homeserver::can_change_state(&event.room_id, &event.sender) {
        Ok(true) => Ok(true),
        Ok(false) => {
            crate::count("command_not_allowed");
            say(
                event,
                "Only members who may change this room's settings can manage its webhooks.",
            )?;
            Ok(false)
        }
        Err(e) => {
            say(
                event,
                &format!("I cannot read this room's power levels: {}", e.message),
            )?;
            Ok(false)
        }
    }
}

fn new(plugin: &mut Webhooks, event: &Event, name: &str) -> Result<(), Error> {
    if !may_configure(event)? {
        return Ok(());
    }
    let name = name.to_ascii_lowercase();
    if !hooks::valid_name(&name) {
        crate::count("command_bad_name");
        return say(
            event,
            &format!(
                "A webhook name is 1 to {} of a-z, 0-9, `-`, `_` and `.`, starting with a \
                 letter or digit.",
                hooks::MAX_NAME
            ),
        );
    }
    let room = &event.room_id;
    if hooks::exists(room, &name)? {
        return say(
            event,
            &format!("This room has a webhook `{name}` already; revoke it first."),
        );
    }
    if hooks::names(room)?.len() >= plugin.settings.max_hooks_per_room {
        return say(
            event,
            &format!(
                "This room has {} webhooks, the most it may have; revoke one first.",
                plugin.settings.max_hooks_per_room
            ),
        );
    }
    let total = totals::hooks()?;
    if total >= plugin.settings.max_hooks_total {
        crate::count("command_server_full");
        return say(
            event,
            &format!(
                "This server has {total} webhooks in all its rooms, the most it keeps; revoke \
                 one (here or in another room) or ask the server admin to raise \
                 max_hooks_total."
            ),
        );
    }
    let public_url = match plugin.settings.public_url.as_str() {
        "" => homeserver::public_base_url(),
        set => set.to_string(),
    };
    let token = token::generate();
    let url = format!(
        "{public_url}/_plugboard/plugins/webhooks/hooks/{}",
        token.token
    );
    let dm = match dm::room_with(&event.sender) {
        Ok(dm) => dm,
        Err(e) => {
            return say(
                event,
                &format!("I could not open a direct chat with you: {}", e.message),
            )
        }
    };
    let room_name = homeserver::get_state(None, room, "m.room.name", "")
        .ok()
        .and_then(|v| v["name"].as_str().map(str::to_string))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| room.clone());
    let example = r#"{"text": "Build **passed**", "username": "CI"}"#;
    let revoke = format!("{}webhook revoke {name}", plugin.settings.prefix);
    let body = format!(
        "Webhook `{name}` for {room_name}:\n{url}\nPOST JSON like {example} to it (Markdown \
         in text is formatted; username and icon_url are optional). Keep the URL secret; \
         `{revoke}` in the room turns it off."
    );
    let html = format!(
        "Webhook <code>{}</code> for {}:<br><code>{}</code><br>POST JSON like <code>{}</code> \
         to it (Markdown in <code>text</code> is formatted; <code>username</code> and \
         <code>icon_url</code> are optional). Keep the URL secret; <code>{}</code> in the \
         room turns it off.",
        escape_html(&name),
        escape_html(&room_name),
        escape_html(&url),
        escape_html(example),
        escape_html(&revoke)
    );
    // Stored before the URL goes out, so that a URL is never sent for a hook the store
    // could not take.
    if !hooks::create(&token, room, &name, &event.sender)? {
        crate::count("command_store_full");
        return say(event, STORE_FULL);
    }
    // Its own txn id: a retry of this transaction makes a new token and must say it.
    let txn = format!("webhooks.url.{}", token.selector);
    let sent = homeserver::send_event(
        None,
        &dm,
        "m.room.message",
        &Content::notice(body).html(html).into_value(),
        Some(&txn),
    );
    if let Err(e) = sent {
        // Nobody has the URL: the hook goes with it (its writes and these cancel out).
        hooks::revoke(room, &name)?;
        return say(
            event,
            &format!(
                "I could not send you the URL in a direct chat: {}",
                e.message
            ),
        );
    }
    let user = format!("@{}:{}", localpart(&name), homeserver::server_name());
    // The URL is out and the hook stored: a failed confirmation must not fail the call, whose
    // retry would make another token and send another URL.
    if let Err(e) = say(
        event,
        &format!("Made webhook `{name}`; it posts as {user}. I sent you its URL in a direct chat."),
    ) {
        log::warn(&format!(
            "webhook {name} made, but not confirmed in {room}: {e}"
        ));
    }
    Ok(())
}

fn revoke(event: &Event, name: &str) -> Result<(), Error> {
    if !may_configure(event)? {
        return Ok(());
    }
    let name = name.to_ascii_lowercase();
    if hooks::revoke(&event.room_id, &name)? {
        say(
            event,
            &format!("Revoked webhook `{name}`: its URL answers 404 from now on."),
        )
    } else {
        say(event, &format!("This room has no webhook `{name}`."))
    }
}

fn out(plugin: &mut Webhooks, event: &Event, url: &str) -> Result<(), Error> {
    if !may_configure(event)? {
        return Ok(());
    }
    let host = match outgoing::check_url(url) {
        Ok(host) => host,
        Err(why) => {
            crate::count("command_bad_url");
            return say(event, &format!("Refused: {why}."));
        }
    };
    if outgoing::load(&event.room_id)?.is_none() {
        let rooms = totals::forwarding_rooms()?;
        if rooms >= plugin.settings.max_forwarding_rooms {
            crate::count("command_forwarding_full");
            return say(
                event,
                &format!(
                    "This server forwards the messages of {rooms} rooms, the most it keeps; stop \
                     forwarding in another room or ask the server admin to raise \
                     max_forwarding_rooms."
                ),
            );
        }
    }
    if !outgoing::start(event, url, &host)? {
        crate::count("command_store_full");
        return say(event, STORE_FULL);
    }
    Ok(())
}

/// The answer to a command whose writes the host refused (its quota, or for forwarding its
/// timers, which the bound on forwarding rooms keeps clear of): as an error it would fail
/// the transaction, which the host would retry for ever.
const STORE_FULL: &str = "Refused: this plugin's store on the server is full. The server admin \
     can raise kv_quota_bytes in [plugins.settings.webhooks].";

fn off(event: &Event) -> Result<(), Error> {
    if !may_configure(event)? {
        return Ok(());
    }
    match outgoing::stop(&event.room_id)? {
        Some((host, 0)) => say(event, &format!("Stopped forwarding to {host}.")),
        Some((host, dropped)) => say(
            event,
            &format!("Stopped forwarding to {host}; dropped {dropped} waiting messages."),
        ),
        None => say(event, "This room forwards nothing."),
    }
}

fn list(event: &Event) -> Result<(), Error> {
    let names = hooks::names(&event.room_id)?;
    let mut lines = vec![if names.is_empty() {
        "No incoming webhooks in this room.".to_string()
    } else {
        format!("Incoming webhooks: {}.", names.join(", "))
    }];
    lines.push(match outgoing::load(&event.room_id)?.filter(|f| !f.off) {
        None => "No forwarding.".to_string(),
        Some(f) => {
            let mut s = format!(
                "Forwarding to {}: {} waiting, {} delivered, {} dropped",
                f.host, f.pending, f.delivered, f.dropped
            );
            if !f.verified {
                s.push_str(", not confirmed yet");
            }
            if let Some(e) = f.last_error.as_deref().filter(|_| f.failures > 0) {
                s.push_str(&format!("; {} failed tries in a row ({e})", f.failures));
            }
            s.push('.');
            s
        }
    });
    let refused = crate::refusals()?;
    if !refused.is_empty() {
        let parts: Vec<String> = refused.iter().map(|(k, n)| format!("{k} {n}")).collect();
        lines.push(format!("Refused so far: {}.", parts.join(", ")));
    }
    say(event, &lines.join("\n"))
}
