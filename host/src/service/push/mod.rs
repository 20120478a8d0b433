//! Push: each user's push rules (`rules`), read and changed here for `/pushrules`, and kept
//! as their `m.push_rules` account data; and their pushers (`pushers`), where their devices
//! want notifications pushed. Each new event is evaluated against the rules on the send path
//! (`evaluate`, `outcome`, with the changed rulesets in memory in `kept`); the unread counts
//! of /sync (`counts`) and `GET /notifications` (`notifications`) read the outcomes, and
//! each http pusher's queue (`delivery`) pushes them to its gateway (`gateway`).

pub(crate) mod counts;
pub(crate) mod delivery;
pub(crate) mod evaluate;
pub(crate) mod gateway;
pub(crate) mod kept;
pub(crate) mod notifications;
pub(crate) mod outcome;
pub(crate) mod pushers;
pub(crate) mod rules;

use ruma_common::push::Ruleset;
use serde_json::Value;

use self::counts::{Basis, Unread};
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
        let mut changed = None;
        self.update_account_data(user, None, ACCOUNT_DATA_TYPE, |kept| {
            let mut ruleset = rules::from_account_data(user, kept.as_ref())?;
            rules::apply(&mut ruleset, change)?;
            let content = rules::account_data(&ruleset);
            changed = Some(ruleset);
            Ok(content)
        })
        .await?;
        if let Some(ruleset) = changed {
            self.rooms.push_rules.set(user, ruleset);
        }
        Ok(())
    }

    /// `user`'s unread counts in `room_id` up to `upto`, for a member since `joined_at`:
    /// counted in SQL after what was counted last on the same receipts.
    pub(crate) async fn unread_counts(
        &self,
        room_id: &str,
        user: &str,
        joined_at: i64,
        upto: i64,
        by_thread: bool,
    ) -> Result<Unread> {
        // Read before the rows: a redaction after it makes what is counted now stale too.
        let generation = self.push_counts.generation();
        let points = self.storage.read_points(room_id, user).await?;
        let basis = Basis {
            floor: counts::read_floor(joined_at, &points),
            points: counts::thread_points(&points),
            generation,
        };
        let (after, so_far) = self.push_counts.resume(user, room_id, &basis, upto);
        let more = if after < upto {
            self.storage
                .unread_by_thread(room_id, user, after, upto, &basis.points)
                .await?
        } else {
            Vec::new()
        };
        let all = self
            .push_counts
            .keep(user, room_id, basis, upto, so_far, &more);
        Ok(counts::unread(&all, by_thread))
    }

    /// `user`'s unread notifications up to `upto` across the rooms they are joined to: the
    /// `unread` count a push gateway is given.
    pub(crate) async fn unread_everywhere(&self, user: &str, upto: i64) -> Result<u64> {
        let mut total = 0;
        for m in self.storage.user_memberships(user, Some("join")).await? {
            let unread = self
                .unread_counts(&m.room_id, user, m.stream, upto, false)
                .await?;
            total += unread.main.notification_count;
        }
        Ok(total)
    }
}
