//! Third-party lookups end to end: a bridge declaring the `irc` protocol describes it and
//! answers location and user lookups (asked with its hs_token and the client's fields); an
//! undeclared protocol is 404; a bridge that fails is left out.

use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use plugboard_tests::TestServer;
use serde_json::{json, Value};

const HS_TOKEN: &str = "hs_thirdparty_tests";

type Asked = Arc<Mutex<Vec<(String, Vec<(String, String)>)>>>;

async fn answer(
    State(asked): State<Asked>,
    headers: HeaderMap,
    Path(path): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> (StatusCode, Json<Value>) {
    if headers.get("authorization").and_then(|h| h.to_str().ok())
        != Some(&format!("Bearer {HS_TOKEN}"))
    {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"errcode": "M_FORBIDDEN"})),
        );
    }
    asked.lock().unwrap().push((path.clone(), query.clone()));
    let body = match path.as_str() {
        "protocol/irc" => json!({
            "user_fields": ["network", "nickname"], "location_fields": ["network", "channel"],
            "icon": "mxc://example.org/irc", "field_types": {},
            "instances": [{"desc": "Libera", "network_id": "libera", "fields": {"network": "libera.chat"}}]
        }),
        "location/irc" => json!([{"alias": "#irc_libera_#rust:localhost", "protocol": "irc",
                                  "fields": {"network": "libera.chat", "channel": "#rust"}}]),
        "user/irc" => json!([{"userid": "@irc_alice:localhost", "protocol": "irc",
                              "fields": {"network": "libera.chat", "nickname": "alice"}}]),
        "user" => json!([{"userid": "@irc_alice:localhost", "protocol": "irc", "fields": {}}]),
        "location" => json!([]),
        _ => {
            return (
                StatusCode::NOT_FOUND,
                Json(json!({"errcode": "M_NOT_FOUND"})),
            )
        }
    };
    (StatusCode::OK, Json(body))
}

async fn start_bridge(asked: Asked) -> String {
    let app = Router::new()
        .route("/_matrix/app/v1/thirdparty/{*path}", get(answer))
        .with_state(asked);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

fn registration(id: &str, url: &str, protocols: &str) -> String {
    let hs_token = match id {
        "irc" => HS_TOKEN.to_string(),
        other => format!("hs_{other}"),
    };
    format!(
        "id: {id}\nurl: {url}\nas_token: as_{id}\nhs_token: {hs_token}\n\
         sender_localpart: {id}bot\nprotocols: {protocols}\nnamespaces:\n  users:\n    - regex: '@{id}_.*'\n      exclusive: true\n\
         \x20 aliases: []\n  rooms: []\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridges_protocol_is_described_and_looked_up_through_it() {
    let asked: Asked = Arc::default();
    let url = start_bridge(asked.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let files = vec![dir.path().join("irc.yaml"), dir.path().join("dead.yaml")];
    std::fs::write(&files[0], registration("irc", &url, "[irc]")).unwrap();
    // A bridge that is down: its protocol is unknown, and it spoils nothing.
    std::fs::write(
        &files[1],
        registration("dead", "http://127.0.0.1:9", "[xmpp]"),
    )
    .unwrap();
    let server = TestServer::start_with(|c| c.appservice_config_files = files).await;
    let alice = server.register("alice").await;

    let all = alice.get("/thirdparty/protocols").await.ok();
    assert_eq!(
        all.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["irc"],
        "{all}"
    );
    assert_eq!(all["irc"]["instances"][0]["network_id"], "libera");
    let irc = alice.get("/thirdparty/protocol/irc").await.ok();
    assert_eq!(irc["user_fields"], json!(["network", "nickname"]));
    alice
        .get("/thirdparty/protocol/xmpp")
        .await
        .err(404, "M_NOT_FOUND");
    alice
        .get("/thirdparty/protocol/matrix")
        .await
        .err(404, "M_NOT_FOUND");

    let rooms = alice
        .get("/thirdparty/location/irc?network=libera.chat&channel=%23rust")
        .await
        .ok();
    assert_eq!(rooms[0]["alias"], "#irc_libera_#rust:localhost");
    let users = alice.get("/thirdparty/user/irc?nickname=alice").await.ok();
    assert_eq!(users[0]["userid"], "@irc_alice:localhost");
    let by_id = alice
        .get("/thirdparty/user?userid=%40irc_alice%3Alocalhost")
        .await
        .ok();
    assert_eq!(by_id[0]["protocol"], "irc");
    assert_eq!(
        alice
            .get("/thirdparty/location?alias=%23x%3Alocalhost")
            .await
            .ok(),
        json!([])
    );
    alice
        .get("/thirdparty/user/matrix")
        .await
        .err(404, "M_NOT_FOUND");

    let asked = asked.lock().unwrap().clone();
    assert!(
        asked.contains(&(
            "location/irc".to_string(),
            vec![
                ("network".to_string(), "libera.chat".to_string()),
                ("channel".to_string(), "#rust".to_string())
            ]
        )),
        "{asked:?}"
    );
    server
        .client()
        .get("/thirdparty/protocols")
        .await
        .err(401, "M_MISSING_TOKEN");
}
