//! The MIDI logger end to end: a real server with the built plugin, MIDI events sent through
//! the client API (good ones and hostile ones), `!midi stats`, `!midi export` of all and of a
//! window, a restart in the middle of the recording, two keyboards with unrelated clocks, and
//! the web endpoint with and without a member's token. Every exported file is downloaded and
//! parsed with midly, a MIDI parser this project did not write.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use midly::{Format, MetaMessage, MidiMessage, Smf, Timing, TrackEventKind};
use plugboard_tests::plugins::{self, admin, install, room_with_bot, wait_until, Built};
use plugboard_tests::{enc, test_config, Client, TestServer, WAIT};
use serde_json::{json, Value};

const BOT: &str = "@midi:localhost";

fn midi_logger() -> Built {
    plugins::build("plugboard-plugin-midi-logger", "plugins/midi-logger", &[])
}

fn midi(note: i64, velocity: i64, state: &str, channel: i64, midi_ts: i64) -> Value {
    json!({"note": note, "velocity": velocity, "state": state, "channel": channel, "midi_ts": midi_ts})
}

/// Sends an `org.matrix.midi` event with `content` as `c`.
async fn send_midi(c: &Client, room: &str, content: Value) {
    static TXN: AtomicU64 = AtomicU64::new(0);
    let txn = format!("midi{}", TXN.fetch_add(1, Ordering::Relaxed));
    let reply = c
        .put(
            &format!("/rooms/{}/send/org.matrix.midi/{txn}", enc(room)),
            content,
        )
        .await;
    assert!(reply.body["event_id"].is_string(), "{reply:?}");
}

/// Says `command` in `room` and answers the bot's next message.
async fn ask(c: &Client, room: &str, command: &str) -> Value {
    let before = plugins::contents_by(c, room, BOT).await.len();
    c.send_text(room, command).await;
    let mut said = Vec::new();
    wait_until(&format!("the bot to answer {command}"), async || {
        said = plugins::contents_by(c, room, BOT).await;
        said.len() > before
    })
    .await;
    said[before].clone()
}

/// The bytes of a download, with `c`'s token when it has one.
async fn fetch(c: &Client, path: &str) -> (u16, Vec<u8>, Option<String>) {
    let mut req = c.http.get(c.url(path)).timeout(WAIT);
    if let Some(t) = &c.token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("request sent");
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp.bytes().await.expect("body read").to_vec();
    (status, body, content_type)
}

/// The file an `m.file` message of the bot points at, from the media repository.
async fn download(c: &Client, message: &Value) -> Vec<u8> {
    assert_eq!(message["msgtype"], "m.file", "{message}");
    assert_eq!(message["info"]["mimetype"], "audio/midi", "{message}");
    let uri = message["url"].as_str().expect("an mxc:// url");
    let (server, id) = uri
        .strip_prefix("mxc://")
        .and_then(|r| r.split_once('/'))
        .expect("an mxc:// url");
    let (status, body, content_type) = fetch(
        c,
        &format!("/_matrix/client/v1/media/download/{server}/{id}"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(content_type.as_deref(), Some("audio/midi"));
    assert_eq!(message["info"]["size"], body.len());
    body
}

/// `(tick, channel 1–16, key, velocity, on)` of a note event.
type Heard = (u64, u8, u8, u8, bool);

/// What midly reads in a file: its note events per track, after checking the header and the
/// tempo that makes a tick a millisecond.
fn parse(file: &[u8]) -> Vec<Vec<Heard>> {
    let smf = Smf::parse(file).expect("midly parses the export");
    assert_eq!(smf.header.format, Format::Parallel);
    assert_eq!(smf.header.timing, Timing::Metrical(500.into()));
    assert!(
        smf.tracks[0].iter().any(|e| matches!(
            e.kind,
            TrackEventKind::Meta(MetaMessage::Tempo(t)) if t.as_int() == 500_000
        )),
        "a tempo of 500 000 µs a quarter note in the conductor track"
    );
    smf.tracks
        .iter()
        .map(|track| {
            let mut tick = 0u64;
            let mut out = Vec::new();
            for e in track {
                tick += u64::from(e.delta.as_int());
                if let TrackEventKind::Midi { channel, message } = e.kind {
                    let ch = channel.as_int() + 1;
                    match message {
                        MidiMessage::NoteOn { key, vel } => {
                            out.push((tick, ch, key.as_int(), vel.as_int(), true))
                        }
                        MidiMessage::NoteOff { key, vel } => {
                            out.push((tick, ch, key.as_int(), vel.as_int(), false))
                        }
                        other => panic!("an unexpected message {other:?}"),
                    }
                }
            }
            out
        })
        .collect()
}

/// Played before the restart and checked by `!midi stats` then.
const FIRST: [(i64, i64, &str, i64, i64); 4] = [
    (60, 100, "on", 1, 1_000_000),
    (60, 0, "off", 1, 1_000_480),
    (64, 90, "on", 1, 1_000_500),
    (64, 20, "off", 1, 1_000_990),
];

/// Played just before the server stops, without waiting for the plugin.
const BEFORE_STOP: [(i64, i64, &str, i64, i64); 2] = [
    (36, 127, "on", 10, 1_000_500),
    (36, 0, "off", 10, 1_000_600),
];

/// Played after the restart; note 72 is left sounding.
const AFTER_RESTART: [(i64, i64, &str, i64, i64); 3] = [
    (67, 80, "on", 2, 1_002_000),
    (72, 110, "on", 16, 1_002_100),
    (67, 10, "off", 2, 1_002_250),
];

async fn play(c: &Client, room: &str, notes: &[(i64, i64, &str, i64, i64)]) {
    for &(note, velocity, state, channel, ts) in notes {
        send_midi(c, room, midi(note, velocity, state, channel, ts)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_from_before_and_after_a_restart_are_all_exported_and_bad_ones_counted() {
    let server = TestServer::start().await;
    let view = install(&admin(&server.base, server.data_dir.path()), &midi_logger()).await;
    assert_eq!(view["state"], "running", "{view}");
    let alice = server.register("alice").await;
    let room = room_with_bot(&alice, BOT).await;

    play(&alice, &room, &FIRST).await;
    for bad in [
        midi(200, 1, "on", 1, 1_000_000),
        midi(60, 300, "on", 1, 1_000_000),
        midi(60, 1, "on", 0, 1_000_000),
        midi(60, 1, "on", 17, 1_000_000),
        midi(60, 1, "held", 1, 1_000_000),
        midi(60, 1, "on", 1, -1),
        json!({"note": "C4", "velocity": 1, "state": "on", "channel": 1, "midi_ts": 1}),
        json!({"note": 60, "velocity": 1, "state": "on", "channel": 1}),
        json!({"note": 1e30, "velocity": 1, "state": "on", "channel": 1, "midi_ts": 1}),
    ] {
        send_midi(&alice, &room, bad).await;
    }
    let rejected = "Rejected 9 events (note not in 0–127: 1, velocity not in 0–127: 1, \
                    channel not in 1–16: 2, state neither on nor off: 1, midi_ts out of range: 1, \
                    malformed: 3).";
    let stats = ask(&alice, &room, "!midi stats").await;
    assert_eq!(
        stats["body"],
        format!("2 notes on 1 channel (1), lasting 0.990s (4 events recorded). {rejected}")
    );
    assert_eq!(stats["msgtype"], "m.notice");

    // The server stops right after these are sent: the plugin may not have had them yet.
    play(&alice, &room, &BEFORE_STOP).await;
    let before_stop = Instant::now();
    let dir = server.stop().await;
    let config = test_config(dir.path());
    let server = TestServer::start_in(dir, config).await;
    let mut alice = alice.clone();
    alice.base = server.base.clone();
    // Five seconds of server time between the two parts, for `last 3s` below.
    if let Some(rest) = Duration::from_secs(5).checked_sub(before_stop.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    play(&alice, &room, &AFTER_RESTART).await;

    let recent = ask(&alice, &room, "!midi export last 3s").await;
    assert_eq!(recent["filename"], "midi-last-3s.mid");
    assert_eq!(
        parse(&download(&alice, &recent).await),
        [
            vec![],
            vec![(0, 2, 67, 80, true), (250, 2, 67, 10, false)],
            vec![(100, 16, 72, 110, true), (250, 16, 72, 64, false)],
        ]
    );

    let stats = ask(&alice, &room, "!midi stats").await;
    assert_eq!(
        stats["body"],
        format!(
            "5 notes on 4 channels (1, 2, 10, 16), lasting 2.250s (9 events recorded). {rejected}"
        )
    );

    let everything = [
        vec![],
        vec![
            (0, 1, 60, 100, true),
            (480, 1, 60, 0, false),
            (500, 1, 64, 90, true),
            (990, 1, 64, 20, false),
        ],
        vec![(2000, 2, 67, 80, true), (2250, 2, 67, 10, false)],
        vec![(500, 10, 36, 127, true), (600, 10, 36, 0, false)],
        vec![(2100, 16, 72, 110, true), (2250, 16, 72, 64, false)],
    ];
    let all = ask(&alice, &room, "!midi export all").await;
    assert_eq!(all["filename"], "midi-all.mid");
    assert_eq!(
        all["body"],
        "midi-all.mid: 5 notes on 4 channels (1, 2, 10, 16), 2.250s; 1 note still sounding \
         released at the end"
    );
    assert_eq!(parse(&download(&alice, &all).await), everything);

    let ten_minutes = ask(&alice, &room, "!midi export last 10m").await;
    assert_eq!(ten_minutes["filename"], "midi-last-10m.mid");
    assert_eq!(parse(&download(&alice, &ten_minutes).await), everything);

    let unclear = ask(&alice, &room, "!midi export yesterday").await;
    assert!(
        unclear["body"]
            .as_str()
            .unwrap()
            .starts_with("Export what?"),
        "{unclear}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_endpoint_serves_a_room_to_its_members_only() {
    let server = TestServer::start().await;
    install(&admin(&server.base, server.data_dir.path()), &midi_logger()).await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = room_with_bot(&alice, BOT).await;
    play(&alice, &room, &FIRST).await;
    // Once the bot answers, the notes before the command are recorded.
    let stats = ask(&alice, &room, "!midi stats").await;
    assert!(
        stats["body"].as_str().unwrap().starts_with("2 notes"),
        "{stats}"
    );

    let path = format!("/_plugboard/plugins/midi-logger/rooms/{}.mid", enc(&room));
    let (status, body, content_type) = fetch(&alice, &path).await;
    assert_eq!(status, 200);
    assert_eq!(content_type.as_deref(), Some("audio/midi"));
    assert_eq!(
        parse(&body),
        [
            vec![],
            vec![
                (0, 1, 60, 100, true),
                (480, 1, 60, 0, false),
                (500, 1, 64, 90, true),
                (990, 1, 64, 20, false),
            ]
        ]
    );

    let errcode = |body: &[u8]| -> Value {
        serde_json::from_slice::<Value>(body).expect("a JSON error body")["errcode"].clone()
    };
    let (status, body, _) = fetch(&bob, &path).await;
    assert_eq!((status, errcode(&body)), (403, json!("M_FORBIDDEN")));
    let nobody = server.client();
    let (status, body, _) = fetch(&nobody, &path).await;
    assert_eq!((status, errcode(&body)), (401, json!("M_MISSING_TOKEN")));
    let mut forged = server.client();
    forged.token = Some("not-a-token".into());
    let (status, body, _) = fetch(&forged, &path).await;
    assert_eq!((status, errcode(&body)), (401, json!("M_UNKNOWN_TOKEN")));
    // The token in the query, as a browser link or an <audio> element carries it.
    let mut by_query = server.client();
    by_query.token = None;
    let query_path = format!(
        "{path}?access_token={}",
        enc(alice.token.as_deref().unwrap())
    );
    let (status, by_link, _) = fetch(&by_query, &query_path).await;
    assert_eq!(status, 200);
    assert_eq!(by_link, body_of(&alice, &path).await);
    let (status, body, _) =
        fetch(&alice, "/_plugboard/plugins/midi-logger/rooms/nonsense.mid").await;
    assert_eq!((status, errcode(&body)), (400, json!("M_INVALID_PARAM")));

    // Bob, once in the room, gets the same file.
    alice.invite(&room, &bob.user_id).await.ok();
    bob.join(&room).await.ok();
    let (status, for_bob, _) = fetch(&bob, &path).await;
    assert_eq!(status, 200);
    assert_eq!(for_bob, body_of(&alice, &path).await);
}

/// The `origin_server_ts` of the `org.matrix.midi` events `sender` sent to `room`, oldest
/// first.
async fn midi_stamps(c: &Client, room: &str, sender: &str) -> Vec<u64> {
    plugins::events_by(c, room, sender)
        .await
        .iter()
        .filter(|e| e["type"] == "org.matrix.midi")
        .map(|e| e["origin_server_ts"].as_u64().expect("a server timestamp"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_keyboards_with_their_own_clocks_are_exported_on_the_servers_timeline() {
    let server = TestServer::start().await;
    install(&admin(&server.base, server.data_dir.path()), &midi_logger()).await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = room_with_bot(&alice, BOT).await;
    alice.invite(&room, &bob.user_id).await.ok();
    bob.join(&room).await.ok();

    // Alice's keyboard counts from a million, Bob's from five thousand; each plays in time,
    // and Bob holds the same key on the same channel as Alice, past her release.
    send_midi(&alice, &room, midi(60, 100, "on", 1, 1_000_000)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    send_midi(&bob, &room, midi(60, 90, "on", 1, 5_000)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    send_midi(&alice, &room, midi(60, 30, "off", 1, 1_000_600)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    send_midi(&bob, &room, midi(60, 20, "off", 1, 5_600)).await;
    let stats = ask(&alice, &room, "!midi stats").await;

    let (a, b) = (
        midi_stamps(&alice, &room, &alice.user_id).await,
        midi_stamps(&alice, &room, &bob.user_id).await,
    );
    assert_eq!((a.len(), b.len()), (2, 2));
    // Each sender's first note lies where the server stamped it; the rest keep their
    // keyboard's spacing.
    let bob_on = b[0] - a[0];
    assert!(bob_on >= 300, "{a:?} {b:?}");
    let span = bob_on + 600;
    assert_eq!(
        stats["body"],
        format!(
            "2 notes on 1 channel (1), lasting {}.{:03}s (4 events recorded).",
            span / 1000,
            span % 1000
        )
    );
    let path = format!("/_plugboard/plugins/midi-logger/rooms/{}.mid", enc(&room));
    assert_eq!(
        parse(&body_of(&alice, &path).await),
        [
            vec![],
            vec![(0, 1, 60, 100, true), (600, 1, 60, 30, false)],
            vec![(bob_on, 1, 60, 90, true), (bob_on + 600, 1, 60, 20, false)],
        ]
    );
}

async fn body_of(c: &Client, path: &str) -> Vec<u8> {
    let (status, body, _) = fetch(c, path).await;
    assert_eq!(status, 200);
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_sent_faster_than_they_were_played_are_all_exported_in_their_own_time() {
    let server = TestServer::start().await;
    install(&admin(&server.base, server.data_dir.path()), &midi_logger()).await;
    let alice = server.register("alice").await;
    let room = room_with_bot(&alice, BOT).await;

    // The tour's burst: four notes 500 ms apart, each held 400 ms, from the talk's own
    // clock, sent back to back in well under the two seconds they were played in.
    let t0 = 374_023_441;
    for i in 0..4 {
        let note = 60 + i * 2;
        send_midi(&alice, &room, midi(note, 100, "on", 1, t0 + i * 500)).await;
        send_midi(&alice, &room, midi(note, 0, "off", 1, t0 + i * 500 + 400)).await;
    }
    let all = ask(&alice, &room, "!midi export all").await;
    assert_eq!(
        all["body"],
        "midi-all.mid: 4 notes on 1 channel (1), 1.900s"
    );
    let played: Vec<_> = (0..4u64)
        .flat_map(|i| {
            let key = 60 + 2 * i as u8;
            [
                (i * 500, 1, key, 100, true),
                (i * 500 + 400, 1, key, 0, false),
            ]
        })
        .collect();
    assert_eq!(parse(&download(&alice, &all).await), [vec![], played]);
}
