//! The push rules of the users who changed theirs, in memory for the send path: every event is
//! evaluated for these members on their own (see `evaluate`), everyone else shares the
//! server's defaults. Loaded at start-up, replaced whenever `/pushrules` changes a ruleset.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use ruma_common::push::Ruleset;

use super::rules;
use crate::storage::Storage;

/// The kept rulesets by user.
pub(crate) type ByUser = HashMap<String, Arc<Ruleset>>;

/// Copied on write: a ruleset changes when a user edits their rules, while every event sent
/// reads them all, under one brief lock ([`KeptRules::snapshot`]).
#[derive(Default)]
pub(crate) struct KeptRules {
    by_user: RwLock<Arc<ByUser>>,
}

impl KeptRules {
    /// Every user's kept ruleset, read from their `m.push_rules` account data.
    pub(crate) async fn load(storage: &Storage) -> crate::storage::Result<KeptRules> {
        let kept = KeptRules::default();
        for (user, content) in storage
            .global_account_data_of_type(rules::ACCOUNT_DATA_TYPE)
            .await?
        {
            let content = serde_json::from_str(&content).ok();
            if let Ok(ruleset) = rules::from_account_data(&user, content.as_ref()) {
                kept.set(&user, ruleset);
            }
        }
        Ok(kept)
    }

    /// Every kept ruleset as it is now.
    pub(crate) fn snapshot(&self) -> Arc<ByUser> {
        self.by_user
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set(&self, user: &str, ruleset: Ruleset) {
        let mut by_user = self.by_user.write().unwrap_or_else(|e| e.into_inner());
        Arc::make_mut(&mut by_user).insert(user.to_string(), Arc::new(ruleset));
    }
}
