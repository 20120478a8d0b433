//! Tokens: every authenticated route refuses a missing, unknown or malformed access token;
//! public routes stay open.

use super::routes::room_routes;
use super::*;

/// Every authenticated route, with a body that would be fine.
fn authenticated_routes(w: &World) -> Vec<(Method, String, Option<Value>)> {
    let r = enc(&w.room);
    let a = enc(&w.alice.user_id);
    let e = enc(&w.event);
    let mut routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/capabilities".into(), None),
        (Method::POST, "/logout".into(), Some(json!({}))),
        (Method::POST, "/logout/all".into(), Some(json!({}))),
        (Method::GET, "/account/whoami".into(), None),
        (Method::GET, "/devices".into(), None),
        (Method::GET, "/devices/ABC".into(), None),
        (Method::PUT, "/devices/ABC".into(), Some(json!({}))),
        (Method::DELETE, "/devices/ABC".into(), Some(json!({}))),
        (
            Method::POST,
            "/delete_devices".into(),
            Some(json!({"devices": []})),
        ),
        (Method::POST, "/createRoom".into(), Some(json!({}))),
        (Method::POST, format!("/join/{r}"), Some(json!({}))),
        (Method::GET, "/joined_rooms".into(), None),
        (Method::GET, "/sync".into(), None),
        (Method::POST, format!("/user/{a}/filter"), Some(json!({}))),
        (Method::GET, format!("/user/{a}/filter/0"), None),
        (
            Method::PUT,
            format!("/directory/room/{}", enc("#fresh:localhost")),
            Some(json!({"room_id": w.room})),
        ),
        (
            Method::DELETE,
            format!("/directory/room/{}", enc(&w.alias)),
            Some(json!({})),
        ),
        (Method::POST, "/publicRooms".into(), Some(json!({}))),
        (
            Method::PUT,
            format!("/profile/{a}/displayname"),
            Some(json!({"displayname": "x"})),
        ),
        (
            Method::PUT,
            format!("/profile/{a}/avatar_url"),
            Some(json!({"avatar_url": "mxc://localhost/x"})),
        ),
        (
            Method::PUT,
            format!("/user/{a}/account_data/org.example.x"),
            Some(json!({})),
        ),
        (
            Method::GET,
            format!("/user/{a}/account_data/org.example.x"),
            None,
        ),
        (
            Method::POST,
            "/_matrix/media/v3/upload".into(),
            Some(json!({})),
        ),
        (
            Method::POST,
            "/_matrix/media/r0/upload".into(),
            Some(json!({})),
        ),
    ];
    routes.extend(room_routes(&r, &a, &e));
    {
        let prefix = "/_matrix/client/v1/media";
        routes.extend([
            (Method::GET, format!("{prefix}/config"), None),
            (Method::POST, format!("{prefix}/upload"), Some(json!({}))),
            (
                Method::GET,
                format!("{prefix}/download/localhost/abc"),
                None,
            ),
            (
                Method::GET,
                format!("{prefix}/download/localhost/abc/name.png"),
                None,
            ),
            (
                Method::GET,
                format!("{prefix}/thumbnail/localhost/abc?width=32&height=32"),
                None,
            ),
        ]);
    }
    routes
}

#[tokio::test]
async fn requires_a_valid_token_on_every_authenticated_route() {
    let w = world().await;
    let anonymous = w.server.client();
    let bogus = with_token(&w.server, "pb_this_is_not_a_token");
    let empty = with_token(&w.server, "");
    let http = reqwest::Client::new();
    for (method, path, body) in authenticated_routes(&w) {
        let what = format!("{method} {path}");
        let reply = anonymous
            .request(method.clone(), &path, body.as_ref())
            .await;
        expect_error(
            &reply,
            401,
            "M_MISSING_TOKEN",
            &format!("{what} without a token"),
        );
        let reply = bogus.request(method.clone(), &path, body.as_ref()).await;
        expect_error(
            &reply,
            401,
            "M_UNKNOWN_TOKEN",
            &format!("{what} with a bad token"),
        );
        // `Bearer ` with nothing after it carries no token.
        let reply = empty.request(method.clone(), &path, body.as_ref()).await;
        expect_error(
            &reply,
            401,
            "M_MISSING_TOKEN",
            &format!("{what} with an empty bearer token"),
        );
        // The token in the query string.
        let sep = if path.contains('?') { '&' } else { '?' };
        let reply = anonymous
            .request(
                method.clone(),
                &format!("{path}{sep}access_token=pb_nope"),
                body.as_ref(),
            )
            .await;
        expect_error(
            &reply,
            401,
            "M_UNKNOWN_TOKEN",
            &format!("{what} with a bad ?access_token="),
        );
        // An Authorization header of another scheme is no token.
        let mut req = http
            .request(method.clone(), anonymous.url(&path))
            .header("authorization", "Basic YWxpY2U6cGFzc3dvcmQ=")
            .timeout(WAIT);
        if let Some(b) = &body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let bytes = resp.bytes().await.expect("body read");
        let reply = Reply {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        };
        expect_error(
            &reply,
            401,
            "M_MISSING_TOKEN",
            &format!("{what} with a Basic Authorization header"),
        );
        // Header bytes that are not UTF-8.
        let mut req = http
            .request(method.clone(), anonymous.url(&path))
            .header(
                "authorization",
                reqwest::header::HeaderValue::from_bytes(b"Bearer pb_\xff\xfe").expect("bytes"),
            )
            .timeout(WAIT);
        if let Some(b) = &body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let bytes = resp.bytes().await.expect("body read");
        let reply = Reply {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        };
        expect_error(
            &reply,
            401,
            "M_MISSING_TOKEN",
            &format!("{what} with a token that is not UTF-8"),
        );
    }
    // A revoked token is unknown.
    let carol = w.server.register("carol").await;
    carol.post("/logout", json!({})).await.ok();
    let reply = carol.get("/account/whoami").await;
    expect_error(&reply, 401, "M_UNKNOWN_TOKEN", "a logged-out token");
    let reply = carol.get("/_matrix/client/v1/media/config").await;
    expect_error(
        &reply,
        401,
        "M_UNKNOWN_TOKEN",
        "a logged-out token on media",
    );
    // Alice's own token was never touched by any of it.
    assert_alive(&w.server, &w.alice).await;
    let r = w
        .alice
        .get(&format!("/rooms/{}/joined_members", enc(&w.room)))
        .await
        .ok();
    assert!(r["joined"][&w.bob.user_id].is_object(), "{r}");
}

#[tokio::test]
async fn leaves_public_routes_open_without_a_token() {
    let w = world().await;
    let anonymous = w.server.client();
    for path in [
        "/_matrix/client/versions".to_string(),
        "/login".into(),
        format!("/directory/room/{}", enc(&w.alias)),
        format!("/profile/{}", enc(&w.alice.user_id)),
        "/publicRooms".into(),
        "/register/available?username=zed".into(),
        "/_matrix/media/v3/config".into(),
        format!("/directory/list/room/{}", enc(&w.room)),
    ] {
        let r = anonymous.get(&path).await;
        assert_eq!(r.status.as_u16(), 200, "GET {path}: {}", r.body);
    }
}
