//! A user's push rules: the spec's server-default rules (ruma's `Ruleset::server_default`:
//! the current spec's, in its order, without the legacy display-name, user-name and `@room`
//! body rules, which MSC4210 dropped for `m.mentions`) with the user's changes; and the
//! changes `/pushrules` can make, as a [`RuleChange`] applied by the pure [`apply`]. A ruleset
//! is kept as the user's global `m.push_rules` account data (`{"global": ruleset}`), so that
//! /sync carries it to clients.

use ruma_common::push::{
    Action, AnyPushRuleRef, InsertPushRuleError, NewConditionalPushRule, NewPatternedPushRule,
    NewPushRule, NewSimplePushRule, PushCondition, RemovePushRuleError, RuleKind, Ruleset,
};
use ruma_common::{OwnedRoomId, OwnedUserId, UserId};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::service::{Error, Result};

/// The account data type a ruleset is kept under.
pub(crate) const ACCOUNT_DATA_TYPE: &str = "m.push_rules";

/// The kinds of rule, in the order they are tried.
pub(crate) const KINDS: [&str; 5] = ["override", "content", "room", "sender", "underride"];

/// The kind named in a `/pushrules/global/{kind}/…` path.
pub(crate) fn kind(name: &str) -> Result<RuleKind> {
    Ok(match name {
        "override" => RuleKind::Override,
        "content" => RuleKind::Content,
        "room" => RuleKind::Room,
        "sender" => RuleKind::Sender,
        "underride" => RuleKind::Underride,
        _ => {
            return Err(Error::InvalidParam(format!(
                "'{}' is not a kind of push rule (one of {})",
                name.escape_debug(),
                KINDS.join(", ")
            )))
        }
    })
}

/// The server's default rules for `user`.
pub(crate) fn server_default(user: &str) -> Result<Ruleset> {
    Ok(Ruleset::server_default(&ruma_user(user)?))
}

/// The ruleset kept in `m.push_rules` account data, brought up to the server's current
/// defaults (a rule the spec added since is added, one it dropped is dropped, the user's
/// `enabled` and `actions` of the others kept); the defaults when there is none, or when what
/// is kept does not read as a ruleset.
pub(crate) fn from_account_data(user: &str, content: Option<&Value>) -> Result<Ruleset> {
    let defaults = server_default(user)?;
    let Some(global) = content.and_then(|c| c.get("global")) else {
        return Ok(defaults);
    };
    match Ruleset::deserialize(global) {
        Ok(mut kept) => {
            kept.update_with_server_default(defaults);
            Ok(kept)
        }
        Err(e) => {
            tracing::warn!(user, error = %e, "stored push rules do not read; using the defaults");
            Ok(defaults)
        }
    }
}

/// What is kept as `m.push_rules` account data for `ruleset`.
pub(crate) fn account_data(ruleset: &Ruleset) -> Value {
    json!({ "global": ruleset })
}

/// One rule as `GET /pushrules/global/{kind}/{ruleId}` answers it.
pub(crate) fn rule_json(ruleset: &Ruleset, kind: &RuleKind, rule_id: &str) -> Result<Value> {
    let rule = ruleset
        .get(kind.clone(), rule_id)
        .ok_or_else(|| not_found(rule_id))?;
    let value = match rule {
        AnyPushRuleRef::Override(r) | AnyPushRuleRef::Underride(r) => serde_json::to_value(r),
        AnyPushRuleRef::Content(r) => serde_json::to_value(r),
        AnyPushRuleRef::Room(r) => serde_json::to_value(r),
        AnyPushRuleRef::Sender(r) => serde_json::to_value(r),
        _ => return Err(not_found(rule_id)),
    };
    value.map_err(|e| Error::Internal(format!("push rule to JSON: {e}")))
}

/// Whether the rule is enabled, and its actions.
pub(crate) fn enabled_and_actions(
    ruleset: &Ruleset,
    kind: &RuleKind,
    rule_id: &str,
) -> Result<(bool, Vec<Action>)> {
    let rule = ruleset
        .get(kind.clone(), rule_id)
        .ok_or_else(|| not_found(rule_id))?;
    Ok((rule.enabled(), rule.actions().to_vec()))
}

/// A change `/pushrules` makes to one rule.
#[derive(Debug, Clone)]
pub(crate) enum RuleChange {
    /// `PUT …/{kind}/{ruleId}`: add the rule, or change it, placed before or after a rule of
    /// the user's.
    Put {
        kind: RuleKind,
        rule_id: String,
        body: Value,
        before: Option<String>,
        after: Option<String>,
    },
    /// `DELETE …/{kind}/{ruleId}`.
    Delete { kind: RuleKind, rule_id: String },
    /// `PUT …/{kind}/{ruleId}/enabled`.
    Enabled {
        kind: RuleKind,
        rule_id: String,
        enabled: bool,
    },
    /// `PUT …/{kind}/{ruleId}/actions`.
    Actions {
        kind: RuleKind,
        rule_id: String,
        actions: Vec<Action>,
    },
}

/// The body of `PUT …/{kind}/{ruleId}`.
#[derive(Deserialize)]
struct RuleBody {
    actions: Vec<Action>,
    #[serde(default)]
    conditions: Option<Vec<PushCondition>>,
    #[serde(default)]
    pattern: Option<String>,
}

/// Applies `change` to `ruleset`, with the spec's errors; the ruleset is unchanged on error.
pub(crate) fn apply(ruleset: &mut Ruleset, change: RuleChange) -> Result<()> {
    // ruma inserts a new rule before it finds that its `before` or `after` does not exist:
    // the change is made on a copy, kept only when all of it holds.
    let mut changed = ruleset.clone();
    change_in_place(&mut changed, change)?;
    *ruleset = changed;
    Ok(())
}

fn change_in_place(ruleset: &mut Ruleset, change: RuleChange) -> Result<()> {
    match change {
        RuleChange::Put {
            kind,
            rule_id,
            body,
            before,
            after,
        } => {
            let rule = new_rule(kind, rule_id, body)?;
            ruleset
                .insert(rule, after.as_deref(), before.as_deref())
                .map_err(|e| insert_error(e, before.as_deref(), after.as_deref()))
        }
        RuleChange::Delete { kind, rule_id } => {
            ruleset.remove(kind, &rule_id).map_err(|e| match e {
                RemovePushRuleError::ServerDefault => Error::InvalidParam(format!(
                    "{rule_id} is a server-default rule: it cannot be deleted, only disabled"
                )),
                _ => not_found(&rule_id),
            })
        }
        RuleChange::Enabled {
            kind,
            rule_id,
            enabled,
        } => ruleset
            .set_enabled(kind, &rule_id, enabled)
            .map_err(|_| not_found(&rule_id)),
        RuleChange::Actions {
            kind,
            rule_id,
            actions,
        } => ruleset
            .set_actions(kind, &rule_id, actions)
            .map_err(|_| not_found(&rule_id)),
    }
}

/// The rule a `PUT` body describes, checked against what its kind needs.
fn new_rule(kind: RuleKind, rule_id: String, body: Value) -> Result<NewPushRule> {
    let body: RuleBody = serde_json::from_value(body)
        .map_err(|e| Error::BadJson(format!("not a push rule: {e}")))?;
    Ok(match kind {
        RuleKind::Override | RuleKind::Underride => {
            let rule = NewConditionalPushRule::new(
                rule_id,
                body.conditions.unwrap_or_default(),
                body.actions,
            );
            if kind == RuleKind::Override {
                NewPushRule::Override(rule)
            } else {
                NewPushRule::Underride(rule)
            }
        }
        RuleKind::Content => {
            let pattern = body
                .pattern
                .ok_or_else(|| Error::MissingParam("a content rule needs a pattern".into()))?;
            NewPushRule::Content(NewPatternedPushRule::new(rule_id, pattern, body.actions))
        }
        RuleKind::Room => {
            let room = OwnedRoomId::try_from(rule_id.as_str()).map_err(|_| {
                Error::InvalidParam(format!(
                    "a room rule's id is the room's id, and '{}' is not one",
                    rule_id.escape_debug()
                ))
            })?;
            NewPushRule::Room(NewSimplePushRule::new(room, body.actions))
        }
        RuleKind::Sender => {
            let user = OwnedUserId::try_from(rule_id.as_str()).map_err(|_| {
                Error::InvalidParam(format!(
                    "a sender rule's id is the sender's user id, and '{}' is not one",
                    rule_id.escape_debug()
                ))
            })?;
            NewPushRule::Sender(NewSimplePushRule::new(user, body.actions))
        }
        _ => return Err(Error::InvalidParam("not a kind of push rule".into())),
    })
}

fn insert_error(e: InsertPushRuleError, before: Option<&str>, after: Option<&str>) -> Error {
    match e {
        InsertPushRuleError::ServerDefaultRuleId => Error::InvalidParam(
            "rule ids starting with '.' are reserved for server-default rules".into(),
        ),
        InsertPushRuleError::InvalidRuleId => {
            Error::InvalidParam("a rule id may not contain '/' or '\\'".into())
        }
        InsertPushRuleError::RelativeToServerDefaultRule => {
            Error::InvalidParam("a rule cannot be placed relative to a server-default rule".into())
        }
        InsertPushRuleError::UnknownRuleId => Error::BadState(format!(
            "before/after rule not found: {}",
            before.or(after).unwrap_or_default()
        )),
        InsertPushRuleError::BeforeHigherThanAfter => {
            Error::BadState("'before' is a more important rule than 'after'".into())
        }
        _ => Error::BadState(e.to_string()),
    }
}

fn not_found(rule_id: &str) -> Error {
    Error::NotFound(format!(
        "no push rule '{}' of that kind",
        rule_id.escape_debug()
    ))
}

fn ruma_user(user: &str) -> Result<OwnedUserId> {
    <&UserId>::try_from(user)
        .map(ToOwned::to_owned)
        .map_err(|e| Error::Internal(format!("user id {user} for push rules: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "@alice:example.org";

    fn ids(ruleset: &Ruleset, kind: &str) -> Vec<String> {
        let rules = &account_data(ruleset)["global"][kind];
        rules
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| r["rule_id"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn put(
        kind: &str,
        id: &str,
        body: Value,
        before: Option<&str>,
        after: Option<&str>,
    ) -> RuleChange {
        RuleChange::Put {
            kind: super::kind(kind).unwrap(),
            rule_id: id.into(),
            body,
            before: before.map(Into::into),
            after: after.map(Into::into),
        }
    }

    #[test]
    fn the_defaults_are_the_specs_in_its_order() {
        let rules = server_default(ALICE).unwrap();
        let overrides = ids(&rules, "override");
        assert_eq!(overrides[0], ".m.rule.master");
        assert_eq!(overrides[1], ".m.rule.suppress_notices");
        assert!(overrides.contains(&".m.rule.is_user_mention".to_string()));
        let underride = ids(&rules, "underride");
        assert_eq!(underride.last().unwrap(), ".m.rule.encrypted");
        assert!(underride.contains(&".m.rule.room_one_to_one".to_string()));
        // Master is there and off: nothing is muted until the user says so.
        let (enabled, _) =
            enabled_and_actions(&rules, &RuleKind::Override, ".m.rule.master").unwrap();
        assert!(!enabled);
    }

    #[test]
    fn a_new_rule_is_the_most_important_of_its_kind_and_can_be_placed() {
        let mut rules = server_default(ALICE).unwrap();
        let notify = json!({"actions": ["notify"], "pattern": "cake*lie"});
        apply(&mut rules, put("content", "a", notify.clone(), None, None)).unwrap();
        apply(&mut rules, put("content", "b", notify.clone(), None, None)).unwrap();
        assert_eq!(&ids(&rules, "content")[..2], ["b", "a"]);
        apply(
            &mut rules,
            put("content", "c", notify.clone(), None, Some("a")),
        )
        .unwrap();
        assert_eq!(&ids(&rules, "content")[..3], ["b", "a", "c"]);
        apply(&mut rules, put("content", "d", notify, Some("b"), None)).unwrap();
        assert_eq!(&ids(&rules, "content")[..4], ["d", "b", "a", "c"]);
        // A user's override goes after master, which stays first.
        let cond = json!({"actions": [], "conditions": [
            {"kind": "event_match", "key": "type", "pattern": "m.room.topic"}]});
        apply(&mut rules, put("override", "quiet", cond, None, None)).unwrap();
        assert_eq!(&ids(&rules, "override")[..2], [".m.rule.master", "quiet"]);
    }

    #[test]
    fn the_specs_errors_for_bad_changes() {
        let mut rules = server_default(ALICE).unwrap();
        let before = rules.clone();
        let notify = json!({"actions": ["notify"], "pattern": "x"});
        let cases = [
            (
                put("content", ".mine", notify.clone(), None, None),
                "M_INVALID_PARAM",
            ),
            (
                put("content", "a/b", notify.clone(), None, None),
                "M_INVALID_PARAM",
            ),
            (
                put("content", "a", notify.clone(), Some("nope"), None),
                "M_UNKNOWN",
            ),
            (
                put(
                    "content",
                    "a",
                    notify.clone(),
                    None,
                    Some(".m.rule.contains_user_name"),
                ),
                "M_INVALID_PARAM",
            ),
            (
                put("content", "a", json!({"actions": ["notify"]}), None, None),
                "M_MISSING_PARAM",
            ),
            (
                put("content", "a", json!({"pattern": "x"}), None, None),
                "M_BAD_JSON",
            ),
            (
                put("room", "not-a-room", notify.clone(), None, None),
                "M_INVALID_PARAM",
            ),
            (put("sender", "bob", notify, None, None), "M_INVALID_PARAM"),
            (
                RuleChange::Delete {
                    kind: RuleKind::Override,
                    rule_id: ".m.rule.master".into(),
                },
                "M_INVALID_PARAM",
            ),
            (
                RuleChange::Delete {
                    kind: RuleKind::Content,
                    rule_id: "never".into(),
                },
                "M_NOT_FOUND",
            ),
            (
                RuleChange::Enabled {
                    kind: RuleKind::Room,
                    rule_id: "!never:example.org".into(),
                    enabled: true,
                },
                "M_NOT_FOUND",
            ),
        ];
        for (change, errcode) in cases {
            let what = format!("{change:?}");
            let err = apply(&mut rules, change).expect_err(&what);
            assert_eq!(err.errcode(), errcode, "{what}: {err}");
        }
        assert_eq!(account_data(&rules), account_data(&before));
        assert!(kind("global").is_err());
    }

    #[test]
    fn a_default_rule_can_be_disabled_and_given_actions_and_that_survives_a_reload() {
        let mut rules = server_default(ALICE).unwrap();
        let master = || ".m.rule.master".to_string();
        apply(
            &mut rules,
            RuleChange::Enabled {
                kind: RuleKind::Override,
                rule_id: master(),
                enabled: true,
            },
        )
        .unwrap();
        let sound: Vec<Action> =
            serde_json::from_value(json!(["notify", {"set_tweak": "sound", "value": "ding"}]))
                .unwrap();
        apply(
            &mut rules,
            RuleChange::Actions {
                kind: RuleKind::Underride,
                rule_id: ".m.rule.message".into(),
                actions: sound.clone(),
            },
        )
        .unwrap();
        let reloaded = from_account_data(ALICE, Some(&account_data(&rules))).unwrap();
        assert!(
            enabled_and_actions(&reloaded, &RuleKind::Override, &master())
                .unwrap()
                .0
        );
        let (_, actions) =
            enabled_and_actions(&reloaded, &RuleKind::Underride, ".m.rule.message").unwrap();
        assert_eq!(json!(actions), json!(sound));
        // What does not read as a ruleset gives the defaults back.
        let broken = json!({"global": {"override": 5}});
        let fallback = from_account_data(ALICE, Some(&broken)).unwrap();
        assert_eq!(
            account_data(&fallback),
            account_data(&server_default(ALICE).unwrap())
        );
    }

    #[test]
    fn a_kept_ruleset_gains_the_default_rules_it_lacks() {
        let mut old = server_default(ALICE).unwrap();
        old.override_.retain(|r| r.rule_id != ".m.rule.tombstone");
        let updated = from_account_data(ALICE, Some(&account_data(&old))).unwrap();
        assert!(ids(&updated, "override").contains(&".m.rule.tombstone".to_string()));
    }

    #[test]
    fn one_rule_reads_as_the_spec_shows_it() {
        let rules = server_default(ALICE).unwrap();
        let rule = rule_json(&rules, &RuleKind::Override, ".m.rule.suppress_notices").unwrap();
        assert_eq!(rule["rule_id"], ".m.rule.suppress_notices");
        assert_eq!(rule["default"], true);
        assert_eq!(rule["conditions"][0]["kind"], "event_match");
        assert_eq!(
            rule_json(&rules, &RuleKind::Content, "nope")
                .unwrap_err()
                .errcode(),
            "M_NOT_FOUND"
        );
    }
}
