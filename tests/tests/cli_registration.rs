//! The command line and the registration modes: `--help`, `--version`, start-up errors that
//! name the key, the files made on first start, `plugboard user add` beside a running server
//! with closed registration, token registration and `inhibit_login`.

use std::os::unix::fs::PermissionsExt;

use plugboard::config::RegistrationMode;
use plugboard_tests::{plugboard_command, ServerProcess, TestServer};
use serde_json::json;

const BINARY: &str = env!("CARGO_BIN_EXE_plugboard-test-server");

#[test]
fn help_and_version_answer() {
    let help = plugboard_command(BINARY).arg("--help").output().unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("serve") && text.contains("user"), "{text}");
    let version = plugboard_command(BINARY).arg("--version").output().unwrap();
    assert!(version.status.success());
    assert!(String::from_utf8_lossy(&version.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn an_unknown_config_key_stops_start_up_naming_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("plugboard.toml");
    std::fs::write(
        &config,
        "server_name = \"x.test\"\nlisten_adress = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    let out = plugboard_command(BINARY)
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listen_adress"), "{err}");
    assert!(err.contains("plugboard.toml"), "{err}");
    assert!(!dir.path().join("data").exists(), "nothing was started");
}

#[test]
fn a_bad_environment_value_stops_start_up_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let out = plugboard_command(BINARY)
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .env("PLUGBOARD_RATE_LIMITS__ENABLED", "perhaps")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("PLUGBOARD_RATE_LIMITS__ENABLED"), "{err}");
}

#[tokio::test]
async fn first_start_makes_a_private_signing_key_and_admin_token() {
    let server = TestServer::start().await;
    for name in ["signing.key", "admin.token"] {
        let path = server.data_dir.path().join(name);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name}");
    }
    let key = std::fs::read_to_string(server.data_dir.path().join("signing.key")).unwrap();
    let published = server.client().get("/_matrix/key/v2/server").await.ok();
    let id = key.split_whitespace().nth(1).unwrap();
    assert!(
        published["verify_keys"][format!("ed25519:{id}")]["key"].is_string(),
        "{published}"
    );
}

#[tokio::test]
async fn user_add_creates_users_beside_a_running_server_with_closed_registration() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        ServerProcess::spawn_with_env(BINARY, dir.path(), &[("PLUGBOARD_REGISTRATION", "closed")])
            .await;
    let refused = server
        .client()
        .post(
            "/register",
            json!({"username": "eve", "password": "pw", "auth": {"type": "m.login.dummy"}}),
        )
        .await;
    refused.err(403, "M_FORBIDDEN");

    let out = plugboard_command(BINARY)
        .args([
            "user",
            "add",
            "bob",
            "--password",
            "hunter2",
            "--admin",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("@bob:localhost"));

    let login = server
        .client()
        .post(
            "/login",
            json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "bob"}, "password": "hunter2"}),
        )
        .await
        .ok();
    assert_eq!(login["user_id"], "@bob:localhost");

    let again = plugboard_command(BINARY)
        .args(["user", "add", "bob", "--password", "x", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!again.status.success(), "a taken name is refused");
}

#[tokio::test]
async fn token_registration_needs_a_valid_token() {
    let server = TestServer::start_with(|c| {
        c.registration = Some(RegistrationMode::Token);
        c.registration_tokens = vec!["s3cret".into()];
    })
    .await;
    let c = server.client();
    let first = c
        .post("/register", json!({"username": "tok", "password": "pw"}))
        .await;
    assert_eq!(first.status.as_u16(), 401);
    assert_eq!(
        first.body["flows"][0]["stages"],
        json!(["m.login.registration_token"])
    );
    let session = first.body["session"].as_str().unwrap().to_string();
    let wrong = c
        .post(
            "/register",
            json!({"username": "tok", "password": "pw",
                   "auth": {"type": "m.login.registration_token", "token": "nope", "session": session}}),
        )
        .await;
    assert_eq!(wrong.status.as_u16(), 401);
    assert_eq!(wrong.body["errcode"], "M_FORBIDDEN");
    let dummy = c
        .post(
            "/register",
            json!({"username": "tok", "password": "pw", "auth": {"type": "m.login.dummy", "session": session}}),
        )
        .await;
    assert_eq!(dummy.status.as_u16(), 401, "the dummy stage is not enough");
    let ok = c
        .post(
            "/register",
            json!({"username": "tok", "password": "pw",
                   "auth": {"type": "m.login.registration_token", "token": "s3cret", "session": session}}),
        )
        .await
        .ok();
    assert_eq!(ok["user_id"], "@tok:localhost");
    assert!(ok["access_token"].is_string());
}

#[tokio::test]
async fn inhibit_login_registers_without_a_session() {
    let server = TestServer::start().await;
    let body = server
        .client()
        .post(
            "/register",
            json!({"username": "quiet", "password": "pw", "inhibit_login": true,
                   "auth": {"type": "m.login.dummy"}}),
        )
        .await
        .ok();
    assert_eq!(body["user_id"], "@quiet:localhost");
    assert!(body.get("access_token").is_none(), "{body}");
    assert!(body.get("device_id").is_none(), "{body}");
}
