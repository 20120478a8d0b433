//! Permissions on other users' data, and concurrent requests that must not race into a server
//! error.

use super::*;

#[tokio::test]
async fn forbids_acting_on_another_users_data() {
    let w = world().await;
    let r = enc(&w.room);
    let b = enc(&w.bob.user_id);
    for (method, path, body) in [
        (
            Method::PUT,
            format!("/profile/{b}/displayname"),
            Some(json!({"displayname": "pwned"})),
        ),
        (
            Method::PUT,
            format!("/profile/{b}/avatar_url"),
            Some(json!({"avatar_url": "mxc://localhost/x"})),
        ),
        (
            Method::PUT,
            format!("/rooms/{r}/typing/{b}"),
            Some(json!({"typing": true})),
        ),
        (Method::POST, format!("/user/{b}/filter"), Some(json!({}))),
        (Method::GET, format!("/user/{b}/filter/0"), None),
        (
            Method::PUT,
            format!("/user/{b}/account_data/org.example.x"),
            Some(json!({})),
        ),
        (
            Method::GET,
            format!("/user/{b}/account_data/org.example.x"),
            None,
        ),
        (
            Method::PUT,
            format!("/user/{b}/rooms/{r}/account_data/org.example.x"),
            Some(json!({})),
        ),
        (
            Method::PUT,
            format!("/rooms/{r}/state/org.example.thing/{b}"),
            Some(json!({"mine": true})),
        ),
        (
            Method::PUT,
            format!("/rooms/{r}/state/m.room.create"),
            Some(json!({})),
        ),
    ] {
        let reply = w.alice.request(method.clone(), &path, body.as_ref()).await;
        expect_error(&reply, 403, "M_FORBIDDEN", &format!("{method} {path}"));
    }
    let p = w.server.client().get(&format!("/profile/{b}")).await.ok();
    assert_eq!(
        p,
        json!({"displayname": "bob"}),
        "bob's profile as registered"
    );
    assert_alive(&w.server, &w.alice).await;
}

#[tokio::test]
async fn uploads_filters_concurrently_without_a_server_error() {
    let w = world().await;
    let path = format!("/user/{}/filter", enc(&w.alice.user_id));
    let mut handles = Vec::new();
    for i in 0..24 {
        let alice = w.alice.clone();
        let path = path.clone();
        handles.push(tokio::spawn(async move {
            let body = json!({"room": {"timeline": {"limit": i + 1}}});
            alice.post(&path, body).await
        }));
    }
    let mut ids = Vec::new();
    for h in handles {
        let reply = tokio::time::timeout(WAIT, h)
            .await
            .expect("the upload answered in time")
            .expect("the upload task ran");
        let id = reply.ok()["filter_id"]
            .as_str()
            .expect("filter_id")
            .to_string();
        ids.push(id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 24, "filter ids are not distinct: {ids:?}");
    assert_alive(&w.server, &w.alice).await;
}

#[tokio::test]
async fn logs_out_many_devices_concurrently_without_a_server_error() {
    let w = world().await;
    let mut devices = Vec::new();
    for _ in 0..16 {
        let login = w
            .server
            .client()
            .post(
                "/login",
                json!({"type": "m.login.password", "user": "alice", "password": "password"}),
            )
            .await
            .ok();
        let token = login["access_token"].as_str().expect("access_token");
        devices.push(with_token(&w.server, token));
    }
    let mut handles = Vec::new();
    for c in devices.clone() {
        handles.push(tokio::spawn(
            async move { c.post("/logout", json!({})).await },
        ));
    }
    for h in handles {
        let reply = tokio::time::timeout(WAIT, h)
            .await
            .expect("the logout answered in time")
            .expect("the logout task ran");
        assert_eq!(reply.ok(), json!({}));
    }
    for c in &devices {
        let reply = c.get("/account/whoami").await;
        expect_error(
            &reply,
            401,
            "M_UNKNOWN_TOKEN",
            "a token logged out concurrently",
        );
    }
    // Alice's first device was not among them.
    assert_alive(&w.server, &w.alice).await;
}
