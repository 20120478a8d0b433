//! Where each user's account data and each room's receipts last changed in the stream, so a
//! /sync skips the queries for what did not change. Fed by the writer's commit callback;
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
    /// One key for everyone ([`PRESENCE_KEY`]): whose presence changed is a query's to say.
    Presence,
}

/// The key of [`Kind::Presence`].
pub(crate) const PRESENCE_KEY: &str = "";

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
        let key = match op {
            WriteOp::AccountData(a) => (Kind::AccountData, a.user_id.clone()),
            WriteOp::Receipt(r) => (Kind::Receipts, r.room_id.clone()),
            WriteOp::Presence(_) => (Kind::Presence, PRESENCE_KEY.to_string()),
            WriteOp::Event(_)
            | WriteOp::Queue(_)
            | WriteOp::Plugin(_)
            | WriteOp::Keys(_)
            | WriteOp::ToDevice(_)
            | WriteOp::Side(_)
            | WriteOp::Backfilled { .. } => return,
        };
        lock(&self.last).insert(key, stream);
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
