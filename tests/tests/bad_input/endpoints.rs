//! Unknown endpoints and methods: `M_UNRECOGNIZED` with 404 or 405.

use super::*;

#[tokio::test]
async fn answers_unrecognized_for_unknown_endpoints_and_wrong_methods() {
    let w = world().await;
    let r = enc(&w.room);
    for c in [&w.server.client(), &w.alice] {
        for (method, path) in [
            (Method::GET, "/_matrix/client/v3/nonexistent".to_string()),
            (Method::POST, "/_matrix/client/v3/nonexistent".into()),
            (Method::GET, "/_matrix/nothing".into()),
            (Method::GET, "/".into()),
            (Method::GET, "/_matrix/client/v9/sync".into()),
            (Method::GET, "/_matrix/client/v1/media/nothing".into()),
            (Method::GET, format!("/_matrix/client/v3/rooms/{r}/nothing")),
            (
                Method::PUT,
                format!("/_matrix/client/v3/rooms/{r}/send/m.room.message"),
            ),
            (Method::GET, "/_matrix/client/v3/sync/extra".into()),
            (Method::GET, "/_matrix/client/v3/%F0%9F%98%80".into()),
        ] {
            let reply = c.request(method.clone(), &path, None).await;
            expect_error(&reply, 404, "M_UNRECOGNIZED", &format!("{method} {path}"));
        }
        for (method, path) in [
            (Method::POST, "/_matrix/client/v3/sync".to_string()),
            (Method::GET, "/_matrix/client/v3/createRoom".into()),
            (Method::DELETE, "/_matrix/client/v3/login".into()),
            (Method::PUT, "/_matrix/client/v3/register".into()),
            (Method::GET, "/_matrix/client/r0/logout".into()),
            (Method::PATCH, "/_matrix/client/v3/sync".into()),
            (Method::POST, "/_matrix/client/versions".into()),
            (Method::GET, format!("/_matrix/client/v3/rooms/{r}/invite")),
            (
                Method::POST,
                format!("/_matrix/client/v3/rooms/{r}/send/m.room.message/t1"),
            ),
            (Method::GET, "/_matrix/client/v1/media/upload".into()),
            (Method::DELETE, "/_matrix/client/v1/media/config".into()),
            (Method::POST, "/_matrix/media/v3/config".into()),
        ] {
            let reply = c.request(method.clone(), &path, Some(&json!({}))).await;
            expect_error(&reply, 405, "M_UNRECOGNIZED", &format!("{method} {path}"));
        }
    }
    assert_alive(&w.server, &w.alice).await;
}
