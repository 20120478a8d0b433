//! What a push gateway is sent for one notification: the body of `POST /_matrix/push/v1/notify`
//! (push gateway API) for one event and one pusher, built by the pure [`notify_body`], and
//! what its answer says ([`rejected`]). The delivery queue (`delivery`) stores the body as the
//! transaction's, so a retry sends the same content.

use serde_json::{json, Map, Value};

/// The event as the notification shows it, with what the server knows around it.
#[derive(Debug, Clone)]
pub(crate) struct Notice<'a> {
    /// The event in client format (`event_id`, `room_id`, `type`, `sender`, `content`…).
    pub(crate) event: &'a Value,
    pub(crate) sender_display_name: Option<&'a str>,
    pub(crate) room_name: Option<&'a str>,
    /// The user's unread notifications, across their rooms.
    pub(crate) unread: u64,
    /// The actions of the user's push rules for the event (`notify`, `set_tweak`s).
    pub(crate) actions: &'a Value,
    /// The user the notification is for: whether a member event is about them.
    pub(crate) user_id: &'a str,
}

/// The pusher a notification goes to.
#[derive(Debug, Clone)]
pub(crate) struct Device<'a> {
    pub(crate) app_id: &'a str,
    pub(crate) pushkey: &'a str,
    /// When the pushkey was set, in seconds.
    pub(crate) pushkey_ts: i64,
    /// The pusher's `data` as the client set it.
    pub(crate) data: &'a Value,
}

impl Device<'_> {
    /// `format: event_id_only`: the gateway is told which event, not what it says.
    pub(crate) fn event_id_only(&self) -> bool {
        self.data["format"] == "event_id_only"
    }
}

/// The `tweaks` of a notification: each `set_tweak` of the actions, `highlight` without a
/// value meaning true (push rules spec), and a highlight that is false left out.
pub(crate) fn tweaks(actions: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    for action in actions.as_array().into_iter().flatten() {
        let Some(name) = action["set_tweak"].as_str() else {
            continue;
        };
        let value = match (name, action.get("value")) {
            ("highlight", None) => Value::Bool(true),
            (_, Some(v)) => v.clone(),
            (_, None) => continue,
        };
        if name == "highlight" && value == Value::Bool(false) {
            continue;
        }
        out.insert(name.to_string(), value);
    }
    out
}

/// `high` for what wants attention now (an encrypted event, which may be anything; a sound; a
/// highlight), `low` for the rest, so gateways may batch those to spare batteries.
fn prio(event_type: &str, tweaks: &Map<String, Value>) -> &'static str {
    let loud = tweaks.contains_key("sound") || tweaks.get("highlight") == Some(&Value::Bool(true));
    if event_type == "m.room.encrypted" || loud {
        "high"
    } else {
        "low"
    }
}

/// The body of `POST /_matrix/push/v1/notify` for `notice` to `device`.
pub(crate) fn notify_body(notice: &Notice<'_>, device: &Device<'_>) -> Value {
    let event = notice.event;
    let tweaks = tweaks(notice.actions);
    let mut data = device.data.as_object().cloned().unwrap_or_default();
    // The URL is where the server sends it, not something the gateway passes on.
    data.remove("url");
    let prio = prio(event["type"].as_str().unwrap_or(""), &tweaks);
    let devices = json!([{
        "app_id": device.app_id,
        "pushkey": device.pushkey,
        "pushkey_ts": device.pushkey_ts,
        "data": data,
        "tweaks": tweaks,
    }]);
    let counts = json!({ "unread": notice.unread });
    let mut n = json!({
        "event_id": event["event_id"],
        "room_id": event["room_id"],
        "counts": counts,
        "devices": devices,
        "prio": prio,
    });
    if device.event_id_only() {
        return json!({ "notification": n });
    }
    n["type"] = event["type"].clone();
    n["sender"] = event["sender"].clone();
    if let Some(name) = notice.sender_display_name {
        n["sender_display_name"] = json!(name);
    }
    if let Some(name) = notice.room_name {
        n["room_name"] = json!(name);
    }
    if event.get("content").is_some() {
        n["content"] = event["content"].clone();
    }
    if event["type"] == "m.room.member" {
        n["membership"] = event["content"]["membership"].clone();
        n["user_is_target"] = json!(event["state_key"] == notice.user_id);
    }
    json!({ "notification": n })
}

/// The pushkeys a gateway's answer rejects (`{"rejected": [pushkey, …]}`): those pushers are
/// to be removed.
pub(crate) fn rejected(answer: &Value) -> Vec<&str> {
    answer["rejected"]
        .as_array()
        .map(|keys| keys.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Value {
        json!({"event_id": "$e", "room_id": "!r:x", "type": "m.room.message",
               "sender": "@a:x", "origin_server_ts": 5,
               "content": {"msgtype": "m.text", "body": "hi"}})
    }

    fn notice<'a>(event: &'a Value, actions: &'a Value) -> Notice<'a> {
        Notice {
            event,
            sender_display_name: Some("Alice"),
            room_name: Some("Lounge"),
            unread: 3,
            actions,
            user_id: "@b:x",
        }
    }

    fn device(data: &Value) -> Device<'_> {
        Device {
            app_id: "org.example.app",
            pushkey: "KEY",
            pushkey_ts: 1_700_000_000,
            data,
        }
    }

    #[test]
    fn a_message_is_sent_whole_with_counts_device_and_tweaks() {
        let event = message();
        let actions = json!(["notify", {"set_tweak": "sound", "value": "default"},
                             {"set_tweak": "highlight", "value": false}]);
        let data = json!({"url": "https://p.example/_matrix/push/v1/notify", "extra": 1});
        let body = notify_body(&notice(&event, &actions), &device(&data));
        assert_eq!(
            body,
            json!({"notification": {
                "event_id": "$e", "room_id": "!r:x", "type": "m.room.message",
                "sender": "@a:x", "sender_display_name": "Alice", "room_name": "Lounge",
                "content": {"msgtype": "m.text", "body": "hi"},
                "counts": {"unread": 3}, "prio": "high",
                "devices": [{"app_id": "org.example.app", "pushkey": "KEY",
                             "pushkey_ts": 1_700_000_000, "data": {"extra": 1},
                             "tweaks": {"sound": "default"}}]
            }})
        );
    }

    #[test]
    fn event_id_only_leaves_out_what_the_event_says_and_who_sent_it() {
        let event = message();
        let actions = json!(["notify"]);
        let data = json!({"url": "https://p.example/_matrix/push/v1/notify",
                          "format": "event_id_only"});
        let body = notify_body(&notice(&event, &actions), &device(&data));
        let n = body["notification"].as_object().unwrap();
        let mut keys: Vec<&str> = n.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["counts", "devices", "event_id", "prio", "room_id"]);
        assert_eq!(n["devices"][0]["data"], json!({"format": "event_id_only"}));
    }

    #[test]
    fn a_quiet_notification_is_low_priority_and_an_encrypted_one_high() {
        let actions = json!(["notify"]);
        let data = json!({});
        let event = message();
        let quiet = notify_body(&notice(&event, &actions), &device(&data));
        assert_eq!(quiet["notification"]["prio"], "low");
        assert_eq!(quiet["notification"]["devices"][0]["tweaks"], json!({}));
        let mut encrypted = message();
        encrypted["type"] = json!("m.room.encrypted");
        let body = notify_body(&notice(&encrypted, &actions), &device(&data));
        assert_eq!(body["notification"]["prio"], "high");
    }

    #[test]
    fn a_highlight_without_a_value_is_true() {
        let t = tweaks(&json!(["notify", {"set_tweak": "highlight"}, "dont_notify"]));
        assert_eq!(Value::Object(t), json!({"highlight": true}));
    }

    #[test]
    fn an_invite_says_whether_the_user_is_its_target() {
        let event = json!({"event_id": "$i", "room_id": "!r:x", "type": "m.room.member",
                           "sender": "@a:x", "state_key": "@b:x",
                           "content": {"membership": "invite"}});
        let actions = json!(["notify"]);
        let body = notify_body(&notice(&event, &actions), &device(&json!({})));
        assert_eq!(body["notification"]["user_is_target"], true);
        assert_eq!(body["notification"]["membership"], "invite");
    }

    #[test]
    fn the_rejected_pushkeys_are_read_from_the_answer() {
        assert_eq!(rejected(&json!({"rejected": ["a", 5, "b"]})), ["a", "b"]);
        assert!(rejected(&json!({})).is_empty());
        assert!(rejected(&json!({"rejected": "a"})).is_empty());
    }
}
