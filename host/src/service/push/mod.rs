//! Push: each user's push rules (`rules`), read and changed here for `/pushrules`, and kept
//! as their `m.push_rules` account data. The evaluation of new events against the rules, the
//! notification counts and pushers build on this.

pub mod rules;

use ruma_common::push::Ruleset;
use serde_json::Value;

use self::rules::{RuleChange, ACCOUNT_DATA_TYPE};
use super::{Result, Services};
use crate::storage::account_data::AccountDataWrite;
use crate::storage::writer::WriteOp;

/// What push keeps beside the stored rules.
#[derive(Default)]
pub struct PushService {
    /// Changes to push rules are read, changed and written one at a time, so that two
    /// changes at once (a client's two requests) cannot each write over the other's.
    changing: tokio::sync::Mutex<()>,
}

impl Services {
    /// `user`'s push rules: the server's defaults with their changes.
    pub(crate) async fn push_rules(&self, user: &str) -> Result<Ruleset> {
        let kept = self
            .storage
            .account_data(user, "", ACCOUNT_DATA_TYPE)
            .await?
            .and_then(|text| serde_json::from_str::<Value>(&text).ok());
        rules::from_account_data(user, kept.as_ref())
    }

    /// Makes `change` to `user`'s push rules and keeps the result, which /sync then carries.
    pub(crate) async fn change_push_rules(&self, user: &str, change: RuleChange) -> Result<()> {
        let _one_at_a_time = self.push.changing.lock().await;
        let mut ruleset = self.push_rules(user).await?;
        rules::apply(&mut ruleset, change)?;
        self.writer
            .write(WriteOp::AccountData(AccountDataWrite {
                user_id: user.to_string(),
                room_id: String::new(),
                kind: ACCOUNT_DATA_TYPE.to_string(),
                content: rules::account_data(&ruleset).to_string(),
            }))
            .await?;
        Ok(())
    }
}
