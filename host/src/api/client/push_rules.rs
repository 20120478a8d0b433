//! Push rules: `/pushrules/` (all of them) and `/pushrules/global/{kind}/{ruleId}` with its
//! `enabled` and `actions`.

use axum::extract::State;
use axum::Json as Reply;
use ruma_common::push::Action;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::error::{ApiResult, MatrixError};
use crate::api::extract::{Auth, Json, Path, Query};
use crate::api::AppState;
use crate::service::push::rules::{self, RuleChange};
use crate::service::Error;

/// GET /pushrules/
pub(crate) async fn all(State(s): State<AppState>, Auth(session): Auth) -> ApiResult<Reply<Value>> {
    let ruleset = s.push_rules(&session.user_id).await?;
    Ok(Reply(rules::account_data(&ruleset)))
}

/// GET /pushrules/global/
pub(crate) async fn global(
    State(s): State<AppState>,
    Auth(session): Auth,
) -> ApiResult<Reply<Value>> {
    let ruleset = s.push_rules(&session.user_id).await?;
    Ok(Reply(json!(ruleset)))
}

/// GET /pushrules/global/{kind}/{ruleId}
pub(crate) async fn get_rule(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path((kind, rule_id)): Path<(String, String)>,
) -> ApiResult<Reply<Value>> {
    let kind = rules::kind(&kind)?;
    let ruleset = s.push_rules(&session.user_id).await?;
    Ok(Reply(rules::rule_json(&ruleset, &kind, &rule_id)?))
}

#[derive(Deserialize)]
pub(crate) struct Placement {
    before: Option<String>,
    after: Option<String>,
}

/// PUT /pushrules/global/{kind}/{ruleId}
pub(crate) async fn put_rule(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path((kind, rule_id)): Path<(String, String)>,
    Query(place): Query<Placement>,
    Json(body): Json<Value>,
) -> ApiResult<Reply<Value>> {
    let change = RuleChange::Put {
        kind: rules::kind(&kind)?,
        rule_id,
        body,
        before: place.before,
        after: place.after,
    };
    s.change_push_rules(&session.user_id, change).await?;
    Ok(Reply(json!({})))
}

/// DELETE /pushrules/global/{kind}/{ruleId}
pub(crate) async fn delete_rule(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path((kind, rule_id)): Path<(String, String)>,
) -> ApiResult<Reply<Value>> {
    let change = RuleChange::Delete {
        kind: rules::kind(&kind)?,
        rule_id,
    };
    s.change_push_rules(&session.user_id, change).await?;
    Ok(Reply(json!({})))
}

/// GET /pushrules/global/{kind}/{ruleId}/enabled and …/actions
pub(crate) async fn get_attribute(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path((kind, rule_id, attribute)): Path<(String, String, String)>,
) -> ApiResult<Reply<Value>> {
    if !matches!(attribute.as_str(), "enabled" | "actions") {
        return Err(MatrixError::unrecognized());
    }
    let kind = rules::kind(&kind)?;
    let ruleset = s.push_rules(&session.user_id).await?;
    let (enabled, actions) = rules::enabled_and_actions(&ruleset, &kind, &rule_id)?;
    Ok(Reply(if attribute == "enabled" {
        json!({ "enabled": enabled })
    } else {
        json!({ "actions": actions })
    }))
}

/// PUT /pushrules/global/{kind}/{ruleId}/enabled (`{"enabled": bool}`) and …/actions
/// (`{"actions": [...]}`)
pub(crate) async fn put_attribute(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path((kind, rule_id, attribute)): Path<(String, String, String)>,
    Json(body): Json<Value>,
) -> ApiResult<Reply<Value>> {
    let kind = rules::kind(&kind)?;
    let change = match attribute.as_str() {
        "enabled" => {
            let Some(enabled) = body["enabled"].as_bool() else {
                return Err(Error::BadJson("'enabled' must be true or false".into()).into());
            };
            RuleChange::Enabled {
                kind,
                rule_id,
                enabled,
            }
        }
        "actions" => {
            let actions: Vec<Action> =
                serde_json::from_value(body["actions"].clone()).map_err(|e| {
                    Error::BadJson(format!("'actions' is not a list of push actions: {e}"))
                })?;
            RuleChange::Actions {
                kind,
                rule_id,
                actions,
            }
        }
        _ => return Err(MatrixError::unrecognized()),
    };
    s.change_push_rules(&session.user_id, change).await?;
    Ok(Reply(json!({})))
}
