//! The menu tree of the configuration: menus by id, each with a prompt (text, and an
//! optional `mxc://` audio file), a time-out with a repeat count and options by digit. It is
//! read and checked once at `init`, so a call never meets a dangling submenu or an action
//! that does not parse.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// The keys a caller can press: the sixteen DTMF tones.
pub const DTMF_KEYS: &str = "0123456789*#ABCD";

const MAX_MENUS: usize = 100;
const MAX_ID: usize = 64;
const MAX_TEXT: usize = 2000;
const MAX_URI: usize = 255;
const MAX_REPEATS: u64 = 10;
/// Time-outs outside this range are a typo: a menu that hangs up before anyone can press a
/// key, or a call held open for hours.
const TIMEOUT_RANGE_MS: std::ops::RangeInclusive<u64> = 200..=3_600_000;

/// What pressing a key does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Goes to another menu and plays its prompt.
    Submenu(String),
    /// Posts the text and stays in the menu.
    Say(String),
    /// Invites the user to the room and ends the call: a full user id, or `@localpart` on
    /// the IVR's own server.
    Transfer(String),
    /// Takes the caller's next message and forwards it to the mailbox room.
    Voicemail,
    /// Says goodbye and ends the call.
    Hangup,
}

/// One menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Menu {
    /// Posted as a notice when the menu starts and on each repeat.
    pub prompt: String,
    /// An `mxc://` file posted as `m.audio` beside the notice.
    pub prompt_audio: Option<String>,
    /// How long the menu waits for a key.
    pub timeout_ms: u64,
    /// How often the prompt is played again when no key comes, before the IVR hangs up.
    pub repeats: u32,
    /// The options by key.
    pub options: BTreeMap<char, Action>,
}

/// Every menu, and the one calls start in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuTree {
    /// The first menu of every call.
    pub start: String,
    /// The menus by id.
    pub menus: BTreeMap<String, Menu>,
}

/// The defaults a menu takes when it sets no time-out or repeat count of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    /// `timeout_ms` of the configuration.
    pub timeout_ms: u64,
    /// `repeats` of the configuration.
    pub repeats: u32,
}

impl MenuTree {
    /// The tree from the configuration's `menus` (a table, or JSON text of one) and
    /// `start_menu`. `Ok(None)` when there are no menus at all: the IVR is not configured.
    /// An error names the key at fault.
    pub fn from_config(
        menus: Option<&Value>,
        start: &str,
        defaults: Defaults,
    ) -> Result<Option<MenuTree>, String> {
        let parsed;
        let table = match menus {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Object(t)) => t,
            Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
            Some(Value::String(s)) => {
                parsed = serde_json::from_str::<Value>(s)
                    .map_err(|e| format!("menus: not JSON: {e}"))?;
                match &parsed {
                    Value::Object(t) => t,
                    _ => return Err("menus: the JSON must be an object of menus by id".into()),
                }
            }
            Some(_) => return Err("menus: must be a table of menus by id".into()),
        };
        if table.is_empty() {
            return Ok(None);
        }
        if table.len() > MAX_MENUS {
            return Err(format!("menus: at most {MAX_MENUS} menus"));
        }
        let mut out = BTreeMap::new();
        for (id, menu) in table {
            if !valid_id(id) {
                return Err(format!(
                    "menus.{id}: a menu id is 1 to {MAX_ID} letters, digits, `-` or `_`"
                ));
            }
            out.insert(id.clone(), parse_menu(id, menu, defaults)?);
        }
        if !out.contains_key(start) {
            return Err(format!("start_menu: there is no menu `{start}`"));
        }
        for (id, menu) in &out {
            for (key, action) in &menu.options {
                if let Action::Submenu(target) = action {
                    if !out.contains_key(target) {
                        return Err(format!(
                            "menus.{id}.options.{key}: there is no menu `{target}`"
                        ));
                    }
                }
            }
        }
        Ok(Some(MenuTree {
            start: start.to_string(),
            menus: out,
        }))
    }

    /// The menu `id`, if the tree has it.
    pub fn menu(&self, id: &str) -> Option<&Menu> {
        self.menus.get(id)
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn parse_menu(id: &str, value: &Value, defaults: Defaults) -> Result<Menu, String> {
    let Value::Object(m) = value else {
        return Err(format!("menus.{id}: must be a table"));
    };
    for key in m.keys() {
        if !["prompt", "prompt_audio", "timeout_ms", "repeats", "options"].contains(&key.as_str()) {
            return Err(format!(
                "menus.{id}.{key}: unknown key (prompt, prompt_audio, timeout_ms, repeats, options)"
            ));
        }
    }
    let prompt = match m.get("prompt") {
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= MAX_TEXT => s.clone(),
        _ => {
            return Err(format!(
                "menus.{id}.prompt: must be a text of 1 to {MAX_TEXT} bytes"
            ))
        }
    };
    let prompt_audio = match m.get("prompt_audio") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) if valid_mxc(s) => Some(s.clone()),
        Some(_) => {
            return Err(format!(
                "menus.{id}.prompt_audio: must be an mxc://server/media URI"
            ))
        }
    };
    let timeout_ms = match m.get("timeout_ms") {
        None => defaults.timeout_ms,
        Some(v) => match v.as_u64() {
            Some(n) if TIMEOUT_RANGE_MS.contains(&n) => n,
            _ => {
                return Err(format!(
                    "menus.{id}.timeout_ms: must be a whole number of milliseconds from {} to {}",
                    TIMEOUT_RANGE_MS.start(),
                    TIMEOUT_RANGE_MS.end()
                ))
            }
        },
    };
    let repeats = match m.get("repeats") {
        None => defaults.repeats,
        Some(v) => match v.as_u64() {
            Some(n) if n <= MAX_REPEATS => n as u32,
            _ => {
                return Err(format!(
                    "menus.{id}.repeats: must be a whole number from 0 to {MAX_REPEATS}"
                ))
            }
        },
    };
    let empty = Map::new();
    let options = match m.get("options") {
        None => &empty,
        Some(Value::Object(o)) => o,
        Some(_) => return Err(format!("menus.{id}.options: must be a table by key")),
    };
    let mut parsed = BTreeMap::new();
    for (key, action) in options {
        let digit = dtmf_key(key).ok_or_else(|| {
            format!("menus.{id}.options.{key}: an option is one of the keys {DTMF_KEYS}")
        })?;
        let Value::String(text) = action else {
            return Err(format!(
                "menus.{id}.options.{key}: must be a text such as \"say Hello\""
            ));
        };
        let action =
            parse_action(text).map_err(|why| format!("menus.{id}.options.{key}: {why}"))?;
        parsed.insert(digit, action);
    }
    Ok(Menu {
        prompt,
        prompt_audio,
        timeout_ms,
        repeats,
        options: parsed,
    })
}

/// `key` as one DTMF key, upper case for `A`–`D`.
pub fn dtmf_key(key: &str) -> Option<char> {
    let mut chars = key.chars();
    let c = chars.next()?.to_ascii_uppercase();
    (chars.next().is_none() && DTMF_KEYS.contains(c)).then_some(c)
}

/// `mxc://server/media-id`, as the media repository hands them out.
pub fn valid_mxc(uri: &str) -> bool {
    let Some(rest) = uri.strip_prefix("mxc://") else {
        return false;
    };
    let Some((server, media)) = rest.split_once('/') else {
        return false;
    };
    uri.len() <= MAX_URI
        && !server.is_empty()
        && !media.is_empty()
        && !media.contains('/')
        && rest.chars().all(|c| c.is_ascii_graphic())
}

/// One option's action: `say TEXT`, `submenu MENU`, `transfer @USER`, `voicemail`, `hangup`.
pub fn parse_action(text: &str) -> Result<Action, String> {
    let text = text.trim();
    let (verb, rest) = match text.split_once(char::is_whitespace) {
        Some((v, r)) => (v, r.trim()),
        None => (text, ""),
    };
    match (verb.to_ascii_lowercase().as_str(), rest) {
        ("say", "") => Err("`say` needs the text to say".into()),
        ("say", t) if t.len() > MAX_TEXT => Err(format!("`say` takes at most {MAX_TEXT} bytes")),
        ("say", t) => Ok(Action::Say(t.to_string())),
        ("submenu", id) if valid_id(id) => Ok(Action::Submenu(id.to_string())),
        ("submenu", _) => Err("`submenu` needs a menu id".into()),
        ("transfer", user) if valid_transfer_target(user) => Ok(Action::Transfer(user.to_string())),
        ("transfer", _) => Err("`transfer` needs a user id (@user:server or @user)".into()),
        ("voicemail", "") => Ok(Action::Voicemail),
        ("hangup", "") => Ok(Action::Hangup),
        _ => Err(format!(
            "unknown action `{text}` (say TEXT, submenu MENU, transfer @USER, voicemail, hangup)"
        )),
    }
}

/// `@localpart` or `@localpart:server`, with the characters user ids are made of.
fn valid_transfer_target(user: &str) -> bool {
    let Some(rest) = user.strip_prefix('@') else {
        return false;
    };
    let (local, server) = match rest.split_once(':') {
        Some((l, s)) => (l, Some(s)),
        None => (rest, None),
    };
    user.len() <= 255
        && !local.is_empty()
        && local
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._=-/+".contains(c))
        && server.is_none_or(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
}

/// A transfer target with the IVR's server added when the configuration named a localpart
/// only.
pub fn full_user_id(target: &str, server_name: &str) -> String {
    if target.contains(':') {
        target.to_string()
    } else {
        format!("{target}:{server_name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DEFAULTS: Defaults = Defaults {
        timeout_ms: 5000,
        repeats: 2,
    };

    fn tree(menus: Value) -> Result<Option<MenuTree>, String> {
        MenuTree::from_config(Some(&menus), "main", DEFAULTS)
    }

    #[test]
    fn a_menu_tree_reads_every_action_and_takes_the_defaults() {
        let t = tree(json!({
            "main": {"prompt": "Hi", "options": {
                "1": "say Open 9 to 5", "2": "submenu sales", "3": "transfer @bob:example.org",
                "4": "voicemail", "0": "hangup", "*": "submenu main", "a": "transfer @ops"
            }},
            "sales": {"prompt": "Sales", "prompt_audio": "mxc://example.org/abc",
                      "timeout_ms": 1000, "repeats": 0}
        }))
        .unwrap()
        .unwrap();
        let main = t.menu("main").unwrap();
        assert_eq!(main.timeout_ms, 5000);
        assert_eq!(main.repeats, 2);
        assert_eq!(main.options[&'1'], Action::Say("Open 9 to 5".into()));
        assert_eq!(main.options[&'2'], Action::Submenu("sales".into()));
        assert_eq!(
            main.options[&'3'],
            Action::Transfer("@bob:example.org".into())
        );
        assert_eq!(main.options[&'4'], Action::Voicemail);
        assert_eq!(main.options[&'0'], Action::Hangup);
        assert_eq!(main.options[&'A'], Action::Transfer("@ops".into()));
        let sales = t.menu("sales").unwrap();
        assert_eq!(sales.prompt_audio.as_deref(), Some("mxc://example.org/abc"));
        assert_eq!((sales.timeout_ms, sales.repeats), (1000, 0));
    }

    #[test]
    fn a_menu_tree_may_come_as_json_text() {
        let text = r#"{"main": {"prompt": "Hi", "options": {"1": "hangup"}}}"#;
        let t = tree(json!(text)).unwrap().unwrap();
        assert_eq!(t.menu("main").unwrap().options[&'1'], Action::Hangup);
    }

    #[test]
    fn no_menus_is_not_configured_rather_than_an_error() {
        assert_eq!(MenuTree::from_config(None, "main", DEFAULTS), Ok(None));
        assert_eq!(tree(json!({})), Ok(None));
        assert_eq!(tree(json!("")), Ok(None));
    }

    #[test]
    fn mistakes_in_the_tree_are_named_by_their_key() {
        for (menus, expected) in [
            (
                json!({"main": {"prompt": "x", "options": {"1": "submenu nowhere"}}}),
                "menus.main.options.1: there is no menu `nowhere`",
            ),
            (
                json!({"other": {"prompt": "x"}}),
                "start_menu: there is no menu `main`",
            ),
            (
                json!({"main": {"prompt": "x", "options": {"12": "hangup"}}}),
                "menus.main.options.12",
            ),
            (
                json!({"main": {"prompt": "x", "options": {"1": "sya hi"}}}),
                "unknown action `sya hi`",
            ),
            (
                json!({"main": {"prompt": "x", "options": {"1": "transfer bob"}}}),
                "`transfer` needs a user id",
            ),
            (
                json!({"main": {"prompt": "x", "options": {"1": 5}}}),
                "menus.main.options.1: must be a text",
            ),
            (json!({"main": {"prompt": ""}}), "menus.main.prompt"),
            (
                json!({"main": {"prompt": "x", "prompt_audio": "https://x/y"}}),
                "menus.main.prompt_audio",
            ),
            (
                json!({"main": {"prompt": "x", "timeout_ms": 5}}),
                "menus.main.timeout_ms",
            ),
            (
                json!({"main": {"prompt": "x", "timeout_ms": "soon"}}),
                "menus.main.timeout_ms",
            ),
            (
                json!({"main": {"prompt": "x", "repeats": 99}}),
                "menus.main.repeats",
            ),
            (
                json!({"main": {"prompt": "x", "prompts": "typo"}}),
                "menus.main.prompts: unknown key",
            ),
            (json!({"ma in": {"prompt": "x"}}), "menus.ma in: a menu id"),
            (json!("{not json"), "menus: not JSON"),
            (json!([1, 2]), "menus: must be a table"),
        ] {
            let e = tree(menus).unwrap_err();
            assert!(e.contains(expected), "{e} should contain {expected}");
        }
    }

    #[test]
    fn a_huge_tree_is_refused() {
        let mut menus = Map::new();
        for i in 0..=MAX_MENUS {
            menus.insert(format!("m{i}"), json!({"prompt": "x"}));
        }
        menus.insert("main".into(), json!({"prompt": "x"}));
        assert!(tree(Value::Object(menus)).unwrap_err().contains("at most"));
    }

    #[test]
    fn transfer_targets_get_the_server_when_they_have_none() {
        assert_eq!(full_user_id("@ops", "example.org"), "@ops:example.org");
        assert_eq!(
            full_user_id("@ops:other.org", "example.org"),
            "@ops:other.org"
        );
    }

    #[test]
    fn keys_are_single_dtmf_tones() {
        assert_eq!(dtmf_key("5"), Some('5'));
        assert_eq!(dtmf_key("#"), Some('#'));
        assert_eq!(dtmf_key("b"), Some('B'));
        assert_eq!(dtmf_key("E"), None);
        assert_eq!(dtmf_key(""), None);
        assert_eq!(dtmf_key("11"), None);
    }
}
