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
    /// `m.room.message`.
    Message(Message),
    /// `m.room.member`.
    Member(Membership),
    /// One of the `m.call.*` events.
    Call(CallEvent),
    /// `m.reaction`.
    Reaction(Reaction),
    /// `m.room.redaction`.
    Redaction(Redaction),
    /// `org.matrix.midi`.
    Midi(Midi),
    /// A type this SDK has no view of; its content is in [`Event::content`].
    Other,
    /// A known type whose content is not what the spec says (why, in words).
    Malformed(String),
}

impl EventKind {
    /// The typed view of `event`.
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
                    .or_else(|| event.raw().get("redacts"))
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
    /// `m.text`.
    Text,
    /// `m.notice`: what bots answer with.
    Notice,
    /// `m.emote`.
    Emote,
    /// `m.file`.
    File,
    /// `m.audio`.
    Audio,
    /// `m.image`.
    Image,
    /// `m.video`.
    Video,
    /// Another msgtype, as written.
    Other(String),
}

impl MsgType {
    /// The msgtype as it goes into content.
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
    /// The file's content type.
    pub mimetype: Option<String>,
    /// Its size in bytes.
    pub size: Option<u64>,
    /// Milliseconds, for audio and video.
    pub duration: Option<u64>,
}

/// `m.relates_to`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct RelatesTo {
    /// `m.replace`, `m.annotation`, `m.thread`, ….
    pub rel_type: Option<String>,
    /// The related event.
    pub event_id: Option<String>,
    /// The annotation's key (a reaction's emoji).
    pub key: Option<String>,
    #[serde(rename = "m.in_reply_to")]
    /// The event a reply answers.
    pub in_reply_to: Option<InReplyTo>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
/// `m.in_reply_to`.
pub struct InReplyTo {
    /// The event answered.
    pub event_id: String,
}

/// `m.room.message`: text, notice, emote, file, audio, image, video.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Message {
    /// What kind of message it is.
    pub msgtype: MsgType,
    /// The plain-text body.
    pub body: String,
    /// `org.matrix.custom.html` when there is an HTML body.
    pub format: Option<String>,
    /// The HTML body.
    pub formatted_body: Option<String>,
    /// The `mxc://` URI of a file, audio, image or video.
    pub url: Option<String>,
    /// The file name of a file-like message.
    pub filename: Option<String>,
    /// Size, type and duration of a file-like message.
    pub info: Option<FileInfo>,
    #[serde(rename = "m.relates_to")]
    /// Its relation to another event (reply, edit, thread).
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
    /// The member: the event's state key.
    pub user_id: String,
    /// `invite`, `join`, `leave`, `ban`, `knock`.
    pub membership: String,
    /// Their display name in the room.
    pub displayname: Option<String>,
    /// Their avatar, an `mxc://` URI.
    pub avatar_url: Option<String>,
    #[serde(default)]
    /// An invite to a direct chat.
    pub is_direct: bool,
    /// Why, as given.
    pub reason: Option<String>,
}

/// An SDP offer or answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SessionDescription {
    #[serde(rename = "type")]
    /// `offer` or `answer`.
    pub kind: String,
    /// The session description.
    pub sdp: String,
}

/// One ICE candidate.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    /// The candidate line, `candidate:…`.
    pub candidate: String,
    /// The media stream it belongs to.
    pub sdp_mid: Option<String>,
    #[serde(rename = "sdpMLineIndex")]
    /// The index of that stream's m-line.
    pub sdp_m_line_index: Option<u32>,
}

/// `version` of a call event: `0` (a number) in the first version, `"1"` (a string) since.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum CallVersion {
    /// The first version: `0`.
    Number(u64),
    /// Since version 1: `"1"`.
    Text(String),
}

impl CallVersion {
    /// Version `"1"` of the call events.
    pub fn is_v1(&self) -> bool {
        matches!(self, CallVersion::Text(s) if s == "1")
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
/// `m.call.invite`: a call offered.
pub struct CallInvite {
    /// The call this event belongs to.
    pub call_id: String,
    /// The sending party (one device of the user).
    pub party_id: Option<String>,
    /// The version of the call events.
    pub version: CallVersion,
    /// Milliseconds from the invite's `origin_server_ts` after which it has expired.
    pub lifetime: u64,
    /// The caller's SDP offer.
    pub offer: SessionDescription,
    /// The one user the call is for, in a room of more.
    pub invitee: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
/// `m.call.answer`: a call accepted.
pub struct CallAnswer {
    /// The call this event belongs to.
    pub call_id: String,
    /// The sending party (one device of the user).
    pub party_id: Option<String>,
    /// The version of the call events.
    pub version: CallVersion,
    /// The callee's SDP answer.
    pub answer: SessionDescription,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
/// `m.call.candidates`: ICE candidates of one party.
pub struct CallCandidates {
    /// The call this event belongs to.
    pub call_id: String,
    /// The sending party (one device of the user).
    pub party_id: Option<String>,
    /// The version of the call events.
    pub version: CallVersion,
    /// The candidates.
    pub candidates: Vec<Candidate>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
/// `m.call.hangup`: a call ended.
pub struct CallHangup {
    /// The call this event belongs to.
    pub call_id: String,
    /// The sending party (one device of the user).
    pub party_id: Option<String>,
    /// The version of the call events.
    pub version: CallVersion,
    /// `ice_failed`, `invite_timeout`, `user_hangup`, `user_media_failed`, `user_busy`,
    /// `unknown_error`.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
/// `m.call.select_answer`: the caller chose the answer of one party.
pub struct CallSelectAnswer {
    /// The call this event belongs to.
    pub call_id: String,
    /// The sending party (one device of the user).
    pub party_id: String,
    /// The version of the call events.
    pub version: CallVersion,
    /// The party whose answer was chosen.
    pub selected_party_id: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
/// `m.call.reject`: a call declined.
pub struct CallReject {
    /// The call this event belongs to.
    pub call_id: String,
    /// The sending party (one device of the user).
    pub party_id: String,
    /// The version of the call events.
    pub version: CallVersion,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
/// `m.call.negotiate`: a new session description mid-call.
pub struct CallNegotiate {
    /// The call this event belongs to.
    pub call_id: String,
    /// The sending party (one device of the user).
    pub party_id: String,
    /// The version of the call events.
    pub version: CallVersion,
    /// Milliseconds after which the description has expired.
    pub lifetime: u64,
    /// The new offer or answer.
    pub description: SessionDescription,
}

/// The VoIP signalling events of the spec's calls, version 1.
#[derive(Debug, Clone, PartialEq)]
pub enum CallEvent {
    /// `m.call.invite`.
    Invite(CallInvite),
    /// `m.call.answer`.
    Answer(CallAnswer),
    /// `m.call.candidates`.
    Candidates(CallCandidates),
    /// `m.call.hangup`.
    Hangup(CallHangup),
    /// `m.call.select_answer`.
    SelectAnswer(CallSelectAnswer),
    /// `m.call.reject`.
    Reject(CallReject),
    /// `m.call.negotiate`.
    Negotiate(CallNegotiate),
}

impl CallEvent {
    /// The call any of these events belongs to.
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
    /// The event reacted to.
    pub event_id: String,
    /// The reaction itself, usually an emoji.
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
    /// The event redacted.
    pub redacts: String,
    /// Why, as given.
    pub reason: Option<String>,
}

/// The talk's MIDI event: one note on or off.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Midi {
    /// The MIDI note number (0–127 when valid).
    pub note: i64,
    /// How hard (0–127 when valid).
    pub velocity: i64,
    /// `on` or `off`.
    pub state: String,
    /// The MIDI channel (1–16 when valid).
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
