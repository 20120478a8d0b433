//! The bytes of a /sync response, written room by room: each room's part is serialized as
//! soon as it is computed and dropped before the next, so a response over thousands of rooms
//! never exists as one `Value` tree (several times its text), and a large one can go out in
//! chunks while the rest is written. The bytes are those `serde_json` writes for the whole
//! response as one object: keys sorted, compact.

use serde_json::Value;

/// The sections of `rooms`, in the order their keys sort.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Section {
    Invite,
    Join,
    Knock,
    Leave,
}

const SECTIONS: [&str; 4] = ["invite", "join", "knock", "leave"];

impl Section {
    fn index(self) -> usize {
        match self {
            Section::Invite => 0,
            Section::Join => 1,
            Section::Knock => 2,
            Section::Leave => 3,
        }
    }
}

/// What a response holds for the user and device rather than for a room.
#[derive(Debug, Default)]
pub(crate) struct UserParts {
    pub(crate) account_data: Vec<Value>,
    /// `{"changed": […], "left": […]}`.
    pub(crate) device_lists: Option<Value>,
    pub(crate) one_time_key_counts: Option<Value>,
    pub(crate) unused_fallback_key_types: Vec<String>,
    pub(crate) to_device: Vec<Value>,
    pub(crate) presence: Vec<Value>,
}

pub(crate) struct ResponseWriter {
    out: Vec<u8>,
    /// Written at the end, after `rooms`.
    to_device: Vec<Value>,
    /// The `rooms` section open now, as an index into [`SECTIONS`].
    section: usize,
    /// Whether the open section has a room yet (the next one needs a comma).
    section_has_room: bool,
    rooms: usize,
    finished: bool,
}

impl ResponseWriter {
    /// Starts a response: everything that sorts before `rooms`, and `rooms` opened.
    pub(crate) fn new(parts: UserParts, next_batch: &str) -> ResponseWriter {
        let empty = || Value::Object(Default::default());
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(br#"{"account_data":{"events":"#);
        write_json(&mut out, &parts.account_data);
        out.extend_from_slice(br#"},"device_lists":"#);
        let lists = parts
            .device_lists
            .unwrap_or_else(|| serde_json::json!({ "changed": [], "left": [] }));
        write_json(&mut out, &lists);
        out.extend_from_slice(br#","device_one_time_keys_count":"#);
        write_json(&mut out, &parts.one_time_key_counts.unwrap_or_else(empty));
        out.extend_from_slice(br#","device_unused_fallback_key_types":"#);
        write_json(&mut out, &parts.unused_fallback_key_types);
        out.extend_from_slice(br#","next_batch":"#);
        write_json(&mut out, next_batch);
        out.extend_from_slice(br#","presence":{"events":"#);
        write_json(&mut out, &parts.presence);
        out.extend_from_slice(br#"},"rooms":{"invite":{"#);
        ResponseWriter {
            out,
            to_device: parts.to_device,
            section: 0,
            section_has_room: false,
            rooms: 0,
            finished: false,
        }
    }

    /// Adds one room. Sections come in their order (invites, joins, knocks, leaves), and
    /// within one the rooms in the order their ids sort.
    pub(crate) fn room(&mut self, section: Section, room_id: &str, part: &Value) {
        debug_assert!(section.index() >= self.section && !self.finished);
        self.enter(section.index());
        if self.section_has_room {
            self.out.push(b',');
        }
        write_json(&mut self.out, room_id);
        self.out.push(b':');
        write_json(&mut self.out, part);
        self.section_has_room = true;
        self.rooms += 1;
    }

    /// Closes the open section and opens the following ones up to `index`.
    fn enter(&mut self, index: usize) {
        while self.section < index {
            self.section += 1;
            self.out.extend_from_slice(b"},");
            write_json(&mut self.out, SECTIONS[self.section]);
            self.out.extend_from_slice(b":{");
            self.section_has_room = false;
        }
    }

    /// Writes the end of the response; later calls write nothing.
    pub(crate) fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.enter(SECTIONS.len() - 1);
        self.out.extend_from_slice(br#"}},"to_device":{"events":"#);
        write_json(&mut self.out, &self.to_device);
        self.out.extend_from_slice(b"}}");
        self.finished = true;
    }

    /// Hands out what has been written and not handed out yet.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Bytes written and not handed out yet.
    pub(crate) fn pending(&self) -> usize {
        self.out.len()
    }

    /// Rooms written so far.
    pub(crate) fn rooms(&self) -> usize {
        self.rooms
    }
}

fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Writing a `Value` or a string into a `Vec` cannot fail: no I/O, and map keys are strings.
    let _ = serde_json::to_writer(out, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The response as the whole-`Value` code built it.
    fn as_one_value(
        account_data: &[Value],
        next_batch: &str,
        rooms: &[(Section, &str, Value)],
    ) -> Vec<u8> {
        let mut sections: [serde_json::Map<String, Value>; 4] = Default::default();
        for (s, id, part) in rooms {
            let i = match s {
                Section::Invite => 0,
                Section::Join => 1,
                Section::Knock => 2,
                Section::Leave => 3,
            };
            sections[i].insert(id.to_string(), part.clone());
        }
        let [invite, join, knock, leave] = sections;
        serde_json::to_vec(&json!({
            "next_batch": next_batch,
            "rooms": { "join": join, "invite": invite, "leave": leave, "knock": knock },
            "account_data": { "events": account_data },
            "presence": { "events": [] },
            "to_device": { "events": [] },
            "device_lists": { "changed": [], "left": [] },
            "device_one_time_keys_count": {},
            "device_unused_fallback_key_types": [],
        }))
        .unwrap()
    }

    fn written(
        account_data: &[Value],
        next_batch: &str,
        rooms: &[(Section, &str, Value)],
    ) -> Vec<u8> {
        let parts = UserParts {
            account_data: account_data.to_vec(),
            ..UserParts::default()
        };
        let mut w = ResponseWriter::new(parts, next_batch);
        for (s, id, part) in rooms {
            w.room(*s, id, part);
        }
        w.finish();
        w.take()
    }

    #[test]
    fn an_empty_response_is_the_bytes_of_the_whole_value() {
        assert_eq!(written(&[], "s1_2", &[]), as_one_value(&[], "s1_2", &[]));
    }

    #[test]
    fn every_mix_of_sections_gives_the_bytes_of_the_whole_value() {
        let data = [json!({"type": "m.push_rules", "content": {"a": "\"quoted\" ü"}})];
        let part =
            |n: i64| json!({"timeline": {"events": [{"n": n}], "limited": false}, "state": {}});
        let cases: Vec<Vec<(Section, &str, Value)>> = vec![
            vec![(Section::Join, "!a:x", part(1))],
            vec![(Section::Invite, "!i:x", part(2))],
            vec![(Section::Leave, "!l:x", part(3))],
            vec![(Section::Knock, "!k:x", part(4))],
            vec![
                (Section::Invite, "!i1:x", part(1)),
                (Section::Invite, "!i2:x", part(2)),
                (Section::Leave, "!l:x", part(3)),
            ],
            vec![
                (Section::Invite, "!i:x", part(1)),
                (Section::Join, "!a:x", part(2)),
                (Section::Join, "!b\"\\:x", part(3)),
                (Section::Knock, "!k:x", part(6)),
                (Section::Leave, "!l1:x", part(4)),
                (Section::Leave, "!l2:x", part(5)),
            ],
        ];
        for rooms in cases {
            assert_eq!(
                String::from_utf8(written(&data, "s9_1", &rooms)).unwrap(),
                String::from_utf8(as_one_value(&data, "s9_1", &rooms)).unwrap()
            );
        }
    }

    #[test]
    fn handing_out_pieces_keeps_the_bytes_and_counts_the_rooms() {
        let rooms = [
            (Section::Join, "!a:x", json!({"n": 1})),
            (Section::Join, "!b:x", json!({"n": 2})),
            (Section::Leave, "!c:x", json!({"n": 3})),
        ];
        let mut w = ResponseWriter::new(UserParts::default(), "s1_1");
        let mut pieces = w.take();
        for (s, id, part) in &rooms {
            w.room(*s, id, part);
            assert!(w.pending() > 0);
            pieces.extend(w.take());
            assert_eq!(w.pending(), 0);
        }
        w.finish();
        w.finish();
        pieces.extend(w.take());
        assert_eq!(w.rooms(), 3);
        assert_eq!(pieces, as_one_value(&[], "s1_1", &rooms));
    }
}
