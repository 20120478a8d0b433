//! The echo bot: joins the rooms it is invited to, answers `!echo TEXT` with TEXT and
//! `!ping` with `pong`, each as a notice in reply to the message.

use plugboard_sdk::prelude::*;

pub struct EchoBot {
    prefix: String,
}

impl Plugin for EchoBot {
    fn init(config: &Config) -> Result<Self, Error> {
        Ok(EchoBot {
            prefix: config.str_or("prefix", "!").to_string(),
        })
    }

    fn commands(&self) -> Commands<Self> {
        Commands::new(&self.prefix)
            .command("echo", "TEXT", "says TEXT back", |_, event, args| {
                homeserver::reply(event, MsgType::Notice, args.rest()).map(drop)
            })
            .command("ping", "", "answers pong", |_, event, _| {
                homeserver::reply(event, MsgType::Notice, "pong").map(drop)
            })
            // Other bots in the room answer their own commands.
            .quiet_unknown()
    }
}

export_plugin!(EchoBot);

#[cfg(test)]
mod tests {
    use super::*;
    use plugboard_sdk::testing::{invite, Harness};
    use serde_json::json;

    #[test]
    fn echoes_as_a_notice_in_reply() {
        let mut h = Harness::<EchoBot>::new(json!({})).unwrap();
        let room = h.room(&["@alice:test", "@bot:test"]);
        let asked = h
            .message(&room, "@alice:test", "!echo hello there")
            .unwrap();
        let sent = h.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].content["body"], "hello there");
        assert_eq!(sent[0].content["msgtype"], "m.notice");
        assert_eq!(
            sent[0].content["m.relates_to"]["m.in_reply_to"]["event_id"],
            asked.event_id.as_str()
        );
    }

    #[test]
    fn the_prefix_comes_from_the_config() {
        let mut h = Harness::<EchoBot>::new(json!({"prefix": "?"})).unwrap();
        let room = h.room(&["@alice:test", "@bot:test"]);
        h.message(&room, "@alice:test", "!echo no").unwrap();
        assert!(h.sent().is_empty());
        h.message(&room, "@alice:test", "?ping").unwrap();
        assert_eq!(h.sent()[0].content["body"], "pong");
    }

    #[test]
    fn joins_when_invited_and_ignores_its_own_messages() {
        let mut h = Harness::<EchoBot>::new(json!({})).unwrap();
        let room = h.room(&["@alice:test"]);
        h.event(invite(&room, "@alice:test", "@bot:test")).unwrap();
        assert_eq!(h.members(&room)["@bot:test"], "join");
        h.message(&room, "@bot:test", "!echo loop").unwrap();
        assert!(h.sent().iter().all(|s| s.event_type != "m.room.message"));
    }

    #[test]
    fn joins_only_when_invite_from_lets_the_inviter_in() {
        let mut h = Harness::<EchoBot>::new(json!({"invite_from": ["@admin:test"]})).unwrap();
        let room = h.room(&["@alice:test", "@admin:test"]);
        h.event(invite(&room, "@alice:test", "@bot:test")).unwrap();
        assert_eq!(h.members(&room)["@bot:test"], "invite");
        h.event(invite(&room, "@admin:test", "@bot:test")).unwrap();
        assert_eq!(h.members(&room)["@bot:test"], "join");
    }
}
