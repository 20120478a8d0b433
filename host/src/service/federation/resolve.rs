//! Server discovery, the spec's "Resolving server names": an IP literal or a name with a port
//! is used as it is; otherwise `/.well-known/matrix/server` may delegate to another name, whose
//! SRV records (`_matrix-fed._tcp`, then the deprecated `_matrix._tcp`) or port 8448 give the
//! address. The steps are pure functions ([`first_step`], [`after_well_known`],
//! [`after_srv`]); [`Resolver`] does the lookups and keeps the well-known answers as long as
//! the spec says.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;

use super::FederationError;
use crate::lock::lock;

/// The port of a server name without one, and of a delegated name without SRV records.
pub(crate) const DEFAULT_PORT: u16 = 8448;

/// A well-known answer is kept this long when the response says nothing.
const WELL_KNOWN_DEFAULT: Duration = Duration::from_secs(24 * 3600);
/// …and at most this long whatever it says.
const WELL_KNOWN_MAX: Duration = Duration::from_secs(48 * 3600);
/// A failed well-known lookup is not repeated for this long.
const WELL_KNOWN_ERROR: Duration = Duration::from_secs(3600);

/// Where to send a request for a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Destination {
    /// The host of the request URL: what the certificate must be valid for (SNI), and what
    /// is resolved unless `connect_to` says otherwise. An IPv6 literal is bracketed.
    pub(crate) tls_name: String,
    /// An SRV target to resolve instead of `tls_name`.
    pub(crate) connect_to: Option<String>,
    pub(crate) port: u16,
    /// The `Host` header.
    pub(crate) host_header: String,
}

impl Destination {
    /// The IP address to connect to, when the URL's host is an IP literal.
    pub(crate) fn ip_literal(&self) -> Option<IpAddr> {
        ip_literal(&self.tls_name)
    }

    pub(crate) fn base_url(&self) -> String {
        format!("https://{}:{}", self.tls_name, self.port)
    }
}

/// What to do next to resolve a server name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    Done(Destination),
    /// Ask `https://{hostname}/.well-known/matrix/server`.
    WellKnown {
        hostname: String,
    },
    /// Look up the SRV records of `hostname`; the `Host` header is `hostname`.
    Srv {
        hostname: String,
    },
}

/// A host and an optional port, from `host[:port]` where host is a DNS name, an IPv4 literal
/// or a bracketed IPv6 literal.
fn split(name: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if name.starts_with('[') {
        let end = name.find(']')?;
        let rest = &name[end + 1..];
        let port = match rest.strip_prefix(':') {
            Some(p) => Some(p),
            None if rest.is_empty() => None,
            None => return None,
        };
        (&name[..=end], port)
    } else {
        match name.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (name, None),
        }
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok().filter(|&p| p != 0)?),
        None => None,
    };
    let valid = if host.starts_with('[') {
        ip_literal(host).is_some_and(|ip| ip.is_ipv6())
    } else {
        !host.is_empty()
            && host.len() <= 255
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    };
    valid.then_some((host, port))
}

/// `1.2.3.4` or `[::1]` as an address.
pub(crate) fn ip_literal(host: &str) -> Option<IpAddr> {
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6),
        None => host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4),
    }
}

/// Steps 1 and 2 of the spec: an IP literal, or a name with an explicit port, is the
/// destination; any other name asks its well-known first.
pub(crate) fn first_step(server_name: &str) -> Result<Step, FederationError> {
    let (host, port) =
        split(server_name).ok_or_else(|| FederationError::BadServerName(server_name.into()))?;
    if ip_literal(host).is_some() || port.is_some() {
        return Ok(Step::Done(Destination {
            tls_name: host.to_string(),
            connect_to: None,
            port: port.unwrap_or(DEFAULT_PORT),
            host_header: server_name.to_string(),
        }));
    }
    Ok(Step::WellKnown {
        hostname: host.to_string(),
    })
}

/// Step 3 with the well-known's `m.server` (`None` when there was none, or it was unusable):
/// a delegated IP literal or name with a port is the destination; a delegated name without
/// one goes on to SRV; without delegation the server's own name goes on to SRV (step 4).
pub(crate) fn after_well_known(hostname: &str, delegated: Option<&str>) -> Step {
    let Some((host, port)) = delegated.and_then(split) else {
        return Step::Srv {
            hostname: hostname.to_string(),
        };
    };
    let delegated = delegated.unwrap_or_default();
    if ip_literal(host).is_some() || port.is_some() {
        return Step::Done(Destination {
            tls_name: host.to_string(),
            connect_to: None,
            port: port.unwrap_or(DEFAULT_PORT),
            host_header: delegated.to_string(),
        });
    }
    Step::Srv {
        hostname: host.to_string(),
    }
}

/// The SRV steps' outcome: the record's target and port (`_matrix-fed._tcp`, else
/// `_matrix._tcp`), else port 8448 of the name itself. The certificate and `Host` stay those
/// of the name.
pub(crate) fn after_srv(hostname: &str, srv: Option<(String, u16)>) -> Destination {
    let (connect_to, port) = match srv {
        Some((target, port)) => {
            let target = target.trim_end_matches('.').to_string();
            ((target != hostname).then_some(target), port)
        }
        None => (None, DEFAULT_PORT),
    };
    Destination {
        tls_name: hostname.to_string(),
        connect_to,
        port,
        host_header: hostname.to_string(),
    }
}

/// How long a well-known answer is kept: its `Cache-Control` max-age (capped at 48 hours) or
/// 24 hours; `no-store` / `no-cache` keep it for no time; a failure is kept an hour.
pub(crate) fn well_known_lifetime(cache_control: Option<&str>, found: bool) -> Duration {
    if !found {
        return WELL_KNOWN_ERROR;
    }
    let Some(cc) = cache_control else {
        return WELL_KNOWN_DEFAULT;
    };
    let mut lifetime = WELL_KNOWN_DEFAULT;
    for directive in cc.split(',').map(|d| d.trim().to_ascii_lowercase()) {
        if directive == "no-store" || directive == "no-cache" {
            return Duration::ZERO;
        }
        if let Some(secs) = directive.strip_prefix("max-age=") {
            if let Ok(secs) = secs.trim_matches('"').parse::<u64>() {
                lifetime = Duration::from_secs(secs);
            }
        }
    }
    lifetime.min(WELL_KNOWN_MAX)
}

/// The `m.server` of a well-known body, when it is a usable `host[:port]`.
pub(crate) fn delegated_server(body: &serde_json::Value) -> Option<String> {
    let name = body.get("m.server")?.as_str()?;
    split(name).map(|_| name.to_string())
}

/// Does the lookups of server discovery, and remembers what the spec lets it remember.
pub(crate) struct Resolver {
    dns: Option<Arc<TokioResolver>>,
    well_known: Mutex<HashMap<String, (Option<String>, Instant)>>,
    /// SRV targets by the name the request URL carries (see `client::DnsFilter`).
    pub(crate) srv_targets: Arc<Mutex<HashMap<String, String>>>,
}

impl Resolver {
    pub(crate) fn new() -> Resolver {
        let dns = match TokioResolver::builder_tokio() {
            Ok(builder) => Some(Arc::new(builder.build())),
            Err(e) => {
                tracing::warn!(error = %e, "no DNS configuration: federation reaches IP literals only");
                None
            }
        };
        Resolver {
            dns,
            well_known: Mutex::new(HashMap::new()),
            srv_targets: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    pub(crate) fn dns(&self) -> Option<Arc<TokioResolver>> {
        self.dns.clone()
    }

    /// The well-known delegation kept for `hostname`, if still fresh: `Some(None)` is a
    /// remembered failure.
    pub(crate) fn kept_well_known(&self, hostname: &str) -> Option<Option<String>> {
        let kept = lock(&self.well_known);
        kept.get(hostname)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(delegated, _)| delegated.clone())
    }

    pub(crate) fn keep_well_known(
        &self,
        hostname: &str,
        delegated: Option<String>,
        lifetime: Duration,
    ) {
        let mut kept = lock(&self.well_known);
        let now = Instant::now();
        kept.retain(|_, (_, until)| *until > now);
        kept.insert(hostname.to_string(), (delegated, now + lifetime));
    }

    /// The best SRV record of `_matrix-fed._tcp.{hostname}`, else `_matrix._tcp.{hostname}`:
    /// the lowest priority, then the highest weight.
    pub(crate) async fn srv(&self, hostname: &str) -> Option<(String, u16)> {
        let dns = self.dns.as_ref()?;
        for service in ["_matrix-fed._tcp", "_matrix._tcp"] {
            let Ok(records) = dns.srv_lookup(format!("{service}.{hostname}.")).await else {
                continue;
            };
            let best = records
                .iter()
                .filter(|r| r.port() != 0 && !r.target().is_root())
                .min_by_key(|r| (r.priority(), std::cmp::Reverse(r.weight())));
            if let Some(r) = best {
                return Some((r.target().to_utf8(), r.port()));
            }
        }
        None
    }

    /// Remembers that requests for `tls_name` connect to `target`.
    pub(crate) fn connect_via(&self, tls_name: &str, target: Option<&str>) {
        let mut targets = lock(&self.srv_targets);
        match target {
            Some(t) => targets.insert(tls_name.to_string(), t.to_string()),
            None => targets.remove(tls_name),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn done(tls_name: &str, port: u16, host_header: &str) -> Step {
        Step::Done(Destination {
            tls_name: tls_name.into(),
            connect_to: None,
            port,
            host_header: host_header.into(),
        })
    }

    #[test]
    fn an_ip_literal_is_the_destination_with_its_port_or_8448() {
        assert_eq!(
            first_step("127.0.0.1:8449").unwrap(),
            done("127.0.0.1", 8449, "127.0.0.1:8449")
        );
        assert_eq!(
            first_step("1.2.3.4").unwrap(),
            done("1.2.3.4", 8448, "1.2.3.4")
        );
        assert_eq!(
            first_step("[::1]:9000").unwrap(),
            done("[::1]", 9000, "[::1]:9000")
        );
        assert_eq!(
            first_step("[2001:db8::1]").unwrap(),
            done("[2001:db8::1]", 8448, "[2001:db8::1]")
        );
    }

    #[test]
    fn a_hostname_with_a_port_is_the_destination_and_one_without_asks_its_well_known() {
        assert_eq!(
            first_step("matrix.example.org:443").unwrap(),
            done("matrix.example.org", 443, "matrix.example.org:443")
        );
        assert_eq!(
            first_step("example.org").unwrap(),
            Step::WellKnown {
                hostname: "example.org".into()
            }
        );
    }

    #[test]
    fn names_that_are_not_server_names_are_refused() {
        for bad in [
            "",
            "a b",
            "host:",
            "host:0",
            "host:99999",
            "[::1",
            "[nope]:1",
            "[::1]x",
            "a/b",
        ] {
            assert!(
                matches!(first_step(bad), Err(FederationError::BadServerName(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_well_known_delegation_to_an_ip_or_a_port_is_the_destination() {
        assert_eq!(
            after_well_known("example.org", Some("10.0.0.1")),
            done("10.0.0.1", 8448, "10.0.0.1")
        );
        assert_eq!(
            after_well_known("example.org", Some("matrix.example.org:443")),
            done("matrix.example.org", 443, "matrix.example.org:443")
        );
    }

    #[test]
    fn a_delegated_name_without_a_port_and_no_delegation_both_go_to_srv() {
        assert_eq!(
            after_well_known("example.org", Some("matrix.example.org")),
            Step::Srv {
                hostname: "matrix.example.org".into()
            }
        );
        for none in [None, Some("not a name!")] {
            assert_eq!(
                after_well_known("example.org", none),
                Step::Srv {
                    hostname: "example.org".into()
                }
            );
        }
    }

    #[test]
    fn an_srv_record_gives_the_address_but_the_name_keeps_the_certificate_and_host() {
        assert_eq!(
            after_srv("example.org", Some(("fed.example.net.".into(), 8000))),
            Destination {
                tls_name: "example.org".into(),
                connect_to: Some("fed.example.net".into()),
                port: 8000,
                host_header: "example.org".into(),
            }
        );
        assert_eq!(
            after_srv("example.org", None),
            Destination {
                tls_name: "example.org".into(),
                connect_to: None,
                port: 8448,
                host_header: "example.org".into(),
            }
        );
    }

    #[test]
    fn well_known_answers_are_kept_per_cache_control_capped_and_failures_an_hour() {
        let h = |s| Duration::from_secs(s);
        assert_eq!(well_known_lifetime(None, true), h(24 * 3600));
        assert_eq!(
            well_known_lifetime(Some("public, max-age=600"), true),
            h(600)
        );
        assert_eq!(
            well_known_lifetime(Some("max-age=999999999"), true),
            h(48 * 3600)
        );
        assert_eq!(well_known_lifetime(Some("no-store"), true), Duration::ZERO);
        assert_eq!(well_known_lifetime(Some("max-age=600"), false), h(3600));
        assert_eq!(well_known_lifetime(None, false), h(3600));
    }

    #[test]
    fn a_well_known_body_delegates_only_to_a_usable_name() {
        assert_eq!(
            delegated_server(&json!({"m.server": "m.example.org:443"})).as_deref(),
            Some("m.example.org:443")
        );
        assert_eq!(delegated_server(&json!({"m.server": 5})), None);
        assert_eq!(delegated_server(&json!({"m.server": "bad name"})), None);
        assert_eq!(delegated_server(&json!({})), None);
    }
}
