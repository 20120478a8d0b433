//! Rate limits on what a client can amplify, end to end: room creation (with the defaults),
//! state events, joins, invites (per inviter, room and invitee), profile changes, redactions,
//! uploads; per user and per client address; `429 M_LIMIT_EXCEEDED` with `retry_after_ms`
//! and `Retry-After`; application services exempt when their registration says so, plugins
//! always.

use plugboard::config::{Config, RateLimits};
use plugboard_tests::plugins::{self, admin, install, room_with_bot, wait_for_words};
use plugboard_tests::{enc, Client, Reply, TestServer, WAIT};
use reqwest::Method;
use serde_json::{json, Value};

/// Limits on, with each action's limit at its default unless `adjust` changes it; so many
/// registrations and messages allowed that setting a test up is never limited.
async fn server_with(adjust: impl FnOnce(&mut RateLimits)) -> TestServer {
    TestServer::start_with(|c: &mut Config| {
        let rl = &mut c.rate_limits;
        rl.enabled = true;
        rl.registrations_per_second = 1000.0;
        rl.registration_burst = 1000;
        rl.messages_per_second = 1000.0;
        rl.message_burst = 1000;
        adjust(rl);
    })
    .await
}

/// A rate that refills nothing within a test.
const NEVER: f64 = 0.0001;

/// Asserts a `429 M_LIMIT_EXCEEDED` that says to wait a while.
fn limited(reply: &Reply, what: &str) {
    assert_eq!(reply.status.as_u16(), 429, "{what}: {}", reply.body);
    reply.err(429, "M_LIMIT_EXCEEDED");
    let wait = reply.body["retry_after_ms"].as_u64();
    assert!(wait.is_some_and(|ms| ms > 0), "{what}: {}", reply.body);
}

/// `n` requests made by `request` pass, and the next is limited.
async fn passes_then_limited<F, Fut>(n: usize, what: &str, mut request: F)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Reply>,
{
    for i in 0..n {
        let reply = request(i).await;
        assert_eq!(reply.status.as_u16(), 200, "{what} #{i}: {}", reply.body);
    }
    limited(&request(n).await, what);
}

fn state_path(room: &str, key: &str) -> String {
    format!("/rooms/{}/state/org.example.thing/{key}", enc(room))
}

#[tokio::test]
async fn room_creation_stops_after_ten_rooms_with_the_defaults_and_says_when_to_retry() {
    let server = TestServer::start_with(|c| {
        c.rate_limits = RateLimits::default();
        c.rate_limits.registration_burst = 100;
    })
    .await;
    let alice = server.register("alice").await;
    let mut created = 0;
    let mut refused = Vec::new();
    for _ in 0..30 {
        let resp = alice
            .http
            .post(alice.url("/createRoom"))
            .bearer_auth(alice.token.as_deref().unwrap())
            .json(&json!({}))
            .timeout(WAIT)
            .send()
            .await
            .expect("request sent");
        if resp.status().as_u16() == 200 {
            created += 1;
            continue;
        }
        let retry_after = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        let body: Value = resp.json().await.expect("a JSON body");
        refused.push((retry_after, body));
    }
    assert_eq!(created, 10, "Synapse's rc_room_creation burst");
    assert_eq!(refused.len(), 20);
    for (retry_after, body) in &refused {
        assert_eq!(body["errcode"], "M_LIMIT_EXCEEDED", "{body}");
        let ms = body["retry_after_ms"].as_u64().expect("retry_after_ms");
        // One room per 62.5 s (0.016/s).
        assert!((55_000..=63_000).contains(&ms), "{body}");
        let secs: u64 = retry_after
            .as_deref()
            .expect("Retry-After")
            .parse()
            .unwrap();
        assert_eq!(secs, ms.div_ceil(1000), "{body}");
    }
    // The refused requests made nothing.
    let rooms = alice.get("/joined_rooms").await.ok();
    assert_eq!(rooms["joined_rooms"].as_array().unwrap().len(), 10);
    // Another user has a bucket of their own.
    let bob = server.register("bob").await;
    bob.post("/createRoom", json!({})).await.ok();
}

#[tokio::test]
async fn state_events_are_limited_per_user() {
    let server = server_with(|rl| {
        rl.state_events_per_second = NEVER;
        rl.state_event_burst = 3;
    })
    .await;
    let alice = &server.register("alice").await;
    let room = &alice.create_room(json!({})).await;
    passes_then_limited(3, "a state event", |i| async move {
        alice
            .put(&state_path(room, &format!("k{i}")), json!({"n": i}))
            .await
    })
    .await;
    // The refused event was not stored.
    alice
        .get(&state_path(room, "k3"))
        .await
        .err(404, "M_NOT_FOUND");
    // The empty-key path counts in the same bucket.
    let reply = alice
        .put(
            &format!("/rooms/{}/state/m.room.topic", enc(room)),
            json!({"topic": "t"}),
        )
        .await;
    limited(&reply, "a topic");
}

#[tokio::test]
async fn joins_are_limited_per_user() {
    let server = server_with(|rl| {
        rl.joins_per_second = NEVER;
        rl.join_burst = 2;
    })
    .await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let mut rooms = Vec::new();
    for _ in 0..3 {
        rooms.push(alice.create_room(json!({"preset": "public_chat"})).await);
    }
    bob.join(&rooms[0]).await.ok();
    bob.post(&format!("/rooms/{}/join", enc(&rooms[1])), json!({}))
        .await
        .ok();
    limited(&bob.join(&rooms[2]).await, "a third join");
    limited(
        &bob.post(&format!("/rooms/{}/join", enc(&rooms[2])), json!({}))
            .await,
        "a third join by id",
    );
    let joined = bob.get("/joined_rooms").await.ok();
    assert_eq!(joined["joined_rooms"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn profile_changes_are_limited_per_user() {
    let server = server_with(|rl| {
        rl.profile_changes_per_second = NEVER;
        rl.profile_change_burst = 2;
    })
    .await;
    let alice = server.register("alice").await;
    let path = |what: &str| format!("/profile/{}/{what}", enc(&alice.user_id));
    alice
        .put(&path("displayname"), json!({"displayname": "Alice"}))
        .await
        .ok();
    alice
        .put(
            &path("avatar_url"),
            json!({"avatar_url": "mxc://localhost/a"}),
        )
        .await
        .ok();
    let reply = alice
        .put(&path("displayname"), json!({"displayname": "Mallory"}))
        .await;
    limited(&reply, "a third profile change");
    let profile = alice
        .get(&format!("/profile/{}", enc(&alice.user_id)))
        .await
        .ok();
    assert_eq!(profile["displayname"], "Alice");
}

#[tokio::test]
async fn redactions_and_both_send_paths_draw_from_the_message_bucket() {
    let server = server_with(|rl| {
        rl.messages_per_second = NEVER;
        rl.message_burst = 4;
    })
    .await;
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({})).await;
    let first = alice.send_text(&room, "one").await;
    let legacy = alice
        .post(
            &format!(
                "/_matrix/client/api/v1/rooms/{}/send/m.room.message",
                enc(&room)
            ),
            json!({"msgtype": "m.text", "body": "two"}),
        )
        .await;
    legacy.ok();
    alice
        .put(
            &format!("/rooms/{}/redact/{}/r1", enc(&room), enc(&first)),
            json!({}),
        )
        .await
        .ok();
    alice.send_text(&room, "four").await;
    let reply = alice
        .put(
            &format!("/rooms/{}/redact/{}/r2", enc(&room), enc(&first)),
            json!({}),
        )
        .await;
    limited(&reply, "a redaction past the burst");
    let reply = alice
        .put(
            &format!("/rooms/{}/send/m.room.message/t5", enc(&room)),
            json!({"msgtype": "m.text", "body": "five"}),
        )
        .await;
    limited(&reply, "a message past the burst");
}

#[tokio::test]
async fn uploads_are_limited_per_user() {
    let server = server_with(|rl| {
        rl.media_uploads_per_second = NEVER;
        rl.media_upload_burst = 3;
    })
    .await;
    let alice = server.register("alice").await;
    let upload = |i: usize| {
        let path = if i.is_multiple_of(2) {
            "/_matrix/media/v3/upload"
        } else {
            "/_matrix/client/v1/media/upload"
        };
        alice.raw(Method::POST, path, "text/plain", vec![b'x'; 10])
    };
    passes_then_limited(3, "an upload", upload).await;
    // Nothing of the refused upload was kept.
    let media = server.data_dir.path().join("media");
    let files = std::fs::read_dir(&media)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_type().unwrap().is_file())
        .count();
    assert_eq!(files, 3);
}

#[tokio::test]
async fn invites_are_limited_per_inviter() {
    let server = server_with(|rl| {
        rl.invites_per_second = NEVER;
        rl.invite_burst = 3;
    })
    .await;
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({})).await;
    for i in 0..3 {
        alice.invite(&room, &format!("@u{i}:localhost")).await.ok();
    }
    limited(
        &alice.invite(&room, "@u3:localhost").await,
        "a fourth invite",
    );
    // createRoom's invites come out of the same bucket.
    limited(
        &alice
            .post("/createRoom", json!({"invite": ["@v:localhost"]}))
            .await,
        "a room with an invite",
    );
    // Another inviter is not affected.
    let bob = server.register("bob").await;
    let room = bob.create_room(json!({})).await;
    bob.invite(&room, "@u3:localhost").await.ok();
}

#[tokio::test]
async fn an_invitee_receives_a_few_invites_whoever_sends_them() {
    // The default: 5 invites, then one every 5.5 minutes.
    let server = server_with(|_| {}).await;
    let mut inviters = Vec::new();
    for i in 0..6 {
        let c = server.register(&format!("inviter{i}")).await;
        let room = c.create_room(json!({})).await;
        inviters.push((c, room));
    }
    for (c, room) in &inviters[..5] {
        c.invite(room, "@victim:localhost").await.ok();
    }
    let (c, room) = &inviters[5];
    limited(&c.invite(room, "@victim:localhost").await, "a sixth invite");
    c.invite(room, "@someone_else:localhost").await.ok();
}

#[tokio::test]
async fn a_room_receives_a_burst_of_invites_whoever_sends_them() {
    let server = server_with(|rl| {
        rl.room_invites_per_second = NEVER;
        rl.room_invite_burst = 3;
    })
    .await;
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({"preset": "public_chat"})).await;
    let bob = server.register("bob").await;
    bob.join(&room).await.ok();
    alice.invite(&room, "@u0:localhost").await.ok();
    bob.invite(&room, "@u1:localhost").await.ok();
    alice.invite(&room, "@u2:localhost").await.ok();
    limited(
        &bob.invite(&room, "@u3:localhost").await,
        "a fourth invite to the room",
    );
    let other = alice.create_room(json!({})).await;
    alice.invite(&other, "@u3:localhost").await.ok();
}

#[tokio::test]
async fn the_client_address_bucket_holds_the_factor_times_a_users_and_limits_them_together() {
    let server = server_with(|rl| {
        rl.room_creations_per_second = NEVER;
        rl.room_creation_burst = 1;
        rl.address_factor = 2.0;
    })
    .await;
    // Three users on 127.0.0.1: one room each per user, two for the address.
    let users = [
        server.register("a").await,
        server.register("b").await,
        server.register("c").await,
    ];
    users[0].post("/createRoom", json!({})).await.ok();
    users[1].post("/createRoom", json!({})).await.ok();
    limited(
        &users[2].post("/createRoom", json!({})).await,
        "a third room from one address",
    );
}

#[tokio::test]
async fn address_factor_zero_limits_users_only() {
    let server = server_with(|rl| {
        rl.room_creations_per_second = NEVER;
        rl.room_creation_burst = 1;
        rl.address_factor = 0.0;
    })
    .await;
    for name in ["a", "b", "c", "d"] {
        let c = server.register(name).await;
        c.post("/createRoom", json!({})).await.ok();
        limited(&c.post("/createRoom", json!({})).await, "a second room");
    }
}

const BRIDGE: &str = "id: bridge
url: null
as_token: bridge_as_token
hs_token: bridge_hs_token
sender_localpart: bridgebot
namespaces:
  users:
    - regex: '@bridge_.*'
      exclusive: true
";

const RELAY: &str = "id: relay
url: null
as_token: relay_as_token
hs_token: relay_hs_token
sender_localpart: relaybot
rate_limited: false
namespaces:
  users:
    - regex: '@relay_.*'
      exclusive: true
";

/// Makes `@{localpart}:localhost` through the service with `as_token`; answers a client that
/// acts as it (`?user_id=` on each request).
async fn service_user(server: &TestServer, as_token: &str, localpart: &str) -> Client {
    let mut service = server.client();
    service.token = Some(as_token.to_string());
    service
        .post(
            "/register",
            json!({"type": "m.login.application_service", "username": localpart}),
        )
        .await
        .ok();
    service.user_id = format!("@{localpart}:localhost");
    service
}

/// `path` as `c`'s asserted user.
fn acting(c: &Client, path: &str) -> String {
    format!("{path}?user_id={}", enc(&c.user_id))
}

#[tokio::test]
async fn an_appservices_users_are_exempt_only_when_its_registration_says_rate_limited_false() {
    let dir = tempfile::tempdir().unwrap();
    let (bridge, relay) = (
        dir.path().join("bridge.yaml"),
        dir.path().join("relay.yaml"),
    );
    std::fs::write(&bridge, BRIDGE).unwrap();
    std::fs::write(&relay, RELAY).unwrap();
    let server = TestServer::start_with(|c| {
        c.appservice_config_files = vec![bridge, relay];
        c.rate_limits.enabled = true;
        c.rate_limits.room_creations_per_second = NEVER;
        c.rate_limits.room_creation_burst = 2;
        c.rate_limits.profile_changes_per_second = NEVER;
        c.rate_limits.profile_change_burst = 1;
    })
    .await;
    let relayed = service_user(&server, "relay_as_token", "relay_sam").await;
    for i in 0..6 {
        relayed
            .post(&acting(&relayed, "/createRoom"), json!({}))
            .await
            .ok();
        let path = format!("/profile/{}/displayname", enc(&relayed.user_id));
        relayed
            .put(
                &acting(&relayed, &path),
                json!({"displayname": format!("Sam {i}")}),
            )
            .await
            .ok();
    }
    let bridged = service_user(&server, "bridge_as_token", "bridge_rae").await;
    for _ in 0..2 {
        bridged
            .post(&acting(&bridged, "/createRoom"), json!({}))
            .await
            .ok();
    }
    limited(
        &bridged
            .post(&acting(&bridged, "/createRoom"), json!({}))
            .await,
        "a rate-limited service's user",
    );
    // The service's sender is never limited, whatever the registration says.
    let mut bot = server.client();
    bot.token = Some("bridge_as_token".into());
    for _ in 0..4 {
        bot.post("/createRoom", json!({})).await.ok();
    }
}

#[tokio::test]
async fn invites_to_an_appservices_bot_do_not_count_against_it_as_an_invitee() {
    let dir = tempfile::tempdir().unwrap();
    let bridge = dir.path().join("bridge.yaml");
    std::fs::write(&bridge, BRIDGE).unwrap();
    let server = TestServer::start_with(|c| {
        c.appservice_config_files = vec![bridge];
        c.rate_limits.enabled = true;
        c.rate_limits.registration_burst = 100;
    })
    .await;
    // Seven inviters, seven rooms: more than the five invites a person may receive at once.
    for i in 0..7 {
        let c = server.register(&format!("fan{i}")).await;
        let room = c.create_room(json!({})).await;
        c.invite(&room, "@bridgebot:localhost").await.ok();
        if i < 5 {
            c.invite(&room, "@person:localhost").await.ok();
        } else {
            limited(
                &c.invite(&room, "@person:localhost").await,
                "a person's sixth invite",
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_acting_as_its_users_is_not_rate_limited() {
    let server = server_with(|rl| {
        rl.room_creations_per_second = NEVER;
        rl.room_creation_burst = 2;
    })
    .await;
    let admin = admin(&server.base, server.data_dir.path());
    install(&admin, &plugins::probe(false)).await;
    let alice = server.register("alice").await;
    let room = room_with_bot(&alice, "@probe:localhost").await;
    // Alice has one room left; the probe makes five as one of its users.
    for _ in 0..5 {
        alice.send_text(&room, "!room probe_maker").await;
    }
    let said = wait_for_words(&alice, &room, "@probe:localhost", |s| s.len() >= 5).await;
    for s in &said {
        assert!(s.starts_with("ok \"!"), "{said:?}");
    }
    alice.post("/createRoom", json!({})).await.ok();
    limited(
        &alice.post("/createRoom", json!({})).await,
        "alice's third room",
    );
}
