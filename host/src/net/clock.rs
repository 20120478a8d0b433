//! One connection's timeouts, as a pure rule: from what the connection is waiting for and
//! since when, the moment it is to be closed. A connection waiting for its client has a
//! deadline (a request head, the next request, a stalled body, an unread response); one
//! waiting for the server (a long-polling `/sync`, a handler at work) has none, so a
//! long-poll is never cut by a timeout meant for silent clients.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeouts {
    /// For a whole request head, from the connection's start or a later request's first byte.
    pub(crate) header: Duration,
    /// Between keep-alive requests, until the next one's first byte.
    pub(crate) idle: Duration,
    /// A request body the handler waits on and that sends nothing.
    pub(crate) body: Duration,
    /// A response write that the client does not read.
    pub(crate) send: Duration,
}

/// Which timeout closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    Header,
    Idle,
    Body,
    Send,
}

impl Expiry {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Expiry::Header => "header",
            Expiry::Idle => "idle",
            Expiry::Body => "body",
            Expiry::Send => "send",
        }
    }
}

/// What one connection waits for, and since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConnClock {
    /// Requests whose response is not wholly written (more than one only when pipelined).
    in_flight: u32,
    /// Waiting for a request head: since the connection's start, or since the first byte of
    /// a request that followed an idle spell.
    head_since: Option<Instant>,
    /// Idle between requests, no byte of the next one yet.
    idle_since: Option<Instant>,
    /// The handler waits on the request body and none of it has come since.
    body_since: Option<Instant>,
    /// A write is blocked on the client's not reading.
    send_since: Option<Instant>,
}

impl ConnClock {
    /// A connection accepted at `now`: its first request head is due within the header timeout.
    pub(crate) fn accepted(now: Instant) -> ConnClock {
        ConnClock {
            in_flight: 0,
            head_since: Some(now),
            idle_since: None,
            body_since: None,
            send_since: None,
        }
    }

    /// Bytes came from the client. With no request in flight they begin a request head.
    pub(crate) fn read(&mut self, now: Instant) {
        if self.in_flight == 0 && self.head_since.is_none() {
            self.idle_since = None;
            self.head_since = Some(now);
        }
    }

    /// A request head was read whole: the server has the request.
    pub(crate) fn request_started(&mut self) {
        self.in_flight += 1;
        self.head_since = None;
        self.idle_since = None;
    }

    /// A response was written whole (or abandoned) at `now`.
    pub(crate) fn request_finished(&mut self, now: Instant) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if self.in_flight == 0 {
            self.body_since = None;
            self.head_since = None;
            self.idle_since = Some(now);
        }
    }

    /// The handler asked for more of the request body and there was none.
    pub(crate) fn body_pending(&mut self, now: Instant) {
        self.body_since.get_or_insert(now);
    }

    /// Some of the body came, or the handler no longer waits for it.
    pub(crate) fn body_progress(&mut self) {
        self.body_since = None;
    }

    /// A write could not go out: the client is not reading.
    pub(crate) fn send_pending(&mut self, now: Instant) {
        self.send_since.get_or_insert(now);
    }

    /// A write went out.
    pub(crate) fn send_progress(&mut self) {
        self.send_since = None;
    }

    /// Whether closing now loses nothing the client was promised: no request is in flight
    /// and nothing written is still waiting to go out.
    pub(crate) fn closable(&self) -> bool {
        self.in_flight == 0 && self.send_since.is_none()
    }

    /// When the connection is to be closed, and by which timeout; `None` while it waits only
    /// for the server.
    pub(crate) fn deadline(&self, t: &Timeouts) -> Option<(Instant, Expiry)> {
        [
            self.head_since.map(|s| (s + t.header, Expiry::Header)),
            self.idle_since.map(|s| (s + t.idle, Expiry::Idle)),
            self.body_since.map(|s| (s + t.body, Expiry::Body)),
            self.send_since.map(|s| (s + t.send, Expiry::Send)),
        ]
        .into_iter()
        .flatten()
        .min_by_key(|(at, _)| *at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts {
        header: Duration::from_secs(10),
        idle: Duration::from_secs(75),
        body: Duration::from_secs(60),
        send: Duration::from_secs(30),
    };

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_new_connection_must_send_its_head_within_the_header_timeout() {
        let t0 = Instant::now();
        let mut c = ConnClock::accepted(t0);
        assert_eq!(c.deadline(&T), Some((t0 + s(10), Expiry::Header)));
        // Bytes trickling in do not move the deadline: the whole head is due by then.
        c.read(t0 + s(5));
        assert_eq!(c.deadline(&T), Some((t0 + s(10), Expiry::Header)));
    }

    #[test]
    fn a_request_in_flight_has_no_deadline_however_long_it_waits_for_the_server() {
        let t0 = Instant::now();
        let mut c = ConnClock::accepted(t0);
        c.request_started();
        assert_eq!(c.deadline(&T), None);
        assert!(!c.closable());
    }

    #[test]
    fn after_a_response_the_connection_is_idle_until_the_next_requests_first_byte() {
        let t0 = Instant::now();
        let mut c = ConnClock::accepted(t0);
        c.request_started();
        c.request_finished(t0 + s(1));
        assert_eq!(c.deadline(&T), Some((t0 + s(76), Expiry::Idle)));
        assert!(c.closable());
        c.read(t0 + s(20));
        assert_eq!(c.deadline(&T), Some((t0 + s(30), Expiry::Header)));
        c.request_started();
        assert_eq!(c.deadline(&T), None);
    }

    #[test]
    fn a_body_that_stops_coming_has_the_body_timeout() {
        let t0 = Instant::now();
        let mut c = ConnClock::accepted(t0);
        c.request_started();
        c.body_pending(t0 + s(1));
        c.body_pending(t0 + s(2));
        assert_eq!(c.deadline(&T), Some((t0 + s(61), Expiry::Body)));
        c.body_progress();
        assert_eq!(c.deadline(&T), None);
    }

    #[test]
    fn an_unread_response_has_the_send_timeout_even_after_the_handler_is_done() {
        let t0 = Instant::now();
        let mut c = ConnClock::accepted(t0);
        c.request_started();
        c.send_pending(t0 + s(1));
        assert_eq!(c.deadline(&T), Some((t0 + s(31), Expiry::Send)));
        c.request_finished(t0 + s(2));
        assert_eq!(c.deadline(&T), Some((t0 + s(31), Expiry::Send)));
        assert!(!c.closable());
        c.send_progress();
        assert_eq!(c.deadline(&T), Some((t0 + s(77), Expiry::Idle)));
    }

    #[test]
    fn bytes_of_a_pipelined_request_read_while_one_is_in_flight_start_no_head_timer() {
        let t0 = Instant::now();
        let mut c = ConnClock::accepted(t0);
        c.request_started();
        c.read(t0 + s(1));
        assert_eq!(c.deadline(&T), None);
        c.request_started();
        c.request_finished(t0 + s(2));
        assert_eq!(c.deadline(&T), None);
        c.request_finished(t0 + s(3));
        assert_eq!(c.deadline(&T), Some((t0 + s(78), Expiry::Idle)));
    }
}
