//! Rate limits: `M_LIMIT_EXCEEDED` with `retry_after_ms`.

use super::*;

#[track_caller]
fn retry_after(r: &Reply, what: &str) -> u64 {
    expect_error(r, 429, "M_LIMIT_EXCEEDED", what);
    let ms = r.body["retry_after_ms"]
        .as_u64()
        .unwrap_or_else(|| panic!("{what}: retry_after_ms is not an integer: {}", r.body));
    assert!(ms > 0, "{what}: retry_after_ms is 0");
    ms
}

#[tokio::test]
async fn answers_limit_exceeded_with_retry_after_when_rate_limited() {
    let w = world_with(|c| {
        c.rate_limits.enabled = true;
        c.rate_limits.message_burst = 3;
        c.rate_limits.messages_per_second = 0.5;
        c.rate_limits.registration_burst = 3;
        c.rate_limits.registrations_per_second = 0.001;
        c.rate_limits.login_burst = 2;
        c.rate_limits.logins_per_second = 0.001;
    })
    .await;
    let r = enc(&w.room);
    // The world setup sent one message as alice: two more fit the burst of three.
    let mut sent = vec![w.event.clone()];
    let mut limited = None;
    for i in 0..10 {
        let reply = w
            .alice
            .put(
                &format!("/rooms/{r}/send/m.room.message/{}", txn()),
                json!({"msgtype": "m.text", "body": format!("m{i}")}),
            )
            .await;
        if reply.status.as_u16() == 429 {
            limited = Some(reply);
            break;
        }
        sent.push(
            reply.ok()["event_id"]
                .as_str()
                .expect("event_id")
                .to_string(),
        );
    }
    let limited = limited.expect("ten quick sends were never rate limited");
    assert!(sent.len() >= 3, "limited before the burst: {sent:?}");
    let wait = retry_after(&limited, "a send past the burst");
    assert!(
        wait <= 2_000,
        "retry_after_ms {wait} is longer than one token takes"
    );
    // Redactions draw on the same bucket.
    let reply = w
        .alice
        .put(
            &format!("/rooms/{r}/redact/{}/{}", enc(&w.event), txn()),
            json!({}),
        )
        .await;
    retry_after(&reply, "a redaction past the burst");
    // The limited sends stored nothing.
    let msgs = w
        .alice
        .get(&format!("/rooms/{r}/messages?dir=b&limit=1"))
        .await
        .ok();
    assert_eq!(msgs["chunk"][0]["event_id"], sent.last().unwrap().as_str());
    // Buckets are per user: bob still sends.
    bob_sends(&w).await;
    // After the wait, alice may send again.
    tokio::time::sleep(Duration::from_millis(wait + 250).min(WAIT)).await;
    w.alice.send_text(&w.room, "after the wait").await;

    // Registrations: alice and bob took two of three.
    let reply = try_register(&w.server, "carol").await;
    assert_eq!(reply.ok()["user_id"], "@carol:localhost");
    let reply = try_register(&w.server, "dave").await;
    retry_after(&reply, "a registration past the burst");
    // Logins: two, then limited, even with the right password.
    for _ in 0..2 {
        w.server
            .client()
            .post(
                "/login",
                json!({"type": "m.login.password", "user": "alice", "password": "password"}),
            )
            .await
            .ok();
    }
    let reply = w
        .server
        .client()
        .post(
            "/login",
            json!({"type": "m.login.password", "user": "alice", "password": "password"}),
        )
        .await;
    retry_after(&reply, "a login past the burst");
    assert_alive(&w.server, &w.alice).await;
}

async fn bob_sends(w: &World) {
    w.bob.send_text(&w.room, "bob is not limited").await;
}
