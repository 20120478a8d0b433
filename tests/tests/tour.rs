//! The talk's tour (`examples/tour/tour.sh`) against a fresh server with the bundled plugins,
//! as the README's run command starts it: every slide gets its answer.

use std::time::Duration;

use plugboard_tests::plugins::admin;
use plugboard_tests::python::{ensure_venv, finish};
use plugboard_tests::{repo_root, ServerProcess};

const BINARY: &str = env!("CARGO_BIN_EXE_plugboard-test-server");
const FLASK_VERSION: &str = "3.1.3";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tour_gets_an_answer_from_every_slide() {
    let python =
        tokio::task::spawn_blocking(|| ensure_venv("flask-venv", &[("flask", FLASK_VERSION)]))
            .await
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // As the README's run command starts it: the bundled plugins, and the rate limits on.
    let server = ServerProcess::spawn_with_env(
        BINARY,
        &data,
        &[
            ("PLUGBOARD_PLUGINS__BUNDLED", "true"),
            ("PLUGBOARD_RATE_LIMITS__ENABLED", "true"),
        ],
    )
    .await;

    // Every crate of plugins/ is installed and running.
    let listed = admin(&server.base, &data)
        .get("/_plugboard/admin/v1/plugins")
        .await
        .ok();
    let bundled: Vec<String> = std::fs::read_dir(repo_root().join("plugins"))
        .unwrap()
        .filter_map(|e| {
            let manifest = std::fs::read_to_string(e.ok()?.path().join("plugin.toml")).ok()?;
            let id = manifest.lines().find_map(|l| l.strip_prefix("id = "))?;
            Some(id.trim_matches('"').to_string())
        })
        .collect();
    assert!(bundled.len() >= 2, "{bundled:?}");
    for id in &bundled {
        let plugin = listed["plugins"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["id"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} is not installed: {listed}"));
        assert_eq!(plugin["state"], "running", "{plugin}");
    }

    let script = repo_root().join("examples/tour/tour.sh");
    let child = tokio::process::Command::new("bash")
        .arg(&script)
        .arg(&server.base)
        .env("DATA_DIR", &data)
        .env("PYTHON", &python)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run the tour");
    let run = finish(child, Duration::from_secs(300)).await;
    run.assert_success("the tour");
    let out = &run.stdout;
    for line in [
        "@bot:localhost answered: pong (",
        "@bot:localhost rolled: 2d6:",
        "@ivr:localhost answered call",
        "m=audio",
        "@midi:localhost exported",
        "a Standard MIDI File",
        "it reads back identical (2 players, frame 1337)",
        "org.matrix.demos.unity.stickmen from @tour_",
        "tour: done",
    ] {
        assert!(
            out.contains(line),
            "{line:?} missing from the tour's output:\n{out}"
        );
    }
}
