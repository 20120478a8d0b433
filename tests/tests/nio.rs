//! A real Matrix client library from outside the project, matrix-nio from PyPI, drives a real
//! Plugboard server through the core flow (tests/nio/flow.py): register, log in, create a
//! room with an alias, join by alias, send, sync, paginate back, set a display name.
//!
//! The test installs matrix-nio itself, into a venv at `<repo>/target/nio-venv`, once.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use plugboard_tests::{repo_root, TestServer};

/// The matrix-nio release this test was checked against.
const NIO_VERSION: &str = "0.26.0";

/// How long the whole client flow may take.
const FLOW_TIMEOUT: Duration = Duration::from_secs(120);

/// Whether `python` imports nio at the pinned version.
fn venv_ready(python: &Path) -> bool {
    let check = format!(
        "import importlib.metadata as m, nio, sys; \
         sys.exit(0 if m.version('matrix-nio') == '{NIO_VERSION}' else 1)"
    );
    Command::new(python)
        .args(["-c", &check])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs a setup command, panicking with its output if it fails.
fn run_setup(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes sure `<repo>/target/nio-venv` has matrix-nio at [`NIO_VERSION`] and answers its
/// python. Holds an exclusive lock on `target/nio-venv.lock` meanwhile, so that concurrent
/// test runs wait for one install instead of racing; a venv that does not pass the check
/// (missing, half-installed by a killed run, another version) is made anew.
fn ensure_venv() -> PathBuf {
    let target = repo_root().join("target");
    fs::create_dir_all(&target).expect("create target/");
    let venv = target.join("nio-venv");
    let python = venv.join("bin").join("python");
    let lock = File::create(target.join("nio-venv.lock")).expect("create the venv lock");
    lock.lock().expect("lock the venv");
    if venv_ready(&python) {
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
            .arg(format!("matrix-nio=={NIO_VERSION}")),
    );
    assert!(
        venv_ready(&python),
        "matrix-nio {NIO_VERSION} does not import from {}",
        venv.display()
    );
    python
    // The lock is released when `lock` drops.
}

#[tokio::test]
async fn matrix_nio_client_completes_the_core_flow() {
    let python = tokio::task::spawn_blocking(ensure_venv)
        .await
        .expect("venv setup");
    let server = TestServer::start().await;
    let script = repo_root().join("tests").join("nio").join("flow.py");

    let mut child = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(&server.base)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn flow.py");
    let stdout = tokio::spawn(read_all(child.stdout.take().expect("stdout")));
    let stderr = tokio::spawn(read_all(child.stderr.take().expect("stderr")));
    let status = match tokio::time::timeout(FLOW_TIMEOUT, child.wait()).await {
        Ok(status) => Some(status.expect("wait for flow.py")),
        Err(_) => {
            let _ = child.kill().await;
            None
        }
    };
    let stdout = stdout.await.expect("stdout reader");
    let stderr = stderr.await.expect("stderr reader");
    println!("flow.py stdout:\n{stdout}");
    let Some(status) = status else {
        panic!(
            "flow.py did not finish within {FLOW_TIMEOUT:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
    };
    assert!(
        status.success(),
        "flow.py failed ({status})\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
}

/// Reads a pipe to its end, lossily as UTF-8.
async fn read_all(mut pipe: impl tokio::io::AsyncRead + Unpin) -> String {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let _ = pipe.read_to_end(&mut buf).await;
    String::from_utf8_lossy(&buf).into_owned()
}
