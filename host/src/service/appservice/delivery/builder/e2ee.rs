//! What an application service's transaction carries for its encrypting bridge: MSC2409's
//! to-device messages for its users' devices, and MSC3202's device lists of the users it
//! tracks and its devices' one-time key counts and unused fallback key types, in the keys and
//! shapes Synapse sends them.
//!
//! To-device messages and key changes hold stream positions, so they go through the queue as
//! events do: read after the service's position, stored in the transaction before it is
//! pushed, passed once it is acknowledged. A message is never lost to a restart and never
//! delivered again after its transaction was acknowledged. Key counts are current values,
//! read as the transaction is built, and only ride along with one that carries something.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{json, Value};

use super::{read_cut, AppserviceTxns, READ_AHEAD};
use crate::service::appservice::delivery::worker::StepError;
use crate::service::appservice::queue::{Candidate, Item};
use crate::service::appservice::registration::{Origin, Registration};
use crate::service::e2ee::keys::with_signed_curve25519;
use crate::service::rooms::values::Membership;
use crate::storage::to_device::AddressedRow;

pub(crate) const TO_DEVICE: &str = "de.sorunome.msc2409.to_device";
pub(crate) const DEVICE_LISTS: &str = "org.matrix.msc3202.device_lists";
pub(crate) const ONE_TIME_KEYS_COUNT: &str = "org.matrix.msc3202.device_one_time_keys_count";
/// The older name of the counts, which Synapse still sends beside the newer one.
pub(crate) const ONE_TIME_KEY_COUNTS: &str = "org.matrix.msc3202.device_one_time_key_counts";
pub(crate) const UNUSED_FALLBACK_KEY_TYPES: &str =
    "org.matrix.msc3202.device_unused_fallback_key_types";

/// What a service gets besides events, receipts and typing: the opt-in rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Extras {
    /// To-device messages: for a service that asked for ephemeral events and MSC3202, so that
    /// a service that asked for one of them only sees what it saw before either existed
    /// (Synapse has a server-wide switch for them instead); for a plugin, whose manifest has
    /// the one switch `e2ee` for all of it, with MSC3202.
    pub(crate) to_device: bool,
    /// Device lists and key counts.
    pub(crate) msc3202: bool,
}

impl Extras {
    pub(crate) fn of(registration: &Registration) -> Extras {
        Extras {
            to_device: registration.msc3202
                && (registration.receive_ephemeral
                    || matches!(registration.origin, Origin::Plugin(_))),
            msc3202: registration.msc3202,
        }
    }

    pub(crate) fn any(self) -> bool {
        self.to_device || self.msc3202
    }
}

/// A to-device message as the service gets it: as a client's /sync has it, with the user and
/// device it is for.
pub(crate) fn addressed(row: &AddressedRow) -> Value {
    let content: Value = serde_json::from_str(&row.content).unwrap_or_else(|_| json!({}));
    json!({
        "type": row.kind,
        "sender": row.sender,
        "content": content,
        "to_user_id": row.user_id,
        "to_device_id": row.device_id,
    })
}

/// The keys of a service's devices, as the transaction carries them: user → device →
/// algorithm → count, and user → device → algorithms of unused fallback keys.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct KeyState {
    pub(crate) counts: BTreeMap<String, BTreeMap<String, BTreeMap<String, i64>>>,
    pub(crate) fallback: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

/// The users whose devices' key state goes with a transaction, as Synapse chooses them: the
/// service's sender, the recipients of its to-device messages, and the service's users among
/// the members of the rooms its events and ephemeral events are from.
pub(crate) fn key_state_users<'a>(
    sender: &str,
    to_device: &[Value],
    room_members: impl IntoIterator<Item = &'a str>,
    is_ours: impl Fn(&str) -> bool,
) -> BTreeSet<String> {
    let mut users = BTreeSet::from([sender.to_string()]);
    users.extend(
        to_device
            .iter()
            .filter_map(|m| m["to_user_id"].as_str())
            .map(str::to_string),
    );
    users.extend(
        room_members
            .into_iter()
            .filter(|u| is_ours(u))
            .map(str::to_string),
    );
    users
}

/// Adds what `extras` asks for to a transaction's `body`: the to-device messages and the
/// users whose device lists changed (in stream order, each once) when there are any, and the
/// key state when it holds a device.
pub(crate) fn add_to_body(
    body: &mut Value,
    extras: Extras,
    to_device: Vec<Value>,
    device_lists: Vec<Value>,
    keys: KeyState,
) {
    if extras.to_device && !to_device.is_empty() {
        body[TO_DEVICE] = Value::Array(to_device);
    }
    if !extras.msc3202 {
        return;
    }
    let mut changed: Vec<Value> = Vec::new();
    for user in device_lists {
        if !changed.contains(&user) {
            changed.push(user);
        }
    }
    if !changed.is_empty() {
        // Plugboard, like Synapse, does not tell a service of users it stopped sharing rooms
        // with: it sees their leave events.
        body[DEVICE_LISTS] = json!({ "changed": changed, "left": [] });
    }
    if !keys.counts.is_empty() {
        body[ONE_TIME_KEYS_COUNT] = json!(keys.counts);
        body[ONE_TIME_KEY_COUNTS] = json!(keys.counts);
    }
    if !keys.fallback.is_empty() {
        body[UNUSED_FALLBACK_KEY_TYPES] = json!(keys.fallback);
    }
}

/// How many to-device messages and device list changes `body` carries: with its ephemeral
/// events, what keeps a transaction from being a lone event (which may be pushed before its
/// record is on disk).
pub(crate) fn extra_items(body: &Value) -> usize {
    body[TO_DEVICE].as_array().map_or(0, Vec::len)
        + body[DEVICE_LISTS]["changed"].as_array().map_or(0, Vec::len)
}

impl AppserviceTxns {
    /// Adds the to-device messages and key changes after `after` up to `read_end` to
    /// `candidates`, each wanted or passed over; answers the end of the range read, earlier
    /// than `read_end` when a read was full.
    pub(super) async fn e2ee_candidates(
        &self,
        extras: Extras,
        after: i64,
        mut read_end: i64,
        rooms: &mut HashMap<String, bool>,
        candidates: &mut Vec<Candidate<Value>>,
    ) -> Result<i64, StepError> {
        let storage = &self.services.storage;
        let namespaces = &self.service.namespaces;
        if extras.to_device {
            let rows = storage.to_device_range(after, read_end, READ_AHEAD).await?;
            read_end = read_cut(read_end, rows.len(), rows.last().map(|r| r.stream));
            for row in rows {
                let wanted = namespaces.is_interested_in_user(&row.user_id);
                candidates.push(Candidate {
                    stream: row.stream,
                    wanted: wanted.then(|| Item::ToDevice(addressed(&row))),
                });
            }
        }
        if extras.msc3202 {
            let changes = storage
                .key_changes_range(after, read_end, READ_AHEAD)
                .await?;
            read_end = read_cut(read_end, changes.len(), changes.last().map(|c| c.0));
            let mut tracked: HashMap<String, bool> = HashMap::new();
            for (stream, user) in changes {
                let wanted = match tracked.get(&user) {
                    Some(wanted) => *wanted,
                    None => {
                        let wanted = self.tracks(&user, rooms).await?;
                        tracked.insert(user.clone(), wanted);
                        wanted
                    }
                };
                candidates.push(Candidate {
                    stream,
                    wanted: wanted.then_some(Item::DeviceList(Value::String(user))),
                });
            }
        }
        Ok(read_end)
    }

    /// Whether the service tracks `user`'s device list: one of its users, or a member of a
    /// room it wants.
    async fn tracks(
        &self,
        user: &str,
        rooms: &mut HashMap<String, bool>,
    ) -> Result<bool, StepError> {
        if self.service.namespaces.is_interested_in_user(user) {
            return Ok(true);
        }
        let joined = Some(Membership::Join.as_str());
        for m in self.services.storage.user_memberships(user, joined).await? {
            if self.wants_room(rooms, &m.room_id).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The key state of the service's devices that goes with a transaction of `events`,
    /// `ephemeral` and `to_device` messages.
    pub(super) async fn key_state(
        &self,
        events: &[Value],
        ephemeral: &[Value],
        to_device: &[Value],
    ) -> Result<KeyState, StepError> {
        let storage = &self.services.storage;
        let room_ids: BTreeSet<&str> = events
            .iter()
            .chain(ephemeral)
            .filter_map(|e| e["room_id"].as_str())
            .collect();
        let mut members = Vec::new();
        for room in room_ids {
            let joined = storage
                .room_members(room, Some(Membership::Join.as_str()))
                .await?;
            members.extend(joined.into_iter().map(|m| m.user_id));
        }
        let namespaces = &self.service.namespaces;
        let users = key_state_users(
            namespaces.sender().as_str(),
            to_device,
            members.iter().map(String::as_str),
            |u| namespaces.is_interested_in_user(u),
        );
        let users: Vec<&str> = users.iter().map(String::as_str).collect();
        let mut state = KeyState::default();
        for ((user, device), keys) in storage.devices_key_state(&users).await? {
            state.counts.entry(user.clone()).or_default().insert(
                device.clone(),
                with_signed_curve25519(keys.one_time_key_counts),
            );
            state
                .fallback
                .entry(user)
                .or_default()
                .insert(device, keys.unused_fallback_key_types);
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration(extra: &str) -> Registration {
        let text = format!(
            "id: b\nurl: null\nas_token: a\nhs_token: h\nsender_localpart: bot\n\
             namespaces:\n  users: []\n{extra}"
        );
        Registration::from_yaml(&text, Origin::File("b.yaml".into())).unwrap()
    }

    #[test]
    fn a_service_gets_to_device_messages_only_with_both_ephemeral_events_and_msc3202() {
        let none = Extras::of(&registration(""));
        assert!(!none.any());
        let ephemeral = Extras::of(&registration("receive_ephemeral: true\n"));
        assert!(
            !ephemeral.any(),
            "an ephemeral-only service sees what it saw"
        );
        let msc3202 = Extras::of(&registration("org.matrix.msc3202: true\n"));
        assert_eq!(
            msc3202,
            Extras {
                to_device: false,
                msc3202: true
            }
        );
        let both = Extras::of(&registration(
            "org.matrix.msc3202: true\nde.sorunome.msc2409.push_ephemeral: true\n",
        ));
        assert_eq!(
            both,
            Extras {
                to_device: true,
                msc3202: true
            }
        );
        let mut plugin = registration("org.matrix.msc3202: true\n");
        plugin.origin = Origin::Plugin("p".into());
        assert_eq!(Extras::of(&plugin), both, "a plugin's `e2ee` is both");
    }

    #[test]
    fn a_to_device_message_carries_its_recipient_user_and_device() {
        let row = AddressedRow {
            stream: 7,
            user_id: "@b_1:x".into(),
            device_id: "DEV".into(),
            sender: "@a:x".into(),
            kind: "m.room_key_request".into(),
            content: r#"{"k":1}"#.into(),
        };
        assert_eq!(
            addressed(&row),
            json!({"type": "m.room_key_request", "sender": "@a:x", "content": {"k": 1},
                   "to_user_id": "@b_1:x", "to_device_id": "DEV"})
        );
    }

    #[test]
    fn key_state_covers_the_sender_the_recipients_and_the_services_room_members() {
        let to_device = vec![json!({"to_user_id": "@b_2:x"})];
        let users = key_state_users("@bot:x", &to_device, ["@b_1:x", "@alice:x"], |u| {
            u.starts_with("@b_")
        });
        assert_eq!(
            users.into_iter().collect::<Vec<_>>(),
            ["@b_1:x", "@b_2:x", "@bot:x"]
        );
    }

    #[test]
    fn the_body_carries_only_what_the_service_opted_into_and_what_is_there() {
        let mut keys = KeyState::default();
        keys.counts.entry("@bot:x".into()).or_default().insert(
            "D".into(),
            BTreeMap::from([("signed_curve25519".into(), 3)]),
        );
        keys.fallback
            .entry("@bot:x".into())
            .or_default()
            .insert("D".into(), vec![]);
        let both = Extras {
            to_device: true,
            msc3202: true,
        };
        let mut body = json!({"events": []});
        let changed = vec![json!("@a:x"), json!("@c:x"), json!("@a:x")];
        add_to_body(
            &mut body,
            both,
            vec![json!({"type": "t"})],
            changed,
            keys.clone(),
        );
        assert_eq!(body[TO_DEVICE], json!([{"type": "t"}]));
        assert_eq!(
            body[DEVICE_LISTS],
            json!({"changed": ["@a:x", "@c:x"], "left": []})
        );
        assert_eq!(
            body[ONE_TIME_KEYS_COUNT]["@bot:x"]["D"]["signed_curve25519"],
            3
        );
        assert_eq!(body[ONE_TIME_KEY_COUNTS], body[ONE_TIME_KEYS_COUNT]);
        assert_eq!(body[UNUSED_FALLBACK_KEY_TYPES]["@bot:x"]["D"], json!([]));
        assert_eq!(extra_items(&body), 3);

        let mut quiet = json!({"events": []});
        add_to_body(&mut quiet, both, vec![], vec![], KeyState::default());
        assert_eq!(quiet, json!({"events": []}), "nothing empty is added");

        let mut plain = json!({"events": []});
        let none = Extras {
            to_device: false,
            msc3202: false,
        };
        add_to_body(&mut plain, none, vec![json!({})], vec![json!("@a:x")], keys);
        assert_eq!(plain, json!({"events": []}));
    }
}
