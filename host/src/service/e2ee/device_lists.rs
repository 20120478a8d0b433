//! Whose device lists a client must refresh: `device_lists` in /sync and `/keys/changes`.
//! Between two stream positions, a user sharing a room with the asker is `changed` when their
//! keys changed or they newly share a room with the asker, and `left` when they shared one and
//! no longer share any. The rule is [`device_lists`], pure; the service gathers its inputs.

use std::collections::{BTreeSet, HashSet};

use serde_json::{json, Value};

use crate::service::rooms::values::Membership;
use crate::service::{Result, Services};
use crate::storage::rooms::MemberChange;

/// The two lists, sorted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct DeviceLists {
    pub(crate) changed: BTreeSet<String>,
    pub(crate) left: BTreeSet<String>,
}

impl DeviceLists {
    pub(crate) fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.left.is_empty()
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({ "changed": self.changed, "left": self.left })
    }
}

/// The rule. `changes` are the memberships, in rooms the asker is or was in after `after`, of
/// other users, where either side changed after `after`; `key_changed` the users whose keys
/// changed; `sharing` which of all those users share a room with the asker now.
pub(crate) fn device_lists(
    me: &str,
    after: i64,
    changes: &[MemberChange],
    key_changed: &[String],
    sharing: &HashSet<String>,
) -> DeviceLists {
    let mut out = DeviceLists::default();
    for user in key_changed {
        if user == me || sharing.contains(user) {
            out.changed.insert(user.clone());
        }
    }
    for c in changes {
        let they_joined = Membership::Join.is(&c.membership);
        let i_joined = Membership::Join.is(&c.my_membership);
        let newly_shared = i_joined && they_joined && (c.stream > after || c.my_stream > after);
        let stopped = (c.stream > after && !they_joined && !Membership::Invite.is(&c.membership))
            || (!i_joined && c.my_stream > after && they_joined);
        if newly_shared && sharing.contains(&c.user_id) {
            out.changed.insert(c.user_id.clone());
        }
        if stopped && !sharing.contains(&c.user_id) && c.user_id != me {
            out.left.insert(c.user_id.clone());
        }
    }
    out
}

impl Services {
    /// The device lists for `user` between `after` and `upto`.
    pub(crate) async fn device_list_changes(
        &self,
        user: &str,
        after: i64,
        upto: i64,
    ) -> Result<DeviceLists> {
        let key_changed = self.storage.key_changes(after, upto).await?;
        let changes = self.storage.member_changes_around(user, after).await?;
        let candidates: Vec<&str> = key_changed
            .iter()
            .map(String::as_str)
            .chain(changes.iter().map(|c| c.user_id.as_str()))
            .collect();
        if candidates.is_empty() {
            return Ok(DeviceLists::default());
        }
        let sharing = self.storage.users_sharing_a_room(user, &candidates).await?;
        Ok(device_lists(user, after, &changes, &key_changed, &sharing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(
        user: &str,
        membership: &str,
        stream: i64,
        mine: &str,
        my_stream: i64,
    ) -> MemberChange {
        MemberChange {
            user_id: user.into(),
            membership: membership.into(),
            stream,
            my_membership: mine.into(),
            my_stream,
        }
    }

    fn set(users: &[&str]) -> HashSet<String> {
        users.iter().map(|u| u.to_string()).collect()
    }

    fn list(users: &[&str]) -> BTreeSet<String> {
        users.iter().map(|u| u.to_string()).collect()
    }

    #[test]
    fn key_changes_count_only_for_users_sharing_a_room_and_oneself() {
        let keys = ["@me:x".to_string(), "@b:x".into(), "@stranger:x".into()];
        let out = device_lists("@me:x", 10, &[], &keys, &set(&["@b:x"]));
        assert_eq!(out.changed, list(&["@b:x", "@me:x"]));
        assert!(out.left.is_empty());
    }

    #[test]
    fn a_user_who_joins_a_shared_room_or_whose_room_one_joins_is_changed() {
        let changes = [
            change("@b:x", "join", 11, "join", 5),
            change("@c:x", "join", 3, "join", 12),
            change("@d:x", "join", 3, "join", 5),
        ];
        let out = device_lists("@me:x", 10, &changes, &[], &set(&["@b:x", "@c:x", "@d:x"]));
        assert_eq!(out.changed, list(&["@b:x", "@c:x"]));
    }

    #[test]
    fn a_user_who_leaves_the_last_shared_room_is_left_and_one_still_sharing_is_not() {
        let changes = [
            change("@b:x", "leave", 11, "join", 5),
            change("@c:x", "ban", 11, "join", 5),
            change("@d:x", "join", 3, "leave", 12),
            change("@e:x", "join", 3, "leave", 12),
            change("@f:x", "invite", 11, "join", 5),
        ];
        let out = device_lists("@me:x", 10, &changes, &[], &set(&["@c:x", "@e:x"]));
        assert_eq!(out.left, list(&["@b:x", "@d:x"]));
        assert!(out.changed.is_empty());
    }
}
