//! `POST /_matrix/appservice/v1/register`: the runtime registration of the 2015 talk. The
//! service sends `as_token`, `url` and `namespaces` and gets back the `hs_token` the server
//! will push with; the server makes up the id and the sender.
//!
//! Served only for an admin (the admin token or a server admin's access token): anyone who
//! could register this way could read all traffic with a `.*` regex. The registration goes
//! through the same checks as a file's and is stored like any runtime registration.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::{Admin, TakeoverQuery};
use crate::api::error::ApiResult;
use crate::api::extract::{Json as Body, Query};
use crate::api::AppState;
use crate::service::appservice::registered::Appservices;
use crate::service::appservice::registration::Origin;
use crate::service::keys::signing::random_alnum;

/// `POST /_matrix/appservice/v1/register[?allow_takeover=true]`
pub(crate) async fn register(
    _: Admin,
    State(s): State<AppState>,
    Query(q): Query<TakeoverQuery>,
    Body(body): Body<Value>,
) -> ApiResult<Json<Value>> {
    let id = format!("as_{}", random_alnum(16).to_ascii_lowercase());
    let hs_token = random_alnum(40);
    let yaml = registration_yaml(&id, &hs_token, &body);
    let service = Appservices::add(&s, &yaml, Origin::RegisterRequest, q.takeovers()).await?;
    Ok(Json(json!({
        "hs_token": hs_token,
        "id": service.id,
        "sender": service.namespaces.sender(),
    })))
}

/// The registration file the request amounts to. The request's fields are copied as they
/// are, so that a missing or mistyped one gets the same error as in a file.
fn registration_yaml(id: &str, hs_token: &str, body: &Value) -> String {
    let mut doc = serde_yaml::Mapping::new();
    let mut set = |key: &str, value: serde_yaml::Value| {
        doc.insert(serde_yaml::Value::String(key.to_owned()), value);
    };
    set("id", id.into());
    set("hs_token", hs_token.into());
    set("sender_localpart", id.into());
    for key in ["as_token", "url", "namespaces"] {
        if let Some(value) = body.get(key) {
            set(key, yaml_of(value));
        }
    }
    serde_yaml::to_string(&serde_yaml::Value::Mapping(doc)).unwrap_or_default()
}

/// JSON as a YAML value (numbers by value: the JSON numbers of this crate serialize
/// differently).
fn yaml_of(value: &Value) -> serde_yaml::Value {
    match value {
        Value::Null => serde_yaml::Value::Null,
        Value::Bool(b) => serde_yaml::Value::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.into(),
            (_, Some(u), _) => u.into(),
            (_, _, Some(f)) => f.into(),
            _ => serde_yaml::Value::String(n.to_string()),
        },
        Value::String(s) => serde_yaml::Value::String(s.clone()),
        Value::Array(items) => serde_yaml::Value::Sequence(items.iter().map(yaml_of).collect()),
        Value::Object(fields) => serde_yaml::Value::Mapping(
            fields
                .iter()
                .map(|(k, v)| (serde_yaml::Value::String(k.clone()), yaml_of(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::appservice::registration::{Origin, Registration};

    #[test]
    fn a_talk_request_becomes_a_registration() {
        let body = json!({
            "as_token": "secret",
            "url": "http://127.0.0.1:5000",
            "namespaces": {"users": [{"regex": "@irc_.*", "exclusive": true}], "aliases": [], "rooms": []},
        });
        let yaml = registration_yaml("as_x", "hs", &body);
        let reg = Registration::from_yaml(&yaml, Origin::RegisterRequest).unwrap();
        assert_eq!(reg.id, "as_x");
        assert_eq!(reg.sender_localpart, "as_x");
        assert_eq!(reg.as_token, "secret");
        assert_eq!(reg.hs_token, "hs");
        assert_eq!(reg.url.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(reg.namespaces.users[0].regex, "@irc_.*");
        assert!(reg.namespaces.users[0].exclusive);
    }

    #[test]
    fn a_missing_or_mistyped_field_gets_the_files_error() {
        let yaml = registration_yaml("as_x", "hs", &json!({"url": null}));
        let e = Registration::from_yaml(&yaml, Origin::RegisterRequest).unwrap_err();
        assert_eq!(e.to_string(), "register request: missing field `as_token`");
        let yaml = registration_yaml("as_x", "hs", &json!({"as_token": 5}));
        let e = Registration::from_yaml(&yaml, Origin::RegisterRequest).unwrap_err();
        assert_eq!(
            e.to_string(),
            "register request: field `as_token`: must be a string, not a number"
        );
    }
}
