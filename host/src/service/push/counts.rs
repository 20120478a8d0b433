//! A member's unread notification counts in one room: the events that notify them after the
//! later of their join and their read receipt. An unthreaded receipt reads everything up to
//! its event; a threaded one (`main` for the main timeline, or a thread's root) only its
//! thread. Storage counts in SQL per thread ([`ThreadCounts`]); a /sync that comes back with
//! the same receipts counts only what came since the last one ([`CountCache`]), so that a
//! member who never sends a receipt does not cost each sync everything since their join.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde_json::{json, Value};

use crate::storage::push_actions::{ReadPoint, ThreadCounts};

/// Notification and highlight counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) notification_count: u64,
    pub(crate) highlight_count: u64,
}

impl Counts {
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
/// their unthreaded receipt, whichever is later. Storage counts the rows after it.
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

/// The threaded receipts as storage counts them: by the `thread_id` of the rows they read
/// (`''` for `main`), each where it stands.
pub(crate) fn thread_points(points: &[ReadPoint]) -> Vec<(String, i64)> {
    points
        .iter()
        .filter(|p| !p.thread_id.is_empty())
        .map(|p| {
            let thread = if p.thread_id == "main" {
                ""
            } else {
                &p.thread_id
            };
            (thread.to_string(), p.stream)
        })
        .collect()
}

/// Adds `more` to `counts`, thread by thread.
fn add(counts: &mut HashMap<String, Counts>, more: &[ThreadCounts]) {
    for t in more {
        let c = counts.entry(t.thread_id.clone()).or_default();
        c.notification_count += t.notify as u64;
        c.highlight_count += t.highlight as u64;
    }
}

/// The counts per thread as /sync gives them: all in `main` unless `by_thread`.
pub(crate) fn unread(counts: &HashMap<String, Counts>, by_thread: bool) -> Unread {
    let mut out = Unread::default();
    for (thread, c) in counts {
        let into = if by_thread && !thread.is_empty() {
            out.threads.entry(thread.clone()).or_default()
        } else {
            &mut out.main
        };
        into.notification_count += c.notification_count;
        into.highlight_count += c.highlight_count;
    }
    out
}

/// What the counts of one member in one room were computed from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Basis {
    /// The floor ([`read_floor`]) and the threaded receipts ([`thread_points`]).
    pub(crate) floor: i64,
    pub(crate) points: Vec<(String, i64)>,
    /// [`CountCache::generation`] when they were read.
    pub(crate) generation: u64,
}

#[derive(Debug, Clone)]
struct Cached {
    basis: Basis,
    upto: i64,
    counts: HashMap<String, Counts>,
}

/// Members' counts as last computed, per (user, room): a count on the same [`Basis`] up to a
/// later position only adds the rows in between. Bounded: emptied when full.
#[derive(Default)]
pub(crate) struct CountCache {
    entries: Mutex<HashMap<(String, String), Cached>>,
    /// Moved when rows counted before may have gone (a redaction removes its event's rows):
    /// every entry is then stale.
    generation: AtomicU64,
}

/// Entries kept at most: about 200 bytes each.
const MAX_ENTRIES: usize = 100_000;

/// Where counting up to `upto` on `basis` starts, and from what: after the cached position
/// with its counts when `cached` is on the same basis and not past `upto`; from the floor with
/// nothing otherwise.
fn resume(cached: Option<&Cached>, basis: &Basis, upto: i64) -> (i64, HashMap<String, Counts>) {
    match cached {
        // A receipt may be read past the position counted to: nothing before it counts.
        Some(c) if c.basis == *basis && c.upto <= upto => {
            (c.upto.max(basis.floor), c.counts.clone())
        }
        _ => (basis.floor, HashMap::new()),
    }
}

impl CountCache {
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Rows counted before may be gone: nothing cached is used again.
    pub(crate) fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Cached>> {
        crate::lock::lock(&self.entries)
    }

    /// Where to count from for `(user, room)` up to `upto` on `basis` (see [`resume`]).
    pub(crate) fn resume(
        &self,
        user: &str,
        room: &str,
        basis: &Basis,
        upto: i64,
    ) -> (i64, HashMap<String, Counts>) {
        let entries = self.lock();
        resume(
            entries.get(&(user.to_string(), room.to_string())),
            basis,
            upto,
        )
    }

    /// Keeps the counts of `(user, room)` up to `upto`: `counts` plus `more`, which it answers.
    pub(crate) fn keep(
        &self,
        user: &str,
        room: &str,
        basis: Basis,
        upto: i64,
        mut counts: HashMap<String, Counts>,
        more: &[ThreadCounts],
    ) -> HashMap<String, Counts> {
        add(&mut counts, more);
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(
            (user.to_string(), room.to_string()),
            Cached {
                basis,
                upto,
                counts: counts.clone(),
            },
        );
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(thread: &str, stream: i64) -> ReadPoint {
        ReadPoint {
            thread_id: thread.into(),
            stream,
        }
    }

    fn group(thread: &str, notify: i64, highlight: i64) -> ThreadCounts {
        ThreadCounts {
            thread_id: thread.into(),
            notify,
            highlight,
        }
    }

    fn counts(n: u64, h: u64) -> Counts {
        Counts {
            notification_count: n,
            highlight_count: h,
        }
    }

    fn basis(floor: i64) -> Basis {
        Basis {
            floor,
            points: vec![],
            generation: 0,
        }
    }

    #[test]
    fn without_a_receipt_the_join_is_where_counting_starts() {
        assert_eq!(read_floor(5, &[]), 5);
        assert_eq!(read_floor(5, &[point("$t", 9)]), 5);
        assert_eq!(read_floor(5, &[point("", 9), point("", 7)]), 9);
    }

    #[test]
    fn a_threaded_receipt_reads_its_thread_and_main_is_the_main_timeline() {
        let points = [point("", 4), point("main", 6), point("$t", 8)];
        assert_eq!(
            thread_points(&points),
            [("".to_string(), 6), ("$t".to_string(), 8)]
        );
        assert_eq!(read_up_to(4, &points, ""), 6);
        assert_eq!(read_up_to(4, &points, "$t"), 8);
        assert_eq!(read_up_to(4, &points, "$u"), 4);
    }

    #[test]
    fn threads_are_counted_apart_only_when_asked() {
        let mut c = HashMap::new();
        add(&mut c, &[group("", 2, 1), group("$t", 3, 0)]);
        let apart = unread(&c, true);
        assert_eq!(apart.main, counts(2, 1));
        assert_eq!(apart.threads.get("$t"), Some(&counts(3, 0)));
        let together = unread(&c, false);
        assert_eq!(together.main, counts(5, 1));
        assert!(together.threads.is_empty());
    }

    #[test]
    fn a_count_on_the_same_receipts_resumes_where_the_last_one_ended() {
        let cache = CountCache::default();
        let kept = cache.keep(
            "@a:x",
            "!r",
            basis(3),
            10,
            HashMap::new(),
            &[group("", 2, 0)],
        );
        let (from, base) = cache.resume("@a:x", "!r", &basis(3), 15);
        assert_eq!((from, &base), (10, &kept));
        let more = cache.keep("@a:x", "!r", basis(3), 15, base, &[group("", 1, 1)]);
        assert_eq!(unread(&more, false).main, counts(3, 1));
        // Counted to 20 on a receipt at 25 (read after the position was): on from 25.
        cache.keep("@a:x", "!r", basis(25), 20, HashMap::new(), &[]);
        assert_eq!(cache.resume("@a:x", "!r", &basis(25), 30).0, 25);
    }

    #[test]
    fn a_new_receipt_an_earlier_position_or_a_redaction_counts_from_the_floor_again() {
        let cache = CountCache::default();
        cache.keep(
            "@a:x",
            "!r",
            basis(3),
            10,
            HashMap::new(),
            &[group("", 2, 0)],
        );
        let fresh = |(from, base): (i64, HashMap<String, Counts>)| (from, base.is_empty());
        assert_eq!(fresh(cache.resume("@a:x", "!r", &basis(8), 15)), (8, true));
        assert_eq!(fresh(cache.resume("@a:x", "!r", &basis(3), 9)), (3, true));
        let threaded = Basis {
            points: vec![("$t".into(), 9)],
            ..basis(3)
        };
        assert_eq!(fresh(cache.resume("@a:x", "!r", &threaded, 15)), (3, true));
        assert_eq!(fresh(cache.resume("@b:x", "!r", &basis(3), 15)), (3, true));
        cache.invalidate();
        let later = Basis {
            generation: cache.generation(),
            ..basis(3)
        };
        assert_eq!(fresh(cache.resume("@a:x", "!r", &later, 15)), (3, true));
    }
}
