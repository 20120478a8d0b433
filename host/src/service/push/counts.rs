//! A member's unread notification counts in one room: the events that notify them after the
//! later of their join and their read receipt, the pure rule [`count`] over what storage read.
//! An unthreaded receipt reads everything up to its event; a threaded one (`main` for the main
//! timeline, or a thread's root) only its thread.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::storage::push_actions::{ReadPoint, UnreadRow};

/// Notification and highlight counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) notification_count: u64,
    pub(crate) highlight_count: u64,
}

impl Counts {
    fn add(&mut self, row: &UnreadRow) {
        self.notification_count += u64::from(row.notify);
        self.highlight_count += u64::from(row.highlight);
    }

    pub(crate) fn json(&self) -> Value {
        json!({
            "notification_count": self.notification_count,
            "highlight_count": self.highlight_count,
        })
    }
}

/// A room's counts: all in `main` unless threads are counted apart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Unread {
    pub(crate) main: Counts,
    pub(crate) threads: BTreeMap<String, Counts>,
}

/// The position before which a member has read everything in any thread: their join and
/// their unthreaded receipt, whichever is later. Storage reads the rows after it.
pub(crate) fn read_floor(joined_at: i64, points: &[ReadPoint]) -> i64 {
    points
        .iter()
        .filter(|p| p.thread_id.is_empty())
        .map(|p| p.stream)
        .fold(joined_at, i64::max)
}

/// Where the member has read `thread` (`''` for the main timeline) up to: `floor` (see
/// [`read_floor`]) or their receipt in that thread, whichever is later.
pub(crate) fn read_up_to(floor: i64, points: &[ReadPoint], thread: &str) -> i64 {
    let key = if thread.is_empty() { "main" } else { thread };
    points
        .iter()
        .filter(|p| p.thread_id == key)
        .map(|p| p.stream)
        .fold(floor, i64::max)
}

/// Counts `rows` (the events that notify the member, after [`read_floor`]) that no receipt
/// has read; per thread when `by_thread`, the main timeline's then in `main`.
pub(crate) fn count(
    rows: &[UnreadRow],
    joined_at: i64,
    points: &[ReadPoint],
    by_thread: bool,
) -> Unread {
    let floor = read_floor(joined_at, points);
    let mut unread = Unread::default();
    for row in rows
        .iter()
        .filter(|r| r.stream > read_up_to(floor, points, &r.thread_id))
    {
        if by_thread && !row.thread_id.is_empty() {
            unread
                .threads
                .entry(row.thread_id.clone())
                .or_default()
                .add(row);
        } else {
            unread.main.add(row);
        }
    }
    unread
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(stream: i64, thread: &str, highlight: bool) -> UnreadRow {
        UnreadRow {
            stream,
            thread_id: thread.into(),
            notify: true,
            highlight,
        }
    }

    fn point(thread: &str, stream: i64) -> ReadPoint {
        ReadPoint {
            thread_id: thread.into(),
            stream,
        }
    }

    fn counts(n: u64, h: u64) -> Counts {
        Counts {
            notification_count: n,
            highlight_count: h,
        }
    }

    #[test]
    fn events_after_the_receipt_count_and_those_before_it_do_not() {
        let rows = [row(5, "", false), row(6, "", true), row(7, "", false)];
        let unread = count(&rows, 1, &[point("", 5)], false);
        assert_eq!(unread.main, counts(2, 1));
        assert!(unread.threads.is_empty());
    }

    #[test]
    fn without_a_receipt_the_join_is_where_counting_starts() {
        let rows = [row(5, "", false), row(6, "", false)];
        assert_eq!(count(&rows, 5, &[], false).main, counts(1, 0));
        assert_eq!(read_floor(5, &[point("$t", 9)]), 5);
    }

    #[test]
    fn a_threaded_receipt_reads_its_thread_only() {
        let rows = [row(5, "", false), row(6, "$t", true), row(7, "$u", false)];
        let unread = count(&rows, 0, &[point("$t", 6)], true);
        assert_eq!(unread.main, counts(1, 0));
        assert_eq!(unread.threads.get("$t"), None);
        assert_eq!(unread.threads.get("$u"), Some(&counts(1, 0)));
    }

    #[test]
    fn a_main_receipt_reads_the_main_timeline_but_not_the_threads() {
        let rows = [row(5, "", false), row(6, "$t", false)];
        let unread = count(&rows, 0, &[point("main", 6)], false);
        assert_eq!(unread.main, counts(1, 0));
    }

    #[test]
    fn the_later_of_an_unthreaded_and_a_threaded_receipt_counts() {
        let rows = [row(5, "$t", false), row(8, "$t", false)];
        let unread = count(&rows, 0, &[point("", 7), point("$t", 5)], true);
        assert_eq!(unread.threads.get("$t"), Some(&counts(1, 0)));
    }
}
