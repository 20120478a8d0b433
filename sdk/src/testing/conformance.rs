//! One set of cases for the limits and errors a plugin meets at the host, run against both
//! hosts: the harness's fake (the SDK's unit test below) and the real server (the test
//! plugin `tests/plugins/conformance`, which exports [`Conformance`], driven by the
//! end-to-end test `plugin_conformance`). A case that answers differently on one of them is
//! a drift between the host and the fake, and a plugin author's green unit test would not
//! mean what it says.
//!
//! A case is a host call (or a few) with its input and the answer expected: a value, or the
//! errcode and message of a refusal. The inputs and answers are written out, not computed
//! from `plugboard_limits`, so that a limit changed on one side only shows. Each case runs in
//! a call of its own (a web request to [`Conformance`]) and leaves the store and the timers
//! as it found them.

use serde_json::json;

use crate::types::{Error, HttpRequest, HttpResponse};
use crate::{e2ee, host, kv, timers, Config, Plugin};

/// The store's quota the cases expect: the conformance plugin's `kv_quota_bytes`, and what
/// the SDK's test sets in the harness.
pub const QUOTA_BYTES: u64 = 65_536;

/// What a case should answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// This value, as the case renders it.
    Value(&'static str),
    /// A refusal with this errcode and message.
    Refused(&'static str, &'static str),
}

/// One host call, its input and the answer expected.
pub struct Case {
    /// What it checks, as a sentence.
    pub name: &'static str,
    /// The call, through the SDK as a plugin makes it; the value rendered as text.
    pub run: fn() -> Result<String, Error>,
    /// What both hosts answer.
    pub expected: Expected,
}

fn done(_: ()) -> String {
    "ok".into()
}

/// `n` ids of `sigil` (`!` rooms, `$` events) that name nothing.
fn ids(sigil: char, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{sigil}c{i}:test")).collect()
}

/// The cases, in the order they run.
pub const CASES: &[Case] = &[
    Case {
        name: "kv refuses an empty key",
        run: || kv::set("", b"v").map(done),
        expected: Expected::Refused("M_INVALID_PARAM", "a key must not be empty"),
    },
    Case {
        name: "kv refuses a key of 513 bytes",
        run: || kv::get(&"k".repeat(513)).map(|v| format!("{v:?}")),
        expected: Expected::Refused("M_TOO_LARGE", "a key is at most 512 bytes; this one is 513"),
    },
    Case {
        name: "kv takes a key of 512 bytes",
        run: || {
            let key = "k".repeat(512);
            kv::set(&key, b"v")?;
            kv::delete(&key).map(|existed| existed.to_string())
        },
        expected: Expected::Value("true"),
    },
    Case {
        name: "kv refuses a value of one mebibyte and one byte",
        run: || kv::set("big", &vec![0; (1 << 20) + 1]).map(done),
        expected: Expected::Refused(
            "M_TOO_LARGE",
            "a value is at most 1048576 bytes; this one is 1048577",
        ),
    },
    Case {
        name: "kv compare-and-swap refuses a new value of one mebibyte and one byte",
        run: || {
            kv::compare_and_swap("big", None, Some(&vec![0; (1 << 20) + 1]))
                .map(|swapped| swapped.to_string())
        },
        expected: Expected::Refused("M_TOO_LARGE", "a value is at most 1048576 bytes"),
    },
    Case {
        name: "kv answers a call its own writes",
        run: || {
            kv::set("mine", b"1")?;
            let read = kv::get("mine")?.unwrap_or_default();
            kv::delete("mine")?;
            Ok(String::from_utf8_lossy(&read).into_owned())
        },
        expected: Expected::Value("1"),
    },
    Case {
        name: "kv deleting a key that is not there answers false",
        run: || kv::delete("never").map(|existed| existed.to_string()),
        expected: Expected::Value("false"),
    },
    Case {
        name: "kv lists at most 1000 keys at once",
        run: || {
            let keys: Vec<String> = (0..1001).map(|i| format!("list/{i:04}")).collect();
            for key in &keys {
                kv::set(key, b"")?;
            }
            let listed = kv::list_keys("list/", None, u32::MAX)?.len();
            for key in &keys {
                kv::delete(key)?;
            }
            Ok(listed.to_string())
        },
        expected: Expected::Value("1000"),
    },
    Case {
        name: "kv refuses a write past the store's quota",
        run: || kv::set("q", &vec![0; QUOTA_BYTES as usize]).map(done),
        expected: Expected::Refused(
            "M_RESOURCE_LIMIT_EXCEEDED",
            "the plugin's store would hold 65537 bytes; its quota is 65536",
        ),
    },
    Case {
        name: "kv refuses the 10001st key one call writes",
        run: || {
            let wrote = (0..=10_000).try_for_each(|i| kv::set(&format!("w{i}"), b""));
            for i in 0..10_000 {
                kv::delete(&format!("w{i}"))?;
            }
            wrote.map(done)
        },
        expected: Expected::Refused(
            "M_RESOURCE_LIMIT_EXCEEDED",
            "one call writes at most 10000 keys",
        ),
    },
    Case {
        name: "timers refuses an empty key",
        run: || timers::set_timer("", 1000, "").map(done),
        expected: Expected::Refused("M_INVALID_PARAM", "a timer key is 1 to 512 bytes"),
    },
    Case {
        name: "timers refuses a payload of 64 KiB and one byte",
        run: || timers::set_timer("t", 1000, &"p".repeat(65_537)).map(done),
        expected: Expected::Refused("M_TOO_LARGE", "a timer payload is at most 65536 bytes"),
    },
    Case {
        name: "timers refuses a timer more than ten years ahead",
        run: || timers::set_timer("t", 316_224_000_001, "").map(done),
        expected: Expected::Refused("M_INVALID_PARAM", "a timer is set at most ten years ahead"),
    },
    Case {
        name: "timers cancels a timer set, once",
        run: || {
            timers::set_timer("t", 60_000, "p")?;
            let first = timers::cancel_timer("t");
            let second = timers::cancel_timer("t");
            Ok(format!("{first} {second}"))
        },
        expected: Expected::Value("true false"),
    },
    Case {
        name: "homeserver access-to-rooms refuses 1001 rooms",
        run: || {
            host::with(|h| h.access_to_rooms("@u:test", &ids('!', 1001)))
                .map(|answers| answers.len().to_string())
        },
        expected: Expected::Refused(
            "M_TOO_LARGE",
            "at most 1000 rooms a call; this one has 1001",
        ),
    },
    Case {
        name: "homeserver visible-events refuses 1001 event ids",
        run: || {
            host::with(|h| h.visible_events("@u:test", &ids('$', 1001)))
                .map(|visible| visible.len().to_string())
        },
        expected: Expected::Refused(
            "M_TOO_LARGE",
            "at most 1000 event ids a call; this one has 1001",
        ),
    },
    Case {
        name: "homeserver access-to-rooms tells nothing of rooms the plugin has no view of",
        run: || {
            let answers = host::with(|h| h.access_to_rooms("@u:test", &ids('!', 2)))?;
            let readable = answers.iter().filter(|a| a.joined || a.readable).count();
            Ok(format!("{} answers, {readable} readable", answers.len()))
        },
        expected: Expected::Value("2 answers, 0 readable"),
    },
    Case {
        name: "e2ee makes a device once, counts its one-time keys and deletes it",
        run: || {
            let made = e2ee::create_device(None, "CONFDEV", None)?;
            let again = e2ee::create_device(None, "CONFDEV", None)?;
            let keys = json!({"one_time_keys": {"signed_curve25519:A": {"key": "a"}}});
            let counts = e2ee::upload_keys(None, "CONFDEV", &keys);
            e2ee::delete_device(None, "CONFDEV")?;
            Ok(format!("{made} {again} {}", counts?))
        },
        expected: Expected::Value(r#"true false {"one_time_key_counts":{"signed_curve25519":1}}"#),
    },
    Case {
        name: "e2ee send-to-device refuses a content that is not an object",
        run: || {
            e2ee::create_device(None, "CONFDEV", None)?;
            let me = crate::homeserver::sender();
            let messages = json!({ me: { "*": 1 } });
            let sent = e2ee::send_to_device(None, "CONFDEV", "m.test", "c1", &messages);
            e2ee::delete_device(None, "CONFDEV")?;
            sent.map(done)
        },
        expected: Expected::Refused(
            "M_BAD_JSON",
            "each to-device message's content must be an object",
        ),
    },
];

/// Whether `answer` is the one `expected`.
fn agrees(answer: &Result<String, Error>, expected: Expected) -> bool {
    match (answer, expected) {
        (Ok(value), Expected::Value(want)) => value == want,
        (Err(e), Expected::Refused(errcode, message)) => {
            e.errcode == errcode && e.message == message
        }
        _ => false,
    }
}

/// How case `index` went: its answer and whether it is the one expected.
pub fn run(index: usize) -> Option<serde_json::Value> {
    let case = CASES.get(index)?;
    let answer = (case.run)();
    Some(json!({
        "name": case.name,
        "answer": format!("{answer:?}"),
        "expected": format!("{:?}", case.expected),
        "agrees": agrees(&answer, case.expected),
    }))
}

/// The plugin that runs the cases: `GET /cases` answers how many there are, `GET /case/N`
/// runs case `N` in a call of its own and answers how it went.
pub struct Conformance;

impl Plugin for Conformance {
    fn init(_config: &Config) -> Result<Self, Error> {
        Ok(Conformance)
    }

    fn handle_http(&mut self, request: &HttpRequest) -> HttpResponse {
        if request.method != "GET" {
            return HttpResponse::not_found();
        }
        if request.path == "/cases" {
            return HttpResponse::json(200, &json!({ "cases": CASES.len() }));
        }
        let index = request
            .path
            .strip_prefix("/case/")
            .and_then(|n| n.parse().ok());
        match index.and_then(run) {
            Some(report) => HttpResponse::json(200, &report),
            None => HttpResponse::not_found(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Harness;

    fn get(path: &str) -> HttpRequest {
        HttpRequest {
            method: "GET".into(),
            path: path.into(),
            query: String::new(),
            headers: Vec::new(),
            body: Vec::new(),
            user_id: None,
        }
    }

    #[test]
    fn the_fake_host_answers_every_conformance_case_as_the_real_one() {
        let mut h = Harness::<Conformance>::new(json!({})).unwrap();
        h.set_kv_quota(QUOTA_BYTES);
        let mut drifts = Vec::new();
        for i in 0..CASES.len() {
            let response = h.http(get(&format!("/case/{i}")));
            assert_eq!(response.status, 200, "case {i}");
            let report: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
            if report["agrees"] != true {
                drifts.push(report);
            }
        }
        assert!(drifts.is_empty(), "{drifts:#?}");
        assert!(h.kv_keys().is_empty(), "the cases leave the store empty");
        assert!(h.timers().is_empty(), "the cases leave no timers");
    }
}
