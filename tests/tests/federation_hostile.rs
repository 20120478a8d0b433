//! Hostile PDUs on the federation port: a second Plugboard's user joins a room, then the test
//! speaks as that server (with its real signing key) and sends events it forged: honest ones
//! (one on a fork of the room's graph), ones changed after signing, badly signed, failing the auth rules, allowed only by the past,
//! and transactions too large or of garbage, and joins and invites in a room version not
//! shared. Each gets the spec's outcome and nothing is stored that should not be.

use plugboard::service::room_version::DEFAULT;
use plugboard_tests::federation::{room_joined_by_alias, Identity};
use plugboard_tests::{enc, Client, Reply, TestServer};
use serde_json::{json, Value};

struct Room {
    a: TestServer,
    b: TestServer,
    alice: Client,
    bob: Client,
    room_id: String,
}

/// Alice's room on A, with Bob of B joined over federation.
async fn room() -> Room {
    let a = TestServer::start_federating().await;
    let b = TestServer::start_federating().await;
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let room_id = room_joined_by_alias(&alice, &a.server_name, "hall", &bob, String::new).await;
    Room {
        a,
        b,
        alice,
        bob,
        room_id,
    }
}

impl Room {
    /// The id of the state event `(kind, key)` as A has it.
    async fn state_id(&self, kind: &str, key: &str) -> String {
        let state = self
            .alice
            .get(&format!("/rooms/{}/state", enc(&self.room_id)))
            .await;
        state
            .body
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["type"] == kind && e["state_key"] == key)
            .and_then(|e| e["event_id"].as_str())
            .unwrap_or_else(|| panic!("no {kind} {key} in {}", state.body))
            .to_string()
    }

    /// The room's `limit` newest events as A has them, newest first.
    async fn newest_events(&self, limit: usize) -> Vec<Value> {
        let page = self
            .alice
            .get(&format!(
                "/rooms/{}/messages?dir=b&limit={limit}",
                enc(&self.room_id)
            ))
            .await;
        page.body["chunk"].as_array().cloned().unwrap_or_default()
    }

    /// The room's newest event as A has it.
    async fn newest(&self) -> String {
        self.newest_events(1).await[0]["event_id"]
            .as_str()
            .expect("an event")
            .to_string()
    }

    /// An unsigned PDU from Bob built on `prev` (the newest event when `None`).
    async fn forge(
        &self,
        kind: &str,
        state_key: Option<&str>,
        content: Value,
        prev: Option<String>,
    ) -> Value {
        let prev = match prev {
            Some(p) => p,
            None => self.newest().await,
        };
        let mut pdu = json!({
            "type": kind,
            "room_id": self.room_id,
            "sender": self.bob.user_id,
            "content": content,
            "depth": 1000,
            "prev_events": [prev],
            "auth_events": [
                self.state_id("m.room.power_levels", "").await,
                self.state_id("m.room.member", &self.bob.user_id).await,
            ],
            "origin_server_ts": 1_700_000_000_000u64,
        });
        if let Some(k) = state_key {
            pdu["state_key"] = json!(k);
        }
        pdu
    }

    /// Sends `pdus` to A in one transaction, as B.
    async fn send(&self, pdus: Vec<Value>) -> Reply {
        let body = json!({
            "origin": self.b.server_name,
            "origin_server_ts": 1_700_000_000_000u64,
            "pdus": pdus,
        });
        let txn = format!("t{}", std::process::id() ^ rand());
        self.a
            .signed_put(
                &Identity::of(&self.b),
                &format!("/_matrix/federation/v1/send/{txn}"),
                &body,
            )
            .await
    }

    /// The event as Alice can read it: `None` when A does not serve it.
    async fn read(&self, event_id: &str) -> Option<Value> {
        let reply = self
            .alice
            .get(&format!(
                "/rooms/{}/event/{}",
                enc(&self.room_id),
                enc(event_id)
            ))
            .await;
        (reply.status == 200).then_some(reply.body)
    }
}

fn rand() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .subsec_nanos()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_millis() as u64
}

fn text(body: &str) -> Value {
    json!({"msgtype": "m.text", "body": body})
}

#[tokio::test]
async fn an_honest_pdu_is_taken_and_one_changed_after_signing_is_stored_redacted() {
    let r = room().await;
    let b = Identity::of(&r.b);

    let mut honest = r.forge("m.room.message", None, text("honest"), None).await;
    let honest_id = b.sign_event(&mut honest, DEFAULT);
    let reply = r.send(vec![honest]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["pdus"][&honest_id], json!({}), "{}", reply.body);
    let read = r
        .read(&honest_id)
        .await
        .expect("the honest event is served");
    assert_eq!(read["content"]["body"], "honest");

    // Signed, then changed: the signature (over the redacted event) still holds, the content
    // hash does not, so the event is kept redacted.
    let mut tampered = r
        .forge("m.room.message", None, text("as signed"), Some(honest_id))
        .await;
    let tampered_id = b.sign_event(&mut tampered, DEFAULT);
    tampered["content"]["body"] = json!("changed in transit");
    let reply = r.send(vec![tampered]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let read = r
        .read(&tampered_id)
        .await
        .expect("the tampered event is kept");
    assert_eq!(read["content"], json!({}), "{read}");
}

#[tokio::test]
async fn a_state_event_built_beside_a_local_one_takes_its_place_in_the_rooms_state() {
    let r = room().await;
    let fork_point = r.newest().await;
    // Alice speaks on A while B, not having heard her yet, changes Bob's name on the event
    // before: two forks, each with what the other lacks.
    let said = r.alice.send_text(&r.room_id, "meanwhile on A").await;
    let mut renamed = r
        .forge(
            "m.room.member",
            Some(&r.bob.user_id),
            json!({"membership": "join", "displayname": "Bob on a fork"}),
            Some(fork_point),
        )
        .await;
    // Resolution orders the two of Bob's member events by time: the rename is the later.
    renamed["origin_server_ts"] = json!(now_ms());
    renamed["auth_events"]
        .as_array_mut()
        .expect("a list")
        .push(json!(r.state_id("m.room.join_rules", "").await));
    let renamed_id = Identity::of(&r.b).sign_event(&mut renamed, DEFAULT);
    let reply = r.send(vec![renamed]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["pdus"][&renamed_id], json!({}), "{}", reply.body);

    assert_eq!(
        r.state_id("m.room.member", &r.bob.user_id).await,
        renamed_id,
        "the fork's member event is the room's state"
    );
    let members = r
        .alice
        .get(&format!("/rooms/{}/joined_members", enc(&r.room_id)))
        .await;
    assert_eq!(
        members.body["joined"][&r.bob.user_id]["display_name"], "Bob on a fork",
        "{}",
        members.body
    );
    assert!(r.read(&said).await.is_some(), "Alice's message stays");
}

#[tokio::test]
async fn the_same_pdu_in_transactions_sent_at_once_is_stored_once_and_writing_goes_on() {
    let r = room().await;
    let b = Identity::of(&r.b);
    for round in 0..5 {
        let mut pdu = r
            .forge(
                "m.room.message",
                None,
                text(&format!("twice {round}")),
                None,
            )
            .await;
        let id = b.sign_event(&mut pdu, DEFAULT);
        let (one, two, three) = tokio::join!(
            r.send(vec![pdu.clone()]),
            r.send(vec![pdu.clone()]),
            r.send(vec![pdu]),
        );
        for reply in [one, two, three] {
            assert_eq!(reply.status, 200, "{}", reply.body);
            assert_eq!(reply.body["pdus"][&id], json!({}), "{}", reply.body);
        }
        assert!(r.read(&id).await.is_some(), "round {round}");
    }
    // Each stored once, and the server still stores what comes next.
    let said = r.alice.send_text(&r.room_id, "after the doubles").await;
    assert!(r.read(&said).await.is_some());
    let events = r.newest_events(50).await;
    let bodies: Vec<&str> = events
        .iter()
        .filter_map(|e| e["content"]["body"].as_str())
        .filter(|b| b.starts_with("twice"))
        .collect();
    assert_eq!(bodies.len(), 5, "{bodies:?}");
}

#[tokio::test]
async fn a_badly_signed_pdu_and_one_that_fails_the_auth_rules_are_refused_and_never_served() {
    let r = room().await;

    // Claims B's key, signed with another.
    let forger = Identity::made_up(&r.b.server_name);
    let mut forged = r.forge("m.room.message", None, text("forged"), None).await;
    let forged_id = forger.sign_event(&mut forged, DEFAULT);
    let key_id = Identity::of(&r.b).key_id.clone();
    let sig = forged["signatures"][&r.b.server_name]["ed25519:madeup"].clone();
    forged["signatures"] = json!({ &r.b.server_name: { key_id: sig } });
    let reply = r.send(vec![forged]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.body["pdus"][&forged_id]["error"].is_string(),
        "{}",
        reply.body
    );
    assert!(r.read(&forged_id).await.is_none());

    // Bob (power 0) gives himself power 100: the auth rules refuse it.
    let levels = r
        .alice
        .get(&format!(
            "/rooms/{}/state/m.room.power_levels/",
            enc(&r.room_id)
        ))
        .await
        .body;
    let mut grab = levels.clone();
    grab["users"][&r.bob.user_id] = json!(100);
    let mut grab = r.forge("m.room.power_levels", Some(""), grab, None).await;
    let grab_id = Identity::of(&r.b).sign_event(&mut grab, DEFAULT);
    let reply = r.send(vec![grab]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.body["pdus"][&grab_id]["error"].is_string(),
        "{}",
        reply.body
    );
    assert!(r.read(&grab_id).await.is_none());
    let after = r
        .alice
        .get(&format!(
            "/rooms/{}/state/m.room.power_levels/",
            enc(&r.room_id)
        ))
        .await
        .body;
    assert_eq!(after, levels, "the room's power levels did not change");
}

#[tokio::test]
async fn a_pdu_allowed_only_by_the_state_before_it_is_soft_failed() {
    let r = room().await;
    let join = r.state_id("m.room.member", &r.bob.user_id).await;
    // Alice bans Bob on A; then B sends a message built on Bob's join, from before the ban.
    let banned = r
        .alice
        .post(
            &format!("/rooms/{}/ban", enc(&r.room_id)),
            json!({"user_id": r.bob.user_id}),
        )
        .await;
    assert_eq!(banned.status, 200, "{}", banned.body);
    let mut late = r
        .forge(
            "m.room.message",
            None,
            text("from before the ban"),
            Some(join.clone()),
        )
        .await;
    late["auth_events"] = json!([r.state_id("m.room.power_levels", "").await, join,]);
    let late_id = Identity::of(&r.b).sign_event(&mut late, DEFAULT);
    let reply = r.send(vec![late]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // Soft-failed: not an error to the sender, never shown to the room.
    assert_eq!(reply.body["pdus"][&late_id], json!({}), "{}", reply.body);
    assert!(r.read(&late_id).await.is_none());
}

#[tokio::test]
async fn oversized_and_garbage_transactions_get_matrix_errors_and_no_5xx() {
    let r = room().await;
    let b = Identity::of(&r.b);
    let mut first = r
        .forge("m.room.message", None, text("one of 51"), None)
        .await;
    let first_id = b.sign_event(&mut first, DEFAULT);
    let mut pdus = vec![first];
    for i in 1..51 {
        let mut p = r
            .forge("m.room.message", None, text(&format!("#{i}")), None)
            .await;
        b.sign_event(&mut p, DEFAULT);
        pdus.push(p);
    }
    let reply = r.send(pdus).await;
    assert_eq!(reply.status, 413, "{}", reply.body);
    assert_eq!(reply.body["errcode"], "M_TOO_LARGE");
    assert!(
        r.read(&first_id).await.is_none(),
        "nothing of it was stored"
    );

    let garbage = vec![
        json!(1),
        json!("x"),
        json!({}),
        json!({"room_id": r.room_id}),
        json!({"room_id": "!unknown:nowhere.example", "type": "m.room.message"}),
        json!({"room_id": r.room_id, "sender": "not a user", "type": "m.room.message",
               "prev_events": "no", "auth_events": [], "depth": -1, "content": []}),
    ];
    let reply = r.send(garbage).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    for (_, outcome) in reply.body["pdus"].as_object().into_iter().flatten() {
        assert!(outcome["error"].is_string(), "{}", reply.body);
    }

    // A body that is not a transaction at all.
    let reply =
        r.a.signed_put(&b, "/_matrix/federation/v1/send/bad", &json!([1, 2]))
            .await;
    assert!(
        reply.status.is_client_error(),
        "{} {}",
        reply.status,
        reply.body
    );
    assert!(reply.body["errcode"].is_string());
}

#[tokio::test]
async fn a_server_the_rooms_acl_denies_is_refused_its_pdus_and_the_rooms_history() {
    let r = room().await;
    let b = Identity::of(&r.b);
    let mut before = r
        .forge("m.room.message", None, text("before the acl"), None)
        .await;
    let before_id = b.sign_event(&mut before, DEFAULT);
    assert_eq!(
        r.send(vec![before]).await.body["pdus"][&before_id],
        json!({})
    );

    // Both servers are 127.0.0.1 here, and ACLs compare names without their port: the ACL
    // denies B by allowing only a name A is not asked by.
    let acl = r
        .alice
        .put(
            &format!("/rooms/{}/state/m.room.server_acl/", enc(&r.room_id)),
            json!({"allow": ["other.example"], "deny": [], "allow_ip_literals": true}),
        )
        .await;
    assert_eq!(acl.status, 200, "{}", acl.body);

    let mut after = r
        .forge("m.room.message", None, text("after the acl"), None)
        .await;
    let after_id = b.sign_event(&mut after, DEFAULT);
    let reply = r.send(vec![after]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let error = reply.body["pdus"][&after_id]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.contains("ACL"), "{}", reply.body);
    assert!(r.read(&after_id).await.is_none());

    let history =
        r.a.signed_get(
            &b,
            &format!("/_matrix/federation/v1/event/{}", enc(&before_id)),
        )
        .await;
    assert_eq!(history.status, 403, "{}", history.body);
    assert_eq!(history.body["errcode"], "M_FORBIDDEN");
}

#[tokio::test]
async fn a_join_or_an_invite_in_a_room_version_the_other_server_lacks_is_incompatible() {
    let r = room().await;
    let b = Identity::of(&r.b);
    let carol = format!("@carol:{}", r.b.server_name);
    let make_join = |versions: &str| {
        format!(
            "/_matrix/federation/v1/make_join/{}/{}?{versions}",
            enc(&r.room_id),
            enc(&carol)
        )
    };
    // A server that names only versions the room is not in, or none (the spec's default is
    // version 1), cannot join it.
    for versions in ["ver=1&ver=2", ""] {
        r.a.signed_get(&b, &make_join(versions))
            .await
            .err(400, "M_INCOMPATIBLE_ROOM_VERSION");
    }
    let template =
        r.a.signed_get(&b, &make_join(&format!("ver=1&ver={}", DEFAULT.id)))
            .await
            .ok();
    assert_eq!(template["room_version"], DEFAULT.id, "{template}");

    // An invite of Alice to a room of version 1 on B: A does not take it.
    let event = json!({
        "type": "m.room.member", "state_key": r.alice.user_id, "sender": r.bob.user_id,
        "room_id": format!("!old:{}", r.b.server_name), "content": {"membership": "invite"},
        "origin_server_ts": 1, "depth": 5, "prev_events": [], "auth_events": [],
    });
    let uri = format!(
        "/_matrix/federation/v2/invite/{}/{}",
        enc(&format!("!old:{}", r.b.server_name)),
        enc("$old-invite")
    );
    let body = json!({"room_version": "1", "event": event, "invite_room_state": []});
    r.a.signed_put(&b, &uri, &body)
        .await
        .err(400, "M_INCOMPATIBLE_ROOM_VERSION");
    let sync = r.alice.sync(None, 0).await;
    assert!(
        sync["rooms"]["invite"]
            .as_object()
            .is_none_or(|i| i.is_empty()),
        "{sync}"
    );
}
