//! The one HTTP client for requests to other servers: it resolves the destination
//! ([`super::resolve`]), refuses denied servers and addresses before connecting, signs with
//! `X-Matrix`, bounds the time a request takes, and turns a remote Matrix error into
//! [`FederationError::Remote`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use reqwest::header::{AUTHORIZATION, CACHE_CONTROL, HOST};
use reqwest::Method;
use serde_json::Value;

use super::policy::Policy;
use super::resolve::{self, Destination, Resolver, Step};
use super::xmatrix::SignedRequest;
use super::FederationError;
use crate::config::FederationConfig;
use crate::lock::lock;
use crate::service::keys::ServerKey;

/// How long a well-known lookup may take: a slow one delays every first request to a server.
const WELL_KNOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// A successful answer as bytes, with its `Content-Type`.
pub(crate) struct RawAnswer {
    pub(crate) content_type: Option<String>,
    pub(crate) bytes: Vec<u8>,
}

/// The `Content-Type` of a response, when it has a readable one.
fn content_type_of(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// An error answer of `server`, with the Matrix error it holds when it holds one.
fn remote_error(server: &str, status: reqwest::StatusCode, bytes: &[u8]) -> FederationError {
    let value = serde_json::from_slice::<Value>(bytes).unwrap_or(Value::Null);
    FederationError::Remote {
        server: server.to_string(),
        status: status.as_u16(),
        errcode: value["errcode"].as_str().unwrap_or("M_UNKNOWN").to_string(),
        error: value["error"]
            .as_str()
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error"))
            .to_string(),
    }
}

/// The most a remote answer may hold.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

pub(crate) struct FederationClient {
    http: reqwest::Client,
    /// For well-known lookups: follows redirects, and ignores SRV targets.
    well_known_http: reqwest::Client,
    resolver: Resolver,
    server_name: String,
    key: Arc<ServerKey>,
    policy: Arc<Policy>,
}

/// A connection refused because every address of the name is denied.
#[derive(Debug, thiserror::Error)]
#[error("{0} resolves only to denied addresses")]
struct AddressDenied(String);

impl FederationClient {
    pub(crate) fn new(
        config: &FederationConfig,
        server_name: &str,
        key: Arc<ServerKey>,
        policy: Arc<Policy>,
    ) -> FederationClient {
        let resolver = Resolver::new();
        let build = |targets: Option<Arc<Mutex<HashMap<String, String>>>>| {
            let filter = DnsFilter {
                dns: resolver.dns(),
                policy: policy.clone(),
                targets: targets.clone(),
            };
            let redirect = match targets {
                // A federation request is not redirected: the signature names its URI.
                Some(_) => reqwest::redirect::Policy::none(),
                None => {
                    let policy = policy.clone();
                    reqwest::redirect::Policy::custom(move |attempt| {
                        let denied_ip = attempt
                            .url()
                            .host_str()
                            .and_then(resolve::ip_literal)
                            .is_some_and(|ip| !policy.address_allowed(ip));
                        if denied_ip {
                            let url = attempt.url().to_string();
                            attempt.error(AddressDenied(url))
                        } else if attempt.previous().len() >= 5 {
                            attempt.stop()
                        } else {
                            attempt.follow()
                        }
                    })
                }
            };
            reqwest::Client::builder()
                .use_rustls_tls()
                .danger_accept_invalid_certs(!config.verify_tls)
                .dns_resolver(Arc::new(filter))
                // A proxy would resolve names itself, past the address policy.
                .no_proxy()
                .redirect(redirect)
                .connect_timeout(Duration::from_secs(10))
                .timeout(Duration::from_millis(config.request_timeout_ms))
                .user_agent(concat!("Plugboard/", env!("CARGO_PKG_VERSION")))
                .build()
                .expect("a TLS client with the built-in roots")
        };
        FederationClient {
            http: build(Some(resolver.srv_targets.clone())),
            well_known_http: build(None),
            resolver,
            server_name: server_name.to_string(),
            key,
            policy,
        }
    }

    /// A signed GET of `uri` (path and query) on `destination`.
    pub(crate) async fn get(&self, destination: &str, uri: &str) -> Result<Value, FederationError> {
        self.send(Method::GET, destination, uri, None, true).await
    }

    /// A signed POST of `body` to `uri` on `destination`.
    pub(crate) async fn post(
        &self,
        destination: &str,
        uri: &str,
        body: &Value,
    ) -> Result<Value, FederationError> {
        self.send(Method::POST, destination, uri, Some(body), true)
            .await
    }

    /// A signed PUT of `body` to `uri` on `destination` (transactions, joins, invites).
    pub(crate) async fn put(
        &self,
        destination: &str,
        uri: &str,
        body: &Value,
    ) -> Result<Value, FederationError> {
        self.send(Method::PUT, destination, uri, Some(body), true)
            .await
    }

    /// An unsigned GET, for the key server (which needs no authentication, and whose keys
    /// the destination would need to check ours).
    pub(crate) async fn get_unsigned(
        &self,
        destination: &str,
        uri: &str,
    ) -> Result<Value, FederationError> {
        self.send(Method::GET, destination, uri, None, false).await
    }

    async fn send(
        &self,
        method: Method,
        destination: &str,
        uri: &str,
        body: Option<&Value>,
        signed: bool,
    ) -> Result<Value, FederationError> {
        let raw = self
            .send_raw(method, destination, uri, body, signed)
            .await?;
        serde_json::from_slice::<Value>(&raw.bytes).map_err(|e| FederationError::BadResponse {
            server: destination.to_string(),
            why: format!("not JSON: {e}"),
        })
    }

    /// A signed GET whose successful answer is kept as bytes with its content type: what
    /// federated media answers (`multipart/mixed`).
    pub(crate) async fn get_bytes(
        &self,
        destination: &str,
        uri: &str,
    ) -> Result<RawAnswer, FederationError> {
        self.send_raw(Method::GET, destination, uri, None, true)
            .await
    }

    /// An unsigned GET of an absolute `url` that may redirect (a media part's `Location`),
    /// through the same address policy.
    pub(crate) async fn get_url(
        &self,
        server: &str,
        url: &str,
    ) -> Result<RawAnswer, FederationError> {
        let response = self
            .well_known_http
            .get(url)
            .send()
            .await
            .map_err(|e| request_error(server, e))?;
        let status = response.status();
        let content_type = content_type_of(&response);
        let bytes = read_capped(server, response).await?;
        if !status.is_success() {
            return Err(remote_error(server, status, &bytes));
        }
        Ok(RawAnswer {
            content_type,
            bytes,
        })
    }

    async fn send_raw(
        &self,
        method: Method,
        destination: &str,
        uri: &str,
        body: Option<&Value>,
        signed: bool,
    ) -> Result<RawAnswer, FederationError> {
        if !self.policy.server_allowed(destination) {
            return Err(FederationError::DeniedServer(destination.to_string()));
        }
        let dest = self.resolve(destination).await?;
        if let Some(ip) = dest.ip_literal() {
            self.check_address(destination, ip)?;
        }
        let mut request = self
            .http
            .request(method.clone(), format!("{}{uri}", dest.base_url()))
            .header(HOST, &dest.host_header);
        if signed {
            let auth = SignedRequest {
                method: method.as_str(),
                uri,
                origin: &self.server_name,
                destination,
                content: body,
            }
            .authorization(&self.key);
            request = request.header(AUTHORIZATION, auth);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| request_error(destination, e))?;
        let status = response.status();
        let content_type = content_type_of(&response);
        let bytes = read_capped(destination, response).await?;
        if status.is_success() {
            return Ok(RawAnswer {
                content_type,
                bytes,
            });
        }
        Err(remote_error(destination, status, &bytes))
    }

    fn check_address(&self, server: &str, ip: IpAddr) -> Result<(), FederationError> {
        if self.policy.address_allowed(ip) {
            Ok(())
        } else {
            Err(FederationError::DeniedAddress {
                server: server.to_string(),
            })
        }
    }

    /// Where requests for `server` go: the spec's steps, with lookups.
    pub(crate) async fn resolve(&self, server: &str) -> Result<Destination, FederationError> {
        let hostname = match resolve::first_step(server)? {
            Step::Done(dest) => return Ok(dest),
            Step::WellKnown { hostname } | Step::Srv { hostname } => hostname,
        };
        let delegated = match self.resolver.kept_well_known(&hostname) {
            Some(kept) => kept,
            None => self.fetch_well_known(&hostname).await,
        };
        let hostname = match resolve::after_well_known(&hostname, delegated.as_deref()) {
            Step::Done(dest) => return Ok(dest),
            Step::WellKnown { hostname } | Step::Srv { hostname } => hostname,
        };
        let srv = self.resolver.srv(&hostname).await;
        let dest = resolve::after_srv(&hostname, srv);
        self.resolver
            .connect_via(&dest.tls_name, dest.connect_to.as_deref());
        Ok(dest)
    }

    /// `https://{hostname}/.well-known/matrix/server`'s delegation, kept as long as the spec
    /// says (a failure too).
    async fn fetch_well_known(&self, hostname: &str) -> Option<String> {
        let response = self
            .well_known_http
            .get(format!("https://{hostname}/.well-known/matrix/server"))
            .timeout(WELL_KNOWN_TIMEOUT)
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success());
        let (delegated, cache_control) = match response {
            Some(r) => {
                let cache_control = r
                    .headers()
                    .get(CACHE_CONTROL)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let body = read_capped(hostname, r).await.ok();
                let delegated = body
                    .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                    .and_then(|v| resolve::delegated_server(&v));
                (delegated, cache_control)
            }
            None => (None, None),
        };
        let lifetime = resolve::well_known_lifetime(cache_control.as_deref(), delegated.is_some());
        self.resolver
            .keep_well_known(hostname, delegated.clone(), lifetime);
        delegated
    }
}

/// The body of `response`, refused past [`MAX_RESPONSE_BYTES`].
async fn read_capped(
    server: &str,
    mut response: reqwest::Response,
) -> Result<Vec<u8>, FederationError> {
    let mut out = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if out.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(FederationError::BadResponse {
                        server: server.to_string(),
                        why: "the answer is too large".into(),
                    });
                }
                out.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(out),
            Err(e) => return Err(request_error(server, e)),
        }
    }
}

/// A failed request: timed out, refused by the address policy, or unreachable.
fn request_error(server: &str, e: reqwest::Error) -> FederationError {
    if e.is_timeout() {
        return FederationError::Timeout(server.to_string());
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = source {
        if s.downcast_ref::<AddressDenied>().is_some() {
            return FederationError::DeniedAddress {
                server: server.to_string(),
            };
        }
        source = s.source();
    }
    FederationError::Unreachable {
        server: server.to_string(),
        why: error_chain(&e),
    }
}

/// An error and its causes on one line: reqwest's own message says only "error sending
/// request".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The name resolution of the federation client: the SRV target a name was given, resolved
/// with hickory, and only the addresses the policy allows. A name with no allowed address
/// fails with [`AddressDenied`], before any connection.
struct DnsFilter {
    dns: Option<Arc<TokioResolver>>,
    policy: Arc<Policy>,
    targets: Option<Arc<Mutex<HashMap<String, String>>>>,
}

impl reqwest::dns::Resolve for DnsFilter {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = self
            .targets
            .as_ref()
            .and_then(|t| lock(t).get(name.as_str()).cloned())
            .unwrap_or_else(|| name.as_str().to_string());
        Box::pin(lookup(self.dns.clone(), self.policy.clone(), host))
    }
}

async fn lookup(
    dns: Option<Arc<TokioResolver>>,
    policy: Arc<Policy>,
    host: String,
) -> Result<reqwest::dns::Addrs, Box<dyn std::error::Error + Send + Sync>> {
    let dns = dns.ok_or("no DNS configuration")?;
    let ips = dns.lookup_ip(format!("{host}.")).await?;
    let allowed: Vec<SocketAddr> = ips
        .iter()
        .filter(|ip| policy.address_allowed(*ip))
        .map(|ip| SocketAddr::new(ip, 0))
        .collect();
    if allowed.is_empty() {
        return Err(Box::new(AddressDenied(host)));
    }
    Ok(Box::new(allowed.into_iter()))
}

/// `segment` percent-encoded for a federation path (room and event ids hold `!`, `$`, `:`).
pub(crate) fn path_segment(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC).to_string()
}
