//! `plugin.toml`, the manifest beside each plugin's component: its id and version, the
//! namespaces it owns (the same rules and overlap checks as an appservice registration), the
//! capabilities it asks for and its default configuration. The admin's settings
//! ([`PluginSettings`]) override the manifest; [`Manifest::registration`] turns the result
//! into the appservice registration the delivery queue and the namespace checks use.

pub use super::guest::host_allowed;
pub(crate) use super::guest::Capabilities;
use crate::config::PluginSettings;
use crate::service::appservice::registration::{
    NamespaceKind, Namespaces, Origin, Registration, RegistrationError,
};
use crate::service::identifiers::MAX_LOCALPART_BYTES;
use crate::service::keys::signing::random_alnum;

#[derive(Debug, Clone)]
pub struct Manifest {
    pub id: String,
    pub(crate) version: String,
    pub(crate) description: String,
    pub(crate) sender_localpart: String,
    pub(crate) namespaces: Namespaces,
    pub(crate) receive_ephemeral: bool,
    /// Whether transactions carry the events the plugin's own users sent (off by default).
    pub(crate) receive_own_events: bool,
    /// `e2ee`: transactions carry the to-device messages for the plugin's users' devices,
    /// the device lists it tracks and its devices' key counts (what `org.matrix.msc3202`
    /// with `receive_ephemeral` gives an HTTP appservice). Off by default: a plugin that does
    /// not encrypt is not woken by key traffic for its users.
    pub(crate) e2ee: bool,
    pub capabilities: Capabilities,
    /// `[config]`: the defaults handed to `init`.
    pub config: toml::Table,
}

/// A manifest problem: the file and the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: field `{field}`: {message}")]
pub struct ManifestError {
    pub(crate) file: String,
    pub(crate) field: String,
    pub(crate) message: String,
}

/// The longest plugin id: it names a directory, a queue and metrics labels.
const MAX_ID: usize = 64;

/// A plugin id: lower-case letters, digits, `-`, `_` and `.`, starting with a letter or digit.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID
        && id.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

impl Manifest {
    /// Parses a manifest; `file` names it in errors. Unknown keys are refused (a typo would
    /// otherwise silently leave a capability at its default).
    pub fn parse(text: &str, file: &str) -> Result<Manifest, ManifestError> {
        let f = Fields { file };
        let top: toml::Table = toml::from_str(text).map_err(|e| ManifestError {
            file: file.to_owned(),
            field: "-".into(),
            message: format!("not a valid TOML manifest: {}", e.message()),
        })?;
        f.only(
            &top,
            "",
            &[
                "id",
                "version",
                "description",
                "sender_localpart",
                "receive_ephemeral",
                "receive_own_events",
                "e2ee",
                "namespaces",
                "capabilities",
                "config",
            ],
        )?;
        let id = f.string(&top, "id")?;
        if !valid_id(&id) {
            return Err(f.invalid(
                "id",
                "must be 1 to 64 lower-case letters, digits, `-`, `_` or `.`, starting with a \
                 letter or digit",
            ));
        }
        let version = f.string(&top, "version")?;
        let description = f.optional_string(&top, "description")?.unwrap_or_default();
        let sender_localpart = f.string(&top, "sender_localpart")?;
        if !sender_localpart
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-._=/".contains(c))
        {
            return Err(f.invalid(
                "sender_localpart",
                "may only contain lower-case letters, digits and `-._=/`",
            ));
        }
        // As for a registration file: the sender's user id must stay within 255 bytes.
        if sender_localpart.is_empty() || sender_localpart.len() > MAX_LOCALPART_BYTES {
            return Err(f.invalid(
                "sender_localpart",
                format!("must be 1 to {MAX_LOCALPART_BYTES} bytes long"),
            ));
        }
        let receive_ephemeral = f.bool(&top, "receive_ephemeral")?.unwrap_or(false);
        let receive_own_events = f.bool(&top, "receive_own_events")?.unwrap_or(false);
        let e2ee = f.bool(&top, "e2ee")?.unwrap_or(false);
        let namespaces = match top.get("namespaces") {
            None => Namespaces::default(),
            Some(toml::Value::Table(t)) => f.namespaces(t)?,
            Some(other) => return Err(f.wrong("namespaces", "a table", other)),
        };
        let mut capabilities = Capabilities::default();
        match top.get("capabilities") {
            None => {}
            Some(toml::Value::Table(t)) => {
                f.only(
                    t,
                    "capabilities.",
                    &["http_allow", "kv_quota_bytes", "memory_mb", "deadline_ms"],
                )?;
                if let Some(hosts) = f.string_list(t, "capabilities.http_allow", "http_allow")? {
                    for (i, host) in hosts.iter().enumerate() {
                        if !valid_host_pattern(host) {
                            return Err(f.invalid(
                                &format!("capabilities.http_allow[{i}]"),
                                "must be a host, host:port or *.domain",
                            ));
                        }
                    }
                    capabilities.http_allow = hosts;
                }
                if let Some(n) = f.positive(t, "capabilities.kv_quota_bytes", "kv_quota_bytes")? {
                    capabilities.kv_quota_bytes = n;
                }
                if let Some(n) = f.positive(t, "capabilities.memory_mb", "memory_mb")? {
                    capabilities.memory_mb = n;
                }
                if let Some(n) = f.positive(t, "capabilities.deadline_ms", "deadline_ms")? {
                    capabilities.deadline_ms = n;
                }
            }
            Some(other) => return Err(f.wrong("capabilities", "a table", other)),
        }
        let config = match top.get("config") {
            None => toml::Table::new(),
            Some(toml::Value::Table(t)) => t.clone(),
            Some(other) => return Err(f.wrong("config", "a table", other)),
        };
        Ok(Manifest {
            id,
            version,
            description,
            sender_localpart,
            namespaces,
            receive_ephemeral,
            receive_own_events,
            e2ee,
            capabilities,
            config,
        })
    }

    /// The capabilities after the admin's settings; `max_memory_mb` caps the memory.
    pub fn capabilities_with(
        &self,
        settings: Option<&PluginSettings>,
        max_memory_mb: u64,
    ) -> Capabilities {
        let mut c = self.capabilities.clone();
        if let Some(s) = settings {
            if let Some(v) = s.deadline_ms {
                c.deadline_ms = v;
            }
            if let Some(v) = s.memory_mb {
                c.memory_mb = v;
            }
            if let Some(v) = s.kv_quota_bytes {
                c.kv_quota_bytes = v;
            }
            if let Some(v) = &s.http_allow {
                c.http_allow = v.clone();
            }
        }
        c.memory_mb = c.memory_mb.min(max_memory_mb);
        c
    }

    /// The configuration `init` receives, as JSON: `[config]`, then the admin's file
    /// (`install --config`), then the server config's settings, key by key.
    pub fn config_with(&self, layers: &[&toml::Table]) -> serde_json::Value {
        let mut merged = self.config.clone();
        for layer in layers {
            for (k, v) in layer.iter() {
                merged.insert(k.clone(), v.clone());
            }
        }
        serde_json::to_value(&merged).unwrap_or_else(|_| serde_json::json!({}))
    }

    /// Whether `other` makes the same registration (sender, namespaces, what it receives):
    /// an upgrade to it keeps the plugin's place in the set as it is.
    pub(crate) fn same_registration(&self, other: &Manifest) -> bool {
        self.sender_localpart == other.sender_localpart
            && self.receive_ephemeral == other.receive_ephemeral
            && self.receive_own_events == other.receive_own_events
            && self.e2ee == other.e2ee
            && self.namespaces == other.namespaces
    }

    /// The appservice registration the queue and namespace checks use. Its tokens are made up
    /// here and never leave the process: a plugin does not talk HTTP, and the newline keeps
    /// its as_token out of any request header.
    pub fn registration(&self) -> Registration {
        Registration {
            origin: Origin::Plugin(self.id.clone()),
            id: self.id.clone(),
            url: None,
            as_token: format!("plugin\n{}", random_alnum(40)),
            hs_token: format!("plugin\n{}", random_alnum(40)),
            sender_localpart: self.sender_localpart.clone(),
            namespaces: self.namespaces.clone(),
            rate_limited: false,
            protocols: Vec::new(),
            receive_ephemeral: self.receive_ephemeral,
            msc3202: self.e2ee,
            legacy_query_token: false,
            receive_own_events: self.receive_own_events,
        }
    }
}

/// The manifests of the plugins installed in `plugins_dir` (`{id}/plugin.toml`) that parse;
/// one that does not is the runtime's to report when it loads the plugins.
pub(crate) fn installed(plugins_dir: &std::path::Path) -> Vec<Manifest> {
    let Ok(entries) = std::fs::read_dir(plugins_dir) else {
        return Vec::new();
    };
    let mut dirs: Vec<std::path::PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.iter()
        .filter_map(|dir| {
            let path = dir.join("plugin.toml");
            let text = std::fs::read_to_string(&path).ok()?;
            Manifest::parse(&text, &path.display().to_string()).ok()
        })
        .collect()
}

/// `host`, `host:port` or `*.domain`: lower-case, no scheme or path.
fn valid_host_pattern(p: &str) -> bool {
    let host = p.strip_prefix("*.").unwrap_or(p);
    let (name, port) = match host.rsplit_once(':') {
        Some((n, port)) if !n.contains(':') => (n, Some(port)),
        _ => (host, None),
    };
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-".contains(c))
        && port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0))
}

struct Fields<'a> {
    file: &'a str,
}

impl Fields<'_> {
    fn invalid(&self, field: &str, message: impl Into<String>) -> ManifestError {
        ManifestError {
            file: self.file.to_owned(),
            field: field.to_owned(),
            message: message.into(),
        }
    }

    fn wrong(&self, field: &str, want: &str, got: &toml::Value) -> ManifestError {
        self.invalid(field, format!("must be {want}, not {}", got.type_str()))
    }

    fn only(&self, t: &toml::Table, prefix: &str, known: &[&str]) -> Result<(), ManifestError> {
        match t.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(self.invalid(
                &format!("{prefix}{k}"),
                format!("unknown key (known: {})", known.join(", ")),
            )),
            None => Ok(()),
        }
    }

    fn string(&self, t: &toml::Table, key: &str) -> Result<String, ManifestError> {
        match self.optional_string(t, key)? {
            Some(s) if !s.is_empty() => Ok(s),
            Some(_) => Err(self.invalid(key, "must not be empty")),
            None => Err(self.invalid(key, "is missing")),
        }
    }

    fn optional_string(&self, t: &toml::Table, key: &str) -> Result<Option<String>, ManifestError> {
        match t.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.wrong(key, "a string", other)),
        }
    }

    fn bool(&self, t: &toml::Table, key: &str) -> Result<Option<bool>, ManifestError> {
        match t.get(key) {
            None => Ok(None),
            Some(toml::Value::Boolean(b)) => Ok(Some(*b)),
            Some(other) => Err(self.wrong(key, "true or false", other)),
        }
    }

    fn positive(
        &self,
        t: &toml::Table,
        field: &str,
        key: &str,
    ) -> Result<Option<u64>, ManifestError> {
        match t.get(key) {
            None => Ok(None),
            Some(toml::Value::Integer(n)) if *n > 0 => Ok(Some(*n as u64)),
            Some(toml::Value::Integer(_)) => Err(self.invalid(field, "must be at least 1")),
            Some(other) => Err(self.wrong(field, "a positive integer", other)),
        }
    }

    fn string_list(
        &self,
        t: &toml::Table,
        field: &str,
        key: &str,
    ) -> Result<Option<Vec<String>>, ManifestError> {
        let items = match t.get(key) {
            None => return Ok(None),
            Some(toml::Value::Array(items)) => items,
            Some(other) => return Err(self.wrong(field, "a list of strings", other)),
        };
        items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                toml::Value::String(s) => Ok(s.clone()),
                other => Err(self.wrong(&format!("{field}[{i}]"), "a string", other)),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// `[namespaces]`: `users`, `aliases`, `rooms`, each a list of `{ regex, exclusive }`.
    fn namespaces(&self, t: &toml::Table) -> Result<Namespaces, ManifestError> {
        self.only(t, "namespaces.", &["users", "aliases", "rooms"])?;
        let mut out = Namespaces::default();
        for kind in NamespaceKind::ALL {
            let field = format!("namespaces.{}", kind.key());
            let entries = match t.get(kind.key()) {
                None => continue,
                Some(toml::Value::Array(entries)) => entries,
                Some(other) => {
                    return Err(self.wrong(&field, "a list of { regex, exclusive } tables", other))
                }
            };
            let list = match kind {
                NamespaceKind::Users => &mut out.users,
                NamespaceKind::Aliases => &mut out.aliases,
                NamespaceKind::Rooms => &mut out.rooms,
            };
            for (i, entry) in entries.iter().enumerate() {
                let at = format!("{field}[{i}]");
                let toml::Value::Table(entry) = entry else {
                    return Err(self.wrong(&at, "a { regex, exclusive } table", entry));
                };
                self.only(entry, &format!("{at}."), &["regex", "exclusive"])?;
                let regex_field = format!("{at}.regex");
                let regex = match entry.get("regex") {
                    Some(toml::Value::String(s)) => s,
                    Some(other) => return Err(self.wrong(&regex_field, "a string", other)),
                    None => return Err(self.invalid(&regex_field, "is missing")),
                };
                let exclusive = match entry.get("exclusive") {
                    None => false,
                    Some(toml::Value::Boolean(b)) => *b,
                    Some(other) => {
                        return Err(self.wrong(&format!("{at}.exclusive"), "true or false", other))
                    }
                };
                let ns = crate::service::appservice::registration::Namespace::new(regex, exclusive)
                    .map_err(|e| self.invalid(&regex_field, format!("invalid regex: {e}")))?;
                list.push(ns);
            }
        }
        Ok(out)
    }
}

/// A manifest error as the registration set reports a clash (the set check names plugins by
/// their registration's source).
impl From<ManifestError> for RegistrationError {
    fn from(e: ManifestError) -> Self {
        RegistrationError::Invalid {
            file: Origin::Manifest(e.file),
            field: e.field,
            message: e.message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
id = "echo-bot"
version = "1.2.0"
description = "Echoes"
sender_localpart = "echo"

[namespaces]
users = [{ regex = "@echo_.*", exclusive = true }]

[capabilities]
http_allow = ["127.0.0.1:8080", "*.example.org"]
kv_quota_bytes = 1000
deadline_ms = 250

[config]
prefix = "!"
"#;

    fn err(text: &str) -> ManifestError {
        Manifest::parse(text, "plugin.toml").unwrap_err()
    }

    #[test]
    fn reads_every_field() {
        let m = Manifest::parse(GOOD, "plugin.toml").unwrap();
        assert_eq!((m.id.as_str(), m.version.as_str()), ("echo-bot", "1.2.0"));
        assert_eq!(m.namespaces.users.len(), 1);
        assert!(m.namespaces.users[0].exclusive);
        assert_eq!(m.capabilities.kv_quota_bytes, 1000);
        assert_eq!(m.capabilities.deadline_ms, 250);
        assert_eq!(m.capabilities.memory_mb, 64, "default");
        assert_eq!(m.config["prefix"].as_str(), Some("!"));
        let r = m.registration();
        assert_eq!(r.id, "echo-bot");
        assert!(r.url.is_none() && !r.rate_limited);
        assert!(r.as_token.contains('\n'));
    }

    #[test]
    fn e2ee_is_off_unless_the_manifest_asks_and_then_is_the_registrations_msc3202() {
        let plain = Manifest::parse(GOOD, "plugin.toml").unwrap();
        assert!(!plain.e2ee && !plain.registration().msc3202);
        let text = GOOD.replace("sender_localpart", "e2ee = true\nsender_localpart");
        let m = Manifest::parse(&text, "plugin.toml").unwrap();
        assert!(m.e2ee && m.registration().msc3202);
        assert!(
            !m.same_registration(&plain),
            "turning it on changes what it receives"
        );
        let bad = GOOD.replace("sender_localpart", "e2ee = \"yes\"\nsender_localpart");
        assert_eq!(err(&bad).field, "e2ee");
    }

    #[test]
    fn refuses_an_empty_or_overlong_sender_localpart() {
        for lp in [String::new(), "b".repeat(MAX_LOCALPART_BYTES + 1)] {
            let text = format!("id = \"x\"\nversion = \"1\"\nsender_localpart = \"{lp}\"");
            assert_eq!(err(&text).field, "sender_localpart", "{lp:?}");
        }
    }

    #[test]
    fn names_the_field_at_fault() {
        assert_eq!(err("version = \"1\"\nsender_localpart = \"x\"").field, "id");
        assert_eq!(err(&GOOD.replace("echo-bot", "Echo Bot")).field, "id");
        assert_eq!(
            err(&GOOD.replace("@echo_.*", "@echo_(")).field,
            "namespaces.users[0].regex"
        );
        assert_eq!(
            err(&GOOD.replace("deadline_ms = 250", "deadline_ms = \"soon\"")).field,
            "capabilities.deadline_ms"
        );
        assert_eq!(
            err(&GOOD.replace("kv_quota_bytes = 1000", "kv_quota = 1000")).field,
            "capabilities.kv_quota"
        );
        assert_eq!(
            err(&GOOD.replace("*.example.org", "https://example.org/x")).field,
            "capabilities.http_allow[1]"
        );
        assert_eq!(err("id = ").field, "-");
    }

    #[test]
    fn settings_override_the_manifest_and_memory_is_capped() {
        let m = Manifest::parse(GOOD, "plugin.toml").unwrap();
        let s = PluginSettings {
            deadline_ms: Some(5000),
            memory_mb: Some(1024),
            http_allow: Some(vec![]),
            ..Default::default()
        };
        let c = m.capabilities_with(Some(&s), 512);
        assert_eq!((c.deadline_ms, c.memory_mb), (5000, 512));
        assert!(c.http_allow.is_empty());
        assert_eq!(c.kv_quota_bytes, 1000);
    }

    #[test]
    fn config_layers_win_key_by_key() {
        let m = Manifest::parse(GOOD, "plugin.toml").unwrap();
        let file: toml::Table = toml::from_str("prefix = \"?\"\ngreeting = \"hi\"").unwrap();
        let admin: toml::Table = toml::from_str("greeting = \"hello\"").unwrap();
        let c = m.config_with(&[&file, &admin]);
        assert_eq!(c, serde_json::json!({"prefix": "?", "greeting": "hello"}));
    }

    #[test]
    fn allow_list_matches_host_port_and_subdomains() {
        let allow = vec![
            "127.0.0.1:8080".to_string(),
            "*.example.org".to_string(),
            "api.test".to_string(),
        ];
        assert!(host_allowed(&allow, "127.0.0.1", Some(8080)));
        assert!(!host_allowed(&allow, "127.0.0.1", Some(8081)));
        assert!(host_allowed(&allow, "a.b.example.org", Some(443)));
        assert!(!host_allowed(&allow, "example.org", Some(443)));
        assert!(!host_allowed(&allow, "evilexample.org", None));
        assert!(host_allowed(&allow, "API.test", Some(80)));
        assert!(!host_allowed(&[], "api.test", None));
    }
}
