//! The end-to-end test harness: a real Plugboard server on `127.0.0.1:0` with a temporary data
//! dir, in-process ([`TestServer`]) or as a process that can be killed ([`ServerProcess`]),
//! and a small HTTP client that speaks the client-server API as any client would.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use plugboard::config::{Config, Overrides};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::oneshot;

pub mod appservice;
pub mod federation;
pub mod node;
pub mod plugins;
pub mod python;
pub mod reading;
pub mod synapse;

/// Every wait in the tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(20);

/// A server running inside the test process.
pub struct TestServer {
    pub base: String,
    /// The server name: `localhost`, or `127.0.0.1:PORT` of a federating server's listener.
    pub server_name: String,
    /// `https://127.0.0.1:PORT` of the federation listener, when it has one.
    pub federation_base: Option<String>,
    pub data_dir: TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// The configuration tests use: a temporary data dir, open registration, no rate limits.
pub fn test_config(data_dir: &Path) -> Config {
    let mut c = Config::load_from(None, Vec::new(), &Overrides::default()).expect("defaults");
    c.data_dir = data_dir.to_path_buf();
    c.rate_limits.enabled = false;
    c.log.level = "warn".into();
    // A test installs the plugins it needs.
    c.plugins.bundled = false;
    // Federation listeners are the federating tests' own (see `start_federating`): tests
    // running at once must not race for port 8448.
    c.federation.enabled = false;
    c
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Starts a server after `adjust` has changed its configuration.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(data_dir.path());
        adjust(&mut config);
        Self::start_in(data_dir, config).await
    }

    pub async fn start_in(data_dir: TempDir, config: Config) -> TestServer {
        Self::start_with_listeners(data_dir, config, None).await
    }

    /// A server with a federation listener of its own on `127.0.0.1:0`, named after it
    /// (`127.0.0.1:PORT`) as two servers on one machine are: a self-signed certificate,
    /// peers' certificates not checked, 127.0.0.1 allowed as a destination.
    pub async fn start_federating() -> TestServer {
        Self::start_federating_with(|_| {}).await
    }

    /// [`TestServer::start_federating`] after `adjust` has changed its configuration.
    pub async fn start_federating_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let federation = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let mut config = test_config(data_dir.path());
        config.server_name = federation.local_addr().expect("addr").to_string();
        config.federation.enabled = true;
        config.federation.verify_tls = false;
        config.federation.ip_range_allowlist = vec!["127.0.0.1".into()];
        adjust(&mut config);
        Self::start_with_listeners(data_dir, config, Some(federation)).await
    }

    async fn start_with_listeners(
        data_dir: TempDir,
        mut config: Config,
        federation: Option<tokio::net::TcpListener>,
    ) -> TestServer {
        // The servers' logs on stderr when RUST_LOG asks for them (the test binary's whole
        // output: `-- --nocapture`); quiet otherwise.
        if std::env::var_os("RUST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_test_writer()
                .try_init();
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        config.listen = addr;
        let server_name = config.server_name.clone();
        let federation_base = federation
            .as_ref()
            .map(|l| format!("https://{}", l.local_addr().expect("addr")));
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            plugboard::run_with_federation(listener, federation, config, async {
                let _ = rx.await;
            })
            .await
            .expect("server runs");
        });
        let base = format!("http://{addr}");
        wait_until_up(&base).await;
        TestServer {
            base,
            server_name,
            federation_base,
            data_dir,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Stops the server and waits for it; the data dir stays for a restart.
    pub async fn stop(mut self) -> TempDir {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(WAIT, task).await;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        std::mem::replace(&mut self.data_dir, dir)
    }

    pub fn client(&self) -> Client {
        Client::new(&self.base)
    }

    /// Registers `name` with the dummy flow and answers a logged-in client.
    pub async fn register(&self, name: &str) -> Client {
        self.client().register(name, "password").await
    }

    /// A server admin named `name`, made as `plugboard user add --admin` (`binary`: the test
    /// server binary, which has the CLI) makes one beside the running server, and logged in.
    pub async fn server_admin(&self, binary: &str, name: &str) -> Client {
        let out = plugboard_command(binary)
            .args([
                "user",
                "add",
                name,
                "--password",
                "pw",
                "--admin",
                "--data-dir",
            ])
            .arg(self.data_dir.path())
            .output()
            .expect("run the CLI");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let login = self
            .client()
            .post(
                "/login",
                json!({"type": "m.login.password",
                    "identifier": {"type": "m.id.user", "user": name}, "password": "pw"}),
            )
            .await
            .ok();
        let mut admin = self.client();
        admin.token = Some(login["access_token"].as_str().unwrap().to_owned());
        admin.user_id = login["user_id"].as_str().unwrap().to_owned();
        admin.device_id = login["device_id"].as_str().unwrap().to_owned();
        admin
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn wait_until_up(base: &str) {
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(r) = http
            .get(format!("{base}/_matrix/client/versions"))
            .send()
            .await
        {
            if r.status().is_success() {
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "server at {base} did not come up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A command running the server binary, without the test machine's PLUGBOARD_* variables.
pub fn plugboard_command(binary: &str) -> Command {
    without_plugboard_env(Command::new(binary))
}

/// The server reads every PLUGBOARD_* variable as configuration and refuses one it does not
/// know: what the test machine's environment holds must not configure a test's server.
fn without_plugboard_env(mut command: Command) -> Command {
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("PLUGBOARD_")) {
        command.env_remove(key);
    }
    command
}

/// Starts `binary` as a server on `data_dir` with `env`; it must refuse to start (exit
/// unsuccessfully within [`WAIT`]). Answers what it printed on stderr.
pub fn refused_start(binary: &str, data_dir: &Path, env: &[(&str, &str)]) -> String {
    let mut child = plugboard_command(binary)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("PLUGBOARD_LOG__LEVEL", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the server");
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(!status.success());
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            return err;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server started with {env:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A server started as a process of the `plugboard-test-server` binary.
pub struct ServerProcess {
    pub base: String,
    child: Child,
}

impl ServerProcess {
    /// Starts `binary serve` on a free loopback port with `data_dir`, with rate limits off.
    pub async fn spawn(binary: &str, data_dir: &Path) -> ServerProcess {
        Self::spawn_with_env(binary, data_dir, &[]).await
    }

    /// As [`ServerProcess::spawn`], with more `PLUGBOARD_…` settings in the environment.
    pub async fn spawn_with_env(
        binary: &str,
        data_dir: &Path,
        env: &[(&str, &str)],
    ) -> ServerProcess {
        Self::spawn_command(Command::new(binary), data_dir, env).await
    }

    /// As [`ServerProcess::spawn_with_env`], started under `prlimit` with this soft and hard
    /// limit on open files.
    pub async fn spawn_with_fd_limit(
        binary: &str,
        data_dir: &Path,
        env: &[(&str, &str)],
        soft: u64,
        hard: u64,
    ) -> ServerProcess {
        let mut command = Command::new("prlimit");
        command.arg(format!("--nofile={soft}:{hard}")).arg(binary);
        Self::spawn_command(command, data_dir, env).await
    }

    async fn spawn_command(
        command: Command,
        data_dir: &Path,
        env: &[(&str, &str)],
    ) -> ServerProcess {
        let mut child = without_plugboard_env(command)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("PLUGBOARD_RATE_LIMITS__ENABLED", "false")
            .env("PLUGBOARD_PLUGINS__BUNDLED", "false")
            .env("PLUGBOARD_LOG__LEVEL", "info,ruma_state_res=warn")
            // As `test_config`: processes started at once must not race for port 8448.
            .env("PLUGBOARD_FEDERATION__ENABLED", "false")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the server");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if !sent {
                    if let Some(addr) = line
                        .split_whitespace()
                        .find_map(|w| w.strip_prefix("addr="))
                    {
                        let _ = tx.send(addr.to_string());
                        sent = true;
                    }
                }
            }
        });
        let addr = rx
            .recv_timeout(WAIT)
            .expect("the server printed its address");
        let base = format!("http://{addr}");
        wait_until_up(&base).await;
        ServerProcess { base, child }
    }

    pub fn client(&self) -> Client {
        Client::new(&self.base)
    }

    /// The server's process id (`prlimit` execs the server in its own process).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, no shutdown.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client of the client-server API; `token` set once logged in.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub token: Option<String>,
    pub user_id: String,
    pub device_id: String,
}

/// A response: status and JSON body (`Null` when the body is not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Reply {
    /// Asserts a 200 and answers the body.
    pub fn ok(self) -> Value {
        assert_eq!(self.status, StatusCode::OK, "body: {}", self.body);
        self.body
    }

    /// Asserts an error with this status and errcode.
    pub fn err(&self, status: u16, errcode: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(self.body["errcode"], errcode, "body: {}", self.body);
        assert!(self.body["error"].is_string(), "body: {}", self.body);
    }
}

impl Client {
    pub fn new(base: &str) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: base.to_string(),
            token: None,
            user_id: String::new(),
            device_id: String::new(),
        }
    }

    /// `path` relative to `/_matrix/client/v3` unless it starts with `/_` or `/.`.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("/_") || path.starts_with("/.") {
            format!("{}{path}", self.base)
        } else {
            format!("{}/_matrix/client/v3{path}", self.base)
        }
    }

    pub async fn request(&self, method: Method, path: &str, body: Option<&Value>) -> Reply {
        let mut req = self.http.request(method, self.url(path)).timeout(WAIT);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let bytes = resp.bytes().await.expect("body read");
        Reply {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    /// Sends raw bytes with a content type.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Reply {
        let mut req = self
            .http
            .request(method, self.url(path))
            .header("content-type", content_type)
            .body(body)
            .timeout(WAIT);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let bytes = resp.bytes().await.expect("body read");
        Reply {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.request(Method::POST, path, Some(&body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.request(Method::PUT, path, Some(&body)).await
    }

    pub async fn delete(&self, path: &str, body: Value) -> Reply {
        self.request(Method::DELETE, path, Some(&body)).await
    }

    /// Registers through the dummy flow and keeps the token.
    pub async fn register(mut self, name: &str, password: &str) -> Client {
        let body = self
            .post(
                "/register",
                json!({"username": name, "password": password, "auth": {"type": "m.login.dummy"}}),
            )
            .await
            .ok();
        self.token = Some(body["access_token"].as_str().expect("token").to_string());
        self.user_id = body["user_id"].as_str().expect("user_id").to_string();
        self.device_id = body["device_id"].as_str().expect("device_id").to_string();
        self
    }

    pub async fn create_room(&self, body: Value) -> String {
        self.post("/createRoom", body).await.ok()["room_id"]
            .as_str()
            .expect("room_id")
            .to_string()
    }

    pub async fn join(&self, room: &str) -> Reply {
        self.post(&format!("/join/{}", enc(room)), json!({})).await
    }

    /// Joins `room` through the server `via` (a room of another server).
    pub async fn join_via(&self, room: &str, via: &str) -> Reply {
        self.post(&format!("/join/{}?via={}", enc(room), enc(via)), json!({}))
            .await
    }

    pub async fn invite(&self, room: &str, user_id: &str) -> Reply {
        self.post(
            &format!("/rooms/{}/invite", enc(room)),
            json!({ "user_id": user_id }),
        )
        .await
    }

    /// Sends an `m.room.message` with a fresh txn id; answers the event id.
    pub async fn send_text(&self, room_id: &str, text: &str) -> String {
        self.send_message(room_id, json!({"msgtype": "m.text", "body": text}))
            .await
    }

    /// Sends an `m.room.message` of any `content` with a fresh txn id; answers the event id.
    pub async fn send_message(&self, room_id: &str, content: Value) -> String {
        let txn = format!("t{}", rand_suffix());
        self.put(
            &format!("/rooms/{}/send/m.room.message/{txn}", enc(room_id)),
            content,
        )
        .await
        .ok()["event_id"]
            .as_str()
            .expect("event_id")
            .to_string()
    }

    pub async fn sync(&self, since: Option<&str>, timeout_ms: u64) -> Value {
        let mut path = format!("/sync?timeout={timeout_ms}");
        if let Some(s) = since {
            path.push_str(&format!("&since={}", enc(s)));
        }
        self.get(&path).await.ok()
    }
}

/// Registers `count` users `{prefix}0`, `{prefix}1`, … on `server` and joins each to the
/// public `room`.
/// Polls `check` every 50 ms until it holds or `limit` has passed: whether it held.
pub async fn eventually(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `check` holds, at most [`WAIT`]; fails naming `what`.
pub async fn wait_until(what: &str, check: impl AsyncFnMut() -> bool) {
    assert!(
        eventually(WAIT, check).await,
        "timed out waiting for {what}"
    );
}

pub async fn joined_users(
    server: &ServerProcess,
    room: &str,
    prefix: &str,
    count: usize,
) -> Vec<Client> {
    let mut users = Vec::new();
    for i in 0..count {
        let c = server
            .client()
            .register(&format!("{prefix}{i}"), "password")
            .await;
        c.join(room).await.ok();
        users.push(c);
    }
    users
}

/// Sends numbered messages as `c` into `room`, one at a time, until the server stops
/// answering (a SIGKILL test kills it meanwhile); the task answers the ids of the sends that
/// were acknowledged, in order: what must not be lost.
pub fn send_until_gone(c: &Client, room: &str, tag: &str) -> tokio::task::JoinHandle<Vec<String>> {
    let (c, room, tag) = (c.clone(), room.to_string(), tag.to_string());
    tokio::spawn(async move {
        let mut acked = Vec::new();
        for n in 0.. {
            let path = format!("/rooms/{}/send/m.room.message/{tag}_{n}", enc(&room));
            let sent = c
                .http
                .put(c.url(&path))
                .bearer_auth(c.token.as_deref().unwrap_or_default())
                .json(&json!({"msgtype": "m.text", "body": format!("{tag} {n}")}))
                .send()
                .await;
            let Ok(resp) = sent else { break };
            let Ok(body) = resp.json::<Value>().await else {
                break;
            };
            match body["event_id"].as_str() {
                Some(id) => acked.push(id.to_string()),
                None => break,
            }
        }
        acked
    })
}

/// Percent-encodes a path segment (room ids and aliases carry `!`, `#` and `:`).
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{nanos}_{}", N.fetch_add(1, Ordering::Relaxed))
}

/// The events of a room's timeline in a sync response.
pub fn timeline<'a>(sync: &'a Value, room_id: &str) -> Vec<&'a Value> {
    sync["rooms"]["join"][room_id]["timeline"]["events"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

/// The repository root, for tests that run scripts from it.
pub fn repo_root() -> PathBuf {
    // Read when the test runs (cargo sets it for every test binary), not when this library
    // was compiled: a target directory shared by two checkouts may hold a build of the other.
    let manifest_dir =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    Path::new(&manifest_dir)
        .parent()
        .expect("workspace root")
        .to_path_buf()
}
