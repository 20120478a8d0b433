//! The client of a running server's admin API that the admin subcommands (`appservice …`,
//! `plugin …`, `report …`) use, with the admin token from the data dir.
//!
//! The server is found at `--url`, else at the address the running server wrote to the data
//! dir (`listening.addr`: `listen` may be port 0 or `0.0.0.0`), else at `listen` from the
//! configuration.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::config::Config;

/// A client of the admin API of one running server.
pub(crate) struct AdminClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl AdminClient {
    /// The server that `config`'s data dir belongs to (or the one at `url`), with its admin
    /// token.
    pub(crate) fn new(config: &Config, url: Option<&str>) -> Result<AdminClient, String> {
        let token_path = config.admin_token_path();
        let token = std::fs::read_to_string(&token_path).map_err(|e| {
            format!(
                "cannot read the admin token {}: {e} (has `plugboard serve` run with this data \
                 dir? pass the same --config / --data-dir as to `serve`)",
                token_path.display()
            )
        })?;
        let base = match url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", server_addr(config)),
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(300))
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
        Ok(AdminClient {
            http,
            base,
            token: token.trim().to_owned(),
        })
    }

    /// Calls the admin API; a Matrix error comes back as its message (with errcode and
    /// status), a server that cannot be reached as a message saying so.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some((content_type, body)) = body {
            req = req.header("content-type", content_type).body(body);
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_connect() {
                format!(
                    "cannot reach the server at {}: {} (is `plugboard serve` running with this \
                     data dir? --url names another address)",
                    self.base,
                    root_cause(&e)
                )
            } else {
                format!("request to {url} failed: {}", root_cause(&e))
            }
        })?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| format!("cannot read the answer of {url}: {}", root_cause(&e)))?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        match (body["errcode"].as_str(), body["error"].as_str()) {
            (Some(code), Some(error)) => Err(format!("{error} ({code}, HTTP {})", status.as_u16())),
            _ => Err(format!(
                "{url} answered HTTP {} (is this a Plugboard server?)",
                status.as_u16()
            )),
        }
    }
}

/// `id` as one percent-encoded path segment after `api`.
pub(crate) fn item_path(api: &str, id: &str) -> String {
    format!(
        "{api}/{}",
        percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
    )
}

/// The innermost cause of an error ("Connection refused (os error 111)").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// Where the server of `config`'s data dir listens: the address it wrote there, else `listen`;
/// an unspecified address (`0.0.0.0`, `::`) is reached on loopback.
pub(crate) fn server_addr(config: &Config) -> SocketAddr {
    let written = std::fs::read_to_string(crate::server::listening_addr_path(config))
        .ok()
        .and_then(|text| text.trim().parse::<SocketAddr>().ok());
    let addr = written.unwrap_or(config.listen);
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_listen_address_is_reached_on_loopback() {
        let dir = std::env::temp_dir().join(format!("pb-cli-{}", std::process::id()));
        let config = Config {
            data_dir: dir,
            listen: "0.0.0.0:8448".parse().unwrap(),
            ..Config::default()
        };
        assert_eq!(server_addr(&config), "127.0.0.1:8448".parse().unwrap());
    }
}
