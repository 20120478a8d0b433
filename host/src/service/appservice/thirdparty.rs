//! Third-party networks (`/thirdparty/*`): what bridges say of the networks they connect.
//! Each protocol is one an HTTP application service declares in its registration
//! (`protocols`); the server asks that service (`GET {url}/_matrix/app/v1/thirdparty/…`, with
//! its `hs_token`) and merges the answers. A protocol no service declares is unknown (404);
//! a service that fails or answers nonsense is left out, as a query that answered "no".

use std::time::Duration;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::{json, Map, Value};

use super::registration::CompiledService;
use crate::service::{Error, Result, Services};

/// What a lookup looks for: the spec's two kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    Location,
    User,
}

impl Lookup {
    fn path(self) -> &'static str {
        match self {
            Lookup::Location => "location",
            Lookup::User => "user",
        }
    }
}

impl Services {
    /// The HTTP services declaring `protocol`, or declaring any when `None`.
    fn bridges(&self, protocol: Option<&str>) -> Vec<CompiledService> {
        self.appservices
            .registry()
            .services()
            .iter()
            .filter(|s| s.registration.url.is_some())
            .filter(|s| match protocol {
                Some(p) => s.registration.protocols.iter().any(|q| q == p),
                None => !s.registration.protocols.is_empty(),
            })
            .cloned()
            .collect()
    }

    /// `GET {url}/_matrix/app/v1/thirdparty/{path}?{query}` of one service: its JSON answer,
    /// or `None` for any failure (logged).
    async fn ask_bridge(
        &self,
        service: &CompiledService,
        path: &str,
        query: &[(String, String)],
    ) -> Option<Value> {
        let url = service.registration.url.as_deref()?;
        let timeout = Duration::from_millis(self.appservices.delivery.query_timeout_ms.max(1));
        let url = format!(
            "{}/_matrix/app/v1/thirdparty/{path}",
            url.trim_end_matches('/')
        );
        let answer = self
            .appservices
            .http
            .get(url)
            .query(query)
            .bearer_auth(&service.registration.hs_token)
            .timeout(timeout)
            .send()
            .await;
        match answer {
            Ok(resp) if resp.status().is_success() => resp.json().await.ok(),
            Ok(resp) => {
                tracing::debug!(appservice = %service.id, path, status = resp.status().as_u16(), "third-party lookup answered no");
                None
            }
            Err(e) => {
                tracing::warn!(appservice = %service.id, path, error = %e, "third-party lookup failed");
                None
            }
        }
    }

    /// GET /thirdparty/protocol/{protocol}: the first declaring service's description, with
    /// the instances of every declaring service.
    pub(crate) async fn thirdparty_protocol(&self, protocol: &str) -> Result<Value> {
        let path = format!(
            "protocol/{}",
            utf8_percent_encode(protocol, NON_ALPHANUMERIC)
        );
        let mut merged: Option<Value> = None;
        for service in self.bridges(Some(protocol)) {
            let Some(answer) = self.ask_bridge(&service, &path, &[]).await else {
                continue;
            };
            if !answer.is_object() {
                continue;
            }
            match &mut merged {
                None => merged = Some(answer),
                Some(m) => {
                    let more = answer["instances"].as_array().cloned().unwrap_or_default();
                    if let Some(list) = m["instances"].as_array_mut() {
                        list.extend(more);
                    }
                }
            }
        }
        let mut found = merged
            .ok_or_else(|| Error::NotFound(format!("no bridge serves the protocol {protocol}")))?;
        if !found["instances"].is_array() {
            found["instances"] = json!([]);
        }
        Ok(found)
    }

    /// GET /thirdparty/protocols: every declared protocol that its bridge describes.
    pub(crate) async fn thirdparty_protocols(&self) -> Result<Value> {
        let mut names: Vec<String> = self
            .bridges(None)
            .iter()
            .flat_map(|s| s.registration.protocols.clone())
            .collect();
        names.sort();
        names.dedup();
        let mut out = Map::new();
        for name in names {
            match self.thirdparty_protocol(&name).await {
                Ok(p) => {
                    out.insert(name, p);
                }
                Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Value::Object(out))
    }

    /// GET /thirdparty/{location,user}[/{protocol}]: every answering bridge's results. With a
    /// protocol, only its bridges are asked and an unknown one is 404; without, the query
    /// (`alias=` or `userid=`) goes to every bridge.
    pub(crate) async fn thirdparty_lookup(
        &self,
        kind: Lookup,
        protocol: Option<&str>,
        query: &[(String, String)],
    ) -> Result<Value> {
        let bridges = self.bridges(protocol);
        if let (Some(p), true) = (protocol, bridges.is_empty()) {
            return Err(Error::NotFound(format!(
                "no bridge serves the protocol {p}"
            )));
        }
        let path = match protocol {
            Some(p) => format!(
                "{}/{}",
                kind.path(),
                utf8_percent_encode(p, NON_ALPHANUMERIC)
            ),
            None => kind.path().to_string(),
        };
        let mut results = Vec::new();
        for service in bridges {
            if let Some(Value::Array(found)) = self.ask_bridge(&service, &path, query).await {
                results.extend(found.into_iter().filter(Value::is_object));
            }
        }
        Ok(Value::Array(results))
    }
}
