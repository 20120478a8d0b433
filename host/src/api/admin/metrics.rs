//! `GET /metrics`: the delivery figures of every application service with a URL, the
//! figures of every plugin and the delivery figures of every destination server, in the
//! Prometheus text format (0.0.4).
//!
//! It needs the admin token like the rest of the admin API, because `listen` is also where
//! clients and other servers connect, and the figures tell an outsider which bridges run and
//! how busy they are. A scraper sends the token from the data dir:
//!
//! ```yaml
//! scrape_configs:
//!   - job_name: plugboard
//!     authorization:
//!       credentials_file: /var/lib/plugboard/admin.token
//!     static_configs:
//!       - targets: ["127.0.0.1:8008"]
//! ```

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::exposition::{family, sample, summary, Sample};
use super::Admin;
use crate::api::error::ApiResult;
use crate::api::AppState;
use crate::service::appservice::delivery::Status;
use crate::service::appservice::overview::Overview;
use crate::service::Error;

/// `GET /metrics`
pub(crate) async fn metrics(_: Admin, State(s): State<AppState>) -> ApiResult<impl IntoResponse> {
    let overview = s
        .appservices
        .overview(&s.storage)
        .await
        .map_err(Error::from)?;
    let plugins = s.plugins.overviews(&s).await?;
    let destinations = s.federation_destinations().await?;
    let mut text = render(&overview);
    text.push_str(&super::plugin_metrics::render(&plugins));
    text.push_str(&super::federation_metrics::render(&destinations));
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    ))
}

/// The exposition text. Services without a URL have no delivery and no lines.
pub(crate) fn render(overview: &[Overview]) -> String {
    let services: Vec<(&Overview, Status)> = overview
        .iter()
        .filter_map(|o| o.status.clone().map(|s| (o, s)))
        .collect();
    let mut text = String::new();
    let out = &mut text;
    let family = |out: &mut String,
                  services: &[(&Overview, Status)],
                  head: (&str, &str, &str),
                  samples: &dyn Fn(&Overview, &Status) -> Vec<Sample>| {
        family(
            out,
            services,
            head,
            (
                "appservice",
                service_id as for<'a> fn(&'a (&Overview, Status)) -> &'a str,
            ),
            |(o, s)| samples(o, s),
        )
    };
    family(
        out,
        &services,
        (
            "plugboard_appservice_up",
            "gauge",
            "1 while pushes to the service succeed, 0 while it is marked down after a failed push.",
        ),
        &|_, s| sample(f64::from(u8::from(s.up))),
    );
    family(
        out,
        &services,
        (
            "plugboard_appservice_events_behind",
            "gauge",
            "Events stored after the service's acknowledged queue position (the stream \
             distance: wanted by the service or not).",
        ),
        &|o, _| {
            o.backlog
                .map(|b| sample(b.events_after as f64))
                .unwrap_or_default()
        },
    );
    family(
        out,
        &services,
        (
            "plugboard_appservice_transactions_sent_total",
            "counter",
            "Transactions the service acknowledged since the server started.",
        ),
        &|_, s| sample(s.txns_sent as f64),
    );
    family(
        out,
        &services,
        (
            "plugboard_appservice_events_sent_total",
            "counter",
            "Events in the transactions the service acknowledged since the server started.",
        ),
        &|_, s| sample(s.events_sent as f64),
    );
    family(
        out,
        &services,
        (
            "plugboard_appservice_retries_total",
            "counter",
            "Failed pushes (each retried with the same txnId) since the server started.",
        ),
        &|_, s| sample(s.retries as f64),
    );
    family(
        out,
        &services,
        (
            "plugboard_appservice_probes_total",
            "counter",
            "Pings sent during pauses after failed pushes, to find a service back early.",
        ),
        &|_, s| sample(s.probes as f64),
    );
    family(
        out,
        &services,
        (
            "plugboard_appservice_delivery_seconds",
            "summary",
            "How long a successful push took, from sending the transaction to its \
             acknowledgement (quantiles over the latest pushes).",
        ),
        &|_, s| summary(&s.push_times),
    );
    family(
        out,
        &services,
        (
            "plugboard_appservice_last_success_timestamp_seconds",
            "gauge",
            "When the service last acknowledged a transaction (Unix time); absent before then.",
        ),
        &|_, s| {
            s.last_success_ms
                .map(|ms| sample(ms as f64 / 1000.0))
                .unwrap_or_default()
        },
    );
    text
}

fn service_id<'a>((o, _): &'a (&Overview, Status)) -> &'a str {
    &o.service.id
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::service::appservice::registration::Registry;
    use crate::service::appservice::registration::{Origin, Registration};
    use crate::storage::queue::Backlog;

    fn overview(id: &str, url: Option<&str>, status: Option<Status>) -> Overview {
        let yaml = format!(
            "id: '{id}'\nurl: {}\nas_token: as-{id}\nhs_token: hs-{id}\nsender_localpart: bot{}\n",
            url.unwrap_or("null"),
            id.len()
        );
        let reg = Registration::from_yaml(&yaml, Origin::File("t.yaml".into())).unwrap();
        let registry = Registry::new(vec![reg], "example.org").unwrap();
        Overview {
            service: registry.services()[0].clone(),
            origin: Origin::Runtime(id.to_owned()),
            status,
            backlog: url.map(|_| Backlog {
                position: 10,
                events_after: 7,
                pending_txn_id: None,
                pending_events: 0,
            }),
        }
    }

    #[test]
    fn every_family_has_a_line_per_delivered_service() {
        let mut status = Status {
            up: true,
            last_success_ms: Some(1_700_000_000_500),
            txns_sent: 3,
            events_sent: 12,
            retries: 2,
            ..Status::default()
        };
        for ms in [1, 2, 3, 4, 100] {
            status.push_times.record(Duration::from_millis(ms));
        }
        let text = render(&[
            overview("bridge", Some("http://127.0.0.1:1"), Some(status)),
            overview("quiet", None, None),
        ]);
        for line in [
            "plugboard_appservice_up{appservice=\"bridge\"} 1",
            "plugboard_appservice_events_behind{appservice=\"bridge\"} 7",
            "plugboard_appservice_transactions_sent_total{appservice=\"bridge\"} 3",
            "plugboard_appservice_events_sent_total{appservice=\"bridge\"} 12",
            "plugboard_appservice_retries_total{appservice=\"bridge\"} 2",
            "plugboard_appservice_delivery_seconds{appservice=\"bridge\",quantile=\"0.5\"} 0.003",
            "plugboard_appservice_delivery_seconds{appservice=\"bridge\",quantile=\"0.99\"} 0.1",
            "plugboard_appservice_delivery_seconds_count{appservice=\"bridge\"} 5",
            "plugboard_appservice_last_success_timestamp_seconds{appservice=\"bridge\"} 1700000000.5",
            "# TYPE plugboard_appservice_delivery_seconds summary",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
        }
        assert!(!text.contains("quiet"), "{text}");
    }
}
