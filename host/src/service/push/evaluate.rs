//! What a new event does for each local member's notifications: the first of their push rules
//! that applies, its actions. Evaluating ruma's rules member by member costs about 4 µs each,
//! 0.4 ms an event in a room of 100 (plan15.md), so the server's default rules run once per
//! event for a stand-in member: they depend on who reads only through `invite_for_me` (the
//! state key) and `is_user_mention` (`m.mentions.user_ids`). Only the members those name and
//! the members who changed their rules are evaluated on their own, and only where their outcome
//! differs from the default is it kept apart ([`Outcome::exceptions`]).

use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, Waker};

use js_int::{Int, UInt};
use ruma_common::power_levels::NotificationPowerLevels;
use ruma_common::push::{
    Action, FlattenedJson, PushConditionPowerLevelsCtx, PushConditionRoomCtx, Ruleset,
};
use ruma_common::room_version_rules::{AuthorizationRules, RoomPowerLevelsRules};
use ruma_common::serde::Raw;
use ruma_common::{OwnedRoomId, OwnedUserId};
use serde::Serialize;
use serde_json::Value;

/// The member the default rules are evaluated for: no event can be about it unless it names
/// it, and then [`evaluate`] evaluates everyone on their own.
const STAND_IN: &str = "@plugboard.push.stand-in:invalid";

static DEFAULT_RULES: LazyLock<Ruleset> = LazyLock::new(|| {
    let user = OwnedUserId::try_from(STAND_IN).expect("the stand-in is a user id");
    Ruleset::server_default(&user)
});

/// The room as the rules see it when the event is sent.
#[derive(Debug, Clone)]
pub(crate) struct Room<'a> {
    pub(crate) room_id: &'a str,
    /// Joined members, all servers'.
    pub(crate) member_count: u64,
    /// The sender's power level, and the level `@room` needs (`notifications.room`).
    pub(crate) sender_level: i64,
    pub(crate) room_notification_level: i64,
}

/// A local member the event is evaluated for.
#[derive(Debug, Clone)]
pub(crate) struct Member<'a> {
    pub(crate) user_id: &'a str,
    pub(crate) display_name: Option<String>,
    /// Their rules when they changed them; `None` for the server's defaults.
    pub(crate) rules: Option<Arc<Ruleset>>,
}

/// What the rules made of one event.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    /// The thread the event is in (`m.thread` relation's root); `None` for the main timeline.
    pub(crate) thread_id: Option<String>,
    /// The actions for every member not in `exceptions`.
    pub(crate) default: Vec<Action>,
    /// Members whose actions differ from the default.
    pub(crate) exceptions: Vec<(String, Vec<Action>)>,
}

impl Outcome {
    /// Whether anything is worth keeping: someone is notified.
    pub(crate) fn notifies_anyone(&self) -> bool {
        notifies(&self.default) || self.exceptions.iter().any(|(_, a)| notifies(a))
    }
}

/// Whether these actions notify.
pub(crate) fn notifies(actions: &[Action]) -> bool {
    actions.iter().any(Action::should_notify)
}

/// Whether these actions highlight.
pub(crate) fn highlights(actions: &[Action]) -> bool {
    actions.iter().any(Action::is_highlight)
}

/// The thread an event belongs to, by its `m.relates_to`.
pub(crate) fn thread_of(event: &Value) -> Option<String> {
    let relation = &event["content"]["m.relates_to"];
    (relation["rel_type"].as_str() == Some("m.thread"))
        .then(|| relation["event_id"].as_str().map(str::to_string))
        .flatten()
}

/// Evaluates `event` (its JSON as sent: `type`, `content`, `sender`, `state_key`…) for
/// `members`, the sender left out. `None` when the event is not one the rules can read.
pub(crate) fn evaluate(event: &Value, room: &Room<'_>, members: &[Member<'_>]) -> Option<Outcome> {
    let sender = event["sender"].as_str()?;
    let raw = Raw::new(&RuleView::of(event)).ok()?;
    let flat = FlattenedJson::from_raw(&raw);
    let named = named_users(event);
    let stand_in_named = named.contains(&STAND_IN);
    let default = if stand_in_named {
        Vec::new()
    } else {
        first_actions(&DEFAULT_RULES, &flat, &context(room, STAND_IN, "")?)
    };
    let default_json = actions_json(&default);
    let mut exceptions = Vec::new();
    for member in members.iter().filter(|m| m.user_id != sender) {
        let own = member.rules.is_some() || stand_in_named || named.contains(&member.user_id);
        if !own {
            continue;
        }
        let ctx = context(
            room,
            member.user_id,
            member.display_name.as_deref().unwrap_or(""),
        )?;
        let actions = match &member.rules {
            Some(rules) => first_actions(rules, &flat, &ctx),
            None => first_actions(&member_defaults(member.user_id)?, &flat, &ctx),
        };
        if actions_json(&actions) != default_json {
            exceptions.push((member.user_id.to_string(), actions));
        }
    }
    Some(Outcome {
        thread_id: thread_of(event),
        default,
        exceptions,
    })
}

/// The fields of an event that rules can name, as a client sees them: a PDU's hashes,
/// signatures and DAG fields are most of its bytes, and flattening them for every event only
/// to leave them unread would be the larger part of the evaluation's cost.
#[derive(Serialize)]
struct RuleView<'a> {
    #[serde(rename = "type")]
    kind: &'a Value,
    content: &'a Value,
    sender: &'a Value,
    room_id: &'a Value,
    origin_server_ts: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    state_key: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    redacts: Option<&'a Value>,
}

impl<'a> RuleView<'a> {
    fn of(event: &'a Value) -> RuleView<'a> {
        RuleView {
            kind: &event["type"],
            content: &event["content"],
            sender: &event["sender"],
            room_id: &event["room_id"],
            origin_server_ts: &event["origin_server_ts"],
            state_key: event.get("state_key"),
            event_id: event.get("event_id"),
            redacts: event.get("redacts"),
        }
    }
}

/// The users an event is about for the default rules: its state key, and the ids in
/// `content.m.mentions.user_ids`.
fn named_users(event: &Value) -> Vec<&str> {
    let mut named: Vec<&str> = event["content"]["m.mentions"]["user_ids"]
        .as_array()
        .map(|ids| ids.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let Some(key) = event["state_key"].as_str() {
        named.push(key);
    }
    named
}

fn member_defaults(user_id: &str) -> Option<Ruleset> {
    Some(Ruleset::server_default(
        &OwnedUserId::try_from(user_id).ok()?,
    ))
}

fn context(room: &Room<'_>, user_id: &str, display_name: &str) -> Option<PushConditionRoomCtx> {
    let required = clamp(room.room_notification_level);
    let sender_room_level = Int::new(clamp(room.sender_level).min(required))?;
    let mut notifications = NotificationPowerLevels::new();
    notifications.room = Int::new(required)?;
    // ruma asks the sender's level through the users map; the other members' levels do not
    // matter to any condition, so only the sender's (capped, Int is 53 bits) is given.
    let levels = PushConditionPowerLevelsCtx::new(
        Default::default(),
        sender_room_level,
        notifications,
        RoomPowerLevelsRules::new(&AuthorizationRules::V1, []),
    );
    Some(
        PushConditionRoomCtx::new(
            OwnedRoomId::try_from(room.room_id).ok()?,
            UInt::new(room.member_count)?,
            OwnedUserId::try_from(user_id).ok()?,
            display_name.to_string(),
        )
        .with_power_levels(levels),
    )
}

/// A power level within what ruma's `Int` holds (±2^53 - 1).
fn clamp(level: i64) -> i64 {
    const MAX: i64 = (1 << 53) - 1;
    level.clamp(-MAX, MAX)
}

/// The actions of the first rule of `rules` that applies.
fn first_actions(
    rules: &Ruleset,
    event: &FlattenedJson,
    ctx: &PushConditionRoomCtx,
) -> Vec<Action> {
    for rule in rules {
        if ready(rule.applies(event, ctx)) {
            return rule.actions().to_vec();
        }
    }
    Vec::new()
}

/// Runs a future that never waits. ruma's conditions are async only for the thread
/// subscriptions of MSC4306, which this server does not give them, so the send path can
/// evaluate without an executor.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => unreachable!("push conditions do not wait without thread subscriptions"),
    }
}

/// The `actions` of one event for one user as `/notifications` and pushers give them.
pub(crate) fn actions_json(actions: &[Action]) -> Value {
    serde_json::to_value(actions).unwrap_or(Value::Array(Vec::new()))
}

#[cfg(test)]
mod tests {
    use ruma_common::push::{
        EventPropertyIsConditionData, HighlightTweakValue, NewConditionalPushRule, NewPushRule,
        PushCondition, ScalarJsonValue, Tweak,
    };
    use serde_json::json;

    use super::*;

    const ROOM: Room<'static> = Room {
        room_id: "!r:x",
        member_count: 3,
        sender_level: 0,
        room_notification_level: 50,
    };

    fn member(user_id: &'static str) -> Member<'static> {
        Member {
            user_id,
            display_name: None,
            rules: None,
        }
    }

    fn members() -> Vec<Member<'static>> {
        vec![member("@a:x"), member("@b:x"), member("@c:x")]
    }

    fn message(content: Value) -> Value {
        json!({"type": "m.room.message", "sender": "@a:x", "room_id": "!r:x", "content": content})
    }

    fn exception_users(o: &Outcome) -> Vec<&str> {
        o.exceptions.iter().map(|(u, _)| u.as_str()).collect()
    }

    fn with_rule(user: &str, conditions: Vec<PushCondition>) -> Arc<Ruleset> {
        let mut rules = member_defaults(user).unwrap();
        let rule = NewConditionalPushRule::new(
            "custom".into(),
            conditions,
            vec![
                Action::Notify,
                Action::SetTweak(Tweak::Highlight(HighlightTweakValue::Yes)),
            ],
        );
        rules
            .insert(NewPushRule::Override(rule), None, None)
            .unwrap();
        Arc::new(rules)
    }

    #[test]
    fn a_plain_message_notifies_every_member_by_the_default_rules_alone() {
        let o = evaluate(
            &message(json!({"msgtype": "m.text", "body": "hi"})),
            &ROOM,
            &members(),
        )
        .unwrap();
        assert!(notifies(&o.default) && !highlights(&o.default));
        assert!(o.exceptions.is_empty());
        assert_eq!(o.thread_id, None);
    }

    #[test]
    fn a_mention_highlights_the_mentioned_member_and_nobody_else() {
        let event = message(json!({"body": "b!", "m.mentions": {"user_ids": ["@b:x"]}}));
        let o = evaluate(&event, &ROOM, &members()).unwrap();
        assert!(!highlights(&o.default));
        assert_eq!(exception_users(&o), ["@b:x"]);
        assert!(highlights(&o.exceptions[0].1));
    }

    #[test]
    fn the_sender_mentioning_themselves_is_no_exception() {
        let event = message(json!({"body": "me", "m.mentions": {"user_ids": ["@a:x"]}}));
        let o = evaluate(&event, &ROOM, &members()).unwrap();
        assert!(o.exceptions.is_empty());
    }

    #[test]
    fn an_invite_notifies_the_invited_member_only() {
        let event = json!({"type": "m.room.member", "sender": "@a:x", "room_id": "!r:x",
                           "state_key": "@d:x", "content": {"membership": "invite"}});
        let mut all = members();
        all.push(member("@d:x"));
        let o = evaluate(&event, &ROOM, &all).unwrap();
        assert!(!notifies(&o.default));
        assert_eq!(exception_users(&o), ["@d:x"]);
        assert!(notifies(&o.exceptions[0].1));
    }

    #[test]
    fn a_notice_notifies_nobody() {
        let o = evaluate(
            &message(json!({"msgtype": "m.notice", "body": "bot"})),
            &ROOM,
            &members(),
        )
        .unwrap();
        assert!(!notifies(&o.default));
    }

    #[test]
    fn a_room_mention_highlights_only_from_a_sender_with_the_power_for_it() {
        let event = message(json!({"body": "all", "m.mentions": {"room": true}}));
        let weak = evaluate(&event, &ROOM, &members()).unwrap();
        assert!(!highlights(&weak.default));
        let strong = Room {
            sender_level: 50,
            ..ROOM
        };
        assert!(highlights(
            &evaluate(&event, &strong, &members()).unwrap().default
        ));
    }

    #[test]
    fn a_message_in_a_room_of_two_rings_with_a_sound() {
        let two = Room {
            member_count: 2,
            ..ROOM
        };
        let o = evaluate(&message(json!({"body": "hi"})), &two, &members()[..2]).unwrap();
        assert_eq!(actions_json(&o.default)[1]["set_tweak"], "sound");
    }

    #[test]
    fn a_member_with_their_own_rules_is_evaluated_with_their_display_name() {
        let mut all = members();
        // Deprecated by MSC4210 for `m.mentions`, but a user's own rule may still use it.
        #[allow(deprecated)]
        let condition = PushCondition::ContainsDisplayName;
        all[2].rules = Some(with_rule("@c:x", vec![condition]));
        all[2].display_name = Some("Carol".into());
        let o = evaluate(&message(json!({"body": "hello carol"})), &ROOM, &all).unwrap();
        assert_eq!(exception_users(&o), ["@c:x"]);
        assert!(highlights(&o.exceptions[0].1));
        let quiet = evaluate(&message(json!({"body": "hello"})), &ROOM, &all).unwrap();
        assert!(quiet.exceptions.is_empty());
    }

    #[test]
    fn an_event_property_rule_of_a_member_matches_the_flattened_event() {
        let mut all = members();
        let condition = PushCondition::EventPropertyIs(EventPropertyIsConditionData::new(
            "content.urgent".into(),
            ScalarJsonValue::Bool(true),
        ));
        all[1].rules = Some(with_rule("@b:x", vec![condition]));
        let o = evaluate(&message(json!({"body": "x", "urgent": true})), &ROOM, &all).unwrap();
        assert_eq!(exception_users(&o), ["@b:x"]);
    }

    #[test]
    fn a_thread_reply_names_its_thread() {
        let event = message(json!({"body": "r",
            "m.relates_to": {"rel_type": "m.thread", "event_id": "$root"}}));
        assert_eq!(thread_of(&event).as_deref(), Some("$root"));
        assert_eq!(thread_of(&message(json!({"body": "r"}))), None);
    }
}
