//! Garbage: random bodies and path segments to every route never cause a server error.

use super::*;

/// xorshift64*: deterministic per seed, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const KEYS: &[&str] = &[
    "user_id",
    "typing",
    "timeout",
    "room_id",
    "displayname",
    "avatar_url",
    "visibility",
    "username",
    "password",
    "auth",
    "type",
    "identifier",
    "user",
    "name",
    "topic",
    "invite",
    "initial_state",
    "room_version",
    "preset",
    "limit",
    "since",
    "filter",
    "reason",
    "thread_id",
    "m.read",
    "m.fully_read",
    "room",
    "timeline",
    "rooms",
    "types",
    "body",
    "msgtype",
    "devices",
    "device_id",
    "is_direct",
    "creation_content",
    "power_level_content_override",
    "room_alias_name",
    "display_name",
    "content",
    "state_key",
    "inhibit_login",
    "generic_search_term",
    "session",
    "users",
    "",
    "\u{0}",
    "\u{1F600}",
];

const STRINGS: &[&str] = &[
    "",
    "@alice:localhost",
    "@bob:localhost",
    "@",
    "!nosuch:localhost",
    "#lobby:localhost",
    "$nosuch",
    "m.login.dummy",
    "m.login.password",
    "m.id.user",
    "public",
    "private",
    "public_chat",
    "10",
    "\u{0}",
    "\u{200B}",
    "\u{202E}",
    "\u{1F600}",
    "\u{FFFF}",
    "mxc://localhost/x",
    "s0_0",
    "t0",
    "18446744073709551616",
    "-1",
    "m.room.message",
    "%00",
    "../../etc/passwd",
    "'; DROP TABLE events; --",
];

fn random_string(rng: &mut Rng) -> String {
    match rng.below(4) {
        0 => (*rng.pick(STRINGS)).to_string(),
        1 => (0..rng.below(40))
            .map(|_| char::from_u32(rng.below(0x11_0000) as u32).unwrap_or('\u{FFFD}'))
            .collect(),
        2 => "z".repeat(rng.below(5_000)),
        _ => (0..rng.below(20))
            .map(|_| (b' ' + rng.below(95) as u8) as char)
            .collect(),
    }
}

fn random_json(rng: &mut Rng, depth: usize) -> Value {
    let kinds = if depth == 0 { 6 } else { 8 };
    match rng.below(kinds) {
        0 => Value::Null,
        1 => json!(rng.below(2) == 0),
        2 => match rng.below(6) {
            0 => json!(rng.next()),
            1 => json!(-(rng.below(1_000_000) as i64)),
            2 => json!(0),
            3 => serde_json::from_str("1e999").unwrap_or(json!(1)),
            4 => serde_json::from_str("-0.0000000001").unwrap_or(json!(1)),
            _ => serde_json::from_str("123456789012345678901234567890").unwrap_or(json!(1)),
        },
        3 | 4 => json!(random_string(rng)),
        5 => json!(*rng.pick(STRINGS)),
        6 => Value::Array(
            (0..rng.below(5))
                .map(|_| random_json(rng, depth - 1))
                .collect(),
        ),
        _ => {
            let mut m = serde_json::Map::new();
            for _ in 0..rng.below(6) {
                let key = if rng.below(4) == 0 {
                    random_string(rng)
                } else {
                    (*rng.pick(KEYS)).to_string()
                };
                m.insert(key, random_json(rng, depth - 1));
            }
            Value::Object(m)
        }
    }
}

fn garbage_body(rng: &mut Rng) -> Vec<u8> {
    match rng.below(9) {
        0 => (0..rng.below(300)).map(|_| rng.next() as u8).collect(),
        1 => (0..rng.below(300))
            .map(|_| b' ' + rng.below(95) as u8)
            .collect(),
        2..=4 => random_json(rng, 4).to_string().into_bytes(),
        5 => {
            // A valid body, mutated.
            let mut b = random_json(rng, 3).to_string().into_bytes();
            for _ in 0..1 + rng.below(4) {
                if b.is_empty() {
                    break;
                }
                let i = rng.below(b.len());
                match rng.below(3) {
                    0 => b[i] = rng.next() as u8,
                    1 => {
                        b.remove(i);
                    }
                    _ => b.insert(i, *rng.pick(b"{}[]\",:\\\x00")),
                }
            }
            b
        }
        6 => {
            let n = *rng.pick(&[64usize, 127, 128, 129, 1_000, 100_000]);
            let (open, close) = if rng.below(2) == 0 {
                ("[", "]")
            } else {
                ("{\"a\":", "}")
            };
            format!("{}1{}", open.repeat(n), close.repeat(n)).into_bytes()
        }
        7 => rng
            .pick(&[
                &br#"{"body":"\ud800"}"#[..],
                b"1e99999",
                b"-0",
                b"18446744073709551616",
                br#"{"typing":true,"timeout":1e400}"#,
                br#"{"limit":-1}"#,
                b"\"\"",
                b"null",
                br#""\u0000""#,
                br#"{"user_id":"@alice:localhost"}"#,
                br#"{"visibility":"public"}"#,
                br#"{"devices":[]}"#,
                b"",
                b"   ",
                b"\xef\xbb\xbf{}",
            ])
            .to_vec(),
        _ => {
            let mut m = serde_json::Map::new();
            for _ in 0..rng.below(8) {
                m.insert((*rng.pick(KEYS)).to_string(), random_json(rng, 2));
            }
            Value::Object(m).to_string().into_bytes()
        }
    }
}

/// A path segment: usually the real one, sometimes garbage.
fn segment(rng: &mut Rng, real: &str) -> String {
    match rng.below(6) {
        0 => enc(&random_string(rng)),
        1 => {
            let bytes: Vec<u8> = (0..1 + rng.below(12)).map(|_| rng.next() as u8).collect();
            bytes.iter().map(|b| format!("%{b:02X}")).collect()
        }
        _ => enc(real),
    }
}

#[tokio::test]
async fn garbage_bodies_to_every_route_never_cause_a_server_error() {
    let w = world().await;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    eprintln!("garbage seed: {seed}");
    let anonymous = w.server.client();
    let bogus = with_token(&w.server, "pb_bogus");
    let mut handles = Vec::new();
    for worker in 0..8u64 {
        let alice = w.alice.clone();
        let anonymous = anonymous.clone();
        let bogus = bogus.clone();
        let room = w.room.clone();
        let event = w.event.clone();
        let user = w.alice.user_id.clone();
        let device = w.alice.device_id.clone();
        handles.push(tokio::spawn(async move {
            let mut rng = Rng(seed.wrapping_add(worker.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1);
            for i in 0..150 {
                let r = segment(&mut rng, &room);
                let u = segment(&mut rng, &user);
                let e = segment(&mut rng, &event);
                let t = segment(&mut rng, "m.room.message");
                let k = segment(&mut rng, "");
                let d = segment(&mut rng, &device);
                let x = format!("g{worker}_{i}");
                let routes: Vec<(Method, String)> = vec![
                    (Method::POST, "/register".into()),
                    (Method::POST, "/register?kind=user".into()),
                    (Method::POST, "/login".into()),
                    (Method::POST, "/createRoom".into()),
                    (Method::POST, format!("/join/{r}")),
                    (Method::POST, format!("/rooms/{r}/join")),
                    (Method::PUT, format!("/rooms/{r}/send/{t}/{x}")),
                    (
                        Method::POST,
                        format!("/_matrix/client/api/v1/rooms/{r}/send/{t}"),
                    ),
                    (Method::PUT, format!("/rooms/{r}/state/{t}")),
                    (Method::PUT, format!("/rooms/{r}/state/{t}/{k}")),
                    (Method::GET, format!("/rooms/{r}/state/{t}/{k}")),
                    (Method::POST, format!("/rooms/{r}/invite")),
                    (Method::POST, format!("/rooms/{r}/kick")),
                    (Method::POST, format!("/rooms/{r}/ban")),
                    (Method::POST, format!("/rooms/{r}/unban")),
                    (Method::PUT, format!("/directory/room/{k}")),
                    (Method::GET, format!("/directory/room/{k}")),
                    (Method::PUT, format!("/directory/list/room/{r}")),
                    (Method::POST, "/publicRooms".into()),
                    (Method::PUT, format!("/profile/{u}/displayname")),
                    (Method::PUT, format!("/profile/{u}/avatar_url")),
                    (Method::GET, format!("/profile/{u}")),
                    (Method::PUT, format!("/rooms/{r}/typing/{u}")),
                    (Method::POST, format!("/rooms/{r}/receipt/{t}/{e}")),
                    (Method::POST, format!("/rooms/{r}/read_markers")),
                    (Method::PUT, format!("/user/{u}/account_data/{t}")),
                    (Method::GET, format!("/user/{u}/account_data/{t}")),
                    (Method::PUT, format!("/user/{u}/rooms/{r}/account_data/{t}")),
                    (Method::POST, format!("/user/{u}/filter")),
                    (Method::GET, format!("/user/{u}/filter/{k}")),
                    (Method::PUT, format!("/rooms/{r}/redact/{e}/{x}")),
                    (Method::GET, format!("/rooms/{r}/event/{e}")),
                    (
                        Method::GET,
                        format!("/rooms/{r}/messages?filter={k}&from={k}"),
                    ),
                    (Method::GET, format!("/sync?filter={k}&since={k}&timeout=0")),
                    (Method::PUT, format!("/devices/{d}")),
                    (Method::DELETE, format!("/devices/{d}")),
                    (Method::POST, "/delete_devices".into()),
                    (Method::POST, "/_matrix/media/v3/upload".into()),
                    (Method::POST, "/_matrix/client/v1/media/upload".into()),
                    (
                        Method::GET,
                        format!("/_matrix/client/v1/media/thumbnail/{k}/{k}?width={k}&height=1"),
                    ),
                    (Method::GET, format!("/_matrix/media/v3/download/{k}/{k}")),
                    (Method::PUT, format!("/rooms/{r}/{k}")),
                ];
                let (method, path) = rng.pick(&routes).clone();
                let body = garbage_body(&mut rng);
                let client = match rng.below(10) {
                    0 => &anonymous,
                    1 => &bogus,
                    _ => &alice,
                };
                let content_type = *rng.pick(&[
                    "application/json",
                    "application/json",
                    "text/plain",
                    "application/octet-stream",
                ]);
                let reply = client
                    .raw(method.clone(), &path, content_type, body.clone())
                    .await;
                let what = format!(
                    "{method} {path} with {:?}",
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                );
                assert!(
                    reply.status.as_u16() < 500,
                    "{what}: {} {}",
                    reply.status,
                    reply.body
                );
                if reply.status.as_u16() >= 400 {
                    let uia = reply.status.as_u16() == 401 && reply.body["flows"].is_array();
                    assert!(
                        uia || reply.body["errcode"]
                            .as_str()
                            .is_some_and(|c| c.starts_with("M_")),
                        "{what}: not a Matrix error: {} {}",
                        reply.status,
                        reply.body
                    );
                    assert!(
                        uia || reply.body["error"].is_string(),
                        "{what}: no error message: {}",
                        reply.body
                    );
                }
            }
        }));
    }
    for h in handles {
        tokio::time::timeout(Duration::from_secs(120), h)
            .await
            .expect("the garbage burst finished in time")
            .expect("a garbage worker panicked");
    }
    // The server is alive and alice's token and room work.
    let mut alice = w.alice.clone();
    if alice.get("/account/whoami").await.status.as_u16() != 200 {
        // The garbage may have deleted alice's device; log in again.
        let login = w
            .server
            .client()
            .post(
                "/login",
                json!({"type": "m.login.password", "user": "alice", "password": "password"}),
            )
            .await
            .ok();
        alice.token = login["access_token"].as_str().map(str::to_string);
    }
    assert_alive(&w.server, &alice).await;
    let resp = alice
        .http
        .get(alice.url("/sync?timeout=0"))
        .bearer_auth(alice.token.clone().unwrap_or_default())
        .timeout(WAIT)
        .send()
        .await
        .expect("sync sent");
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await.expect("sync body");
    let sync: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "the sync after the garbage is not JSON a client can read ({e}): {}",
            &text[..text.len().min(3000)]
        )
    });
    assert!(sync["next_batch"].is_string(), "{sync}");
}
