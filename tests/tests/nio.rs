//! A real Matrix client library from outside the project, matrix-nio from PyPI, drives a real
//! Plugboard server through the core flow (tests/nio/flow.py): register, log in, create a
//! room with an alias, join by alias, send, sync, paginate back, set a display name.
//!
//! A second flow (tests/nio/federated.py) puts nio clients on both ends of a federated room:
//! one of Plugboard and one of the Synapse the tests start, in a room on Synapse joined by
//! alias.
//!
//! The test installs matrix-nio itself, into a venv at `<repo>/target/nio-venv`, once.

use std::time::Duration;

use plugboard_tests::python::{ensure_venv, finish, spawn_script};
use plugboard_tests::synapse::peer;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_nio_clients_talk_across_plugboard_and_synapse() {
    let python =
        tokio::task::spawn_blocking(|| ensure_venv("nio-venv", &[("matrix-nio", NIO_VERSION)]))
            .await
            .expect("venv setup");
    let synapse = peer().await;
    let bob = synapse.user("nio_bob").await;
    let server = TestServer::start_federating().await;
    let script = repo_root().join("tests").join("nio").join("federated.py");
    let token = bob.token.clone().unwrap_or_default();
    let run = finish(
        spawn_script(
            &python,
            &script,
            &[&server.base, &synapse.client_base, &bob.user_id, &token],
        ),
        FLOW_TIMEOUT,
    )
    .await;
    println!("federated.py stdout:\n{}", run.stdout);
    if !run.status.is_some_and(|s| s.success()) {
        println!("{}", synapse.log_tail());
    }
    run.assert_success("federated.py");
}
