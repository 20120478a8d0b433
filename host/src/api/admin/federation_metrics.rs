//! The federation families of `GET /metrics`: per destination server, whether its
//! transactions go through, how far its queue is behind the stream, and what it was sent.

use super::exposition::{family, sample};
use crate::service::federation::sender::DestinationOverview as Destination;

/// The federation families, one line per destination server.
pub(crate) fn render(destinations: &[Destination]) -> String {
    let mut out = String::new();
    let out = &mut out;
    let id = ("destination", name as fn(&Destination) -> &str);
    family(
        out,
        destinations,
        (
            "plugboard_federation_up",
            "gauge",
            "1 while transactions to the server go through, 0 after a failed one until one does.",
        ),
        id,
        |d| sample(f64::from(u8::from(d.status.up))),
    );
    family(
        out,
        destinations,
        (
            "plugboard_federation_events_behind",
            "gauge",
            "Events stored after the server's acknowledged queue position (the stream \
             distance: sent to it or not).",
        ),
        id,
        |d| {
            d.backlog
                .map(|b| sample(b.events_after as f64))
                .unwrap_or_default()
        },
    );
    family(
        out,
        destinations,
        (
            "plugboard_federation_transactions_sent_total",
            "counter",
            "Transactions the server acknowledged since this server started.",
        ),
        id,
        |d| sample(d.status.txns_sent as f64),
    );
    family(
        out,
        destinations,
        (
            "plugboard_federation_pdus_sent_total",
            "counter",
            "PDUs in the transactions the server acknowledged since this server started.",
        ),
        id,
        |d| sample(d.status.events_sent as f64),
    );
    family(
        out,
        destinations,
        (
            "plugboard_federation_retries_total",
            "counter",
            "Failed sends (each retried with the same txn id) since this server started.",
        ),
        id,
        |d| sample(d.status.retries as f64),
    );
    out.clone()
}

fn name(d: &Destination) -> &str {
    &d.name
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::appservice::delivery::Status;
    use crate::storage::queue::Backlog;

    #[test]
    fn every_family_has_a_line_per_destination() {
        let status = Status {
            up: false,
            txns_sent: 3,
            events_sent: 120,
            retries: 4,
            ..Status::default()
        };
        let text = render(&[Destination {
            name: "127.0.0.1:8448".into(),
            status,
            backlog: Some(Backlog {
                position: 10,
                events_after: 7,
                pending_txn_id: Some(5),
                pending_events: 50,
            }),
        }]);
        for line in [
            "plugboard_federation_up{destination=\"127.0.0.1:8448\"} 0",
            "plugboard_federation_events_behind{destination=\"127.0.0.1:8448\"} 7",
            "plugboard_federation_transactions_sent_total{destination=\"127.0.0.1:8448\"} 3",
            "plugboard_federation_pdus_sent_total{destination=\"127.0.0.1:8448\"} 120",
            "plugboard_federation_retries_total{destination=\"127.0.0.1:8448\"} 4",
            "# TYPE plugboard_federation_up gauge",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
        }
    }
}
