//! Pushers: where a user's devices want notifications pushed (their app's push gateway). The
//! body of `/pushers/set` is checked by the pure [`change`] into a [`PusherChange`]; a user
//! has at most [`MAX_PER_USER`].

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::service::identifiers::UserId;
use crate::service::{now_ms, Error, Result, Services};
use crate::storage::pushers::{PusherKey, PusherRow};

/// Pushers one user may have: a phone, a tablet and a desktop each have one or two.
pub(crate) const MAX_PER_USER: usize = 100;

/// The path a push gateway's URL must have.
const NOTIFY_PATH: &str = "/_matrix/push/v1/notify";

/// What `/pushers/set` asks for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PusherChange {
    /// Add or replace the pusher; unless `append`, other users' pushers of the same app and
    /// pushkey go.
    Set {
        pusher: Box<PusherRow>,
        append: bool,
    },
    /// `kind: null`: remove the user's pusher of this app and pushkey.
    Delete { app_id: String, pushkey: String },
}

/// Reads a `/pushers/set` body of `user`, with the spec's errors.
pub(crate) fn change(user: &str, body: &Value) -> Result<PusherChange> {
    let text = |key: &str| -> Result<String> {
        match body.get(key) {
            Some(Value::String(s)) => Ok(s.clone()),
            None | Some(Value::Null) => Err(Error::MissingParam(format!("'{key}' is required"))),
            Some(_) => Err(Error::BadJson(format!("'{key}' must be a string"))),
        }
    };
    let app_id = text("app_id")?;
    let pushkey = text("pushkey")?;
    if app_id.is_empty() || app_id.chars().count() > 64 {
        return Err(Error::InvalidParam("'app_id' is 1 to 64 characters".into()));
    }
    if pushkey.is_empty() || pushkey.len() > 512 {
        return Err(Error::InvalidParam("'pushkey' is 1 to 512 bytes".into()));
    }
    let kind = match body.get("kind") {
        None => return Err(Error::MissingParam("'kind' is required".into())),
        Some(Value::Null) => return Ok(PusherChange::Delete { app_id, pushkey }),
        Some(Value::String(kind)) => kind.clone(),
        Some(_) => return Err(Error::BadJson("'kind' must be a string or null".into())),
    };
    match kind.as_str() {
        "http" => {}
        "email" => {
            return Err(Error::InvalidParam(
                "email pushers are not supported: this server sends no email".into(),
            ))
        }
        other => {
            return Err(Error::InvalidParam(format!(
                "unknown pusher kind '{}' (this server has http pushers)",
                other.escape_debug()
            )))
        }
    }
    let data = match body.get("data") {
        Some(Value::Object(data)) => data.clone(),
        None | Some(Value::Null) => return Err(Error::MissingParam("'data' is required".into())),
        Some(_) => return Err(Error::BadJson("'data' must be an object".into())),
    };
    check_data(&data)?;
    let profile_tag = match body.get("profile_tag") {
        None | Some(Value::Null) => None,
        Some(Value::String(tag)) => Some(tag.clone()),
        Some(_) => return Err(Error::BadJson("'profile_tag' must be a string".into())),
    };
    let append = match body.get("append") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(Error::BadJson("'append' must be true or false".into())),
    };
    Ok(PusherChange::Set {
        pusher: Box::new(PusherRow {
            user_id: user.to_string(),
            app_id,
            pushkey,
            kind,
            app_display_name: text("app_display_name")?,
            device_display_name: text("device_display_name")?,
            profile_tag,
            lang: text("lang")?,
            data: Value::Object(data).to_string(),
            device_id: None,
            created_ts: 0,
        }),
        append,
    })
}

/// An http pusher's `data`: a `url` of the gateway's notify path, and `format`, if any,
/// `event_id_only`.
fn check_data(data: &Map<String, Value>) -> Result<()> {
    let Some(url) = data.get("url").and_then(Value::as_str) else {
        return Err(Error::MissingParam(
            "an http pusher's data needs a 'url'".into(),
        ));
    };
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| Error::InvalidParam(format!("'data.url' is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "https" | "http") || parsed.path() != NOTIFY_PATH {
        return Err(Error::InvalidParam(format!(
            "'data.url' must be an https URL with the path {NOTIFY_PATH}"
        )));
    }
    match data.get("format") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(f)) if f == "event_id_only" => Ok(()),
        Some(_) => Err(Error::InvalidParam(
            "'data.format' is event_id_only, or absent".into(),
        )),
    }
}

/// A pusher as `GET /pushers` lists it.
fn pusher_json(p: PusherRow) -> Value {
    let data: Value = serde_json::from_str(&p.data).unwrap_or(json!({}));
    let mut out = json!({
        "app_id": p.app_id,
        "pushkey": p.pushkey,
        "kind": p.kind,
        "app_display_name": p.app_display_name,
        "device_display_name": p.device_display_name,
        "lang": p.lang,
        "data": data,
    });
    if let Some(tag) = p.profile_tag {
        out["profile_tag"] = json!(tag);
    }
    out
}

impl Services {
    /// `GET /pushers`.
    pub(crate) async fn pushers(&self, user: &UserId) -> Result<Value> {
        let pushers: Vec<Value> = self
            .storage
            .pushers(user)
            .await?
            .into_iter()
            .map(pusher_json)
            .collect();
        Ok(json!({ "pushers": pushers }))
    }

    /// `POST /pushers/set` from `device` (empty for none): its delivery starts, or starts
    /// again with the new data.
    pub(crate) async fn set_pusher(
        self: &Arc<Self>,
        user: &UserId,
        device: &str,
        body: &Value,
    ) -> Result<()> {
        match change(user, body)? {
            PusherChange::Set { mut pusher, append } => {
                pusher.device_id = (!device.is_empty()).then(|| device.to_string());
                pusher.created_ts = now_ms();
                let mine = self.storage.pushers(user).await?;
                let replaces = mine
                    .iter()
                    .any(|p| p.app_id == pusher.app_id && p.pushkey == pusher.pushkey);
                if !replaces && mine.len() >= MAX_PER_USER {
                    return Err(Error::Forbidden(format!(
                        "a user may have at most {MAX_PER_USER} pushers"
                    )));
                }
                // Notifications from now on: those of events after the stream's end.
                let start = self.notifier.position().stream;
                let gone = self.storage.set_pusher(&pusher, append, start).await?;
                self.stop_pushers(&gone).await;
                self.restart_pusher(&pusher.key()).await?;
            }
            // Removing a pusher that is not there leaves what was asked for.
            PusherChange::Delete { app_id, pushkey } => {
                let key = PusherKey {
                    user_id: user.to_string(),
                    app_id,
                    pushkey,
                };
                self.stop_pushers(std::slice::from_ref(&key)).await;
                self.storage
                    .delete_pusher(user, &key.app_id, &key.pushkey)
                    .await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> Value {
        json!({
            "app_id": "org.example.app.android", "pushkey": "KEY", "kind": "http",
            "app_display_name": "App", "device_display_name": "Phone", "lang": "en",
            "data": {"url": "https://push.example.org/_matrix/push/v1/notify",
                     "format": "event_id_only", "custom": 1}
        })
    }

    #[test]
    fn a_full_body_sets_a_pusher_and_a_null_kind_deletes_it() {
        let PusherChange::Set { pusher, append } = change("@a:x", &body()).unwrap() else {
            panic!("a set");
        };
        assert!(!append);
        assert_eq!(pusher.kind, "http");
        assert!(pusher.data.contains("custom"));
        let mut delete = body();
        delete["kind"] = Value::Null;
        assert_eq!(
            change("@a:x", &delete).unwrap(),
            PusherChange::Delete {
                app_id: "org.example.app.android".into(),
                pushkey: "KEY".into()
            }
        );
    }

    #[test]
    fn bad_bodies_get_the_specs_errors() {
        let with = |key: &str, value: Value| {
            let mut b = body();
            if value.is_null() && key != "kind" {
                b.as_object_mut().unwrap().remove(key);
            } else {
                b[key] = value;
            }
            change("@a:x", &b).unwrap_err().errcode()
        };
        assert_eq!(with("app_id", Value::Null), "M_MISSING_PARAM");
        assert_eq!(with("app_id", json!("a".repeat(65))), "M_INVALID_PARAM");
        assert_eq!(with("pushkey", json!("k".repeat(513))), "M_INVALID_PARAM");
        assert_eq!(with("pushkey", json!(5)), "M_BAD_JSON");
        assert_eq!(with("lang", Value::Null), "M_MISSING_PARAM");
        assert_eq!(with("kind", json!("email")), "M_INVALID_PARAM");
        assert_eq!(with("kind", json!("carrier-pigeon")), "M_INVALID_PARAM");
        assert_eq!(with("data", Value::Null), "M_MISSING_PARAM");
        assert_eq!(with("data", json!({})), "M_MISSING_PARAM");
        assert_eq!(
            with("data", json!({"url": "https://push.example.org/notify"})),
            "M_INVALID_PARAM"
        );
        assert_eq!(
            with(
                "data",
                json!({"url": "ftp://push.example.org/_matrix/push/v1/notify"})
            ),
            "M_INVALID_PARAM"
        );
        assert_eq!(
            with(
                "data",
                json!({"url": "https://p.example.org/_matrix/push/v1/notify", "format": "full"})
            ),
            "M_INVALID_PARAM"
        );
        assert_eq!(with("append", json!("yes")), "M_BAD_JSON");
    }
}
