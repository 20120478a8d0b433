//! What crosses between servers beside a room's events, against Synapse 1.163 and a second
//! Plugboard: typing notices, read receipts and to-device messages (the carrier of an
//! encrypted room's keys), each way, as the other side's clients read them in `/sync`.
//! Presence, device-list and cross-signing updates are in `federation_rooms` and
//! `federation_queries`.

use std::time::Instant;

use plugboard_tests::federation::{room_joined_by_alias, Peer};
use plugboard_tests::reading::{wait_event, wait_member, ACROSS};
use plugboard_tests::{against_both, enc, Client, TestServer};
use serde_json::{json, Value};

against_both!(typing_receipts_and_to_device_messages_cross_both_ways);

/// Where `reader`'s next incremental sync starts.
async fn sync_token(reader: &Client) -> String {
    reader.sync(None, 0).await["next_batch"]
        .as_str()
        .expect("next_batch")
        .to_string()
}

/// Syncs `reader` on from `since` until a response passes `check` (30 s at most).
async fn wait_sync(
    reader: &Client,
    since: &mut String,
    what: &str,
    peer: &Peer,
    check: impl Fn(&Value) -> bool,
) {
    let deadline = Instant::now() + ACROSS;
    loop {
        let sync = reader.sync(Some(since), 1000).await;
        if let Some(next) = sync["next_batch"].as_str() {
            *since = next.to_string();
        }
        if check(&sync) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never reached {}; the last sync: {sync}\n{}",
            reader.user_id,
            peer.log_tail()
        );
    }
}

/// The room's ephemeral events of type `kind` in a sync response.
fn ephemeral<'a>(sync: &'a Value, room_id: &str, kind: &str) -> Vec<&'a Value> {
    sync["rooms"]["join"][room_id]["ephemeral"]["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["type"] == kind)
        .collect()
}

async fn typing_receipts_and_to_device_messages_cross_both_ways(peer: Peer) {
    let plugboard = TestServer::start_federating().await;
    let alice = plugboard.register("alice").await;
    let bob = peer.user("bob").await;
    let room_id = room_joined_by_alias(&alice, &plugboard.server_name, "edus", &bob, || {
        peer.log_tail()
    })
    .await;
    wait_member(&bob, &room_id, &alice.user_id).await;
    let said = alice.send_text(&room_id, "read me").await;
    let answered = bob.send_text(&room_id, "and me").await;

    for (from, to, read) in [(&bob, &alice, &said), (&alice, &bob, &answered)] {
        let mut since = sync_token(to).await;

        // Typing.
        let typing = from
            .put(
                &format!("/rooms/{}/typing/{}", enc(&room_id), enc(&from.user_id)),
                json!({"typing": true, "timeout": 30_000}),
            )
            .await;
        assert_eq!(typing.status, 200, "{}", typing.body);
        wait_sync(to, &mut since, "typing", &peer, |sync| {
            ephemeral(sync, &room_id, "m.typing").iter().any(|e| {
                e["content"]["user_ids"]
                    .as_array()
                    .is_some_and(|u| u.iter().any(|u| u == from.user_id.as_str()))
            })
        })
        .await;

        // A read receipt for an event of the other side, which must exist there: wait for it.
        let event = wait_event(from, &room_id, read, || peer.log_tail()).await;
        assert_eq!(event["event_id"], read.as_str());
        let receipt = from
            .post(
                &format!("/rooms/{}/receipt/m.read/{}", enc(&room_id), enc(read)),
                json!({}),
            )
            .await;
        assert_eq!(receipt.status, 200, "{}", receipt.body);
        wait_sync(to, &mut since, "the read receipt", &peer, |sync| {
            ephemeral(sync, &room_id, "m.receipt")
                .iter()
                .any(|e| e["content"][read.as_str()]["m.read"][&from.user_id].is_object())
        })
        .await;

        // A to-device message to the other side's device, with its content intact.
        let content = json!({"n": 7, "text": "ping ✓", "nested": {"list": [1, 2]}});
        let sent = from
            .put(
                &format!("/sendToDevice/org.plugboard.test.ping/{}", enc(read)),
                json!({"messages": {to.user_id.clone(): {to.device_id.clone(): content}}}),
            )
            .await;
        assert_eq!(sent.status, 200, "{}", sent.body);
        wait_sync(to, &mut since, "the to-device message", &peer, |sync| {
            sync["to_device"]["events"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| {
                    e["type"] == "org.plugboard.test.ping"
                        && e["sender"] == from.user_id.as_str()
                        && e["content"] == content
                })
        })
        .await;
    }
}
