//! The command bot: the bot every server wants first, and the template plugin authors copy.
//! It joins rooms it is invited to, answers `!help`, `!echo`, `!ping`, `!roll` and
//! `!remind` (durable timers: reminders survive restarts), greets arrivals where `!welcome`
//! is on, and leaves a room when it is the last one there.

mod dice;
mod remind;
mod welcome;

use plugboard_sdk::prelude::*;
use serde_json::json;

use crate::dice::Dice;
use crate::remind::Reminder;

/// The kv counter of events the bot could not read (wrong types, missing fields).
const MALFORMED: &str = "counts/malformed";

/// The longest echo, in bytes: with the reply's relation and mention it stays well inside
/// the largest event.
const MAX_ECHO: usize = 16 * 1024;

pub struct CommandBot {
    prefix: String,
}

impl Plugin for CommandBot {
    fn init(config: &Config) -> Result<Self, Error> {
        let prefix = config.str_or("prefix", "!");
        if prefix.trim().is_empty() || prefix.len() > 16 {
            return Err(Error::invalid("prefix: 1 to 16 characters, not blank"));
        }
        Ok(CommandBot {
            prefix: prefix.to_string(),
        })
    }

    fn commands(&self) -> Commands<Self> {
        Commands::<Self>::new(&self.prefix)
            .command(
                "echo",
                "TEXT",
                "says TEXT back",
                |bot, event, args| match args.rest() {
                    "" => answer(
                        event,
                        &format!("Say what? Write `{}echo TEXT`.", bot.prefix),
                    ),
                    text => answer(event, &plugboard_sdk::message::clip_marked(text, MAX_ECHO)),
                },
            )
            .command(
                "ping",
                "",
                "answers pong with the time from your message to the reply",
                |_, event, _| {
                    let ms = clock::now_ms().saturating_sub(event.origin_server_ts);
                    answer(event, &format!("pong ({ms} ms)"))
                },
            )
            .command(
                "roll",
                "NdM[+K]",
                "rolls N dice of M faces and adds K",
                |_, event, args| match Dice::parse(args.rest()) {
                    Ok(dice) => answer(event, &dice.roll().describe(&dice)),
                    Err(why) => answer(event, &format!("Cannot roll that: {why}.")),
                },
            )
            .command(
                "remind",
                "IN TEXT",
                "reminds you of TEXT after IN (90s, 10m, 1h30m, 2d)",
                |bot, event, args| remind_me(&bot.prefix, event, args),
            )
            .command(
                "welcome",
                "on TEXT | off",
                "greets everyone who joins with TEXT ({name} is their name)",
                |bot, event, args| set_welcome(&bot.prefix, event, args),
            )
            // Other bots in the room answer their own commands.
            .quiet_unknown()
    }

    fn on_membership(&mut self, event: &Event, member: &Membership) -> Result<(), Error> {
        let me = homeserver::sender();
        if member.user_id == me {
            homeserver::join_if_invited(event, member, || self.accepts_invite(event));
            return Ok(());
        }
        if welcome::is_arrival(event, member) {
            if let Some(text) = welcome::get(&event.room_id)? {
                let content =
                    Content::notice(welcome::greeting(&text, member)).mention(&member.user_id);
                homeserver::send_message(None, &event.room_id, content)?;
            }
        } else if matches!(member.membership.as_str(), "leave" | "ban") {
            leave_if_alone(&event.room_id, &me)?;
        }
        Ok(())
    }

    fn on_malformed(&mut self, event: &Event, why: &str) -> Result<(), Error> {
        kv::increment(MALFORMED, 1)?;
        log::debug(&format!(
            "ignoring a malformed {} ({}): {why}",
            event.event_type, event.event_id
        ));
        Ok(())
    }

    fn on_timer(&mut self, key: &str, payload: &str) -> Result<(), Error> {
        if !key.starts_with("remind/") {
            return Ok(());
        }
        let Ok(reminder) = serde_json::from_str::<Reminder>(payload) else {
            kv::increment(MALFORMED, 1)?;
            log::warn(&format!("dropping the unreadable reminder {key}"));
            return Ok(());
        };
        for pending in [
            remind::pending_key(&reminder.room),
            remind::PENDING_ALL.into(),
        ] {
            match kv::get_json::<u64>(&pending)?
                .unwrap_or(0)
                .saturating_sub(1)
            {
                0 => drop(kv::delete(&pending)?),
                n => kv::set_json(&pending, &n)?,
            }
        }
        let content = Content::text(format!("⏰ Reminder: {}", reminder.text))
            .mention(&reminder.user)
            .with(
                "m.relates_to",
                json!({ "m.in_reply_to": { "event_id": reminder.event_id } }),
            );
        // The txn id makes a retried timer idempotent: the reminder is posted once.
        let txn = format!("remind.{}", reminder.event_id);
        match homeserver::send_event(
            None,
            &reminder.room,
            "m.room.message",
            &content.into_value(),
            Some(&txn),
        ) {
            Ok(_) => Ok(()),
            // Out of the room since: nobody is left to remind there.
            Err(e) if e.is("M_FORBIDDEN") => {
                log::info(&format!("reminder for {} dropped: {e}", reminder.room));
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// A notice in reply to `event`.
fn answer(event: &Event, text: &str) -> Result<(), Error> {
    homeserver::reply(event, MsgType::Notice, text).map(drop)
}

fn remind_me(prefix: &str, event: &Event, args: &Args) -> Result<(), Error> {
    let usage = &format!("Write `{prefix}remind IN TEXT`, e.g. `{prefix}remind 10m stand up`.");
    let (Some(when), text) = (args.word(0), args.after_words(1)) else {
        return answer(event, usage);
    };
    if text.is_empty() {
        return answer(event, usage);
    }
    if text.chars().count() > remind::MAX_TEXT {
        return answer(
            event,
            &format!(
                "That is too long to remember: at most {} characters.",
                remind::MAX_TEXT
            ),
        );
    }
    let after_ms = match remind::parse_duration(when) {
        Ok(ms) => ms,
        Err(why) => return answer(event, &format!("{why}.")),
    };
    let pending = remind::pending_key(&event.room_id);
    let count = kv::get_json::<u64>(&pending)?.unwrap_or(0);
    if count >= remind::MAX_PENDING_PER_ROOM {
        return answer(
            event,
            &format!(
                "This room already has {} reminders waiting; that is the most I keep.",
                remind::MAX_PENDING_PER_ROOM
            ),
        );
    }
    let all = kv::get_json::<u64>(remind::PENDING_ALL)?.unwrap_or(0);
    if all >= remind::MAX_PENDING {
        return answer(
            event,
            "I am keeping as many reminders as I can for this server; try again later.",
        );
    }
    let reminder = Reminder {
        room: event.room_id.clone(),
        user: event.sender.clone(),
        text: text.to_string(),
        event_id: event.event_id.clone(),
    };
    let payload = serde_json::to_string(&reminder)?;
    if let Err(e) = timers::set_timer(&remind::timer_key(&event.event_id), after_ms, &payload) {
        if e.is("M_RESOURCE_LIMIT_EXCEEDED") {
            return answer(event, "I cannot keep another reminder right now.");
        }
        return Err(e);
    }
    kv::set_json(&pending, &(count + 1))?;
    kv::set_json(remind::PENDING_ALL, &(all + 1))?;
    answer(
        event,
        &format!("I will remind you in {}.", remind::describe(after_ms)),
    )
}

fn set_welcome(prefix: &str, event: &Event, args: &Args) -> Result<(), Error> {
    let room = &event.room_id;
    if !homeserver::can_change_state(room, &event.sender)? {
        return answer(
            event,
            "Only someone who may change this room's settings can set its greeting.",
        );
    }
    match args.word(0) {
        Some("on") => {
            let text = args.after_words(1);
            if text.is_empty() {
                return answer(event, &format!("Write `{prefix}welcome on TEXT`."));
            }
            if text.chars().count() > welcome::MAX_TEXT {
                return answer(
                    event,
                    &format!("At most {} characters, please.", welcome::MAX_TEXT),
                );
            }
            kv::set_json(&welcome::key(room), &text)?;
            answer(event, &format!("I will greet newcomers with: {text}"))
        }
        Some("off") => {
            kv::delete(&welcome::key(room))?;
            answer(event, "No more greetings here.")
        }
        _ => answer(
            event,
            &format!("Write `{prefix}welcome on TEXT` or `{prefix}welcome off`."),
        ),
    }
}

/// Leaves `room` when nobody but the bot has joined it.
fn leave_if_alone(room: &str, me: &str) -> Result<(), Error> {
    let members = match homeserver::room_members(None, room) {
        Ok(members) => members,
        // Not in the room (any more): nothing to leave.
        Err(e) if e.is("M_FORBIDDEN") || e.is("M_NOT_FOUND") => return Ok(()),
        Err(e) => return Err(e),
    };
    let others = members
        .iter()
        .any(|m| m.membership == "join" && m.user_id != me);
    if !others
        && members
            .iter()
            .any(|m| m.user_id == me && m.membership == "join")
    {
        homeserver::leave(None, room)?;
        kv::delete(&welcome::key(room))?;
    }
    Ok(())
}

export_plugin!(CommandBot);

#[cfg(test)]
mod tests;
