//! A command router: `!name args` messages (the prefix is the plugin's choice, often from
//! its configuration) go to the handler registered for `name`, with the help text generated
//! from what was registered. `!help` is built in.

use crate::events::MsgType;
use crate::homeserver;
use crate::types::{Error, Event};

/// A command's handler: the plugin, the message event, and the command's arguments.
pub type Handler<T> = fn(&mut T, &Event, &Args) -> Result<(), Error>;

struct Entry<T> {
    name: String,
    usage: String,
    help: String,
    handler: Handler<T>,
}

/// A plugin's commands: a prefix and, by name, a handler with its usage and help.
pub struct Commands<T> {
    prefix: String,
    entries: Vec<Entry<T>>,
    answer_unknown: bool,
}

/// What followed a command's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// The command's name, without the prefix, in lower case.
    pub name: String,
    rest: String,
}

impl Args {
    /// Everything after the name, trimmed.
    pub fn rest(&self) -> &str {
        &self.rest
    }

    /// The arguments split on white space.
    pub fn words(&self) -> Vec<&str> {
        self.rest.split_whitespace().collect()
    }

    /// The `i`-th word (from 0).
    pub fn word(&self, i: usize) -> Option<&str> {
        self.rest.split_whitespace().nth(i)
    }

    /// What follows the first `n` words.
    pub fn after_words(&self, n: usize) -> &str {
        let mut rest = self.rest.as_str();
        for _ in 0..n {
            rest = rest.trim_start();
            rest = rest.find(char::is_whitespace).map_or("", |i| &rest[i..]);
        }
        rest.trim()
    }
}

impl<T> Commands<T> {
    /// A router for commands starting with `prefix` (`!`, `?`, `!bot `).
    pub fn new(prefix: &str) -> Commands<T> {
        Commands {
            prefix: prefix.to_string(),
            entries: Vec::new(),
            answer_unknown: true,
        }
    }

    /// No commands at all: every message goes to `on_message`.
    pub fn none() -> Commands<T> {
        Commands {
            prefix: String::new(),
            entries: Vec::new(),
            answer_unknown: false,
        }
    }

    /// Adds `name` with its usage (`TEXT`, `NdM[+K]`) and a line of help.
    pub fn command(
        mut self,
        name: &str,
        usage: &str,
        help: &str,
        handler: Handler<T>,
    ) -> Commands<T> {
        self.entries.push(Entry {
            name: name.to_ascii_lowercase(),
            usage: usage.to_string(),
            help: help.to_string(),
            handler,
        });
        self
    }

    /// Leaves messages with the prefix and an unknown name to `on_message` instead of
    /// answering "unknown command".
    pub fn quiet_unknown(mut self) -> Commands<T> {
        self.answer_unknown = false;
        self
    }

    /// The prefix commands start with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The help text: every command with its usage and help, `!help` first.
    pub fn help_text(&self) -> String {
        let mut lines = vec![format!("{}help — lists the commands", self.prefix)];
        for e in &self.entries {
            let usage = if e.usage.is_empty() {
                String::new()
            } else {
                format!(" {}", e.usage)
            };
            lines.push(format!("{}{}{usage} — {}", self.prefix, e.name, e.help));
        }
        lines.join("\n")
    }

    /// `body` as a command: its name and arguments, when it starts with the prefix.
    pub fn parse(&self, body: &str) -> Option<Args> {
        if self.prefix.is_empty() {
            return None;
        }
        let rest = body.trim_start().strip_prefix(self.prefix.as_str())?;
        let name_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let name = &rest[..name_end];
        if name.is_empty() {
            return None;
        }
        Some(Args {
            name: name.to_ascii_lowercase(),
            rest: rest[name_end..].trim().to_string(),
        })
    }

    /// Runs the command in `body`, if it is one: `None` when it is not (the message is
    /// then the plugin's `on_message`).
    pub fn dispatch(&self, plugin: &mut T, event: &Event, body: &str) -> Option<Result<(), Error>> {
        let args = self.parse(body)?;
        if let Some(e) = self.entries.iter().find(|e| e.name == args.name) {
            return Some((e.handler)(plugin, event, &args));
        }
        if args.name == "help" {
            return Some(homeserver::reply(event, MsgType::Notice, &self.help_text()).map(drop));
        }
        if !self.answer_unknown {
            return None;
        }
        let text = format!(
            "Unknown command `{}{}`. Try `{}help`.",
            self.prefix, args.name, self.prefix
        );
        Some(homeserver::reply(event, MsgType::Notice, &text).map(drop))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop(_: &mut (), _: &Event, _: &Args) -> Result<(), Error> {
        Ok(())
    }

    #[test]
    fn parses_names_and_arguments() {
        let c: Commands<()> = Commands::new("!").command("roll", "NdM", "rolls dice", noop);
        let a = c.parse("  !Roll 2d6+1  extra ").unwrap();
        assert_eq!(a.name, "roll");
        assert_eq!(a.rest(), "2d6+1  extra");
        assert_eq!(a.words(), vec!["2d6+1", "extra"]);
        assert_eq!(a.after_words(1), "extra");
        assert!(c.parse("roll 2d6").is_none());
        assert!(c.parse("! roll").is_none());
        assert!(Commands::<()>::none().parse("!roll").is_none());
    }

    #[test]
    fn help_lists_every_command() {
        let c: Commands<()> = Commands::new("?")
            .command("echo", "TEXT", "says TEXT back", noop)
            .command("ping", "", "answers pong", noop);
        assert_eq!(
            c.help_text(),
            "?help — lists the commands\n?echo TEXT — says TEXT back\n?ping — answers pong"
        );
    }
}
