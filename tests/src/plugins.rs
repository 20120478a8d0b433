//! Built plugin components for the end-to-end tests. A plugin crate of the workspace is built
//! for `wasm32-wasip2` (the target the host's build script makes sure of) into
//! `target/wasm-plugins/…`, once per test process and variant; cargo's own lock makes
//! concurrent test processes wait for one build. Then helpers install it in a running server
//! through the admin API, as `plugboard plugin install` does.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::{repo_root, Client, Reply};

/// A built plugin: its component and its manifest.
#[derive(Debug, Clone)]
pub struct Built {
    pub wasm: PathBuf,
    pub manifest: PathBuf,
}

impl Built {
    pub fn bytes(&self) -> Vec<u8> {
        std::fs::read(&self.wasm).expect("read the built component")
    }

    pub fn manifest_text(&self) -> String {
        std::fs::read_to_string(&self.manifest).expect("read the manifest")
    }
}

static BUILT: Mutex<Option<HashMap<String, Built>>> = Mutex::new(None);

/// The component of workspace package `package` (its directory `dir`, relative to the
/// repository), built with `features`.
pub fn build(package: &str, dir: &str, features: &[&str]) -> Built {
    let key = format!("{package}+{}", features.join(","));
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(b) = built.get_or_insert_with(HashMap::new).get(&key) {
        return b.clone();
    }
    // The wasm32-wasip2 target is there: this crate's dependency `plugboard` added it in
    // its build script when it built the bundled plugins.
    let root = repo_root();
    let variant = if features.is_empty() {
        "default".to_string()
    } else {
        features.join("-")
    };
    let target_dir = root.join("target").join("wasm-plugins").join(&variant);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--profile",
            "plugin",
            "--target",
            "wasm32-wasip2",
            "-p",
            package,
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    // What cargo set for this test process is not for the plugin's build.
    for var in [
        "CARGO_TARGET_DIR",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd.output().expect("run cargo to build a plugin");
    assert!(
        out.status.success(),
        "building {package} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = package.replace('-', "_");
    let b = Built {
        wasm: target_dir
            .join("wasm32-wasip2")
            .join("plugin")
            .join(format!("{file}.wasm")),
        manifest: root.join(dir).join("plugin.toml"),
    };
    assert!(b.wasm.exists(), "{} was not built", b.wasm.display());
    built
        .get_or_insert_with(HashMap::new)
        .insert(key, b.clone());
    b
}

/// The test probe (`tests/plugins/probe`), as released or in its broken variant.
pub fn probe(broken: bool) -> Built {
    let features: &[&str] = if broken { &["always-trap"] } else { &[] };
    build("plugboard-test-probe", "tests/plugins/probe", features)
}

/// The conformance plugin (`tests/plugins/conformance`): the SDK's conformance cases, run
/// inside the server.
pub fn conformance() -> Built {
    build(
        "plugboard-test-conformance",
        "tests/plugins/conformance",
        &[],
    )
}

/// The e2ee test plugin (`tests/plugins/e2ee`): a device, keys and to-device answers.
pub fn e2ee() -> Built {
    build("plugboard-test-e2ee", "tests/plugins/e2ee", &[])
}

pub fn echo_bot() -> Built {
    build("plugboard-plugin-echo-bot", "plugins/echo-bot", &[])
}

/// An admin of a running server: the admin token from its data dir.
pub fn admin(base: &str, data_dir: &Path) -> Client {
    let mut c = Client::new(base);
    c.token = Some(
        std::fs::read_to_string(data_dir.join("admin.token"))
            .expect("admin token")
            .trim()
            .to_string(),
    );
    c
}

/// `POST /_plugboard/admin/v1/plugins` with a component, a manifest, a config and a start.
pub async fn install_with(
    admin: &Client,
    wasm: &[u8],
    manifest: &str,
    config: Option<&str>,
    start: Value,
) -> Reply {
    let body = json!({
        "component": base64::engine::general_purpose::STANDARD.encode(wasm),
        "manifest": manifest,
        "config": config,
        "start": start,
    });
    compiling(
        admin,
        reqwest::Method::POST,
        "/_plugboard/admin/v1/plugins",
        &body,
    )
    .await
}

/// How long an install or upgrade may take: the server compiles the component before it
/// answers, seconds for a Python or JS interpreter and more on a busy machine.
const COMPILE_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// An admin request that carries a component to compile.
async fn compiling(admin: &Client, method: reqwest::Method, path: &str, body: &Value) -> Reply {
    let resp = admin
        .http
        .request(method, admin.url(path))
        .bearer_auth(admin.token.as_deref().unwrap_or_default())
        .timeout(COMPILE_WAIT)
        .json(body)
        .send()
        .await
        .expect("request sent");
    let status = resp.status();
    let bytes = resp.bytes().await.expect("body read");
    Reply {
        status,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

/// Installs `built` live; answers its view.
pub async fn install(admin: &Client, built: &Built) -> Value {
    install_with(
        admin,
        &built.bytes(),
        &built.manifest_text(),
        None,
        json!("live"),
    )
    .await
    .ok()
}

/// `PUT /_plugboard/admin/v1/plugins/{id}` with a new component.
pub async fn upgrade(admin: &Client, id: &str, built: &Built) -> Reply {
    let body = json!({
        "component": base64::engine::general_purpose::STANDARD.encode(built.bytes())
    });
    compiling(
        admin,
        reqwest::Method::PUT,
        &format!("/_plugboard/admin/v1/plugins/{id}"),
        &body,
    )
    .await
}

/// `PUT /_plugboard/admin/v1/plugins/{id}{query}` with a component and, if given, a new
/// manifest (`query`: e.g. `?allow_takeover=true`, or empty).
pub async fn upgrade_with(
    admin: &Client,
    id: &str,
    wasm: &[u8],
    manifest: Option<&str>,
    query: &str,
) -> Reply {
    let body = json!({
        "component": base64::engine::general_purpose::STANDARD.encode(wasm),
        "manifest": manifest,
    });
    compiling(
        admin,
        reqwest::Method::PUT,
        &format!("/_plugboard/admin/v1/plugins/{id}{query}"),
        &body,
    )
    .await
}

/// The plugin's admin view.
pub async fn show(admin: &Client, id: &str) -> Value {
    admin
        .get(&format!("/_plugboard/admin/v1/plugins/{id}"))
        .await
        .ok()
}

pub use crate::wait_until;

/// A room `c` creates with `bot` invited, once the bot has joined it.
pub async fn room_with_bot(c: &Client, bot: &str) -> String {
    let room = c.create_room(serde_json::json!({"invite": [bot]})).await;
    wait_for_member(c, &room, bot).await;
    room
}

/// Waits until `user` has joined `room`, as `c` sees it.
pub use crate::reading::wait_member as wait_for_member;

/// The events `sender` sent to `room`, oldest first, as `reader` reads them (the latest
/// 200).
pub async fn events_by(reader: &Client, room: &str, sender: &str) -> Vec<Value> {
    let page = reader
        .get(&format!(
            "/rooms/{}/messages?dir=b&limit=200",
            crate::enc(room)
        ))
        .await
        .ok();
    let mut events: Vec<Value> = page["chunk"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["sender"] == sender)
        .collect();
    events.reverse();
    events
}

/// The contents of the messages (`m.room.message`) `sender` sent to `room`, oldest first.
pub async fn contents_by(reader: &Client, room: &str, sender: &str) -> Vec<Value> {
    events_by(reader, room, sender)
        .await
        .into_iter()
        .filter(|e| e["type"] == "m.room.message")
        .map(|e| e["content"].clone())
        .collect()
}

/// The bodies of the messages `sender` sent to `room`, oldest first.
pub async fn said_by(reader: &Client, room: &str, sender: &str) -> Vec<String> {
    contents_by(reader, room, sender)
        .await
        .into_iter()
        .filter_map(|c| c["body"].as_str().map(str::to_string))
        .collect()
}

/// Waits until what `sender` said in `room` satisfies `done`; answers it.
pub async fn wait_for_words(
    reader: &Client,
    room: &str,
    sender: &str,
    done: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let mut said = Vec::new();
    wait_until(&format!("{sender} to speak in {room}"), async || {
        said = said_by(reader, room, sender).await;
        done(&said)
    })
    .await;
    said
}

/// What the probe (`id`, usually `probe`) recorded at its `/seen` endpoint: the txn ids and
/// the event ids of the transactions it accepted, in txn id order.
pub async fn seen_by(base: &str, id: &str) -> (Vec<String>, Vec<String>) {
    let v = Client::new(base)
        .get(&format!("/_plugboard/plugins/{id}/seen"))
        .await
        .ok();
    let list = |k: &str| -> Vec<String> {
        v[k].as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect()
    };
    (list("txns"), list("events"))
}

/// The txn ids the probe `id` was handed again after its store already held their record.
pub async fn repeats_of(base: &str, id: &str) -> Vec<String> {
    let v = Client::new(base)
        .get(&format!("/_plugboard/plugins/{id}/seen"))
        .await
        .ok();
    v["repeats"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect()
}

/// Waits until the probe `id` has recorded every one of `wanted`; answers all it recorded.
pub async fn wait_for_seen(base: &str, id: &str, wanted: &[String]) -> Vec<String> {
    let mut events = Vec::new();
    wait_until("the probe to see every event", async || {
        events = seen_by(base, id).await.1;
        wanted.iter().all(|w| events.contains(w))
    })
    .await;
    events
}

/// A server whose delivery retries come round quickly (20 ms, at most 200 ms apart), for
/// tests of failing plugins.
pub async fn quick_retry_server() -> crate::TestServer {
    crate::TestServer::start_with(|c| {
        c.appservice_delivery.retry_base_ms = 20;
        c.appservice_delivery.retry_max_ms = 200;
    })
    .await
}

/// The Python example (`examples/python-plugin`), built with componentize-py from PyPI
/// (installed into the venv `target/componentize-py-venv` by the test that needs it).
pub fn python_bot() -> Built {
    let root = repo_root();
    let python = crate::python::ensure_venv(
        "componentize-py-venv",
        &[("componentize-py", COMPONENTIZE_PY)],
    );
    let example = root.join("examples").join("python-plugin");
    let out = root
        .join("target")
        .join("wasm-plugins")
        .join("python-bot.wasm");
    let tool = python.with_file_name("componentize-py");
    run_build(
        Command::new(tool)
            .arg("-d")
            .arg(root.join("wit"))
            .args(["-w", "plugin", "componentize", "-p"])
            .arg(&example)
            .args(["app", "-o"])
            .arg(&out),
        "componentize-py",
    );
    Built {
        wasm: out,
        manifest: example.join("plugin.toml"),
    }
}

/// The componentize-py release the Python example was checked against.
pub const COMPONENTIZE_PY: &str = "0.25.1";

/// The JavaScript example (`examples/js-plugin`), built with componentize-js from npm
/// (installed from its lock file into `target/js-plugin-build` by the test that needs it).
pub fn js_bot() -> Built {
    let root = repo_root();
    let example = root.join("examples").join("js-plugin");
    let work = root.join("target").join("js-plugin-build");
    std::fs::create_dir_all(&work).expect("create target/js-plugin-build");
    let lock = std::fs::File::create(work.join(".lock")).expect("create the npm lock");
    lock.lock().expect("lock the npm install");
    for file in ["package.json", "package-lock.json", "bot.js", "build.mjs"] {
        std::fs::copy(example.join(file), work.join(file)).expect("copy the JS example");
    }
    crate::node::ensure_npm_installed(&work);
    let out = root.join("target").join("wasm-plugins").join("js-bot.wasm");
    run_build(
        Command::new("node")
            .current_dir(&work)
            .arg("build.mjs")
            .arg(&out)
            .arg(root.join("wit")),
        "componentize-js",
    );
    Built {
        wasm: out,
        manifest: example.join("plugin.toml"),
    }
}

fn run_build(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run it: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
