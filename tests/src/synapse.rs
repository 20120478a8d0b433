//! Synapse from PyPI as the federation peer: installed once into `target/synapse-venv`, and
//! run on loopback with the settings two servers on one machine need (FACTS.md): server name
//! `127.0.0.1:PORT`, a TLS federation listener with a self-signed certificate for IP
//! 127.0.0.1, certificates not verified, loopback not denied, short retry intervals and rate
//! limits out of the way. [`shared`] is one Synapse per test binary; a test that stops and
//! starts its peer gets its own from [`Synapse::start`].

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::python::{ensure_venv, run_setup};
use crate::repo_root;

/// The Synapse the issue names, pinned so that every run talks to the same peer.
const SYNAPSE: (&str, &str) = ("matrix-synapse", "1.163.2");

/// How long a start may take: the first start of a run also installs nothing (the venv is
/// made before), but Synapse prepares its database on a machine busy with other tests.
const START_LIMIT: Duration = Duration::from_secs(120);

/// A Synapse process with its own data dir; killed when dropped.
pub struct Synapse {
    /// `127.0.0.1:PORT`, the port of its federation listener.
    pub server_name: String,
    /// The client-server API, plain HTTP.
    pub client_base: String,
    /// The federation API (and key server), HTTPS with a self-signed certificate.
    pub federation_base: String,
    dir: PathBuf,
    python: PathBuf,
    child: Option<Child>,
}

/// One Synapse for every test of the binary that asks for it, started at the first ask. It
/// lives until the test process ends; its runner script exits when its parent has gone.
pub fn shared() -> &'static Synapse {
    static SHARED: OnceLock<Synapse> = OnceLock::new();
    SHARED.get_or_init(Synapse::start)
}

/// The shared Synapse, started (and installed) off the async runtime at the first ask.
pub async fn peer() -> &'static Synapse {
    tokio::task::spawn_blocking(shared)
        .await
        .expect("Synapse starts")
}

impl Synapse {
    /// A new user on this Synapse, named `name` plus a suffix unique to the run (a shared
    /// Synapse outlives each test's users).
    pub async fn user(&self, name: &str) -> crate::Client {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("time")
            .subsec_nanos();
        let name = format!("{name}{}", std::process::id() ^ nanos);
        crate::Client::new(&self.client_base)
            .register(&name, "password")
            .await
    }

    /// Installs Synapse if needed, writes a fresh config and data dir under
    /// `target/synapse-runs/`, starts it and waits until its client API answers.
    pub fn start() -> Synapse {
        let python = ensure_venv("synapse-venv", &[SYNAPSE]);
        let dir = run_dir();
        let federation_port = free_port();
        let client_port = free_port();
        let server_name = format!("127.0.0.1:{federation_port}");
        run_setup(
            Command::new(&python)
                .current_dir(&dir)
                .args([
                    "-m",
                    "synapse.app.homeserver",
                    "--server-name",
                    &server_name,
                ])
                .arg("--config-path")
                .arg(dir.join("homeserver.yaml"))
                .arg("--data-directory")
                .arg(&dir)
                .args(["--generate-config", "--report-stats=no"]),
        );
        run_setup(
            Command::new(&python)
                .args(["-c", CERTIFICATE_SCRIPT])
                .arg(dir.join("tls.crt"))
                .arg(dir.join("tls.key")),
        );
        fs::write(
            dir.join("test.yaml"),
            test_config(&dir, federation_port, client_port),
        )
        .expect("write Synapse's test config");
        fs::write(dir.join("run.py"), RUNNER_SCRIPT).expect("write the runner");
        let mut synapse = Synapse {
            server_name,
            client_base: format!("http://127.0.0.1:{client_port}"),
            federation_base: format!("https://127.0.0.1:{federation_port}"),
            dir,
            python,
            child: None,
        };
        synapse.resume();
        synapse
    }

    /// Kills the process (as a crash would); the data dir stays for [`Synapse::resume`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process again on the same data dir and ports, and waits until it answers.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "Synapse is already running");
        let log = fs::File::create(self.dir.join("stdout.log")).expect("Synapse's output file");
        let child = Command::new(&self.python)
            .current_dir(&self.dir)
            .arg(self.dir.join("run.py"))
            .arg(self.dir.join("homeserver.yaml"))
            .arg(self.dir.join("test.yaml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the output file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start Synapse: {e}"));
        self.child = Some(child);
        self.wait_until_up();
    }

    /// The end of Synapse's own log, for a failing test's message.
    pub fn log_tail(&self) -> String {
        let mut tail = String::new();
        for name in ["stdout.log", "homeserver.log"] {
            let text = fs::read_to_string(self.dir.join(name)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(40);
            tail.push_str(&format!("--- {name}\n{}\n", lines[from..].join("\n")));
        }
        tail
    }

    fn wait_until_up(&mut self) {
        let address = self.client_base.trim_start_matches("http://").to_string();
        let started = Instant::now();
        loop {
            if versions_answer(&address) {
                return;
            }
            let child = self.child.as_mut().expect("a started process");
            if let Ok(Some(status)) = child.try_wait() {
                panic!("Synapse exited at start ({status})\n{}", self.log_tail());
            }
            if started.elapsed() > START_LIMIT {
                panic!(
                    "Synapse did not answer in {START_LIMIT:?}\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Synapse {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Whether `GET /_matrix/client/versions` at `address` answers 200, over a bare socket so
/// that the harness can wait outside any async runtime.
fn versions_answer(address: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(address) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET /_matrix/client/versions HTTP/1.0\r\nHost: {address}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.ends_with(b" 200")
}

/// A port free now, for a process that binds it a moment later.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("its address").port()
}

/// A new directory under `target/synapse-runs/`, named for this process. Directories of
/// test processes that have ended (a killed run leaves its own) are removed first.
fn run_dir() -> PathBuf {
    let runs = repo_root().join("target").join("synapse-runs");
    fs::create_dir_all(&runs).expect("create target/synapse-runs");
    for entry in fs::read_dir(&runs).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name.split('-').next().unwrap_or_default();
        if !Path::new("/proc").join(pid).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
    tempfile::Builder::new()
        .prefix(&format!("{}-", std::process::id()))
        .tempdir_in(&runs)
        .expect("a Synapse run dir")
        .keep()
}

/// The settings that override the generated config (later `-c` files win, key by key).
fn test_config(dir: &Path, federation_port: u16, client_port: u16) -> String {
    let fast = "{per_second: 100000, burst_count: 1000000}";
    // Synapse's default ip_range_blacklist (Plugboard's default denylist is the same list)
    // without loopback, so that the Plugboard servers of the tests can be reached.
    let denied = plugboard::config::DEFAULT_IP_RANGE_DENYLIST
        .iter()
        .filter(|r| !matches!(**r, "127.0.0.0/8" | "::1/128"))
        .map(|r| format!("\"{r}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"listeners:
  - port: {client_port}
    bind_addresses: ["127.0.0.1"]
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
  - port: {federation_port}
    bind_addresses: ["127.0.0.1"]
    type: http
    tls: true
    resources:
      - names: [federation, keys]
        compress: false
tls_certificate_path: "{crt}"
tls_private_key_path: "{key}"
federation_verify_certificates: false
ip_range_blacklist: [{denied}]
trusted_key_servers: []
suppress_key_server_warning: true
report_stats: false
enable_registration: true
enable_registration_without_verification: true
allow_public_rooms_over_federation: true
# Synapse lets nobody publish a room by default: the directory tests publish theirs.
room_list_publication_rules: [{{action: allow}}]
federation_rr_transactions_per_room_per_second: 1000
federation:
  client_timeout: 20s
  max_short_retry_delay: 1s
  max_long_retry_delay: 4s
  max_short_retries: 3
  max_long_retries: 5
  destination_min_retry_interval: 1s
  destination_retry_multiplier: 1.5
  destination_max_retry_interval: 4s
rc_federation:
  window_size: 1000
  sleep_limit: 100000
  sleep_delay: 1
  reject_limit: 1000000
  concurrent: 1000
rc_message: {fast}
rc_registration: {fast}
rc_login:
  address: {fast}
  account: {fast}
  failed_attempts: {fast}
rc_joins:
  local: {fast}
  remote: {fast}
rc_joins_per_room: {fast}
rc_room_creation: {fast}
rc_invites:
  per_room: {fast}
  per_user: {fast}
  per_issuer: {fast}
rc_key_requests: {fast}
rc_3pid_validation: {fast}
rc_presence:
  per_user: {fast}
rc_delayed_event_mgmt: {fast}
rc_reports: {fast}
"#,
        crt = dir.join("tls.crt").display(),
        key = dir.join("tls.key").display(),
    )
}

/// Writes a self-signed certificate for IP 127.0.0.1 and `localhost` and its key (argv 1
/// and 2), with the `cryptography` package Synapse itself depends on.
const CERTIFICATE_SCRIPT: &str = r#"
import datetime, ipaddress, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
key = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
now = datetime.datetime.now(datetime.timezone.utc)
san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")])
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30)).add_extension(san, critical=False)
        .sign(key, hashes.SHA256()))
open(sys.argv[1], "wb").write(cert.public_bytes(serialization.Encoding.PEM))
open(sys.argv[2], "wb").write(key.private_bytes(serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
"#;

/// Runs Synapse with the config files of argv, and exits when its parent (the test process)
/// has gone, so that a finished or killed test run leaves no Synapse behind.
const RUNNER_SCRIPT: &str = r#"
import os, runpy, sys, threading, time
parent = os.getppid()
def watch():
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)
threading.Thread(target=watch, daemon=True).start()
sys.argv = ["synapse.app.homeserver"] + [a for c in sys.argv[1:] for a in ("-c", c)]
runpy.run_module("synapse.app.homeserver", run_name="__main__")
"#;
