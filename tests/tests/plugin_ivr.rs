//! The IVR against a real server: a user calls `@ivr` in a direct room with an
//! `m.call.invite` and sees its `m.call.answer` in /sync, walks the menu with key-press
//! events and typed digits (submenus, a `say`, a transfer that invites the target, voicemail
//! that reaches the mailbox room with caller and time), is hung up after the time-outs; an
//! expired invite, duplicates, bad input, two calls at once, and a restart in the middle of a
//! call (a graceful stop, and SIGKILLs of a server process), after which the next key carries
//! on in the menu the call was in.

use plugboard_tests::plugins::{self, admin, install_with, wait_for_member, wait_until};
use plugboard_tests::{enc, timeline, Client, ServerProcess, TestServer};
use serde_json::{json, Value};

const BINARY: &str = env!("CARGO_BIN_EXE_plugboard-test-server");
const IVR: &str = "@ivr:localhost";

/// A Chrome offer with audio, video and a data channel, shortened to what matters.
const OFFER: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0 1 2\r\n\
a=msid-semantic: WMS stream\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 9 0 8 126\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:EsAw\r\n\
a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 DA:39:A3:EE:5E:6B:4B:0D:32:55:BF:EF:95:60:18:90:AF:D8:07:09:A1:2B:3C:4D:5E:6F:70:81:92:A3:B4:C5\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=sendrecv\r\n\
a=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:126 telephone-event/8000\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
c=IN IP4 0.0.0.0\r\n\
a=mid:1\r\n\
a=sendrecv\r\n\
a=rtcp-mux\r\n\
a=rtpmap:96 VP8/90000\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n\
c=IN IP4 0.0.0.0\r\n\
a=mid:2\r\n\
a=sctp-port:5000\r\n";

/// The admin's configuration for the test: the menus, a mailbox by alias and the given
/// time-out.
fn config(timeout_ms: u64, repeats: u32) -> String {
    format!(
        r##"
timeout_ms = {timeout_ms}
repeats = {repeats}
mailbox_room = "#ivr-mailbox:localhost"

[menus.main]
prompt = "Main menu. 1 hours, 2 sales, 3 message, 4 operator, 0 goodbye."
[menus.main.options]
1 = "say We are open 9 to 5."
2 = "submenu sales"
3 = "voicemail"
4 = "transfer @bob"
0 = "hangup"

[menus.sales]
prompt = "Sales. 1 news, * back."
prompt_audio = "mxc://localhost/salesprompt"
[menus.sales.options]
1 = "say Sales are up."
"*" = "submenu main"
"##
    )
}

/// Installs the IVR with [`config`] through `admin`, and sees it running.
async fn install_ivr(admin: &Client, timeout_ms: u64, repeats: u32) {
    let built = plugins::build("plugboard-plugin-ivr", "plugins/ivr", &[]);
    let view = install_with(
        admin,
        &built.bytes(),
        &built.manifest_text(),
        Some(&config(timeout_ms, repeats)),
        json!("live"),
    )
    .await
    .ok();
    assert_eq!(view["state"], "running", "{view}");
}

async fn start_ivr(timeout_ms: u64, repeats: u32) -> TestServer {
    let server = TestServer::start().await;
    install_ivr(
        &admin(&server.base, server.data_dir.path()),
        timeout_ms,
        repeats,
    )
    .await;
    server
}

/// A direct room of `c` with the IVR joined.
async fn dm_with_ivr(c: &Client) -> String {
    let room = c
        .create_room(json!({"invite": [IVR], "is_direct": true, "preset": "trusted_private_chat"}))
        .await;
    wait_for_member(c, &room, IVR).await;
    room
}

/// The mailbox room, `#ivr-mailbox`, with the IVR invited (it joins on its own).
async fn mailbox(staff: &Client) -> String {
    let room = staff
        .create_room(json!({"room_alias_name": "ivr-mailbox", "invite": [IVR]}))
        .await;
    wait_for_member(staff, &room, IVR).await;
    room
}

fn txn() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "ivr{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Sends any event as `c`; answers its id.
async fn send(c: &Client, room: &str, event_type: &str, content: Value) -> String {
    c.put(
        &format!("/rooms/{}/send/{event_type}/{}", enc(room), txn()),
        content,
    )
    .await
    .ok()["event_id"]
        .as_str()
        .expect("event_id")
        .to_string()
}

fn invite(call_id: &str, party: &str, lifetime: u64) -> Value {
    json!({"call_id": call_id, "party_id": party, "version": "1", "lifetime": lifetime,
           "offer": {"type": "offer", "sdp": OFFER}})
}

async fn press(c: &Client, room: &str, call_id: &str, party: &str, digits: &str) {
    send(
        c,
        room,
        "org.plugboard.call.dtmf",
        json!({"call_id": call_id, "party_id": party, "digits": digits, "version": "1"}),
    )
    .await;
}

/// Waits until the IVR's events in `room` satisfy `done`; answers them.
async fn wait_for_ivr(
    reader: &Client,
    room: &str,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let mut seen = Vec::new();
    wait_until(what, async || {
        seen = plugins::events_by(reader, room, IVR).await;
        done(&seen)
    })
    .await;
    seen
}

fn bodies(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .filter_map(|e| e["content"]["body"].as_str().map(str::to_string))
        .collect()
}

fn of_type<'a>(events: &'a [Value], t: &str, call_id: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["type"] == t && e["content"]["call_id"] == call_id)
        .collect()
}

/// Whether `body` was said since the IVR's `n`-th message.
fn said_after(events: &[Value], n: usize, body: &str) -> bool {
    bodies(events).iter().skip(n).any(|b| b == body)
}

const MAIN: &str = "Main menu. 1 hours, 2 sales, 3 message, 4 operator, 0 goodbye.";
const SALES: &str = "Sales. 1 news, * back.";

/// Asks the IVR for `!ivr` and answers its status, the first one said since its `n`-th
/// message.
async fn status_after(c: &Client, room: &str, n: usize) -> String {
    c.send_text(room, "!ivr").await;
    let said = wait_for_ivr(c, room, "the status", |e| {
        bodies(e)
            .iter()
            .skip(n)
            .any(|b| b.starts_with("Calls in progress"))
    })
    .await;
    bodies(&said)
        .into_iter()
        .skip(n)
        .find(|b| b.starts_with("Calls in progress"))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_is_answered_walks_the_menu_survives_a_restart_and_leaves_a_voicemail() {
    let server = start_ivr(60_000, 2).await;
    let staff = server.register("staff").await;
    let mailbox_room = mailbox(&staff).await;
    let alice = server.register("alice").await;
    let room = dm_with_ivr(&alice).await;

    // The call, seen as a client sees it: the answer arrives through /sync.
    let since = alice.sync(None, 0).await["next_batch"]
        .as_str()
        .unwrap()
        .to_string();
    send(
        &alice,
        &room,
        "m.call.invite",
        invite("call1", "alicephone", 90_000),
    )
    .await;
    send(
        &alice,
        &room,
        "m.call.candidates",
        json!({"call_id": "call1", "party_id": "alicephone", "version": "1",
               "candidates": [{"candidate": "candidate:1 1 udp 2113937151 192.0.2.10 50000 typ host",
                               "sdpMid": "0", "sdpMLineIndex": 0}]}),
    )
    .await;
    let mut answer = Value::Null;
    let mut next = since;
    wait_until("the answer in /sync", async || {
        let s = alice.sync(Some(&next), 1000).await;
        next = s["next_batch"].as_str().unwrap_or(&next).to_string();
        if let Some(a) = timeline(&s, &room)
            .into_iter()
            .find(|e| e["type"] == "m.call.answer" && e["sender"] == IVR)
        {
            answer = a.clone();
        }
        !answer.is_null()
    })
    .await;
    let content = &answer["content"];
    assert_eq!(content["call_id"], "call1");
    assert_eq!(content["version"], "1");
    assert_eq!(content["answer"]["type"], "answer");
    let party = content["party_id"].as_str().unwrap().to_string();
    let sdp = content["answer"]["sdp"].as_str().unwrap();
    assert!(sdp.starts_with("v=0\r\no=- "), "{sdp}");
    assert!(
        sdp.contains("\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 9 0 8 126\r\n"),
        "{sdp}"
    );
    assert!(sdp.contains("\r\nm=video 0 "), "video is rejected: {sdp}");
    assert!(
        sdp.contains("\r\nm=application 0 "),
        "data is rejected: {sdp}"
    );
    assert!(sdp.contains("\r\na=group:BUNDLE 0\r\n"), "{sdp}");
    assert!(sdp.contains("\r\na=setup:active\r\n"));
    assert!(sdp.contains("\r\na=fingerprint:sha-256 "));
    assert!(!sdp.contains("a=ice-ufrag:EsAw"), "its own ICE credentials");
    let said = wait_for_ivr(&alice, &room, "the main prompt", |e| !bodies(e).is_empty()).await;
    assert_eq!(bodies(&said), [MAIN]);
    let eoc = of_type(&said, "m.call.candidates", "call1");
    assert_eq!(eoc[0]["content"]["candidates"][0]["candidate"], "");
    assert_eq!(eoc[0]["content"]["party_id"], party.as_str());

    // A duplicate of the invite (a client sending it again) is not answered twice, and an
    // expired invite not at all.
    send(
        &alice,
        &room,
        "m.call.invite",
        invite("call1", "alicephone", 90_000),
    )
    .await;
    send(
        &alice,
        &room,
        "m.call.invite",
        invite("stale", "alicephone", 0),
    )
    .await;

    // A key-press event and typed digits walk the menu.
    press(&alice, &room, "call1", "alicephone", "2").await;
    let said = wait_for_ivr(&alice, &room, "the sales prompt", |e| {
        said_after(e, 1, SALES)
    })
    .await;
    let audio = said
        .iter()
        .find(|e| e["content"]["msgtype"] == "m.audio")
        .expect("the sales prompt as audio");
    assert_eq!(audio["content"]["url"], "mxc://localhost/salesprompt");
    let n = bodies(&said).len();
    alice.send_text(&room, "1").await;
    let said = wait_for_ivr(&alice, &room, "the say", |e| {
        said_after(e, n, "Sales are up.")
    })
    .await;
    assert_eq!(of_type(&said, "m.call.answer", "call1").len(), 1);
    assert!(of_type(&said, "m.call.answer", "stale").is_empty());

    // The server restarts in the middle of the call, in the sales menu.
    let n = bodies(&said).len();
    let data = server.stop().await;
    let config = plugboard_tests::test_config(data.path());
    let server = TestServer::start_in(data, config).await;
    let mut alice_again = server.client();
    alice_again.token = alice.token.clone();
    let alice = alice_again;
    let mut staff_again = server.client();
    staff_again.token = staff.token.clone();
    let staff = staff_again;
    // `*` is an option of the sales menu: the call carries on where it was.
    press(&alice, &room, "call1", "alicephone", "*").await;
    let said = wait_for_ivr(&alice, &room, "the main prompt after the restart", |e| {
        said_after(e, n, MAIN)
    })
    .await;
    assert!(
        !bodies(&said)[n..]
            .iter()
            .any(|b| b.contains("not an option")),
        "{:?}",
        &bodies(&said)[n..]
    );

    // Voicemail: the next message goes to the mailbox with the caller and the time.
    let n = bodies(&said).len();
    press(&alice, &room, "call1", "alicephone", "3").await;
    wait_for_ivr(&alice, &room, "the voicemail prompt", |e| {
        bodies(e)[n..]
            .iter()
            .any(|b| b.starts_with("Please leave your message"))
    })
    .await;
    let left = alice.send_text(&room, "Please call me back, 42").await;
    let forwarded = wait_for_ivr(&staff, &mailbox_room, "the voicemail", |e| {
        !bodies(e).is_empty()
    })
    .await;
    let vm = &forwarded[forwarded.len() - 1]["content"];
    let body = vm["body"].as_str().unwrap();
    assert!(
        body.starts_with("Voicemail from @alice:localhost at 20"),
        "{body}"
    );
    assert!(body.ends_with("Please call me back, 42"), "{body}");
    assert_eq!(vm["org.plugboard.voicemail"]["caller"], "@alice:localhost");
    assert_eq!(vm["org.plugboard.voicemail"]["event_id"], left.as_str());
    assert_eq!(vm["org.plugboard.voicemail"]["call_id"], "call1");
    assert!(vm["org.plugboard.voicemail"]["ts"].as_u64().unwrap() > 1_600_000_000_000);
    let said = wait_for_ivr(&alice, &room, "the hang-up after the voicemail", |e| {
        !of_type(e, "m.call.hangup", "call1").is_empty()
    })
    .await;
    assert!(bodies(&said)
        .last()
        .unwrap()
        .starts_with("Thank you, your message was recorded"));
    assert_eq!(
        of_type(&said, "m.call.hangup", "call1")[0]["content"]["reason"],
        "user_hangup"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_calls_at_once_a_transfer_a_time_out_and_bad_input() {
    let server = start_ivr(3000, 1).await;
    let staff = server.register("staff").await;
    mailbox(&staff).await;
    let alice = server.register("alice").await;
    let carol = server.register("carol").await;
    let bob = server.register("bob").await;
    let alice_room = dm_with_ivr(&alice).await;
    let carol_room = dm_with_ivr(&carol).await;

    // Bad input first: none of it is answered as a call, and nothing traps.
    send(
        &alice,
        &alice_room,
        "org.plugboard.call.dtmf",
        json!({"call_id": "x", "digits": 5, "version": "1"}),
    )
    .await;
    send(
        &alice,
        &alice_room,
        "m.call.invite",
        json!({"call_id": "broken", "version": "1"}),
    )
    .await;
    let mut bad_sdp = invite("badsdp", "alicephone", 90_000);
    bad_sdp["offer"]["sdp"] = json!("this is not SDP");
    send(&alice, &alice_room, "m.call.invite", bad_sdp).await;
    send(
        &alice,
        &alice_room,
        "m.call.hangup",
        json!({"call_id": "nobody", "party_id": "p", "version": "1", "reason": "user_hangup"}),
    )
    .await;
    let said = wait_for_ivr(&alice, &alice_room, "the answers to bad input", |e| {
        of_type(e, "m.call.hangup", "badsdp").len() == 1
    })
    .await;
    let b = bodies(&said);
    assert!(
        b.iter()
            .any(|s| s.starts_with("Cannot take the call: the invite is malformed")),
        "{b:?}"
    );
    assert!(
        b.iter()
            .any(|s| s.starts_with("Cannot take the call: the offer is not valid SDP")),
        "{b:?}"
    );
    assert!(said.iter().all(|e| e["type"] != "m.call.answer"));

    // Two calls at once, each in its own place.
    send(
        &alice,
        &alice_room,
        "m.call.invite",
        invite("alice-call", "alicephone", 90_000),
    )
    .await;
    send(
        &carol,
        &carol_room,
        "m.call.invite",
        invite("carol-call", "carolpad", 90_000),
    )
    .await;
    for (c, room, call) in [
        (&alice, &alice_room, "alice-call"),
        (&carol, &carol_room, "carol-call"),
    ] {
        wait_for_ivr(c, room, "both answers", |e| {
            !of_type(e, "m.call.answer", call).is_empty() && bodies(e).iter().any(|b| b == MAIN)
        })
        .await;
    }
    press(&alice, &alice_room, "alice-call", "alicephone", "2").await;
    carol.send_text(&carol_room, "1").await;
    wait_for_ivr(&alice, &alice_room, "alice in sales", |e| {
        bodies(e).iter().any(|b| b == SALES)
    })
    .await;
    let carol_said = wait_for_ivr(&carol, &carol_room, "carol's say", |e| {
        bodies(e).iter().any(|b| b == "We are open 9 to 5.")
    })
    .await;
    assert!(
        !bodies(&carol_said).iter().any(|b| b == SALES),
        "alice's keys stay in her call"
    );

    // Alice goes back and asks for the operator: Bob is invited and the call ends.
    press(&alice, &alice_room, "alice-call", "alicephone", "*4").await;
    let said = wait_for_ivr(&alice, &alice_room, "the transfer", |e| {
        !of_type(e, "m.call.hangup", "alice-call").is_empty()
    })
    .await;
    assert!(bodies(&said)
        .iter()
        .any(|b| b.starts_with("Transferring you to @bob:localhost")));
    let invited = bob.sync(None, 0).await;
    assert!(
        invited["rooms"]["invite"].get(&alice_room).is_some(),
        "bob is invited: {invited}"
    );

    // Carol says nothing more: the prompt once again after 3 s, then the hang-up.
    let said = wait_for_ivr(&carol, &carol_room, "carol's time-out", |e| {
        !of_type(e, "m.call.hangup", "carol-call").is_empty()
    })
    .await;
    let b = bodies(&said);
    assert_eq!(b.iter().filter(|s| *s == MAIN).count(), 2, "{b:?}");
    assert_eq!(b.last().unwrap(), "No input received. Goodbye.");

    // The caller hanging up ends a call without a word from the IVR, and later keys of the
    // ended call are passed over.
    send(
        &alice,
        &alice_room,
        "m.call.invite",
        invite("again", "alicephone", 90_000),
    )
    .await;
    wait_for_ivr(&alice, &alice_room, "the answer", |e| {
        !of_type(e, "m.call.answer", "again").is_empty()
    })
    .await;
    send(&alice, &alice_room, "m.call.hangup", json!({"call_id": "again", "party_id": "alicephone", "version": "1", "reason": "user_hangup"})).await;
    press(&alice, &alice_room, "again", "alicephone", "1").await;
    alice.send_text(&alice_room, "!ivr").await;
    let said = wait_for_ivr(&alice, &alice_room, "the status", |e| {
        bodies(e).iter().any(|b| b.starts_with("Calls in progress"))
    })
    .await;
    let status = bodies(&said)
        .into_iter()
        .find(|b| b.starts_with("Calls in progress"))
        .unwrap();
    assert!(status.starts_with("Calls in progress: 0."), "{status}");
    for counted in [
        "rejected/dtmf 1",
        "rejected/malformed_call 1",
        "rejected/sdp 1",
        "ignored/unknown_call 2",
    ] {
        assert!(status.contains(counted), "{counted} in {status}");
    }
    assert!(
        !bodies(&said).iter().any(|b| b == "We are open 9 to 5."),
        "no key after the hang-up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_keeps_its_menu_across_sigkills_and_keys_sent_before_one_are_answered_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = ServerProcess::spawn(BINARY, &data).await;
    // Time-outs far off: no prompt is repeated while the server is down or restarting.
    install_ivr(&admin(&server.base, &data), 60_000, 2).await;
    let mut alice = server.client().register("alice", "password").await;
    let room = dm_with_ivr(&alice).await;
    send(
        &alice,
        &room,
        "m.call.invite",
        invite("call1", "alicephone", 90_000),
    )
    .await;
    wait_for_ivr(&alice, &room, "the answer and the main prompt", |e| {
        !of_type(e, "m.call.answer", "call1").is_empty() && bodies(e) == [MAIN]
    })
    .await;
    press(&alice, &room, "call1", "alicephone", "2").await;
    // The prompt is a notice and then its audio: a kill between the two would have the
    // audio come after the restart.
    let said = wait_for_ivr(&alice, &room, "the sales prompt and its audio", |e| {
        said_after(e, 1, SALES) && e.iter().any(|e| e["content"]["msgtype"] == "m.audio")
    })
    .await;

    // Killed once the call is in the sales menu: the call comes back from kv.
    server.kill();
    let server = ServerProcess::spawn(BINARY, &data).await;
    alice.base = server.base.clone();
    let n = bodies(&said).len();
    let status = status_after(&alice, &room, n).await;
    assert!(
        status.starts_with("Calls in progress: 1.")
            && status.contains("Your call call1 is in menu `sales`."),
        "{status}"
    );
    // `1` means something else in the main menu: this tells the two apart.
    press(&alice, &room, "call1", "alicephone", "1").await;
    let said = wait_for_ivr(&alice, &room, "the sales say after the kill", |e| {
        said_after(e, n, "Sales are up.")
    })
    .await;
    assert_eq!(bodies(&said)[n..], [status.clone(), "Sales are up.".into()]);

    // Killed as soon as a burst of keys is acknowledged, before the IVR has handled it or
    // while it does: every key is answered after the restart, in order and once.
    let n = bodies(&said).len();
    press(&alice, &room, "call1", "alicephone", &"*2".repeat(8)).await;
    server.kill();
    let server = ServerProcess::spawn(BINARY, &data).await;
    alice.base = server.base.clone();
    let prompts = [MAIN, SALES, SALES].repeat(8);
    wait_for_ivr(&alice, &room, "the burst's prompts after the kill", |e| {
        bodies(e).len() >= n + prompts.len()
    })
    .await;
    let status = status_after(&alice, &room, n + prompts.len()).await;
    assert!(
        status.contains("Your call call1 is in menu `sales`."),
        "{status}"
    );
    let said = plugins::events_by(&alice, &room, IVR).await;
    let mut expected: Vec<String> = prompts.iter().map(|p| p.to_string()).collect();
    expected.push(status);
    assert_eq!(bodies(&said)[n..], expected);
    assert_eq!(of_type(&said, "m.call.answer", "call1").len(), 1);
    assert!(of_type(&said, "m.call.hangup", "call1").is_empty());
}
