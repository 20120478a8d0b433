//! The harness's own tests: it holds plugins to the host's limits.
use serde_json::json;

use super::*;
use crate::timers::MAX_TIMERS;
use crate::types::Error;
use crate::{kv, timers, Plugin};

/// Writes as many keys as its timer's payload says, all in the timer's call.
struct Writer;

impl Plugin for Writer {
    fn init(_config: &crate::Config) -> Result<Self, Error> {
        Ok(Writer)
    }

    fn on_timer(&mut self, key: &str, payload: &str) -> Result<(), Error> {
        let n: usize = payload.parse().unwrap_or(0);
        for i in 0..n {
            kv::set(&format!("{key}/{i:05}"), b"v")?;
        }
        Ok(())
    }
}

fn refused_as_a_limit(r: Result<(), Error>, words: &str) {
    let e = r.unwrap_err();
    assert!(e.is("M_RESOURCE_LIMIT_EXCEEDED"), "{e:?}");
    assert!(e.message.contains(words), "{}", e.message);
}

#[test]
fn one_call_writes_at_most_the_hosts_keys_and_a_refused_call_leaves_none() {
    let mut h = Harness::<Writer>::new(json!({})).unwrap();
    let most = kv::MAX_WRITES_PER_CALL;
    timers::set_timer("a", 0, &most.to_string()).unwrap();
    timers::set_timer("b", 1, &(most + 1).to_string()).unwrap();
    assert_eq!(h.advance(0).unwrap(), 1);
    assert_eq!(h.kv_keys().len(), most);
    refused_as_a_limit(h.advance(1).map(drop), "one call writes at most 10000 keys");
    assert_eq!(
        h.kv_keys().len(),
        most,
        "the refused call's writes are dropped"
    );
    // Writes made by the test itself are no call's.
    for i in 0..=most {
        kv::set(&format!("setup/{i}"), b"v").unwrap();
    }
}

#[test]
fn the_store_refuses_a_write_past_its_quota_but_not_one_that_shrinks_it() {
    let h = Harness::<Bare>::new(json!({})).unwrap();
    assert_eq!(h.kv_bytes(), 0);
    h.set_kv_quota(10);
    kv::set("ab", b"12345678").unwrap();
    assert_eq!(h.kv_bytes(), 10);
    refused_as_a_limit(
        kv::set("c", b""),
        "the plugin's store would hold 11 bytes; its quota is 10",
    );
    refused_as_a_limit(kv::set("ab", b"123456789"), "would hold 11 bytes");
    kv::set("ab", b"1234567").unwrap();
    assert!(kv::compare_and_swap("ab", Some(b"1234567"), Some(b"12345678")).unwrap());
    h.set_kv_quota(5);
    kv::set("ab", b"1").unwrap();
    assert!(kv::delete("ab").unwrap());
    assert_eq!(h.kv_bytes(), 0);
    assert_eq!(h.kv_keys().len(), 0);
}

#[test]
fn a_plugin_has_at_most_the_hosts_timers() {
    let _h = Harness::<Bare>::new(json!({})).unwrap();
    for i in 0..MAX_TIMERS {
        timers::set_timer(&format!("t{i}"), 1000, "").unwrap();
    }
    refused_as_a_limit(
        timers::set_timer("one more", 1000, ""),
        "a plugin has at most 10000 timers",
    );
    // Setting one again replaces it.
    timers::set_timer("t0", 5, "").unwrap();
    assert!(timers::cancel_timer("t0"));
    timers::set_timer("one more", 1000, "").unwrap();
}

#[test]
fn the_fake_rooms_say_who_may_read_them_and_see_their_events_as_the_server_does() {
    use crate::homeserver::{access_to_rooms, is_server_admin, room_access, visible_events};
    let (alice, carol) = ("@alice:test", "@carol:test");
    let mut h = Harness::<Bare>::new(json!({})).unwrap();
    let room = h.room(&[alice, "@bot:test"]);
    let one = h.message(&room, alice, "one").unwrap().event_id;
    h.set_state(
        &room,
        "m.room.history_visibility",
        "",
        json!({"history_visibility": "joined"}),
    );
    let two = h.message(&room, alice, "two").unwrap().event_id;
    h.set_state(&room, "m.room.member", carol, json!({"membership": "join"}));
    let three = h.message(&room, alice, "three").unwrap().event_id;
    let all = [one.clone(), two.clone(), three.clone()];
    let carols = room_access(carol, &room).unwrap();
    assert!(carols.joined && carols.readable && !carols.whole_history);
    assert_eq!(
        visible_events(carol, &all).unwrap(),
        [one.clone(), three.clone()],
        "shared before, joined-only after"
    );
    assert!(room_access(alice, &room).unwrap().whole_history);

    h.set_state(
        &room,
        "m.room.member",
        carol,
        json!({"membership": "leave"}),
    );
    let four = h.message(&room, alice, "four").unwrap().event_id;
    let gone = room_access(carol, &room).unwrap();
    assert!(!gone.joined && !gone.readable && !gone.whole_history);
    assert_eq!(
        visible_events(carol, &[three.clone(), four]).unwrap(),
        [three],
        "what came before the leave, nothing after"
    );
    let nobody = access_to_rooms("@eve:test", &[room.clone(), "!nowhere:test".into()]).unwrap();
    assert!(nobody.iter().all(|a| !a.readable));

    assert!(!is_server_admin(alice).unwrap());
    h.set_server_admin(alice, true);
    assert!(is_server_admin(alice).unwrap());
}

/// Its first timer cancels another and sets a new one in the same call.
struct Shuffler;

impl Plugin for Shuffler {
    fn init(_config: &crate::Config) -> Result<Self, Error> {
        Ok(Shuffler)
    }

    fn on_timer(&mut self, key: &str, _payload: &str) -> Result<(), Error> {
        if key == "first" {
            timers::cancel_timer("t0");
            timers::set_timer("new", 1000, "")?;
        }
        Ok(())
    }
}

#[test]
fn a_timer_cancelled_in_a_call_counts_until_the_call_ends_as_at_the_host() {
    let mut h = Harness::<Shuffler>::new(json!({})).unwrap();
    timers::set_timer("first", 0, "").unwrap();
    for i in 1..MAX_TIMERS {
        timers::set_timer(&format!("t{}", i - 1), 1000, "").unwrap();
    }
    refused_as_a_limit(h.advance(0).map(drop), "at most 10000 timers");
    assert_eq!(
        h.timers().len(),
        MAX_TIMERS,
        "t0 is back with the failed call"
    );
}

/// Answers each to-device message with one to its sender's devices, from the device it came
/// to, under a txn id of the message's own (so a redelivery sends nothing new).
struct Answerer;

impl Plugin for Answerer {
    fn init(_config: &crate::Config) -> Result<Self, Error> {
        Ok(Answerer)
    }

    fn on_to_device(&mut self, m: &ToDevice) -> Result<(), Error> {
        let txn = m.content["n"].to_string();
        let messages = json!({ m.sender.clone(): { "*": { "re": m.content["n"] } } });
        crate::e2ee::send_to_device(
            Some(&m.to_user_id),
            &m.to_device_id,
            "m.answer",
            &txn,
            &messages,
        )
    }
}

#[test]
fn the_fake_keeps_devices_and_keys_and_records_to_device_messages_once_per_txn_id() {
    use crate::e2ee;
    let mut h = Harness::<Answerer>::new(json!({})).unwrap();
    let me = h.sender();
    assert!(e2ee::create_device(None, "DEV", Some("bot")).unwrap());
    assert!(
        !e2ee::create_device(None, "DEV", None).unwrap(),
        "made once"
    );
    let keys = json!({"one_time_keys": {"signed_curve25519:A": {"key": "a"}},
                      "fallback_keys": {"signed_curve25519:F": {"key": "f"}}});
    let counts = e2ee::upload_keys(None, "DEV", &keys).unwrap();
    assert_eq!(counts["one_time_key_counts"]["signed_curve25519"], 1);
    let e = e2ee::upload_keys(None, "NODEV", &keys).unwrap_err();
    assert!(e.is("M_UNKNOWN_DEVICE"), "{e:?}");
    let claim = json!({"one_time_keys": {me.clone(): {"DEV": "signed_curve25519"}}});
    let first = e2ee::claim_keys(None, &claim).unwrap();
    assert!(first["one_time_keys"][&me]["DEV"]["signed_curve25519:A"].is_object());
    let then = e2ee::claim_keys(None, &claim).unwrap();
    assert!(then["one_time_keys"][&me]["DEV"]["signed_curve25519:F"].is_object());

    let message = ToDevice {
        sender: "@alice:example.org".into(),
        event_type: "m.test".into(),
        content: json!({"n": 1}),
        to_user_id: me.clone(),
        to_device_id: "DEV".into(),
    };
    h.to_device(vec![message.clone()]).unwrap();
    h.to_device(vec![message]).unwrap();
    let sent = h.sent_to_device();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        (sent[0].to_user_id.as_str(), sent[0].to_device_id.as_str()),
        ("@alice:example.org", "*")
    );
    assert_eq!(sent[0].content, json!({"re": 1}));
    assert_eq!(h.devices(), [(me, "DEV".to_string())]);
}
