//! Real JavaScript clients from npm for the tests that drive them (matrix-js-sdk, Hydrogen in
//! headless Chromium): the checked-in `tests/clients/js/` installed with `npm ci` under
//! `<repo>/target/`, once for every test binary, its scripts run by Node with a time limit, and
//! Debian's Chromium installed by the harness when the machine lacks it.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::python::{finish, run_setup};
use crate::repo_root;

/// The checked-in clients: `package.json`, `package-lock.json` and the scripts.
fn sources() -> PathBuf {
    repo_root().join("tests").join("clients").join("js")
}

/// Written into the install directory once `npm ci` has finished; holds the lock file it
/// installed, so that a killed install or a changed lock file means installing again.
const STAMP: &str = ".installed-lock.json";

/// Makes sure `<repo>/target/js-clients` holds `tests/clients/js` with its `node_modules`
/// installed by `npm ci` from the lock file, and answers that directory. Holds an exclusive
/// lock on `target/js-clients.lock` meanwhile, so concurrent test binaries wait for one
/// install instead of racing. The scripts are copied on every call: the one run is always the
/// checked-in one, and Node resolves its imports from the `node_modules` beside it.
pub fn ensure_js_clients() -> PathBuf {
    let target = repo_root().join("target");
    fs::create_dir_all(&target).expect("create target/");
    let work = target.join("js-clients");
    let lock = File::create(target.join("js-clients.lock")).expect("create the npm lock");
    lock.lock().expect("lock the npm install");
    fs::create_dir_all(&work).expect("create target/js-clients");
    for entry in fs::read_dir(sources()).expect("read tests/clients/js") {
        let path = entry.expect("a file of tests/clients/js").path();
        if path.is_file() {
            fs::copy(&path, work.join(path.file_name().unwrap())).expect("copy a client file");
        }
    }
    ensure_npm_installed(&work);
    work
}

/// Installs `work`'s `package-lock.json` with `npm ci` unless the stamp says that very lock
/// file was installed last; the caller holds a lock so that only one process installs.
pub fn ensure_npm_installed(work: &Path) {
    let wanted = fs::read(work.join("package-lock.json")).expect("read package-lock.json");
    if fs::read(work.join(STAMP)).ok().as_deref() != Some(&wanted[..]) {
        let _ = fs::remove_file(work.join(STAMP));
        // npm ci removes a half-installed node_modules itself before installing.
        npm_ci(work);
        fs::write(work.join(STAMP), &wanted).expect("write the install stamp");
    }
}

/// Runs `npm ci` in `work` (which holds a `package.json` and its `package-lock.json`), once
/// more if it fails: a registry connection dropped halfway fails an install that works at the
/// next try. A second failure panics with both outputs and the end of npm's own log, since
/// with `--loglevel=error` npm may print nothing but that log's path.
fn npm_ci(work: &Path) {
    let mut failures = Vec::new();
    for _ in 0..2 {
        let out = Command::new("npm")
            .current_dir(work)
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .output()
            .unwrap_or_else(|e| panic!("npm ci in {}: cannot run it: {e}", work.display()));
        if out.status.success() {
            return;
        }
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        failures.push(format!(
            "({})\nstdout:\n{}\nstderr:\n{stderr}\nend of npm's log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            npm_log_tail(&stderr)
        ));
    }
    panic!(
        "npm ci in {} failed twice:\n{}",
        work.display(),
        failures.join("\n---- the second try ----\n")
    );
}

/// The last lines of the debug log whose path npm printed ("A complete log of this run can be
/// found in: …"), or why there are none.
fn npm_log_tail(stderr: &str) -> String {
    let Some(path) = stderr
        .lines()
        .find_map(|line| line.split_once("can be found in:").map(|(_, p)| p.trim()))
    else {
        return "(npm named no log)".to_owned();
    };
    match fs::read_to_string(path) {
        Ok(log) => {
            let lines: Vec<&str> = log.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        }
        Err(e) => format!("(cannot read {path}: {e})"),
    }
}

/// Starts `node script args…` in the clients' directory (from [`ensure_js_clients`]); the
/// child is killed when dropped.
fn spawn_node(work: &Path, script: &str, args: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new("node")
        .current_dir(work)
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn node {script}: {e}"))
}

/// Where Debian's `chromium` package puts the browser binary (the `/usr/bin/chromium` wrapper
/// only adds flags the tests set themselves).
pub const CHROMIUM: &str = "/usr/lib/chromium/chromium";

/// Makes sure Debian's Chromium is installed, installing it with apt-get if it is missing
/// (under `target/chromium.lock`, so concurrent test binaries install it once), and answers
/// the binary's path. Puppeteer's own browser download does not work without the internet;
/// the distribution's package comes from the configured mirror.
pub fn ensure_chromium() -> PathBuf {
    let binary = PathBuf::from(CHROMIUM);
    if binary.exists() {
        return binary;
    }
    let target = repo_root().join("target");
    fs::create_dir_all(&target).expect("create target/");
    let lock = File::create(target.join("chromium.lock")).expect("create the chromium lock");
    lock.lock().expect("lock the chromium install");
    if binary.exists() {
        return binary;
    }
    let uid = Command::new("id").arg("-u").output().expect("run id -u");
    assert!(
        String::from_utf8_lossy(&uid.stdout).trim() == "0",
        "{CHROMIUM} is missing and only root can install it: run \
         `apt-get update && apt-get install -y chromium` as root, or run the tests as root"
    );
    run_setup(Command::new("apt-get").arg("update").arg("-q"));
    run_setup(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends", "chromium"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    );
    assert!(
        binary.exists(),
        "apt-get installed chromium but {CHROMIUM} is not there"
    );
    binary
}

/// Runs `node script args…` in the clients' directory for at most `limit` and answers the JSON
/// objects it printed on stdout, one a line; panics with both of its outputs (the clients log
/// to stderr) if it fails, outlives `limit` or prints anything else on stdout.
pub async fn run_node(work: &Path, script: &str, args: &[&str], limit: Duration) -> Vec<Value> {
    let run = finish(spawn_node(work, script, args), limit).await;
    run.assert_success(script);
    run.stdout
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| {
                panic!(
                    "{script} printed a line that is not JSON ({e}): {line}\nstderr:\n{}",
                    run.stderr
                )
            })
        })
        .collect()
}
