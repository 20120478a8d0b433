//! A real Matrix client library from outside the project, matrix-nio from PyPI, drives a real
//! Plugboard server through the core flow (tests/nio/flow.py): register, log in, create a
//! room with an alias, join by alias, send, sync, paginate back, set a display name.
//!
//! The test installs matrix-nio itself, into a venv at `<repo>/target/nio-venv`, once.

use std::time::Duration;

use plugboard_tests::python::{ensure_venv, finish, spawn_script};
use plugboard_tests::{repo_root, TestServer};

/// The matrix-nio release this test was checked against.
const NIO_VERSION: &str = "0.26.0";

/// How long the whole client flow may take.
const FLOW_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn matrix_nio_client_completes_the_core_flow() {
    let python =
        tokio::task::spawn_blocking(|| ensure_venv("nio-venv", &[("matrix-nio", NIO_VERSION)]))
            .await
            .expect("venv setup");
    let server = TestServer::start().await;
    let script = repo_root().join("tests").join("nio").join("flow.py");
    let run = finish(
        spawn_script(&python, &script, &[&server.base]),
        FLOW_TIMEOUT,
    )
    .await;
    println!("flow.py stdout:\n{}", run.stdout);
    run.assert_success("flow.py");
}
