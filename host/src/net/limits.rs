//! Who may hold a connection: a cap per client address and one over all connections, so that
//! a client that opens connections and never finishes a request cannot take the server's
//! file descriptors. The rules are a pure table; the serve loop asks it and does what it says.
//!
//! Beyond a cap, a new connection takes the place of the one that has waited longest for its
//! client: a connection with no request in flight (fresh, idle between keep-alive requests,
//! or still sending its request head) costs nothing to close, and its client reconnects as
//! after any keep-alive close. nginx reuses its "reusable" connections the same way when it
//! runs out. Only when every connection concerned has a request in flight (a long-polling
//! `/sync`, a handler at work) is the new connection refused: with a `503` while few refusals
//! are being answered, by closing it beyond that, since answering costs a descriptor and a
//! task for as long as the client takes to send its request.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use super::address::{AddressRange, ClientKey};

/// Refusals answered with a `503` at once; more are closed without an answer.
pub(crate) const MAX_ANSWERED_REFUSALS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ConnId(u64);

#[derive(Debug, Clone)]
pub(crate) struct Caps {
    pub(crate) max_total: usize,
    pub(crate) max_per_address: usize,
    pub(crate) exempt: Vec<AddressRange>,
}

/// What to do with a new connection.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admission<H> {
    /// Serve it as `id`; first close `evict` (given back with the handle it was opened with).
    Accept { id: ConnId, evict: Option<H> },
    /// Refuse it: answer `503` if `answer` (then call [`ConnectionTable::answered`]), else
    /// close it.
    Refuse { reason: Refusal, answer: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Its address holds `max_per_address` connections, each with a request in flight.
    PerAddress,
    /// The server holds `max_total` connections, each with a request in flight.
    Total,
}

struct Entry<H> {
    key: ClientKey,
    handle: H,
    in_flight: u32,
    /// When it began waiting for its client, as a sequence number: the smallest waited longest.
    waiting_since: Option<u64>,
}

#[derive(Default)]
struct PerClient {
    open: usize,
    waiting: BTreeSet<(u64, ConnId)>,
}

/// The open connections, by client, each with whether it has a request in flight. `H` is
/// what the serve loop needs to close one (a notifier); the table only hands it back.
pub(crate) struct ConnectionTable<H> {
    caps: Caps,
    entries: HashMap<ConnId, Entry<H>>,
    clients: HashMap<ClientKey, PerClient>,
    waiting: BTreeSet<(u64, ConnId)>,
    next_id: u64,
    next_seq: u64,
    answering: usize,
    counts: Counts,
    /// The most connections open at once since [`Self::take_peak`] last asked.
    peak: usize,
}

/// What the caps have done since the table was made, for the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) evicted: u64,
    pub(crate) refused: u64,
}

impl<H> ConnectionTable<H> {
    pub(crate) fn new(caps: Caps) -> Self {
        ConnectionTable {
            caps,
            entries: HashMap::new(),
            clients: HashMap::new(),
            waiting: BTreeSet::new(),
            next_id: 0,
            next_seq: 0,
            answering: 0,
            counts: Counts::default(),
            peak: 0,
        }
    }

    /// The most connections open at once since the last call, and how many are open now;
    /// the next period starts from those open now.
    pub(crate) fn take_peak(&mut self) -> (usize, usize) {
        let open = self.entries.len();
        let peak = self.peak.max(open);
        self.peak = open;
        (peak, open)
    }

    pub(crate) fn open(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn counts(&self) -> Counts {
        self.counts
    }

    /// A new connection from `ip`, to be closed through `handle` if it is evicted later.
    pub(crate) fn admit(&mut self, ip: IpAddr, handle: H) -> Admission<H> {
        let key = ClientKey::of(ip);
        let exempt = self.caps.exempt.iter().any(|r| r.contains(ip));
        let mut victim = None;
        let from_client = self.clients.get(&key).map_or(0, |c| c.open);
        if !exempt && from_client >= self.caps.max_per_address {
            victim = self.clients[&key].waiting.first().map(|&(_, id)| id);
            if victim.is_none() {
                return self.refuse(Refusal::PerAddress);
            }
        }
        if victim.is_none() && self.entries.len() >= self.caps.max_total {
            victim = self.waiting.first().map(|&(_, id)| id);
            if victim.is_none() {
                return self.refuse(Refusal::Total);
            }
        }
        let evict = victim.and_then(|id| self.remove(id));
        if evict.is_some() {
            self.counts.evicted += 1;
        }
        let id = ConnId(self.next_id);
        self.next_id += 1;
        self.entries.insert(
            id,
            Entry {
                key,
                handle,
                in_flight: 0,
                waiting_since: None,
            },
        );
        self.peak = self.peak.max(self.entries.len());
        self.clients.entry(key).or_default().open += 1;
        self.start_waiting(id);
        Admission::Accept { id, evict }
    }

    fn refuse(&mut self, reason: Refusal) -> Admission<H> {
        self.counts.refused += 1;
        let answer = self.answering < MAX_ANSWERED_REFUSALS;
        if answer {
            self.answering += 1;
        }
        Admission::Refuse { reason, answer }
    }

    /// A refused connection that was being answered is closed.
    pub(crate) fn answered(&mut self) {
        self.answering = self.answering.saturating_sub(1);
    }

    /// Connection `id` received a request head: it is busy until [`Self::request_finished`].
    pub(crate) fn request_started(&mut self, id: ConnId) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        entry.in_flight += 1;
        if let Some(seq) = entry.waiting_since.take() {
            self.waiting.remove(&(seq, id));
            if let Some(client) = self.clients.get_mut(&entry.key) {
                client.waiting.remove(&(seq, id));
            }
        }
    }

    /// A request of connection `id` has its whole response written (or was abandoned).
    pub(crate) fn request_finished(&mut self, id: ConnId) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        entry.in_flight = entry.in_flight.saturating_sub(1);
        if entry.in_flight == 0 {
            self.start_waiting(id);
        }
    }

    fn start_waiting(&mut self, id: ConnId) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        if entry.waiting_since.is_some() {
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        entry.waiting_since = Some(seq);
        self.waiting.insert((seq, id));
        self.clients
            .entry(entry.key)
            .or_default()
            .waiting
            .insert((seq, id));
    }

    /// Connection `id` is closed (a no-op when it was evicted).
    pub(crate) fn closed(&mut self, id: ConnId) {
        self.remove(id);
    }

    /// Takes the connection that has waited longest for its client out of the table, to be
    /// closed: when the process is out of file descriptors, closing it lets the next
    /// `accept` succeed.
    pub(crate) fn evict_longest_waiting(&mut self) -> Option<H> {
        let &(_, id) = self.waiting.first()?;
        self.counts.evicted += 1;
        self.remove(id)
    }

    fn remove(&mut self, id: ConnId) -> Option<H> {
        let entry = self.entries.remove(&id)?;
        if let Some(seq) = entry.waiting_since {
            self.waiting.remove(&(seq, id));
        }
        if let Some(client) = self.clients.get_mut(&entry.key) {
            client.open -= 1;
            if let Some(seq) = entry.waiting_since {
                client.waiting.remove(&(seq, id));
            }
            if client.open == 0 {
                self.clients.remove(&entry.key);
            }
        }
        Some(entry.handle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn table(max_total: usize, max_per_address: usize) -> ConnectionTable<&'static str> {
        ConnectionTable::new(Caps {
            max_total,
            max_per_address,
            exempt: vec!["10.9.0.0/16".parse().unwrap()],
        })
    }

    fn accept(t: &mut ConnectionTable<&'static str>, from: &str, name: &'static str) -> ConnId {
        match t.admit(ip(from), name) {
            Admission::Accept { id, evict: None } => id,
            other => panic!("{name} from {from}: expected a plain accept, got {other:?}"),
        }
    }

    #[test]
    fn the_peak_is_the_most_open_at_once_since_it_was_last_taken() {
        let mut t = table(10, 10);
        let a = accept(&mut t, "192.0.2.1", "a");
        let b = accept(&mut t, "192.0.2.1", "b");
        accept(&mut t, "192.0.2.1", "c");
        t.closed(a);
        t.closed(b);
        assert_eq!(t.take_peak(), (3, 1));
        // The next period starts from those open then.
        assert_eq!(t.take_peak(), (1, 1));
        accept(&mut t, "192.0.2.2", "d");
        assert_eq!(t.take_peak(), (2, 2));
    }

    #[test]
    fn connections_under_both_caps_are_accepted() {
        let mut t = table(10, 3);
        for name in ["a", "b", "c"] {
            accept(&mut t, "192.0.2.1", name);
        }
        accept(&mut t, "192.0.2.2", "d");
        assert_eq!(t.open(), 4);
    }

    #[test]
    fn beyond_the_per_address_cap_the_longest_waiting_connection_of_that_address_goes() {
        let mut t = table(10, 2);
        accept(&mut t, "192.0.2.1", "a");
        accept(&mut t, "192.0.2.2", "other");
        accept(&mut t, "192.0.2.1", "b");
        match t.admit(ip("192.0.2.1"), "c") {
            Admission::Accept { evict, .. } => assert_eq!(evict, Some("a")),
            other => panic!("{other:?}"),
        }
        assert_eq!(t.open(), 3);
        assert_eq!(t.counts().evicted, 1);
    }

    #[test]
    fn a_connection_that_became_idle_again_waits_from_then() {
        let mut t = table(10, 2);
        let a = accept(&mut t, "192.0.2.1", "a");
        accept(&mut t, "192.0.2.1", "b");
        t.request_started(a);
        t.request_finished(a);
        match t.admit(ip("192.0.2.1"), "c") {
            Admission::Accept { evict, .. } => assert_eq!(evict, Some("b")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn when_every_connection_of_an_address_is_busy_a_new_one_is_refused_with_an_answer() {
        let mut t = table(10, 2);
        let a = accept(&mut t, "192.0.2.1", "a");
        let b = accept(&mut t, "192.0.2.1", "b");
        t.request_started(a);
        t.request_started(b);
        assert_eq!(
            t.admit(ip("192.0.2.1"), "c"),
            Admission::Refuse {
                reason: Refusal::PerAddress,
                answer: true
            }
        );
        // Another address is not held to that address's cap.
        accept(&mut t, "192.0.2.2", "d");
        // Once a request is done, its connection can make room again.
        t.request_finished(a);
        match t.admit(ip("192.0.2.1"), "e") {
            Admission::Accept { evict, .. } => assert_eq!(evict, Some("a")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn beyond_the_total_cap_the_longest_waiting_connection_of_any_address_goes() {
        let mut t = table(3, 10);
        let a = accept(&mut t, "192.0.2.1", "a");
        accept(&mut t, "192.0.2.2", "b");
        accept(&mut t, "192.0.2.3", "c");
        t.request_started(a);
        match t.admit(ip("192.0.2.4"), "d") {
            Admission::Accept { evict, .. } => assert_eq!(evict, Some("b")),
            other => panic!("{other:?}"),
        }
        assert_eq!(t.open(), 3);
    }

    #[test]
    fn when_every_connection_is_busy_beyond_the_total_cap_a_new_one_is_refused() {
        let mut t = table(2, 10);
        let a = accept(&mut t, "192.0.2.1", "a");
        let b = accept(&mut t, "192.0.2.2", "b");
        t.request_started(a);
        t.request_started(b);
        assert_eq!(
            t.admit(ip("192.0.2.3"), "c"),
            Admission::Refuse {
                reason: Refusal::Total,
                answer: true
            }
        );
        assert_eq!(t.counts().refused, 1);
        assert_eq!(t.open(), 2);
    }

    #[test]
    fn refusals_beyond_the_answered_few_are_closed_without_an_answer() {
        let mut t = table(1, 10);
        let a = accept(&mut t, "192.0.2.1", "a");
        t.request_started(a);
        for _ in 0..MAX_ANSWERED_REFUSALS {
            assert!(matches!(
                t.admit(ip("192.0.2.2"), "x"),
                Admission::Refuse { answer: true, .. }
            ));
        }
        assert!(matches!(
            t.admit(ip("192.0.2.2"), "x"),
            Admission::Refuse { answer: false, .. }
        ));
        t.answered();
        assert!(matches!(
            t.admit(ip("192.0.2.2"), "x"),
            Admission::Refuse { answer: true, .. }
        ));
    }

    #[test]
    fn an_exempt_address_is_held_only_to_the_total_cap() {
        let mut t = table(4, 1);
        let a = accept(&mut t, "10.9.1.1", "a");
        let b = accept(&mut t, "10.9.1.1", "b");
        let c = accept(&mut t, "10.9.1.1", "c");
        t.request_started(a);
        t.request_started(b);
        t.request_started(c);
        accept(&mut t, "10.9.1.1", "d");
        match t.admit(ip("10.9.1.1"), "e") {
            Admission::Accept { evict, .. } => assert_eq!(evict, Some("d")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_closed_connection_frees_its_place() {
        let mut t = table(2, 1);
        let a = accept(&mut t, "192.0.2.1", "a");
        t.request_started(a);
        t.closed(a);
        accept(&mut t, "192.0.2.1", "b");
        assert_eq!(t.open(), 1);
    }

    #[test]
    fn an_evicted_connection_closing_later_changes_nothing() {
        let mut t = table(10, 1);
        let a = accept(&mut t, "192.0.2.1", "a");
        assert!(matches!(
            t.admit(ip("192.0.2.1"), "b"),
            Admission::Accept {
                evict: Some("a"),
                ..
            }
        ));
        t.request_started(a);
        t.request_finished(a);
        t.closed(a);
        assert_eq!(t.open(), 1);
    }

    #[test]
    fn out_of_descriptors_the_longest_waiting_connection_is_given_up() {
        let mut t = table(10, 10);
        let a = accept(&mut t, "192.0.2.1", "a");
        accept(&mut t, "192.0.2.2", "b");
        t.request_started(a);
        assert_eq!(t.evict_longest_waiting(), Some("b"));
        assert_eq!(t.evict_longest_waiting(), None);
        assert_eq!(t.open(), 1);
    }

    #[test]
    fn pipelined_requests_keep_a_connection_busy_until_the_last_is_done() {
        let mut t = table(1, 10);
        let a = accept(&mut t, "192.0.2.1", "a");
        t.request_started(a);
        t.request_started(a);
        t.request_finished(a);
        assert!(matches!(
            t.admit(ip("192.0.2.2"), "b"),
            Admission::Refuse { .. }
        ));
        t.request_finished(a);
        assert!(matches!(
            t.admit(ip("192.0.2.2"), "c"),
            Admission::Accept {
                evict: Some("a"),
                ..
            }
        ));
    }
}
