//! The menu a call runs through: prompts, keys, time-outs with their repeats, and the
//! actions of the options (submenu, say, transfer, voicemail, hang-up). Every step changes
//! the call's state, which the caller of these functions then stores or, once the call has
//! ended, forgets.

use plugboard_sdk::prelude::*;

use crate::call::{Call, Stage};
use crate::counts::count;
use crate::menu::{full_user_id, Action, Menu, MenuTree};
use crate::outgoing;
use crate::settings::Settings;
use crate::voicemail::{self, Outcome};

/// Keys of one event past this many are dropped: nobody presses more at once, and a
/// hostile event must not run the menu for long.
pub const MAX_KEYS: usize = 32;

/// Whether the call goes on after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Flow {
    /// The call goes on: store it.
    Continues,
    /// The IVR hung up: forget it.
    Ended,
}

/// Stores the call or, once it has ended, forgets it.
pub fn settle(call: &Call, flow: Flow, now_ms: u64) -> Result<(), Error> {
    match flow {
        Flow::Continues => call.save(),
        Flow::Ended => call.end(now_ms),
    }
}

/// The menu the call is in; a call whose menu left the configuration (changed while it
/// ran) goes back to the start.
fn current<'m>(menus: &'m MenuTree, call: &mut Call) -> &'m Menu {
    match menus.menu(&call.menu) {
        Some(m) => m,
        None => {
            call.menu = menus.start.clone();
            call.prompts = 0;
            // `MenuTree::from_config` refuses a tree without its start menu.
            &menus.menus[&menus.start]
        }
    }
}

fn notice(call: &Call, text: &str) -> Result<(), Error> {
    outgoing::notice(&call.room_id, &call.call_id, text).map(drop)
}

/// Plays the current menu's prompt (notice, then audio if it has one) and waits for a key.
pub fn prompt(menus: &MenuTree, call: &mut Call) -> Result<(), Error> {
    let menu = current(menus, call);
    notice(call, &menu.prompt)?;
    if let Some(uri) = &menu.prompt_audio {
        outgoing::audio(&call.room_id, &call.call_id, uri, &menu.prompt)?;
    }
    call.prompts += 1;
    call.arm_timeout(menu.timeout_ms)
}

/// Says goodbye with `text` and hangs up.
pub fn hang_up(call: &Call, text: &str) -> Result<Flow, Error> {
    notice(call, text)?;
    outgoing::hangup(&call.room_id, &call.call_id, &call.party_id, "user_hangup")?;
    Ok(Flow::Ended)
}

/// Waits in the current menu again after something that was not its prompt.
fn stay(menus: &MenuTree, call: &mut Call) -> Result<Flow, Error> {
    let timeout = current(menus, call).timeout_ms;
    call.prompts = 1;
    call.arm_timeout(timeout)?;
    Ok(Flow::Continues)
}

/// The caller pressed `keys`, in order.
pub fn press(
    settings: &Settings,
    menus: &MenuTree,
    call: &mut Call,
    keys: &str,
) -> Result<Flow, Error> {
    for key in keys.chars().take(MAX_KEYS) {
        if call.stage != Stage::Menu {
            count("ignored/keys_in_voicemail")?;
            break;
        }
        if press_one(settings, menus, call, key)? == Flow::Ended {
            return Ok(Flow::Ended);
        }
    }
    Ok(Flow::Continues)
}

fn press_one(
    settings: &Settings,
    menus: &MenuTree,
    call: &mut Call,
    key: char,
) -> Result<Flow, Error> {
    let menu = current(menus, call);
    let Some(action) = menu.options.get(&key).cloned() else {
        notice(call, &format!("Sorry, {key} is not an option."))?;
        call.prompts = 0;
        prompt(menus, call)?;
        return Ok(Flow::Continues);
    };
    match action {
        Action::Submenu(id) => {
            call.menu = id;
            call.prompts = 0;
            prompt(menus, call)?;
            Ok(Flow::Continues)
        }
        Action::Say(text) => {
            notice(call, &text)?;
            stay(menus, call)
        }
        Action::Transfer(target) => transfer(menus, call, &target),
        Action::Voicemail => match &settings.mailbox_room {
            None => {
                notice(
                    call,
                    "Voicemail is not configured: set `mailbox_room` in the IVR's configuration.",
                )?;
                stay(menus, call)
            }
            Some(_) => {
                notice(
                    call,
                    "Please leave your message now: send it as a text or audio message in \
                     this room.",
                )?;
                call.stage = Stage::Voicemail;
                call.arm_timeout(settings.voicemail_timeout_ms)?;
                Ok(Flow::Continues)
            }
        },
        Action::Hangup => hang_up(call, "Thank you for calling. Goodbye."),
    }
}

/// Invites the target into the room (unless they are there already) and ends the call.
fn transfer(menus: &MenuTree, call: &mut Call, target: &str) -> Result<Flow, Error> {
    let user = full_user_id(target, &homeserver::server_name());
    let present = homeserver::room_members(None, &call.room_id)
        .map(|members| {
            members
                .iter()
                .any(|m| m.user_id == user && (m.membership == "join" || m.membership == "invite"))
        })
        .unwrap_or(false);
    if !present {
        if let Err(e) = homeserver::invite(None, &call.room_id, &user) {
            if e.is("M_UNKNOWN") || e.is("M_LIMIT_EXCEEDED") {
                return Err(e);
            }
            log::warn(&format!("cannot invite {user} to {}: {e:?}", call.room_id));
            count("transfer_failed")?;
            notice(
                call,
                &format!("Sorry, the call cannot be transferred to {user} right now."),
            )?;
            return stay(menus, call);
        }
    }
    hang_up(
        call,
        &format!("Transferring you to {user}: they have been invited to this room. Goodbye."),
    )
}

/// The time-out of the call's menu (or voicemail) fell due.
pub fn timeout(menus: &MenuTree, call: &mut Call) -> Result<Flow, Error> {
    if call.stage == Stage::Voicemail {
        return hang_up(call, "No message was left. Goodbye.");
    }
    let menu = current(menus, call);
    if call.prompts <= menu.repeats {
        prompt(menus, call)?;
        return Ok(Flow::Continues);
    }
    hang_up(call, "No input received. Goodbye.")
}

/// The caller's message while the IVR waits for a voicemail: forwards it and hangs up.
pub fn voicemail_message(
    settings: &Settings,
    call: &mut Call,
    event: &Event,
    message: &Message,
) -> Result<Flow, Error> {
    let Some(mailbox) = &settings.mailbox_room else {
        return hang_up(call, "Voicemail is not configured. Goodbye.");
    };
    match voicemail::forward(mailbox, call, event, message)? {
        Outcome::Delivered => hang_up(call, "Thank you, your message was recorded. Goodbye."),
        Outcome::Kept => {
            count("voicemail_delayed")?;
            hang_up(
                call,
                "Thank you, your message was recorded: it will reach the mailbox as soon as \
                 the mailbox can take it. Goodbye.",
            )
        }
        Outcome::Refused => {
            count("voicemail_refused")?;
            hang_up(
                call,
                "Sorry, the mailbox cannot be reached: your message was not recorded. Goodbye.",
            )
        }
    }
}
