//! The IVR plugin: an interactive voice response for Matrix VoIP calls. Its user answers
//! calls placed to it in direct rooms (version 1 call events) with an audio-only SDP
//! answer, then runs the caller through the configured menu tree by the keys they press
//! (`org.plugboard.call.dtmf` events, or digits typed in the room): prompts, submenus,
//! texts, transfers, voicemail to a mailbox room, time-outs and hang-ups. It carries no
//! media itself. Each call's state lives in kv, so calls survive restarts.

mod call;
mod counts;
mod credentials;
mod dtmf;
mod menu;
mod outgoing;
mod sdp;
mod session;
mod settings;
mod signalling;
mod voicemail;

use plugboard_sdk::prelude::*;

use crate::call::{Call, Stage, TimerPayload};
use crate::counts::count;
use crate::settings::Settings;

/// The IVR: its configuration. Everything about calls is in kv.
pub struct Ivr {
    settings: Settings,
}

fn status(ivr: &mut Ivr, event: &Event, _: &Args) -> Result<(), Error> {
    let calls = call::in_progress(1000)?;
    let mut lines = vec![format!("Calls in progress: {}.", calls.len())];
    if let Some(c) = Call::of_caller(&event.room_id, &event.sender)? {
        let doing = match c.stage {
            Stage::Menu => format!("in menu `{}`", c.menu),
            Stage::Voicemail => "leaving a message".to_string(),
        };
        lines.push(format!("Your call {} is {doing}.", c.call_id));
    }
    if ivr.settings.menus.is_none() {
        lines.push("Not configured: set `menus` in the IVR's configuration.".into());
    }
    if ivr.settings.mailbox_room.is_none() {
        lines.push("Voicemail is not configured: set `mailbox_room`.".into());
    }
    let counted = counts::all()?;
    if !counted.is_empty() {
        let list: Vec<String> = counted.iter().map(|(k, n)| format!("{k} {n}")).collect();
        lines.push(format!("Passed over: {}.", list.join(", ")));
    }
    homeserver::reply(event, MsgType::Notice, &lines.join("\n")).map(drop)
}

impl Plugin for Ivr {
    fn init(config: &Config) -> Result<Self, Error> {
        let settings = Settings::from_config(config)?;
        if settings.menus.is_none() {
            log::warn("not configured: set `menus`; calls are declined until then");
        }
        Ok(Ivr { settings })
    }

    fn commands(&self) -> Commands<Self> {
        Commands::new(&self.settings.prefix)
            .command(
                "ivr",
                "",
                "shows the calls in progress, what is not configured and what was passed over",
                status,
            )
            .quiet_unknown()
    }

    fn on_membership(&mut self, event: &Event, member: &Membership) -> Result<(), Error> {
        if homeserver::join_if_invited(event, member, || self.accepts_invite(event)) {
            return Ok(());
        }
        match member.membership.as_str() {
            "leave" | "ban" => signalling::left(&event.room_id, &member.user_id),
            _ => Ok(()),
        }
    }

    fn on_call(&mut self, event: &Event, call: &CallEvent) -> Result<(), Error> {
        signalling::on_call(&self.settings, event, call)
    }

    fn on_message(&mut self, event: &Event, message: &Message) -> Result<(), Error> {
        let Some(mut call) = Call::of_caller(&event.room_id, &event.sender)? else {
            return Ok(());
        };
        let Some(menus) = &self.settings.menus else {
            return Ok(());
        };
        if message.replaces().is_some() {
            return Ok(());
        }
        if call.seen_before(&event.event_id) {
            return count("duplicate");
        }
        let flow = match call.stage {
            Stage::Voicemail => {
                session::voicemail_message(&self.settings, &mut call, event, message)?
            }
            Stage::Menu => {
                let typed = (message.msgtype == MsgType::Text)
                    .then(|| dtmf::typed(message.text_without_fallback()))
                    .flatten();
                match typed {
                    Some(keys) => session::press(&self.settings, menus, &mut call, &keys)?,
                    // Talk in the room during a call is not for the menu.
                    None => return Ok(()),
                }
            }
        };
        session::settle(&call, flow, clock::now_ms())
    }

    fn on_other(&mut self, event: &Event) -> Result<(), Error> {
        if event.event_type != dtmf::EVENT_TYPE {
            return Ok(());
        }
        let keys = match dtmf::parse(&event.content) {
            Ok(k) => k,
            Err(why) => {
                log::debug(&format!("a malformed key press {}: {why}", event.event_id));
                return count("rejected/dtmf");
            }
        };
        let Some(menus) = &self.settings.menus else {
            return Ok(());
        };
        let Some(mut call) = signalling::call_of(event, &keys.call_id, keys.party_id.as_deref())?
        else {
            return Ok(());
        };
        let flow = session::press(&self.settings, menus, &mut call, &keys.digits)?;
        session::settle(&call, flow, clock::now_ms())
    }

    fn on_malformed(&mut self, event: &Event, why: &str) -> Result<(), Error> {
        log::debug(&format!(
            "a malformed {} ({}): {why}",
            event.event_type, event.event_id
        ));
        match event.event_type.as_str() {
            "m.call.invite" => signalling::malformed_invite(event, why),
            t if t.starts_with("m.call.") => count("rejected/malformed_call"),
            "m.room.message" => count("rejected/malformed_message"),
            _ => count("rejected/malformed_other"),
        }
    }

    fn on_timer(&mut self, key: &str, payload: &str) -> Result<(), Error> {
        if call::is_sweep(key) {
            return call::sweep(payload, clock::now_ms());
        }
        if let Some(id) = voicemail::redelivery_of(key) {
            let mailbox = self.settings.mailbox_room.as_deref();
            return outgoing::with_txn_base(format!("ivr.voicemail.{id}"), || {
                voicemail::redeliver(mailbox, id)
            });
        }
        let Some(id) = call::timeout_call(key) else {
            log::warn(&format!("an unknown timer {key}"));
            return Ok(());
        };
        let Ok(due) = serde_json::from_str::<TimerPayload>(payload) else {
            log::warn(&format!("a timer {key} with a payload that does not parse"));
            return Ok(());
        };
        let Some(mut call) = Call::load(id)? else {
            return Ok(());
        };
        if due.generation != call.timer {
            return Ok(());
        }
        let base = format!("ivr.{id}.{}", due.generation);
        outgoing::with_txn_base(base, || {
            let flow = match &self.settings.menus {
                Some(menus) => session::timeout(menus, &mut call)?,
                None => session::hang_up(&call, "The IVR is no longer configured. Goodbye.")?,
            };
            session::settle(&call, flow, clock::now_ms())
        })
    }
}

export_plugin!(Ivr);

#[cfg(test)]
mod tests;
