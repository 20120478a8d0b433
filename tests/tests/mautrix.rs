//! A real appservice framework from outside the project, mautrix-python from PyPI, runs a bot
//! against Plugboard: it registers its bot user with `m.login.application_service`, is invited
//! to a room, receives the message through a pushed transaction and answers it.

use std::time::Duration;

use plugboard_tests::python::{ensure_venv, finish, spawn_script};
use plugboard_tests::{repo_root, TestServer, WAIT};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The mautrix release this test was checked against.
const MAUTRIX_VERSION: &str = "0.21.1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mautrix_bot_registers_joins_and_answers() {
    let python = tokio::task::spawn_blocking(|| {
        ensure_venv("mautrix-venv", &[("mautrix", MAUTRIX_VERSION)])
    })
    .await
    .expect("venv setup");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("mautrix.yaml");
    std::fs::write(
        &reg,
        format!(
            "id: mautrix-test\nurl: http://127.0.0.1:{port}\nas_token: mautrix_as\nhs_token: mautrix_hs\n\
             sender_localpart: mautrixbot\nnamespaces:\n  users:\n    - regex: '@mautrix_.*'\n      exclusive: true\n"
        ),
    )
    .unwrap();
    let server = TestServer::start_with(|c| {
        c.appservice_config_files = vec![reg.clone()];
        c.appservice_delivery.retry_base_ms = 50;
        c.appservice_delivery.retry_max_ms = 500;
    })
    .await;

    let script = repo_root().join("tests").join("mautrix").join("bot.py");
    let port_text = port.to_string();
    let mut child = spawn_script(
        &python,
        &script,
        &[&server.base, &port_text, "mautrix_as", "mautrix_hs"],
    );
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let ready = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line == "ready" {
                return true;
            }
        }
        false
    })
    .await;
    if ready != Ok(true) {
        let run = finish(child, Duration::from_secs(1)).await;
        panic!("the bot did not get ready\nstderr:\n{}", run.stderr);
    }

    let alice = server.register("alice").await;
    let room = alice
        .create_room(json!({"invite": ["@mautrixbot:localhost"]}))
        .await;
    let answered = tokio::time::timeout(WAIT, async {
        let mut since: Option<String> = None;
        let mut asked = false;
        loop {
            let sync = alice.sync(since.as_deref(), 1000).await;
            since = sync["next_batch"].as_str().map(str::to_string);
            for e in plugboard_tests::timeline(&sync, &room) {
                if !asked
                    && e["type"] == "m.room.member"
                    && e["state_key"] == "@mautrixbot:localhost"
                    && e["content"]["membership"] == "join"
                {
                    alice.send_text(&room, "!ping").await;
                    asked = true;
                }
                if e["sender"] == "@mautrixbot:localhost" && e["content"]["body"] == "pong" {
                    return e["content"]["msgtype"].clone();
                }
            }
        }
    })
    .await;
    match answered {
        Ok(msgtype) => assert_eq!(msgtype, "m.notice"),
        Err(_) => {
            let run = finish(child, Duration::from_secs(1)).await;
            panic!("no answer from the bot\nbot stderr:\n{}", run.stderr);
        }
    }
}
