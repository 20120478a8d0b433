//! The raw registration: what an admin wrote, read from the YAML file Synapse and the spec
//! use. Keys it does not know are ignored, as Synapse does; keys it knows must have the right
//! type, and every error names the file and the field.

use std::fmt;

use serde_yaml::{Mapping, Value};

use super::{Namespace, NamespaceKind, Namespaces, Origin, RegistrationError};
use crate::service::identifiers::MAX_LOCALPART_BYTES;

/// The unstable MSC2409 key that older bridges use for `receive_ephemeral`.
const UNSTABLE_PUSH_EPHEMERAL: &str = "de.sorunome.msc2409.push_ephemeral";
/// The MSC3202 opt-in: device lists, one-time key counts and unused fallback key types in
/// transactions, under the key Synapse reads.
const MSC3202: &str = "org.matrix.msc3202";

/// One application service's registration.
#[derive(Clone)]
pub struct Registration {
    /// Where it comes from; errors name it.
    pub(crate) origin: Origin,
    pub id: String,
    /// Where transactions are pushed; `None` (`url: null` or no `url`) means no pushes.
    pub(crate) url: Option<String>,
    /// What the service authenticates with to us.
    pub as_token: String,
    /// What we authenticate with to the service.
    pub hs_token: String,
    pub sender_localpart: String,
    pub namespaces: Namespaces,
    pub(crate) rate_limited: bool,
    pub(crate) protocols: Vec<String>,
    pub(crate) receive_ephemeral: bool,
    /// MSC3202 (`org.matrix.msc3202: true`): transactions also carry the device lists the
    /// service tracks and its devices' one-time key counts and unused fallback key types.
    pub(crate) msc3202: bool,
    /// Plugboard's own key `legacy_query_token`: also send the hs_token as `?access_token=`
    /// on pushes, for services written against the pre-r0 spec (the 2015 talk's receiver).
    pub(crate) legacy_query_token: bool,
    /// Whether the service is sent the events its own users sent (its sender and the users
    /// of its exclusive users namespaces). Always so for a registration file, as the spec
    /// has it; a plugin's manifest may turn it off, so that a bot's answers do not come back
    /// to it as transactions.
    pub(crate) receive_own_events: bool,
}

/// Tokens are secrets: they never appear in logs through `{:?}`.
impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("origin", &self.origin)
            .field("id", &self.id)
            .field("url", &self.url)
            .field("as_token", &"<redacted>")
            .field("hs_token", &"<redacted>")
            .field("sender_localpart", &self.sender_localpart)
            .field("namespaces", &self.namespaces)
            .field("rate_limited", &self.rate_limited)
            .field("protocols", &self.protocols)
            .field("receive_ephemeral", &self.receive_ephemeral)
            .field("msc3202", &self.msc3202)
            .finish()
    }
}

impl Registration {
    /// Parses a Synapse-format registration. `origin` names the text (its file path) in
    /// errors. Keys we do not know are ignored, as Synapse does; keys we know must have the
    /// right type.
    pub fn from_yaml(text: &str, origin: Origin) -> Result<Registration, RegistrationError> {
        let doc: Value = serde_yaml::from_str(text).map_err(|e| RegistrationError::Syntax {
            file: origin.clone(),
            message: e.to_string(),
        })?;
        let Value::Mapping(top) = doc else {
            return Err(RegistrationError::Syntax {
                file: origin,
                message: "the document is not a mapping of keys to values".to_owned(),
            });
        };
        let p = Fields { file: &origin };

        let id = p.token(&top, "id")?;
        let url = p.url(&top)?;
        let as_token = p.token(&top, "as_token")?;
        let hs_token = p.token(&top, "hs_token")?;
        let sender_localpart = p.token(&top, "sender_localpart")?;
        // Synapse's rule: the localpart must need no URL encoding.
        if !sender_localpart
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~/".contains(c))
        {
            return Err(p.invalid(
                "sender_localpart",
                "may only contain letters, digits and `-._~/`",
            ));
        }
        // Found by the registration fuzz target: a longer one makes a sender whose user id
        // is over the spec's 255 bytes.
        if sender_localpart.len() > MAX_LOCALPART_BYTES {
            return Err(p.invalid(
                "sender_localpart",
                format!("may be at most {MAX_LOCALPART_BYTES} bytes long"),
            ));
        }
        let namespaces = p.namespaces(&top)?;
        let rate_limited = p
            .bool(top.get("rate_limited"), "rate_limited")?
            .unwrap_or(true);
        let protocols = p.protocols(&top)?;
        let stable = p.bool(top.get("receive_ephemeral"), "receive_ephemeral")?;
        let unstable = p.bool(top.get(UNSTABLE_PUSH_EPHEMERAL), UNSTABLE_PUSH_EPHEMERAL)?;
        let receive_ephemeral = stable.unwrap_or(false) || unstable.unwrap_or(false);
        let msc3202 = p.bool(top.get(MSC3202), MSC3202)?.unwrap_or(false);
        let legacy_query_token = p
            .bool(top.get("legacy_query_token"), "legacy_query_token")?
            .unwrap_or(false);

        Ok(Registration {
            origin,
            id,
            url,
            as_token,
            hs_token,
            sender_localpart,
            namespaces,
            rate_limited,
            protocols,
            receive_ephemeral,
            msc3202,
            legacy_query_token,
            receive_own_events: true,
        })
    }

    /// The service's own user, `@{sender_localpart}:{server_name}`.
    pub fn sender(&self, server_name: &str) -> String {
        format!("@{}:{}", self.sender_localpart, server_name)
    }
}

/// Reads typed fields out of the YAML, naming `file` and the field in every error.
struct Fields<'a> {
    file: &'a Origin,
}

impl Fields<'_> {
    fn missing(&self, field: &str) -> RegistrationError {
        RegistrationError::Missing {
            file: self.file.clone(),
            field: field.to_owned(),
        }
    }

    fn invalid(&self, field: &str, message: impl Into<String>) -> RegistrationError {
        RegistrationError::Invalid {
            file: self.file.clone(),
            field: field.to_owned(),
            message: message.into(),
        }
    }

    /// A required, non-empty string; `null` counts as missing.
    fn token(&self, map: &Mapping, field: &str) -> Result<String, RegistrationError> {
        match map.get(field) {
            None | Some(Value::Null) => Err(self.missing(field)),
            Some(Value::String(s)) if s.is_empty() => Err(self.invalid(field, "must not be empty")),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => {
                Err(self.invalid(field, format!("must be a string, not {}", kind(other))))
            }
        }
    }

    fn url(&self, map: &Mapping) -> Result<Option<String>, RegistrationError> {
        match map.get("url") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                let rest = s
                    .strip_prefix("https://")
                    .or_else(|| s.strip_prefix("http://"));
                match rest {
                    Some(host) if !host.is_empty() => Ok(Some(s.clone())),
                    _ => Err(self.invalid(
                        "url",
                        "must be an http:// or https:// URL, or null for no pushes",
                    )),
                }
            }
            Some(other) => Err(self.invalid(
                "url",
                format!("must be a string or null, not {}", kind(other)),
            )),
        }
    }

    /// An optional boolean; `None` when absent or null.
    fn bool(&self, value: Option<&Value>, field: &str) -> Result<Option<bool>, RegistrationError> {
        match value {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => {
                Err(self.invalid(field, format!("must be true or false, not {}", kind(other))))
            }
        }
    }

    fn protocols(&self, map: &Mapping) -> Result<Vec<String>, RegistrationError> {
        let items = match map.get("protocols") {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Sequence(items)) => items,
            Some(other) => {
                return Err(self.invalid(
                    "protocols",
                    format!("must be a list of strings, not {}", kind(other)),
                ))
            }
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(self.invalid(
                    &format!("protocols[{i}]"),
                    format!("must be a string, not {}", kind(other)),
                )),
            })
            .collect()
    }

    fn namespaces(&self, map: &Mapping) -> Result<Namespaces, RegistrationError> {
        let lists = match map.get("namespaces") {
            None | Some(Value::Null) => return Ok(Namespaces::default()),
            Some(Value::Mapping(lists)) => lists,
            Some(other) => {
                return Err(self.invalid(
                    "namespaces",
                    format!(
                        "must be a mapping of users / aliases / rooms, not {}",
                        kind(other)
                    ),
                ))
            }
        };
        Ok(Namespaces {
            users: self.namespace_list(lists, NamespaceKind::Users)?,
            aliases: self.namespace_list(lists, NamespaceKind::Aliases)?,
            rooms: self.namespace_list(lists, NamespaceKind::Rooms)?,
        })
    }

    fn namespace_list(
        &self,
        lists: &Mapping,
        ns_kind: NamespaceKind,
    ) -> Result<Vec<Namespace>, RegistrationError> {
        let field = format!("namespaces.{}", ns_kind.key());
        let entries = match lists.get(ns_kind.key()) {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Sequence(entries)) => entries,
            Some(other) => {
                return Err(self.invalid(
                    &field,
                    format!(
                        "must be a list of {{regex, exclusive}} entries, not {}",
                        kind(other)
                    ),
                ))
            }
        };
        let mut out = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let at = format!("{field}[{i}]");
            let Value::Mapping(entry) = entry else {
                return Err(self.invalid(
                    &at,
                    format!(
                        "must be a {{regex, exclusive}} mapping, not {}",
                        kind(entry)
                    ),
                ));
            };
            let regex_field = format!("{at}.regex");
            let regex = match entry.get("regex") {
                None | Some(Value::Null) => return Err(self.missing(&regex_field)),
                Some(Value::String(s)) => s,
                Some(other) => {
                    return Err(self.invalid(
                        &regex_field,
                        format!("must be a string, not {}", kind(other)),
                    ))
                }
            };
            let exclusive = self
                .bool(entry.get("exclusive"), &format!("{at}.exclusive"))?
                .unwrap_or(false);
            let namespace = Namespace::new(regex, exclusive)
                .map_err(|e| self.invalid(&regex_field, format!("invalid regex: {e}")))?;
            out.push(namespace);
        }
        Ok(out)
    }
}

/// How a YAML value's type reads in an error message.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

#[cfg(test)]
mod tests;
