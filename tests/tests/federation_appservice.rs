//! An HTTP application service (a bridge) on Plugboard meeting another server's users: its
//! virtual user is invited to a room of the peer (Synapse, or a second Plugboard), hears the
//! invite, joins through the inviter and talks there; the peer's user, in a room of the
//! bridge's on Plugboard, reaches the bridge too; and so does a peer user its namespace names,
//! in a room where the bridge has no one.

use plugboard_tests::appservice::{register_user, Recorder};
use plugboard_tests::federation::Peer;
use plugboard_tests::reading::wait_member;
use plugboard_tests::{against_both, enc, wait_until, Client, TestServer};
use serde_json::{json, Value};

against_both!(a_bridges_virtual_user_talks_with_the_peers_user_in_a_room_on_either_server);

const HS_TOKEN: &str = "hs_bridge_federation";
const AS_TOKEN: &str = "as_bridge_federation";

/// A federating server with the bridge registered at `url`: its users are `@bridge_…`, and
/// it watches (not exclusively) the users of the server `peer` whose names start with `bob`.
async fn server_with_bridge(url: &str, peer: &str) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bridge.yaml");
    let watched = format!("@bob.*:{}", regex_escape(peer));
    std::fs::write(
        &path,
        format!(
            "id: bridge\nurl: {url}\nas_token: {AS_TOKEN}\nhs_token: {HS_TOKEN}\n\
             sender_localpart: bridgebot\nnamespaces:\n  users:\n    - regex: '@bridge_.*'\n      exclusive: true\n\
             \x20   - regex: '{watched}'\n      exclusive: false\n"
        ),
    )
    .unwrap();
    let server = TestServer::start_federating_with(|c| {
        c.appservice_config_files = vec![path.clone()];
        c.appservice_delivery.retry_base_ms = 20;
        c.appservice_delivery.retry_max_ms = 200;
    })
    .await;
    (server, dir)
}

/// The first event the bridge accepted that `pick` chooses, once it has.
async fn bridge_got(recorder: &Recorder, what: &str, pick: impl Fn(&Value) -> bool) -> Value {
    recorder
        .wait_for(what, |r| r.accepted_events().iter().any(&pick))
        .await;
    recorder
        .accepted_events()
        .into_iter()
        .find(|e| pick(e))
        .unwrap_or_default()
}

/// `text` with the regex metacharacters a server name can hold escaped.
fn regex_escape(text: &str) -> String {
    text.replace('.', "\\.")
}

fn is_message(e: &Value, room_id: &str, body: &str) -> bool {
    e["type"] == "m.room.message" && e["room_id"] == room_id && e["content"]["body"] == body
}

async fn a_bridges_virtual_user_talks_with_the_peers_user_in_a_room_on_either_server(peer: Peer) {
    let recorder = Recorder::new(HS_TOKEN);
    let url = recorder.start().await;
    let (plugboard, _dir) = server_with_bridge(&url, peer.server_name()).await;
    let mut service = plugboard.client();
    service.token = Some(AS_TOKEN.to_string());
    register_user(&service, "bridge_alice").await;
    let alice = format!("@bridge_alice:{}", plugboard.server_name);
    let as_alice = |path: &str| {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{path}{sep}user_id={}", enc(&alice))
    };
    let bob = peer.user("bob").await;

    // A room of the peer: the bridge hears the invite of its user, with the room's name.
    let far = bob
        .create_room(json!({"preset": "private_chat", "name": "Over there"}))
        .await;
    let invited = bob.invite(&far, &alice).await;
    assert_eq!(invited.status, 200, "{}\n{}", invited.body, peer.log_tail());
    let invite = bridge_got(&recorder, "the invite", |e| {
        e["type"] == "m.room.member"
            && e["room_id"] == far.as_str()
            && e["state_key"] == alice.as_str()
            && e["content"]["membership"] == "invite"
    })
    .await;
    assert_eq!(invite["sender"], bob.user_id.as_str(), "{invite}");
    let state = invite["unsigned"]["invite_room_state"].as_array().cloned();
    assert!(
        state
            .unwrap_or_default()
            .iter()
            .any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "Over there"),
        "{invite}"
    );

    // The bridge joins as its user (no via: the inviter's server is used) and talks.
    let joined = service
        .post(&as_alice(&format!("/join/{}", enc(&far))), json!({}))
        .await;
    assert_eq!(joined.status, 200, "{}\n{}", joined.body, peer.log_tail());
    wait_member(&bob, &far, &alice).await;
    bob.send_text(&far, "hello bridge").await;
    bridge_got(&recorder, "bob's message", |e| {
        is_message(e, &far, "hello bridge")
    })
    .await;
    let sent = service
        .put(
            &as_alice(&format!("/rooms/{}/send/m.room.message/t1", enc(&far))),
            json!({"msgtype": "m.text", "body": "hello from the bridge"}),
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    wait_for_text(&bob, &far, "hello from the bridge").await;

    // A room of the bridge's user on Plugboard: the peer's user joins and is heard.
    let near = service
        .post(
            &as_alice("/createRoom"),
            json!({"preset": "public_chat", "name": "Over here"}),
        )
        .await
        .ok()["room_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let joined = bob.join_via(&near, &plugboard.server_name).await;
    assert_eq!(joined.status, 200, "{}\n{}", joined.body, peer.log_tail());
    bob.send_text(&near, "hello over here").await;
    bridge_got(&recorder, "bob's message in the bridge's room", |e| {
        is_message(e, &near, "hello over here")
    })
    .await;

    // A room with none of the bridge's users: Bob, a user of the peer its namespace names,
    // is heard there all the same.
    let carol = plugboard.register("carol").await;
    let elsewhere = carol
        .create_room(json!({"preset": "public_chat", "name": "Elsewhere"}))
        .await;
    let joined = bob.join_via(&elsewhere, &plugboard.server_name).await;
    assert_eq!(joined.status, 200, "{}\n{}", joined.body, peer.log_tail());
    carol.send_text(&elsewhere, "not for the bridge").await;
    bob.send_text(&elsewhere, "bob elsewhere").await;
    bridge_got(
        &recorder,
        "bob's message where the bridge has no one",
        |e| is_message(e, &elsewhere, "bob elsewhere"),
    )
    .await;
    assert!(
        !recorder
            .accepted_events()
            .iter()
            .any(|e| is_message(e, &elsewhere, "not for the bridge")),
        "the bridge got carol's message in a room it has no one in"
    );
}

/// Waits until `reader` reads a message `body` in `room_id`.
async fn wait_for_text(reader: &Client, room_id: &str, body: &str) {
    wait_until(&format!("{body:?} in {room_id}"), async || {
        let page = reader
            .get(&format!("/rooms/{}/messages?dir=b&limit=50", enc(room_id)))
            .await;
        page.body["chunk"]
            .as_array()
            .is_some_and(|c| c.iter().any(|e| e["content"]["body"] == body))
    })
    .await;
}
