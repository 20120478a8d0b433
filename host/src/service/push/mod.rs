//! Push: each user's push rules (`rules`), read and changed here for `/pushrules`, and kept
//! as their `m.push_rules` account data; and their pushers (`pushers`), where their devices
//! want notifications pushed. The evaluation of new events against the rules, the
//! notification counts and the delivery to push gateways build on these.

pub(crate) mod pushers;
pub(crate) mod rules;

use ruma_common::push::Ruleset;
use serde_json::Value;

use self::rules::{RuleChange, ACCOUNT_DATA_TYPE};
use super::identifiers::UserId;
use super::{Result, Services};

impl Services {
    /// `user`'s push rules: the server's defaults with their changes.
    pub(crate) async fn push_rules(&self, user: &UserId) -> Result<Ruleset> {
        let kept = self
            .storage
            .account_data(user, "", ACCOUNT_DATA_TYPE)
            .await?
            .and_then(|text| serde_json::from_str::<Value>(&text).ok());
        rules::from_account_data(user, kept.as_ref())
    }

    /// Makes `change` to `user`'s push rules and keeps the result, which /sync then carries.
    pub(crate) async fn change_push_rules(&self, user: &UserId, change: RuleChange) -> Result<()> {
        self.update_account_data(user, None, ACCOUNT_DATA_TYPE, |kept| {
            let mut ruleset = rules::from_account_data(user, kept.as_ref())?;
            rules::apply(&mut ruleset, change)?;
            Ok(rules::account_data(&ruleset))
        })
        .await
    }
}
