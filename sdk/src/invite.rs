//! Who may invite the plugin's users into a room: the `invite_from` key of the plugin's
//! configuration, a list of user-id patterns (`*` for any run of characters, `?` for one),
//! read once at `init`. Without it, or with an empty list, anyone may.

use std::cell::RefCell;

use serde_json::Value;

use crate::config::Config;
use crate::types::Error;

/// The patterns of `invite_from`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InvitePolicy {
    patterns: Vec<String>,
}

impl InvitePolicy {
    /// Reads `invite_from` from the configuration; anything but a list of strings is
    /// refused, naming the key.
    pub fn from_config(config: &Config) -> Result<InvitePolicy, Error> {
        match config.get("invite_from") {
            None | Some(Value::Null) => Ok(InvitePolicy::default()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str().map(str::to_string).ok_or_else(|| {
                        Error::invalid("invite_from: every entry must be a user-id pattern")
                    })
                })
                .collect::<Result<_, _>>()
                .map(|patterns| InvitePolicy { patterns }),
            Some(_) => Err(Error::invalid(
                "invite_from: must be a list of user-id patterns",
            )),
        }
    }

    /// Whether `user_id` may invite the plugin's users.
    pub fn allows(&self, user_id: &str) -> bool {
        self.patterns.is_empty() || self.patterns.iter().any(|p| glob(p, user_id))
    }
}

thread_local! {
    static POLICY: RefCell<InvitePolicy> = RefCell::new(InvitePolicy::default());
}

/// Sets the policy of this instance (the runner, at `init`).
pub(crate) fn set_policy(policy: InvitePolicy) {
    POLICY.with(|p| *p.borrow_mut() = policy);
}

/// Whether the configured `invite_from` lets `user_id` invite the plugin's users.
pub fn allowed(user_id: &str) -> bool {
    POLICY.with(|p| p.borrow().allows(user_id))
}

/// `*` and `?` globbing, linear in the text: the last `*` is the only backtrack point.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patterns_match_whole_user_ids() {
        assert!(glob("@*:example.org", "@alice:example.org"));
        assert!(!glob("@*:example.org", "@alice:example.org.evil"));
        assert!(glob("@al?ce:*", "@alice:x"));
        assert!(!glob("@alice:x", "@alice:xy"));
        assert!(glob("*", ""));
    }

    #[test]
    fn no_list_lets_anyone_invite_and_a_bad_one_names_the_key() {
        let none = InvitePolicy::from_config(&Config(json!({}))).unwrap();
        assert!(none.allows("@anyone:x"));
        let some =
            InvitePolicy::from_config(&Config(json!({"invite_from": ["@admin:x", "@*:corp"]})))
                .unwrap();
        assert!(some.allows("@admin:x") && some.allows("@bob:corp"));
        assert!(!some.allows("@eve:x"));
        let bad = InvitePolicy::from_config(&Config(json!({"invite_from": "@admin:x"})));
        assert!(bad.unwrap_err().message.contains("invite_from"));
    }
}
