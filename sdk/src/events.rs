//! Typed views of the events plugins handle most: messages, membership, VoIP call
//! signalling (version 1), reactions, redactions and the talk's `org.matrix.midi`. Content
//! that does not have the shape the spec gives is [`EventKind::Malformed`], never a panic:
//! plugins count it and move on. Unknown types are [`EventKind::Other`] with their JSON.

use serde::Deserialize;
use serde_json::Value;

use crate::types::Event;

/// What kind of event an [`Event`] is, with its content parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    Message(Message),
    Member(Membership),
    Call(CallEvent),
    Reaction(Reaction),
    Redaction(Redaction),
    Midi(Midi),
    /// A type this SDK has no view of; its content is in [`Event::content`].
    Other,
    /// A known type whose content is not what the spec says (why, in words).
    Malformed(String),
}

impl EventKind {
    pub fn of(event: &Event) -> EventKind {
        fn parse<T: serde::de::DeserializeOwned>(c: &Value, wrap: fn(T) -> EventKind) -> EventKind {
            match T::deserialize(c) {
                Ok(v) => wrap(v),
                Err(e) => EventKind::Malformed(e.to_string()),
            }
        }
        let c = &event.content;
        match event.event_type.as_str() {
            "m.room.message" => parse(c, EventKind::Message),
            "m.room.member" => match (event.state_key.as_deref(), Membership::deserialize(c)) {
                (Some(target), Ok(mut m)) => {
                    m.user_id = target.to_string();
                    EventKind::Member(m)
                }
                (None, _) => EventKind::Malformed("a member event without a state_key".into()),
                (_, Err(e)) => EventKind::Malformed(e.to_string()),
            },
            "m.call.invite" => parse(c, |v| EventKind::Call(CallEvent::Invite(v))),
            "m.call.answer" => parse(c, |v| EventKind::Call(CallEvent::Answer(v))),
            "m.call.candidates" => parse(c, |v| EventKind::Call(CallEvent::Candidates(v))),
            "m.call.hangup" => parse(c, |v| EventKind::Call(CallEvent::Hangup(v))),
            "m.call.select_answer" => parse(c, |v| EventKind::Call(CallEvent::SelectAnswer(v))),
            "m.call.reject" => parse(c, |v| EventKind::Call(CallEvent::Reject(v))),
            "m.call.negotiate" => parse(c, |v| EventKind::Call(CallEvent::Negotiate(v))),
            "m.reaction" => parse(c, EventKind::Reaction),
            "m.room.redaction" => {
                // Room version 11 moved `redacts` into the content; older ones keep it
                // at the top.
                let redacts = c
                    .get("redacts")
                    .or_else(|| event.raw.get("redacts"))
                    .and_then(Value::as_str);
                match redacts {
                    Some(r) => EventKind::Redaction(Redaction {
                        redacts: r.to_string(),
                        reason: c.get("reason").and_then(Value::as_str).map(str::to_string),
                    }),
                    None => EventKind::Malformed("a redaction without `redacts`".into()),
                }
            }
            "org.matrix.midi" => parse(c, EventKind::Midi),
            _ => EventKind::Other,
        }
    }
}

/// `msgtype` of an `m.room.message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MsgType {
    Text,
    Notice,
    Emote,
    File,
    Audio,
    Image,
    Video,
    Other(String),
}

impl MsgType {
    pub fn as_str(&self) -> &str {
        match self {
            MsgType::Text => "m.text",
            MsgType::Notice => "m.notice",
            MsgType::Emote => "m.emote",
            MsgType::File => "m.file",
            MsgType::Audio => "m.audio",
            MsgType::Image => "m.image",
            MsgType::Video => "m.video",
            MsgType::Other(s) => s,
        }
    }
}

impl<'de> Deserialize<'de> for MsgType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "m.text" => MsgType::Text,
            "m.notice" => MsgType::Notice,
            "m.emote" => MsgType::Emote,
            "m.file" => MsgType::File,
            "m.audio" => MsgType::Audio,
            "m.image" => MsgType::Image,
            "m.video" => MsgType::Video,
            _ => MsgType::Other(s),
        })
    }
}

/// `info` of a file-like message.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct FileInfo {
    pub mimetype: Option<String>,
    pub size: Option<u64>,
    /// Milliseconds, for audio and video.
    pub duration: Option<u64>,
}

/// `m.relates_to`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct RelatesTo {
    pub rel_type: Option<String>,
    pub event_id: Option<String>,
    pub key: Option<String>,
    #[serde(rename = "m.in_reply_to")]
    pub in_reply_to: Option<InReplyTo>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct InReplyTo {
    pub event_id: String,
}

/// `m.room.message`: text, notice, emote, file, audio, image, video.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Message {
    pub msgtype: MsgType,
    pub body: String,
    pub format: Option<String>,
    pub formatted_body: Option<String>,
    /// The `mxc://` URI of a file, audio, image or video.
    pub url: Option<String>,
    pub filename: Option<String>,
    pub info: Option<FileInfo>,
    #[serde(rename = "m.relates_to")]
    pub relates_to: Option<RelatesTo>,
    /// The replacement content of an edit (`rel_type: m.replace`).
    #[serde(rename = "m.new_content")]
    pub new_content: Option<Value>,
}

impl Message {
    /// The event this message edits, if it is an edit.
    pub fn replaces(&self) -> Option<&str> {
        let r = self.relates_to.as_ref()?;
        (r.rel_type.as_deref() == Some("m.replace"))
            .then_some(())
            .and(r.event_id.as_deref())
    }

    /// The event this message answers, if it is a reply.
    pub fn in_reply_to(&self) -> Option<&str> {
        Some(
            self.relates_to
                .as_ref()?
                .in_reply_to
                .as_ref()?
                .event_id
                .as_str(),
        )
    }

    /// The body without the quoted fallback (`> …` lines) a reply carries.
    pub fn text_without_fallback(&self) -> &str {
        let mut rest = self.body.as_str();
        if self.in_reply_to().is_some() {
            while rest.starts_with('>') {
                rest = rest.split_once('\n').map_or("", |(_, r)| r);
            }
            rest = rest.trim_start_matches('\n');
        }
        rest
    }
}

/// `m.room.member`; `user_id` is the event's state key.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Membership {
    #[serde(skip)]
    pub user_id: String,
    /// `invite`, `join`, `leave`, `ban`, `knock`.
    pub membership: String,
    pub displayname: Option<String>,
    pub avatar_url: Option<String>,
    #[serde(default)]
    pub is_direct: bool,
    pub reason: Option<String>,
}

/// An SDP offer or answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SessionDescription {
    #[serde(rename = "type")]
    pub kind: String,
    pub sdp: String,
}

/// One ICE candidate.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    pub candidate: String,
    pub sdp_mid: Option<String>,
    #[serde(rename = "sdpMLineIndex")]
    pub sdp_m_line_index: Option<u32>,
}

/// `version` of a call event: `0` (a number) in the first version, `"1"` (a string) since.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum CallVersion {
    Number(u64),
    Text(String),
}

impl CallVersion {
    pub fn is_v1(&self) -> bool {
        matches!(self, CallVersion::Text(s) if s == "1")
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CallInvite {
    pub call_id: String,
    pub party_id: Option<String>,
    pub version: CallVersion,
    /// Milliseconds from the invite's `origin_server_ts` after which it has expired.
    pub lifetime: u64,
    pub offer: SessionDescription,
    pub invitee: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CallAnswer {
    pub call_id: String,
    pub party_id: Option<String>,
    pub version: CallVersion,
    pub answer: SessionDescription,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CallCandidates {
    pub call_id: String,
    pub party_id: Option<String>,
    pub version: CallVersion,
    pub candidates: Vec<Candidate>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CallHangup {
    pub call_id: String,
    pub party_id: Option<String>,
    pub version: CallVersion,
    /// `ice_failed`, `invite_timeout`, `user_hangup`, `user_media_failed`, `user_busy`,
    /// `unknown_error`.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CallSelectAnswer {
    pub call_id: String,
    pub party_id: String,
    pub version: CallVersion,
    pub selected_party_id: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CallReject {
    pub call_id: String,
    pub party_id: String,
    pub version: CallVersion,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CallNegotiate {
    pub call_id: String,
    pub party_id: String,
    pub version: CallVersion,
    pub lifetime: u64,
    pub description: SessionDescription,
}

/// The VoIP signalling events of the spec's calls, version 1.
#[derive(Debug, Clone, PartialEq)]
pub enum CallEvent {
    Invite(CallInvite),
    Answer(CallAnswer),
    Candidates(CallCandidates),
    Hangup(CallHangup),
    SelectAnswer(CallSelectAnswer),
    Reject(CallReject),
    Negotiate(CallNegotiate),
}

impl CallEvent {
    pub fn call_id(&self) -> &str {
        match self {
            CallEvent::Invite(c) => &c.call_id,
            CallEvent::Answer(c) => &c.call_id,
            CallEvent::Candidates(c) => &c.call_id,
            CallEvent::Hangup(c) => &c.call_id,
            CallEvent::SelectAnswer(c) => &c.call_id,
            CallEvent::Reject(c) => &c.call_id,
            CallEvent::Negotiate(c) => &c.call_id,
        }
    }
}

/// `m.reaction`: an annotation (`key`, usually an emoji) of another event.
#[derive(Debug, Clone, PartialEq)]
pub struct Reaction {
    pub event_id: String,
    pub key: String,
}

impl<'de> Deserialize<'de> for Reaction {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Content {
            #[serde(rename = "m.relates_to")]
            relates_to: RelatesTo,
        }
        let c = Content::deserialize(d)?;
        match (
            c.relates_to.rel_type.as_deref(),
            c.relates_to.event_id,
            c.relates_to.key,
        ) {
            (Some("m.annotation"), Some(event_id), Some(key)) => Ok(Reaction { event_id, key }),
            _ => Err(serde::de::Error::custom(
                "a reaction is an m.annotation with event_id and key",
            )),
        }
    }
}

/// `m.room.redaction`.
#[derive(Debug, Clone, PartialEq)]
pub struct Redaction {
    pub redacts: String,
    pub reason: Option<String>,
}

/// The talk's MIDI event: one note on or off.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Midi {
    pub note: i64,
    pub velocity: i64,
    /// `on` or `off`.
    pub state: String,
    pub channel: i64,
    /// Milliseconds on the sender's clock.
    pub midi_ts: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::event;
    use serde_json::json;

    #[test]
    fn messages_parse_with_their_relations() {
        let e = event(
            "m.room.message",
            json!({
                "msgtype": "m.text", "body": "> <@a:x> hi\n\nhello",
                "m.relates_to": {"m.in_reply_to": {"event_id": "$1"}}
            }),
        );
        let EventKind::Message(m) = e.kind() else {
            panic!("{:?}", e.kind())
        };
        assert_eq!(m.msgtype, MsgType::Text);
        assert_eq!(m.in_reply_to(), Some("$1"));
        assert_eq!(m.text_without_fallback(), "hello");
        let edit = event(
            "m.room.message",
            json!({
                "msgtype": "m.text", "body": "* fixed", "m.new_content": {"msgtype": "m.text", "body": "fixed"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": "$2"}
            }),
        );
        let EventKind::Message(m) = edit.kind() else {
            panic!()
        };
        assert_eq!(m.replaces(), Some("$2"));
    }

    #[test]
    fn call_events_of_both_versions_parse() {
        let invite = event(
            "m.call.invite",
            json!({
                "call_id": "c1", "party_id": "p1", "version": "1", "lifetime": 60000,
                "offer": {"type": "offer", "sdp": "v=0\r\n"}
            }),
        );
        let EventKind::Call(CallEvent::Invite(i)) = invite.kind() else {
            panic!()
        };
        assert!(i.version.is_v1());
        let old = event("m.call.hangup", json!({"call_id": "c1", "version": 0}));
        let EventKind::Call(CallEvent::Hangup(h)) = old.kind() else {
            panic!()
        };
        assert!(!h.version.is_v1());
    }

    #[test]
    fn wrong_shapes_are_malformed_not_panics() {
        for (t, c) in [
            ("m.room.message", json!({"msgtype": 5})),
            ("m.call.invite", json!({"call_id": "c"})),
            ("org.matrix.midi", json!({"note": "C4"})),
            (
                "m.reaction",
                json!({"m.relates_to": {"rel_type": "m.reference"}}),
            ),
            ("m.room.redaction", json!({})),
        ] {
            assert!(matches!(event(t, c).kind(), EventKind::Malformed(_)), "{t}");
        }
        assert_eq!(event("com.example.x", json!({})).kind(), EventKind::Other);
    }
}
