//! Python from PyPI for the tests that drive real client and appservice libraries: a venv per
//! purpose under `<repo>/target/`, installed once by the test that needs it, and a runner for
//! scripts with a time limit.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::repo_root;

/// Whether `python` has every `name==version` of `pins` installed.
fn venv_ready(python: &Path, pins: &[(&str, &str)]) -> bool {
    let checks: Vec<String> = pins
        .iter()
        .map(|(name, version)| format!("m.version('{name}') == '{version}'"))
        .collect();
    let check = format!(
        "import importlib.metadata as m, sys; sys.exit(0 if {} else 1)",
        checks.join(" and ")
    );
    Command::new(python)
        .args(["-c", &check])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs a setup command, panicking with its output if it fails.
pub(crate) fn run_setup(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes sure `<repo>/target/<name>` is a venv with `pins` (`(distribution, version)`)
/// installed and answers its python. Holds an exclusive lock on `target/<name>.lock`
/// meanwhile, so concurrent test runs wait for one install instead of racing; a venv that
/// fails the check (missing, half-installed by a killed run, other versions) is made anew.
pub fn ensure_venv(name: &str, pins: &[(&str, &str)]) -> PathBuf {
    let target = repo_root().join("target");
    fs::create_dir_all(&target).expect("create target/");
    let venv = target.join(name);
    let python = venv.join("bin").join("python");
    let lock = File::create(target.join(format!("{name}.lock"))).expect("create the venv lock");
    lock.lock().expect("lock the venv");
    if venv_ready(&python, pins) {
        return python;
    }
    if venv.exists() {
        fs::remove_dir_all(&venv).expect("remove the unusable venv");
    }
    run_setup(Command::new("python3").args(["-m", "venv"]).arg(&venv));
    run_setup(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "--quiet",
            ])
            .args(pins.iter().map(|(n, v)| format!("{n}=={v}"))),
    );
    assert!(
        venv_ready(&python, pins),
        "{pins:?} do not import from {}",
        venv.display()
    );
    python
}

/// How a script run ended: its status (`None`: killed at the time limit) and its output.
pub struct ScriptRun {
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl ScriptRun {
    /// Panics with the output unless the script finished with success.
    pub fn assert_success(&self, what: &str) {
        match self.status {
            None => panic!(
                "{what} did not finish in time\nstdout:\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            ),
            Some(s) => assert!(
                s.success(),
                "{what} failed ({s})\nstdout:\n{}\nstderr:\n{}",
                self.stdout,
                self.stderr
            ),
        }
    }
}

/// Starts `python script args…`; the child is killed when dropped.
pub fn spawn_script(python: &Path, script: &Path, args: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new(python)
        .arg(script)
        .args(args)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", script.display()))
}

/// Waits for a spawned script, at most `limit`, and collects what is left of its output (a
/// caller may have taken a pipe to read it line by line).
pub async fn finish(mut child: tokio::process::Child, limit: Duration) -> ScriptRun {
    let stdout = tokio::spawn(read_all(child.stdout.take()));
    let stderr = tokio::spawn(read_all(child.stderr.take()));
    let status = match tokio::time::timeout(limit, child.wait()).await {
        Ok(status) => Some(status.expect("wait for the script")),
        Err(_) => {
            let _ = child.kill().await;
            None
        }
    };
    ScriptRun {
        status,
        stdout: stdout.await.expect("stdout reader"),
        stderr: stderr.await.expect("stderr reader"),
    }
}

/// Reads a pipe to its end, lossily as UTF-8.
async fn read_all(pipe: Option<impl tokio::io::AsyncRead + Unpin>) -> String {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    if let Some(mut pipe) = pipe {
        let _ = pipe.read_to_end(&mut buf).await;
    }
    String::from_utf8_lossy(&buf).into_owned()
}
