//! Reporting content, end to end: an event (`POST /rooms/{roomId}/report/{eventId}`, on v3 and
//! r0), a room and a user; their 404s and bad input; the rate limit; the admin's listing
//! (`GET /_plugboard/admin/v1/reports`, paged, newest first), dismissal, and `plugboard report
//! list | dismiss`; a non-admin refused.

use plugboard_tests::plugins::admin;
use plugboard_tests::{enc, plugboard_command, Client, Reply, TestServer, WAIT};
use serde_json::{json, Value};

const BINARY: &str = env!("CARGO_BIN_EXE_plugboard-test-server");
const API: &str = "/_plugboard/admin/v1/reports";

fn event_path(room: &str, event: &str) -> String {
    format!("/rooms/{}/report/{}", enc(room), enc(event))
}

fn room_path(room: &str) -> String {
    format!("/rooms/{}/report", enc(room))
}

fn user_path(user: &str) -> String {
    format!("/users/{}/report", enc(user))
}

/// The admin's first page of reports (default size).
async fn listing(server: &TestServer) -> Value {
    admin(&server.base, server.data_dir.path())
        .get(API)
        .await
        .ok()
}

/// A room of alice's that bob joined, with a message of alice's in it.
async fn room_with_message(server: &TestServer) -> (Client, Client, String, String) {
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice.create_room(json!({"preset": "public_chat"})).await;
    bob.join(&room).await.ok();
    let event = alice.send_text(&room, "buy cheap watches").await;
    (alice, bob, room, event)
}

fn assert_empty_ok(reply: Reply) {
    assert_eq!(reply.ok(), json!({}));
}

#[tokio::test]
async fn a_member_reports_an_event_and_the_admin_sees_it_with_its_sender() {
    let server = TestServer::start().await;
    let (alice, bob, room, event) = room_with_message(&server).await;

    assert_empty_ok(
        bob.post(
            &event_path(&room, &event),
            json!({"reason": "spam\nfrom a bot"}),
        )
        .await,
    );
    // The reason is optional, and the r0 path is the same endpoint.
    assert_empty_ok(
        bob.post(
            &format!("/_matrix/client/r0{}", event_path(&room, &event)),
            json!({}),
        )
        .await,
    );

    let page = listing(&server).await;
    assert_eq!(page["total"], 2, "{page}");
    assert!(page.get("next_from").is_none(), "{page}");
    let reports = page["reports"].as_array().unwrap();
    let (newest, oldest) = (&reports[0], &reports[1]);
    assert!(newest["id"].as_i64() > oldest["id"].as_i64(), "{page}");
    assert_eq!(oldest["kind"], "event");
    assert_eq!(oldest["reporter"], bob.user_id.as_str());
    assert_eq!(oldest["room_id"], room.as_str());
    assert_eq!(oldest["event_id"], event.as_str());
    assert_eq!(oldest["user_id"], alice.user_id.as_str());
    assert_eq!(oldest["reason"], "spam\nfrom a bot");
    assert!(oldest["received_ts"].as_i64().unwrap() > 0);
    assert!(newest.get("reason").is_none(), "{newest}");
}

#[tokio::test]
async fn an_event_report_is_not_found_unless_the_event_is_in_a_room_the_reporter_is_joined_to() {
    let server = TestServer::start().await;
    let (alice, bob, room, event) = room_with_message(&server).await;
    let carol = server.register("carol").await;
    let other_room = alice.create_room(json!({})).await;

    let not_found = |r: Reply, what: &str| {
        assert_eq!(r.status.as_u16(), 404, "{what}: {}", r.body);
        r.err(404, "M_NOT_FOUND");
    };
    not_found(
        bob.post(&event_path(&room, "$nosuchevent"), json!({"reason": "x"}))
            .await,
        "an unknown event",
    );
    not_found(
        alice
            .post(&event_path(&other_room, &event), json!({"reason": "x"}))
            .await,
        "an event of another room",
    );
    not_found(
        carol
            .post(&event_path(&room, &event), json!({"reason": "x"}))
            .await,
        "a room carol never joined",
    );
    not_found(
        carol
            .post(&event_path("!nosuchroom:localhost", &event), json!({}))
            .await,
        "a room that does not exist",
    );
    bob.post(&format!("/rooms/{}/leave", enc(&room)), json!({}))
        .await
        .ok();
    not_found(
        bob.post(&event_path(&room, &event), json!({"reason": "x"}))
            .await,
        "a room bob left",
    );

    assert_eq!(listing(&server).await["total"], 0);
}

#[tokio::test]
async fn a_room_is_reported_by_anyone_with_a_reason_and_an_unknown_room_is_not_found() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let eve = server.register("eve").await;
    let room = alice.create_room(json!({})).await;

    // Eve is not in the room; a blank reason is a reason.
    assert_empty_ok(eve.post(&room_path(&room), json!({"reason": ""})).await);
    assert_empty_ok(
        eve.post(
            &format!("/_matrix/client/r0{}", room_path(&room)),
            json!({"reason": "a scam"}),
        )
        .await,
    );
    eve.post(&room_path(&room), json!({}))
        .await
        .err(400, "M_BAD_JSON");
    eve.post(&room_path("!nosuchroom:localhost"), json!({"reason": "x"}))
        .await
        .err(404, "M_NOT_FOUND");
    eve.post(&room_path("nosuchroom"), json!({"reason": "x"}))
        .await
        .err(400, "M_INVALID_PARAM");

    let page = listing(&server).await;
    assert_eq!(page["total"], 2, "{page}");
    let newest = &page["reports"][0];
    assert_eq!(newest["kind"], "room");
    assert_eq!(newest["reporter"], eve.user_id.as_str());
    assert_eq!(newest["room_id"], room.as_str());
    assert_eq!(newest["reason"], "a scam");
    assert!(newest.get("event_id").is_none(), "{newest}");
    assert_eq!(page["reports"][1]["reason"], "");
}

#[tokio::test]
async fn a_user_is_reported_with_a_reason_and_an_unknown_user_is_not_found() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;

    assert_empty_ok(
        alice
            .post(&user_path(&bob.user_id), json!({"reason": "harassment"}))
            .await,
    );
    alice
        .post(&user_path(&bob.user_id), json!({"reason": null}))
        .await
        .err(400, "M_BAD_JSON");
    alice
        .post(&user_path("@nobody:localhost"), json!({"reason": "x"}))
        .await
        .err(404, "M_NOT_FOUND");
    alice
        .post(&user_path("bob"), json!({"reason": "x"}))
        .await
        .err(400, "M_INVALID_PARAM");

    let page = listing(&server).await;
    assert_eq!(page["total"], 1, "{page}");
    let report = &page["reports"][0];
    assert_eq!(report["kind"], "user");
    assert_eq!(report["reporter"], alice.user_id.as_str());
    assert_eq!(report["user_id"], bob.user_id.as_str());
    assert_eq!(report["reason"], "harassment");
}

#[tokio::test]
async fn a_bad_reason_is_refused_with_a_matrix_error_and_nothing_is_stored() {
    let server = TestServer::start().await;
    let (_alice, bob, room, event) = room_with_message(&server).await;
    let paths = [
        event_path(&room, &event),
        room_path(&room),
        user_path(&bob.user_id),
    ];
    for path in &paths {
        bob.post(path, json!({"reason": 5}))
            .await
            .err(400, "M_BAD_JSON");
        for bad in ["nul\u{0}byte", "\u{1b}[2Jclear", "bell\u{7}"] {
            bob.post(path, json!({"reason": bad}))
                .await
                .err(400, "M_INVALID_PARAM");
        }
        let reply = bob.post(path, json!({"reason": "r".repeat(2001)})).await;
        reply.err(400, "M_INVALID_PARAM");
        assert!(
            reply.body["error"].as_str().unwrap().contains("2000"),
            "{}",
            reply.body
        );
        let reply = bob
            .raw(
                reqwest::Method::POST,
                path,
                "application/json",
                b"{\"reason\":".to_vec(),
            )
            .await;
        reply.err(400, "M_NOT_JSON");
    }
    assert_eq!(listing(&server).await["total"], 0);

    // The longest reason allowed passes.
    assert_empty_ok(
        bob.post(&paths[1], json!({"reason": "r".repeat(2000)}))
            .await,
    );
    assert_eq!(listing(&server).await["total"], 1);
}

#[tokio::test]
async fn reports_stop_at_the_burst_per_user_and_per_address_and_a_miss_costs_the_same() {
    let server = TestServer::start_with(|c| {
        let rl = &mut c.rate_limits;
        rl.enabled = true;
        rl.registrations_per_second = 1000.0;
        rl.registration_burst = 1000;
        rl.messages_per_second = 1000.0;
        rl.message_burst = 1000;
        rl.room_creations_per_second = 1000.0;
        rl.room_creation_burst = 1000;
        rl.joins_per_second = 1000.0;
        rl.join_burst = 1000;
        rl.reports_per_second = 0.0001;
        rl.report_burst = 3;
        rl.address_factor = 2.0;
    })
    .await;
    let (alice, bob, room, event) = room_with_message(&server).await;

    // Three of bob's reports pass, whatever they are about; one that finds nothing counts.
    assert_empty_ok(bob.post(&event_path(&room, &event), json!({})).await);
    assert_empty_ok(bob.post(&room_path(&room), json!({"reason": "x"})).await);
    bob.post(&user_path("@nobody:localhost"), json!({"reason": "x"}))
        .await
        .err(404, "M_NOT_FOUND");
    let limited = bob
        .post(&user_path(&alice.user_id), json!({"reason": "x"}))
        .await;
    limited.err(429, "M_LIMIT_EXCEEDED");
    assert!(
        limited.body["retry_after_ms"]
            .as_u64()
            .is_some_and(|ms| ms > 0),
        "{}",
        limited.body
    );

    // The address holds twice a user's: alice's three more use it up, then carol is
    // limited on her first report though her own bucket is full.
    for _ in 0..3 {
        assert_empty_ok(alice.post(&room_path(&room), json!({"reason": "x"})).await);
    }
    let carol = server.register("carol").await;
    carol
        .post(&room_path(&room), json!({"reason": "x"}))
        .await
        .err(429, "M_LIMIT_EXCEEDED");

    // Input refused before the limit is drawn from costs nothing, and still says why.
    carol
        .post(&room_path(&room), json!({"reason": "\u{0}"}))
        .await
        .err(400, "M_INVALID_PARAM");

    assert_eq!(listing(&server).await["total"], 5);
}

#[tokio::test]
async fn a_user_with_a_thousand_reports_waiting_is_refused_until_the_admin_dismisses_one() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    for i in 0..1000 {
        let reply = alice
            .post(&user_path(&bob.user_id), json!({"reason": format!("#{i}")}))
            .await;
        assert_eq!(reply.status.as_u16(), 200, "report #{i}: {}", reply.body);
    }
    let refused = alice
        .post(&user_path(&bob.user_id), json!({"reason": "one more"}))
        .await;
    refused.err(403, "M_FORBIDDEN");
    assert!(
        refused.body["error"].as_str().unwrap().contains("1000"),
        "{}",
        refused.body
    );
    // Bob's reports are his own.
    assert_empty_ok(
        bob.post(&user_path(&alice.user_id), json!({"reason": "tit for tat"}))
            .await,
    );

    let admin = admin(&server.base, server.data_dir.path());
    let page = admin.get(&format!("{API}?limit=2")).await.ok();
    assert_eq!(page["total"], 1001, "{page}");
    let alices_newest = &page["reports"][1];
    assert_eq!(alices_newest["reporter"], alice.user_id.as_str());
    let id = alices_newest["id"].as_i64().unwrap();
    assert_empty_ok(admin.delete(&format!("{API}/{id}"), json!({})).await);
    assert_empty_ok(
        alice
            .post(&user_path(&bob.user_id), json!({"reason": "one more"}))
            .await,
    );
}

#[tokio::test]
async fn the_admin_pages_through_reports_newest_first_and_dismisses_them() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({})).await;
    for i in 0..5 {
        assert_empty_ok(
            alice
                .post(&room_path(&room), json!({"reason": format!("report {i}")}))
                .await,
        );
    }
    let admin = admin(&server.base, server.data_dir.path());

    let mut reasons = Vec::new();
    let mut ids = Vec::new();
    let mut path = format!("{API}?limit=2");
    let mut pages = 0;
    loop {
        let page = admin.get(&path).await.ok();
        assert_eq!(page["total"], 5, "{page}");
        pages += 1;
        for r in page["reports"].as_array().unwrap() {
            reasons.push(r["reason"].as_str().unwrap().to_owned());
            ids.push(r["id"].as_i64().unwrap());
        }
        match page["next_from"].as_i64() {
            Some(next) => path = format!("{API}?limit=2&from={next}"),
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(
        reasons,
        ["report 4", "report 3", "report 2", "report 1", "report 0"]
    );

    admin
        .get(&format!("{API}?limit=0"))
        .await
        .err(400, "M_INVALID_PARAM");
    admin
        .get(&format!("{API}?from=soon"))
        .await
        .err(400, "M_INVALID_PARAM");

    let dismissed = ids[1];
    assert_empty_ok(admin.delete(&format!("{API}/{dismissed}"), json!({})).await);
    let page = admin.get(API).await.ok();
    assert_eq!(page["total"], 4, "{page}");
    let left: Vec<i64> = page["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert!(!left.contains(&dismissed), "{page}");
    admin
        .delete(&format!("{API}/{dismissed}"), json!({}))
        .await
        .err(404, "M_NOT_FOUND");
    admin
        .delete(&format!("{API}/first"), json!({}))
        .await
        .err(400, "M_INVALID_PARAM");
}

#[tokio::test]
async fn only_an_admin_reads_or_dismisses_reports() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    assert_empty_ok(
        alice
            .post(&user_path(&alice.user_id), json!({"reason": "testing"}))
            .await,
    );
    let id = listing(&server).await["reports"][0]["id"].as_i64().unwrap();

    server.client().get(API).await.err(401, "M_MISSING_TOKEN");
    alice.get(API).await.err(403, "M_FORBIDDEN");
    alice
        .delete(&format!("{API}/{id}"), json!({}))
        .await
        .err(403, "M_FORBIDDEN");
    assert_eq!(listing(&server).await["total"], 1);

    // A server admin's own access token will do.
    let root = server.server_admin(BINARY, "root").await;
    assert_eq!(root.get(API).await.ok()["total"], 1);
    assert_empty_ok(root.delete(&format!("{API}/{id}"), json!({})).await);
    assert_eq!(listing(&server).await["total"], 0);
}

#[tokio::test]
async fn the_cli_lists_reports_and_dismisses_one() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    assert_empty_ok(
        alice
            .post(
                &user_path(&bob.user_id),
                json!({"reason": "rude\nand loud"}),
            )
            .await,
    );
    let id = listing(&server).await["reports"][0]["id"].as_i64().unwrap();

    let (ok, out, err) = report_cli(&server, &["list"]).await;
    assert!(ok, "{err}");
    assert!(out.contains(&bob.user_id), "{out}");
    assert!(out.contains("rude and loud"), "{out}");
    assert!(out.contains("1 of 1 reports"), "{out}");

    let (ok, out, err) = report_cli(&server, &["dismiss", &id.to_string()]).await;
    assert!(ok, "{err}");
    assert_eq!(out, format!("dismissed report {id}\n"));
    let (ok, _, err) = report_cli(&server, &["dismiss", &id.to_string()]).await;
    assert!(!ok);
    assert!(err.contains("M_NOT_FOUND"), "{err}");

    let (ok, out, err) = report_cli(&server, &["list"]).await;
    assert!(ok, "{err}");
    assert_eq!(out, "no reports\n");
}

/// Runs `plugboard report ARGS` against `server` (without blocking the runtime the server
/// runs on): whether it succeeded, its stdout and its stderr.
async fn report_cli(server: &TestServer, args: &[&str]) -> (bool, String, String) {
    let run = tokio::process::Command::from(plugboard_command(BINARY))
        .arg("report")
        .args(args)
        .arg("--data-dir")
        .arg(server.data_dir.path())
        .arg("--url")
        .arg(&server.base)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(WAIT, run)
        .await
        .expect("the command ends in time")
        .expect("the command runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
