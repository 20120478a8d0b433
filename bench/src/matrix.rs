//! The tiny Matrix client-server API (v3) client the benchmark needs: registration with
//! user-interactive auth, room creation, joins, sending a message and one /sync request.
//!
//! Only standard endpoints are used so the same binary measures Plugboard, Synapse or any
//! other homeserver.

use std::fmt;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// How often setup calls are retried after a 429 before giving up: Synapse's default
/// registration and join limits need a few rounds on a box where they were not raised.
const MAX_RATE_LIMIT_RETRIES: u32 = 50;

/// Why a request failed.
#[derive(Debug)]
pub enum Error {
    /// No HTTP response at all (connection refused, reset, timeout…).
    Transport(reqwest::Error),
    /// The server answered with a non-success status.
    Matrix {
        status: StatusCode,
        errcode: String,
        message: String,
        retry_after: Option<Duration>,
    },
    /// The server answered 2xx but not with what the spec promises.
    Protocol(String),
}

impl Error {
    /// How long the server asked us to back off, for a 429.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Matrix {
                status,
                retry_after,
                ..
            } if *status == StatusCode::TOO_MANY_REQUESTS => {
                Some(retry_after.unwrap_or(Duration::from_secs(1)))
            }
            _ => None,
        }
    }

    /// A short label used to group errors in the summary.
    pub fn kind(&self) -> String {
        match self {
            Error::Transport(e) if e.is_timeout() => "transport:timeout".to_owned(),
            Error::Transport(e) if e.is_connect() => "transport:connect".to_owned(),
            Error::Transport(_) => "transport:other".to_owned(),
            Error::Matrix {
                status, errcode, ..
            } => format!("{} {}", status.as_u16(), errcode),
            Error::Protocol(_) => "protocol".to_owned(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Transport(e) => write!(f, "transport error: {e}"),
            Error::Matrix {
                status,
                errcode,
                message,
                ..
            } => write!(f, "HTTP {status} {errcode}: {message}"),
            Error::Protocol(m) => write!(f, "unexpected response: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<reqwest::Error> for Error {
    fn from(e: reqwest::Error) -> Self {
        Error::Transport(e)
    }
}

/// A logged-in user.
#[derive(Clone, Debug)]
pub struct Session {
    pub user_id: String,
    pub access_token: String,
}

/// One /sync response, with the instant its body had been read completely.
pub struct SyncResponse {
    pub received_at: Instant,
    pub body: Value,
}

/// A homeserver reached through a shared connection pool.
#[derive(Clone)]
pub struct Matrix {
    http: reqwest::Client,
    base: String,
}

impl Matrix {
    pub fn new(http: reqwest::Client, base_url: &str) -> Self {
        Matrix {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
        }
    }

    /// GET /versions: a cheap check that something Matrix-shaped answers at the URL.
    pub async fn versions(&self) -> Result<Value, Error> {
        self.call(Method::GET, "/_matrix/client/versions", None, None)
            .await
    }

    /// Registers `username` and logs it in, completing the user-interactive auth stages of
    /// the first advertised flow that only needs stages we can do (m.login.dummy, and
    /// m.login.registration_token when a token was given).
    pub async fn register(
        &self,
        username: &str,
        password: &str,
        registration_token: Option<&str>,
    ) -> Result<Session, Error> {
        let path = "/_matrix/client/v3/register";
        let mut body = json!({
            "username": username,
            "password": password,
            "initial_device_display_name": "plugboard-bench",
        });
        let mut plan: Option<Vec<String>> = None;
        // Every stage is one round trip; the bound only stops a server that never finishes.
        for _ in 0..10 {
            match self
                .call_retrying(Method::POST, path, None, Some(&body))
                .await
            {
                Ok(reply) => return session_from(&reply),
                Err(UiaOrError::Uia(uia)) => {
                    let session = uia
                        .get("session")
                        .and_then(Value::as_str)
                        .ok_or_else(|| Error::Protocol("401 without a UIA session".into()))?
                        .to_owned();
                    let stages = match &plan {
                        Some(stages) => stages.clone(),
                        None => {
                            let stages = choose_flow(&uia, registration_token.is_some())?;
                            plan = Some(stages.clone());
                            stages
                        }
                    };
                    let completed: Vec<&str> = uia
                        .get("completed")
                        .and_then(Value::as_array)
                        .map(|c| c.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    let next = stages
                        .iter()
                        .find(|s| !completed.contains(&s.as_str()))
                        .ok_or_else(|| {
                            Error::Protocol(format!(
                                "server still wants auth after all stages of {stages:?}: {uia}"
                            ))
                        })?;
                    let mut auth = json!({ "type": next, "session": session });
                    if next == "m.login.registration_token" {
                        auth["token"] = json!(registration_token.unwrap_or_default());
                    }
                    body["auth"] = auth;
                }
                Err(UiaOrError::Error(e)) => return Err(e),
            }
        }
        Err(Error::Protocol(
            "registration did not finish in 10 rounds".into(),
        ))
    }

    /// POST /createRoom with the public_chat preset so the other users can join freely.
    pub async fn create_room(&self, session: &Session, name: &str) -> Result<String, Error> {
        let body = json!({ "preset": "public_chat", "name": name });
        let reply = self
            .setup_call(
                Method::POST,
                "/_matrix/client/v3/createRoom",
                Some(session),
                &body,
            )
            .await?;
        room_id_from(&reply)
    }

    /// POST /join/{roomId}.
    pub async fn join(&self, session: &Session, room_id: &str) -> Result<String, Error> {
        let path = format!("/_matrix/client/v3/join/{}", encode(room_id));
        let reply = self
            .setup_call(Method::POST, &path, Some(session), &json!({}))
            .await?;
        room_id_from(&reply)
    }

    /// POST /rooms/{roomId}/invite.
    pub async fn invite(
        &self,
        session: &Session,
        room_id: &str,
        user_id: &str,
    ) -> Result<(), Error> {
        let path = format!("/_matrix/client/v3/rooms/{}/invite", encode(room_id));
        self.setup_call(
            Method::POST,
            &path,
            Some(session),
            &json!({ "user_id": user_id }),
        )
        .await
        .map(drop)
    }

    /// POST to an admin endpoint with the admin token as the session's token.
    pub async fn admin_post(&self, admin: &Session, path: &str) -> Result<Value, Error> {
        self.call(Method::POST, path, Some(admin), Some(&json!({})))
            .await
    }

    pub async fn admin_get(&self, admin: &Session, path: &str) -> Result<Value, Error> {
        self.call(Method::GET, path, Some(admin), None).await
    }

    /// Whether `user_id` is joined to `room_id` (GET /rooms/{roomId}/joined_members).
    pub async fn is_joined(
        &self,
        session: &Session,
        room_id: &str,
        user_id: &str,
    ) -> Result<bool, Error> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/joined_members",
            encode(room_id)
        );
        let reply = self.call(Method::GET, &path, Some(session), None).await?;
        Ok(reply
            .pointer("/joined")
            .and_then(|j| j.get(user_id))
            .is_some())
    }

    /// PUT /rooms/{roomId}/send/m.room.message/{txnId}; returns the event ID. Not retried:
    /// the load generator counts a 429 as an error and backs off itself.
    pub async fn send_message(
        &self,
        session: &Session,
        room_id: &str,
        txn_id: &str,
        content: &Value,
    ) -> Result<String, Error> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/send/m.room.message/{}",
            encode(room_id),
            encode(txn_id)
        );
        let reply = self
            .call(Method::PUT, &path, Some(session), Some(content))
            .await?;
        reply
            .get("event_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| Error::Protocol(format!("send reply without event_id: {reply}")))
    }

    /// One GET /sync. `filter` is inline JSON; `timeout_ms` is the long-poll time.
    pub async fn sync(
        &self,
        session: &Session,
        filter: &str,
        since: Option<&str>,
        timeout_ms: u64,
    ) -> Result<SyncResponse, Error> {
        let mut path = format!(
            "/_matrix/client/v3/sync?timeout={timeout_ms}&filter={}",
            encode(filter)
        );
        if let Some(since) = since {
            path.push_str("&since=");
            path.push_str(&encode(since));
        }
        let (status, body, received_at) = self.raw(Method::GET, &path, Some(session), None).await?;
        if !status.is_success() {
            return Err(error_from(status, &body));
        }
        Ok(SyncResponse { received_at, body })
    }

    /// A setup request: 429s are waited out, anything else non-2xx is an error.
    async fn setup_call(
        &self,
        method: Method,
        path: &str,
        session: Option<&Session>,
        body: &Value,
    ) -> Result<Value, Error> {
        match self.call_retrying(method, path, session, Some(body)).await {
            Ok(v) => Ok(v),
            Err(UiaOrError::Error(e)) => Err(e),
            Err(UiaOrError::Uia(v)) => Err(Error::Protocol(format!(
                "{path} asked for user-interactive auth: {v}"
            ))),
        }
    }

    /// Like `call`, but sleeps through 429s, and hands a 401 that carries UIA flows back
    /// separately so registration can continue with the next stage.
    async fn call_retrying(
        &self,
        method: Method,
        path: &str,
        session: Option<&Session>,
        body: Option<&Value>,
    ) -> Result<Value, UiaOrError> {
        let mut attempt = 0;
        loop {
            let (status, reply, _) = self.raw(method.clone(), path, session, body).await?;
            if status.is_success() {
                return Ok(reply);
            }
            if status == StatusCode::UNAUTHORIZED && reply.get("flows").is_some() {
                return Err(UiaOrError::Uia(reply));
            }
            let err = error_from(status, &reply);
            match err.retry_after() {
                Some(wait) if attempt < MAX_RATE_LIMIT_RETRIES => {
                    attempt += 1;
                    eprintln!("rate limited on {path}; retrying in {wait:?}");
                    tokio::time::sleep(wait).await;
                }
                _ => return Err(UiaOrError::Error(err)),
            }
        }
    }

    /// One request; non-2xx becomes `Error::Matrix`.
    async fn call(
        &self,
        method: Method,
        path: &str,
        session: Option<&Session>,
        body: Option<&Value>,
    ) -> Result<Value, Error> {
        let (status, reply, _) = self.raw(method, path, session, body).await?;
        if status.is_success() {
            Ok(reply)
        } else {
            Err(error_from(status, &reply))
        }
    }

    /// Sends one request and reads the whole body, noting when the last byte arrived (before
    /// JSON parsing, so parse time does not count as network or server time).
    async fn raw(
        &self,
        method: Method,
        path: &str,
        session: Option<&Session>,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value, Instant), Error> {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(session) = session {
            req = req.bearer_auth(&session.access_token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        let received_at = Instant::now();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(&bytes) {
                Ok(v) => v,
                // A proxy's HTML error page is still worth showing as the error text.
                Err(_) if !status.is_success() => {
                    json!({ "error": String::from_utf8_lossy(&bytes).chars().take(200).collect::<String>() })
                }
                Err(e) => return Err(Error::Protocol(format!("{path}: body is not JSON: {e}"))),
            }
        };
        Ok((status, value, received_at))
    }
}

/// A 401 with UIA flows is not a failure during registration, just the next step.
enum UiaOrError {
    Uia(Value),
    Error(Error),
}

impl From<Error> for UiaOrError {
    fn from(e: Error) -> Self {
        UiaOrError::Error(e)
    }
}

/// Picks the stages of the first flow made only of stages this client can complete.
fn choose_flow(uia: &Value, have_token: bool) -> Result<Vec<String>, Error> {
    let doable = |stage: &str| {
        stage == "m.login.dummy" || (have_token && stage == "m.login.registration_token")
    };
    let flows = uia
        .get("flows")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::Protocol(format!("UIA reply without flows: {uia}")))?;
    flows
        .iter()
        .filter_map(|flow| flow.get("stages").and_then(Value::as_array))
        .map(|stages| {
            stages
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .find(|stages| stages.iter().all(|s| doable(s)))
        .ok_or_else(|| {
            let hint = if have_token {
                ""
            } else {
                " (a --registration-token may be needed)"
            };
            Error::Protocol(format!("no registration flow we can complete{hint}: {uia}"))
        })
}

fn session_from(reply: &Value) -> Result<Session, Error> {
    let field = |name: &str| {
        reply
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| Error::Protocol(format!("register reply without {name}: {reply}")))
    };
    Ok(Session {
        user_id: field("user_id")?,
        access_token: field("access_token")?,
    })
}

fn room_id_from(reply: &Value) -> Result<String, Error> {
    reply
        .get("room_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| Error::Protocol(format!("reply without room_id: {reply}")))
}

fn error_from(status: StatusCode, body: &Value) -> Error {
    let text = |name: &str| {
        body.get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    // The spec puts retry_after_ms in the M_LIMIT_EXCEEDED body; when it is missing,
    // `Error::retry_after` falls back to one second.
    let retry_after = body
        .get("retry_after_ms")
        .and_then(Value::as_u64)
        .map(Duration::from_millis);
    Error::Matrix {
        status,
        errcode: text("errcode"),
        message: text("error"),
        retry_after,
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters, which is safe for both
/// path segments (room IDs contain '!' and ':') and query values (the inline filter).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_room_ids_and_filters() {
        assert_eq!(encode("!abc:localhost"), "%21abc%3Alocalhost");
        assert_eq!(encode(r#"{"a":1}"#), "%7B%22a%22%3A1%7D");
    }

    #[test]
    fn picks_first_doable_flow() {
        let uia = json!({
            "session": "s",
            "flows": [
                { "stages": ["m.login.email.identity"] },
                { "stages": ["m.login.registration_token", "m.login.dummy"] },
                { "stages": ["m.login.dummy"] },
            ]
        });
        assert_eq!(choose_flow(&uia, false).unwrap(), vec!["m.login.dummy"]);
        assert_eq!(
            choose_flow(&uia, true).unwrap(),
            vec!["m.login.registration_token", "m.login.dummy"]
        );
        assert!(choose_flow(&json!({ "flows": [] }), true).is_err());
    }
}
