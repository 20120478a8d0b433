//! The IVR's configuration, read once at `init`: the menu tree, the codecs an answer may
//! keep, the time-outs, the mailbox room and the limits. A value of the wrong shape is an
//! error naming its key (the plugin does not start, and the admin sees why); a missing menu
//! tree or mailbox leaves the IVR running and saying what to set.

use plugboard_sdk::{Config, Error};
use serde_json::Value;

use crate::credentials::parse_fingerprint;
use crate::menu::{Defaults, MenuTree};

/// What the configuration says.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The prefix of the `ivr` command.
    pub prefix: String,
    /// The menus; `None` until the admin sets `menus`.
    pub menus: Option<MenuTree>,
    /// The codecs an answer may keep, in order of preference.
    pub codecs: Vec<String>,
    /// How long a voicemail waits for the caller's message.
    pub voicemail_timeout_ms: u64,
    /// Where voicemail goes (a room id or alias); `None` until set.
    pub mailbox_room: Option<String>,
    /// The media server's DTLS fingerprint, if configured.
    pub fingerprint: Option<String>,
    /// Calls in progress at once.
    pub max_calls: usize,
}

const MAX_CODECS: usize = 16;
const MAX_CALLS: u64 = 1000;

fn number(config: &Config, key: &str, default: u64, range: (u64, u64)) -> Result<u64, Error> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => match v.as_u64() {
            Some(n) if n >= range.0 && n <= range.1 => Ok(n),
            _ => Err(Error::invalid(format!(
                "{key}: must be a whole number from {} to {}",
                range.0, range.1
            ))),
        },
    }
}

fn text<'a>(config: &'a Config, key: &str, default: &'a str) -> Result<&'a str, Error> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::String(s)) if s.len() <= 255 => Ok(s),
        Some(_) => Err(Error::invalid(format!("{key}: must be a short text"))),
    }
}

impl Settings {
    /// Reads the configuration `init` was given.
    pub fn from_config(config: &Config) -> Result<Settings, Error> {
        let defaults = Defaults {
            timeout_ms: number(config, "timeout_ms", 10_000, (200, 3_600_000))?,
            repeats: number(config, "repeats", 2, (0, 10))? as u32,
        };
        let start = text(config, "start_menu", "main")?;
        let menus =
            MenuTree::from_config(config.get("menus"), start, defaults).map_err(Error::invalid)?;
        let codecs = match config.get("codecs") {
            None | Some(Value::Null) => ["opus", "G722", "PCMU", "PCMA", "telephone-event"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            Some(Value::Array(items)) => {
                let names: Option<Vec<String>> = items
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .filter(|s| {
                                !s.is_empty()
                                    && s.len() <= 32
                                    && s.chars()
                                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                            })
                            .map(str::to_string)
                    })
                    .collect();
                match names {
                    Some(n)
                        if n.len() <= MAX_CODECS
                            && n.iter().any(|c| !c.eq_ignore_ascii_case("telephone-event")) =>
                    {
                        n
                    }
                    _ => {
                        return Err(Error::invalid(format!(
                            "codecs: must be a list of up to {MAX_CODECS} codec names with at \
                             least one audio codec besides telephone-event"
                        )))
                    }
                }
            }
            Some(_) => return Err(Error::invalid("codecs: must be a list of codec names")),
        };
        let mailbox = text(config, "mailbox_room", "")?.trim();
        let mailbox_room = match mailbox {
            "" => None,
            m if plugboard_sdk::types::is_room_id(m) || (m.starts_with('#') && m.contains(':')) => {
                Some(m.to_string())
            }
            _ => {
                return Err(Error::invalid(
                    "mailbox_room: must be a room id (!…) or alias (#…:server)",
                ))
            }
        };
        let fingerprint = match text(config, "fingerprint", "")?.trim() {
            "" => None,
            f => Some(parse_fingerprint(f).map_err(Error::invalid)?),
        };
        Ok(Settings {
            prefix: text(config, "prefix", "!")?.to_string(),
            menus,
            codecs,
            voicemail_timeout_ms: number(config, "voicemail_timeout_ms", 60_000, (200, 3_600_000))?,
            mailbox_room,
            fingerprint,
            max_calls: number(config, "max_calls", 50, (1, MAX_CALLS))? as usize,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(v: Value) -> Result<Settings, Error> {
        Settings::from_config(&Config(v))
    }

    #[test]
    fn the_shipped_manifest_config_is_valid_and_complete() {
        let manifest: toml::Table = toml::from_str(include_str!("../plugin.toml")).unwrap();
        let s = settings(serde_json::to_value(&manifest["config"]).unwrap()).unwrap();
        let menus = s.menus.expect("the manifest ships a menu tree");
        assert_eq!(menus.start, "main");
        assert!(menus.menu("support").is_some());
        assert_eq!(s.mailbox_room, None);
        assert_eq!(s.codecs[0], "opus");
    }

    #[test]
    fn an_empty_config_runs_unconfigured_with_defaults() {
        let s = settings(json!({})).unwrap();
        assert_eq!(s.menus, None);
        assert_eq!(s.max_calls, 50);
        assert_eq!(s.voicemail_timeout_ms, 60_000);
        assert_eq!(s.prefix, "!");
    }

    #[test]
    fn wrong_shapes_are_named_by_their_key() {
        for (config, key) in [
            (json!({"timeout_ms": "soon"}), "timeout_ms"),
            (json!({"repeats": -1}), "repeats"),
            (json!({"codecs": "opus"}), "codecs"),
            (json!({"codecs": ["telephone-event"]}), "codecs"),
            (json!({"codecs": ["op us"]}), "codecs"),
            (json!({"mailbox_room": "lobby"}), "mailbox_room"),
            (json!({"fingerprint": "sha-256 00"}), "fingerprint"),
            (json!({"max_calls": 0}), "max_calls"),
            (
                json!({"menus": {"main": {"prompt": 3}}}),
                "menus.main.prompt",
            ),
            (json!({"start_menu": 7}), "start_menu"),
        ] {
            let e = settings(config).unwrap_err();
            assert!(e.message.starts_with(key), "{key}: {}", e.message);
        }
    }
}
