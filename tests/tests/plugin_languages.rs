//! Plugins in other languages, built with stock toolchains from the registries against the
//! same `wit/`: the Python example (componentize-py, PyPI) and the JavaScript example
//! (componentize-js, npm). Each is installed into a real server, invited into a room, and
//! answers a command.

use plugboard_tests::plugins::{self, admin, install, room_with_bot, show, wait_for_words};
use plugboard_tests::{Client, TestServer};

async fn answers(server: &TestServer, alice: &Client, bot: &str, ask: &str, want: &str) {
    let room = room_with_bot(alice, bot).await;
    alice.send_text(&room, ask).await;
    let said = wait_for_words(alice, &room, bot, |s| !s.is_empty()).await;
    assert_eq!(said, [want], "{bot} on {}", server.base);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_and_a_javascript_plugin_answer() {
    let (python, js) = tokio::task::spawn_blocking(|| (plugins::python_bot(), plugins::js_bot()))
        .await
        .expect("build the examples");
    let server = TestServer::start_with(|c| {
        // Their interpreters warm up on the first call; the debug build compiles slowly.
        c.appservice_delivery.retry_base_ms = 50;
        c.appservice_delivery.retry_max_ms = 500;
    })
    .await;
    let admin = admin(&server.base, server.data_dir.path());
    install(&admin, &python).await;
    install(&admin, &js).await;
    let alice = server.register("alice").await;
    answers(
        &server,
        &alice,
        "@pybot:localhost",
        "!py hello snake",
        "python says: hello snake",
    )
    .await;
    answers(
        &server,
        &alice,
        "@jsbot:localhost",
        "!js hello js",
        "javascript says: hello js",
    )
    .await;
    let counted = alice.get("/_plugboard/plugins/python-bot/stats").await.ok();
    assert_eq!(counted["answered"], 1);
    for id in ["python-bot", "js-bot"] {
        let view = show(&admin, id).await;
        assert_eq!(view["state"], "running", "{view}");
        assert_eq!(view["errors"], 0, "{view}");
    }
}
