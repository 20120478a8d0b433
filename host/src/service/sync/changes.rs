//! Where each user's account data, each room's receipts and the memberships last changed in
//! the stream, so a /sync (or an application service's transaction builder, or the federation
//! sender) skips the queries for what did not change. Fed by the writer's commit callback;
//! whatever was stored before start-up counts as changed at the start position.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::lock::lock;
use crate::storage::writer::WriteOp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// Keyed by user.
    AccountData,
    /// Keyed by room.
    Receipts,
    /// One key for everyone ([`WHOLE_SERVER`]): whose presence changed is a query's to say.
    Presence,
    /// Our users' member events in rooms this server is not in (an invite from another
    /// server, its refusal): one key ([`WHOLE_SERVER`]).
    OutOfRoomMembers,
    /// Any row of `memberships` (a member event, or the state another server's event resolves
    /// to): one key ([`WHOLE_SERVER`]), for the federation sender's look for new servers.
    Memberships,
}

/// The key of the kinds kept for the whole server rather than per user or room.
pub(crate) const WHOLE_SERVER: &str = "";

pub(crate) struct Changes {
    floor: i64,
    last: Mutex<HashMap<(Kind, String), i64>>,
}

impl Changes {
    pub(crate) fn new(floor: i64) -> Self {
        Changes {
            floor,
            last: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn record(&self, stream: i64, op: &WriteOp) {
        let whole = |kind| (kind, WHOLE_SERVER.to_string());
        let (key, also) = match op {
            WriteOp::AccountData(a) => ((Kind::AccountData, a.user_id.clone()), None),
            WriteOp::Receipt(r) => ((Kind::Receipts, r.room_id.clone()), None),
            WriteOp::Presence(_) => (whole(Kind::Presence), None),
            WriteOp::Event(e) if e.changes_members() => (whole(Kind::Memberships), None),
            WriteOp::Side(e) if e.member.is_some() => (
                whole(Kind::OutOfRoomMembers),
                Some(whole(Kind::Memberships)),
            ),
            WriteOp::Event(_)
            | WriteOp::Queue(_)
            | WriteOp::Plugin(_)
            | WriteOp::Keys(_)
            | WriteOp::ToDevice(_)
            | WriteOp::Side(_)
            | WriteOp::Backfilled { .. }
            | WriteOp::Barrier => return,
        };
        let mut last = lock(&self.last);
        last.insert(key, stream);
        if let Some(key) = also {
            last.insert(key, stream);
        }
    }

    /// Whether anything of `kind` for `key` may have changed after `after`.
    pub(crate) fn changed_since(&self, kind: Kind, key: &str, after: i64) -> bool {
        let last = lock(&self.last);
        match last.get(&(kind, key.to_string())) {
            Some(stream) => *stream > after,
            None => after < self.floor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::graph::{SideEvent, Standing};
    use crate::storage::receipts::ReceiptWrite;

    fn receipt(room: &str) -> WriteOp {
        WriteOp::Receipt(ReceiptWrite {
            room_id: room.into(),
            user_id: "@a:x".into(),
            receipt_type: "m.read".into(),
            thread_id: String::new(),
            event_id: "$e".into(),
            ts: 0,
        })
    }

    #[test]
    fn before_the_floor_everything_may_have_changed() {
        let c = Changes::new(10);
        assert!(c.changed_since(Kind::Receipts, "!r:x", 9));
        assert!(!c.changed_since(Kind::Receipts, "!r:x", 10));
    }

    fn side(member: Option<(&str, &str)>) -> WriteOp {
        WriteOp::Side(Box::new(SideEvent {
            event_id: "$i".into(),
            room_id: "!elsewhere:y".into(),
            standing: Standing::Outlier,
            reason: None,
            json: "{}".into(),
            state_group: None,
            new_groups: Vec::new(),
            received_ts: 0,
            member: member.map(|(u, m)| (u.into(), m.into())),
        }))
    }

    #[test]
    fn only_side_events_that_are_our_users_memberships_count_as_out_of_room_members() {
        let c = Changes::new(0);
        c.record(3, &side(None));
        assert!(!c.changed_since(Kind::OutOfRoomMembers, WHOLE_SERVER, 0));
        assert!(!c.changed_since(Kind::Memberships, WHOLE_SERVER, 0));
        c.record(4, &side(Some(("@a:x", "invite"))));
        assert!(c.changed_since(Kind::OutOfRoomMembers, WHOLE_SERVER, 3));
        assert!(!c.changed_since(Kind::OutOfRoomMembers, WHOLE_SERVER, 4));
        // The invite is a row of `memberships` too.
        assert!(c.changed_since(Kind::Memberships, WHOLE_SERVER, 3));
    }

    #[test]
    fn records_the_last_change_per_key() {
        let c = Changes::new(0);
        c.record(5, &receipt("!r:x"));
        assert!(c.changed_since(Kind::Receipts, "!r:x", 4));
        assert!(!c.changed_since(Kind::Receipts, "!r:x", 5));
        assert!(!c.changed_since(Kind::Receipts, "!other:x", 0));
        assert!(!c.changed_since(Kind::AccountData, "!r:x", 0));
    }
}
