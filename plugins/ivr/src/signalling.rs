//! The VoIP signalling of a call to the IVR, version 1 of the spec's call events: an invite
//! that has not expired is answered (after the glare rule between two calls of one caller in
//! one room), candidates are kept, the caller's hang-up, a selected answer of another party
//! and a leave end the call, a renegotiation is answered. Events of other parties, of
//! unknown or ended calls and duplicates are counted and passed over.

use plugboard_sdk::events::{
    CallCandidates, CallHangup, CallInvite, CallNegotiate, CallSelectAnswer, CallVersion,
};
use plugboard_sdk::prelude::*;

use crate::call::{self, valid_voip_id, Call, Stage, StoredCandidate, MAX_CANDIDATES};
use crate::counts::count;
use crate::credentials::{party_id, Credentials};
use crate::outgoing;
use crate::sdp::{AnswerError, Offer};
use crate::session;
use crate::settings::Settings;

/// The hang-up reasons of the spec; others are logged as "other".
const REASONS: [&str; 7] = [
    "ice_failed",
    "ice_timeout",
    "invite_timeout",
    "user_hangup",
    "user_media_failed",
    "user_busy",
    "unknown_error",
];

/// Whether an event comes from the party the IVR is in the call with: the calling user
/// and, when the caller gave one, its party id.
fn from_caller(call: &Call, event: &Event, party: Option<&str>) -> bool {
    event.sender == call.caller
        && event.room_id == call.room_id
        && match &call.caller_party {
            Some(p) => party == Some(p.as_str()),
            None => true,
        }
}

/// The call an event is for, when it comes from the caller's party and was not handled
/// before; counts why not otherwise.
pub fn call_of(event: &Event, call_id: &str, party: Option<&str>) -> Result<Option<Call>, Error> {
    let Some(mut call) = Call::load(call_id)? else {
        count("ignored/unknown_call")?;
        return Ok(None);
    };
    if !from_caller(&call, event, party) {
        count("ignored/other_party")?;
        return Ok(None);
    }
    if call.seen_before(&event.event_id) {
        count("duplicate")?;
        return Ok(None);
    }
    Ok(Some(call))
}

/// One call event.
pub fn on_call(settings: &Settings, event: &Event, call: &CallEvent) -> Result<(), Error> {
    if !valid_voip_id(call.call_id()) {
        return count("rejected/call_id");
    }
    match call {
        CallEvent::Invite(i) => invite(settings, event, i),
        CallEvent::Candidates(c) => candidates(event, c),
        CallEvent::Hangup(h) => hangup(event, h),
        CallEvent::SelectAnswer(s) => select_answer(event, s),
        CallEvent::Negotiate(n) => negotiate(settings, event, n),
        // Another callee's device answered or declined: the caller picks one with
        // `select_answer`, which is what the IVR acts on.
        CallEvent::Answer(_) => count("ignored/answer_of_another_party"),
        CallEvent::Reject(_) => count("ignored/reject_of_another_party"),
    }
}

/// Whether the room is a direct chat: the caller and the IVR, nobody else joined.
fn direct(room: &str) -> Result<bool, Error> {
    match homeserver::room_members(None, room) {
        Ok(members) => Ok(members.iter().filter(|m| m.membership == "join").count() <= 2),
        Err(e) if e.is("M_FORBIDDEN") || e.is("M_NOT_FOUND") => Ok(false),
        Err(e) => Err(e),
    }
}

/// Declines a call the IVR does not take: `m.call.reject` for a version 1 caller, the
/// hang-up version 0 has instead.
fn decline(event: &Event, i: &CallInvite) -> Result<(), Error> {
    let party = party_id();
    if matches!(i.version, CallVersion::Number(0)) {
        outgoing::hangup(&event.room_id, &i.call_id, &party, "user_hangup")?;
    } else {
        outgoing::reject(&event.room_id, &i.call_id, &party)?;
    }
    Ok(())
}

/// Ends a call the IVR cannot take with a word why and a hang-up.
fn refuse(event: &Event, i: &CallInvite, why: &str, reason: &str) -> Result<(), Error> {
    outgoing::notice(&event.room_id, &i.call_id, why)?;
    outgoing::hangup(&event.room_id, &i.call_id, &party_id(), reason)?;
    Ok(())
}

fn invite(settings: &Settings, event: &Event, i: &CallInvite) -> Result<(), Error> {
    if i.invitee
        .as_deref()
        .is_some_and(|u| u != homeserver::sender())
    {
        return count("ignored/not_for_the_ivr");
    }
    if i.party_id.as_deref().is_some_and(|p| !valid_voip_id(p)) {
        return count("rejected/party_id");
    }
    if Call::load(&i.call_id)?.is_some() || call::ended(&i.call_id, clock::now_ms())? {
        return count("duplicate");
    }
    let now = clock::now_ms();
    if now.saturating_sub(event.origin_server_ts) >= i.lifetime {
        log::info(&format!("not answering the expired invite {}", i.call_id));
        return count("expired");
    }
    if !call::keys_fit(&event.room_id, &event.sender) {
        return count("rejected/ids_too_long");
    }
    if i.invitee.is_none() && !direct(&event.room_id)? {
        return count("ignored/not_a_direct_room");
    }
    let Some(menus) = &settings.menus else {
        outgoing::notice(
            &event.room_id,
            &i.call_id,
            "The IVR is not configured: set `menus` in its configuration.",
        )?;
        return decline(event, i);
    };
    let offer = match Offer::parse(&i.offer.sdp) {
        Ok(o) => o,
        Err(why) => {
            count("rejected/sdp")?;
            return refuse(
                event,
                i,
                &format!("Cannot take the call: the offer is not valid SDP ({why})."),
                "unknown_error",
            );
        }
    };
    // Glare (two calls between the same two parties in one room): the lesser call id goes
    // on, the greater is aborted, and the menu carries over to the call that goes on.
    let replaced = Call::of_caller(&event.room_id, &event.sender)?;
    if let Some(old) = &replaced {
        if old.call_id < i.call_id {
            count("glare")?;
            return decline(event, i);
        }
    }
    if replaced.is_none() && call::in_progress(settings.max_calls)?.len() >= settings.max_calls {
        count("busy")?;
        return refuse(
            event,
            i,
            "All lines are busy: please call again later.",
            "user_busy",
        );
    }
    let mut credentials = Credentials::new(settings.fingerprint.as_deref());
    let sdp =
        match offer.answer(&settings.codecs, &credentials.next_local()) {
            Ok(sdp) => sdp,
            Err(AnswerError::NoCommonCodec(offered)) => {
                count("rejected/no_common_codec")?;
                return refuse(
                    event,
                    i,
                    &format!(
                    "Cannot take the call: no audio codec in common (offered: {}; supported: {}).",
                    if offered.is_empty() { "none".into() } else { offered.join(", ") },
                    settings.codecs.join(", ")
                ),
                    "unknown_error",
                );
            }
        };
    let mut call = Call {
        call_id: i.call_id.clone(),
        room_id: event.room_id.clone(),
        caller: event.sender.clone(),
        caller_party: i.party_id.clone(),
        party_id: party_id(),
        invite_ts: event.origin_server_ts,
        lifetime: i.lifetime,
        credentials,
        menu: menus.start.clone(),
        prompts: 0,
        stage: Stage::Menu,
        timer: 0,
        selected: false,
        candidates: Vec::new(),
        dropped_candidates: 0,
        seen: Vec::new(),
    };
    let _ = call.seen_before(&event.event_id);
    outgoing::answer(&call.room_id, &call.call_id, &call.party_id, &sdp)?;
    let first_mid = offer
        .sections
        .iter()
        .find(|s| s.media == "audio")
        .and_then(|s| s.mid.as_deref());
    outgoing::end_of_candidates(&call.room_id, &call.call_id, &call.party_id, first_mid)?;
    if let Some(old) = replaced {
        outgoing::hangup(&old.room_id, &old.call_id, &old.party_id, "user_hangup")?;
        call.menu = old.menu.clone();
        old.end(now)?;
    }
    session::prompt(menus, &mut call)?;
    log::info(&format!(
        "answered call {} from {} in {}",
        call.call_id, call.caller, call.room_id
    ));
    call.save()
}

fn candidates(event: &Event, c: &CallCandidates) -> Result<(), Error> {
    let Some(mut call) = call_of(event, &c.call_id, c.party_id.as_deref())? else {
        return Ok(());
    };
    for cand in &c.candidates {
        if call.candidates.len() >= MAX_CANDIDATES || cand.candidate.len() > 1024 {
            call.dropped_candidates += 1;
            continue;
        }
        call.candidates.push(StoredCandidate {
            candidate: cand.candidate.clone(),
            sdp_mid: cand.sdp_mid.clone().filter(|m| m.len() <= 32),
            sdp_m_line_index: cand.sdp_m_line_index,
        });
    }
    call.save()
}

fn hangup(event: &Event, h: &CallHangup) -> Result<(), Error> {
    let Some(call) = call_of(event, &h.call_id, h.party_id.as_deref())? else {
        return Ok(());
    };
    let reason = match h.reason.as_deref() {
        None => "user_hangup",
        Some(r) if REASONS.contains(&r) => r,
        Some(_) => "other",
    };
    log::info(&format!("the caller hung up {} ({reason})", call.call_id));
    call.end(clock::now_ms())
}

fn select_answer(event: &Event, s: &CallSelectAnswer) -> Result<(), Error> {
    let Some(mut call) = call_of(event, &s.call_id, Some(&s.party_id))? else {
        return Ok(());
    };
    if s.selected_party_id == call.party_id {
        call.selected = true;
        return call.save();
    }
    // Answered elsewhere: the spec has the IVR end the call without sending anything.
    log::info(&format!("call {} was answered elsewhere", call.call_id));
    call.end(clock::now_ms())
}

fn negotiate(settings: &Settings, event: &Event, n: &CallNegotiate) -> Result<(), Error> {
    let Some(mut call) = call_of(event, &n.call_id, Some(&n.party_id))? else {
        return Ok(());
    };
    if clock::now_ms().saturating_sub(event.origin_server_ts) >= n.lifetime {
        count("expired")?;
        return call.save();
    }
    if n.description.kind != "offer" {
        // The IVR never offers, so an answer has nothing to answer.
        count("ignored/negotiate_answer")?;
        return call.save();
    }
    let sdp = Offer::parse(&n.description.sdp)
        .map_err(|why| format!("the new offer is not valid SDP ({why})"))
        .and_then(|offer| {
            offer
                .answer(&settings.codecs, &call.credentials.next_local())
                .map_err(|AnswerError::NoCommonCodec(_)| {
                    "the new offer has no audio codec in common".to_string()
                })
        });
    match sdp {
        Ok(sdp) => {
            outgoing::negotiate_answer(
                &call.room_id,
                &call.call_id,
                &call.party_id,
                &sdp,
                n.lifetime,
            )?;
        }
        Err(why) => {
            count("rejected/negotiate")?;
            outgoing::notice(
                &call.room_id,
                &call.call_id,
                &format!("Cannot renegotiate: {why}; the call goes on as it was."),
            )?;
        }
    }
    call.save()
}

/// A member left or was removed: the spec treats the caller's leave as a hang-up, and the
/// IVR's own as the end of every call in the room.
pub fn left(room: &str, user: &str) -> Result<(), Error> {
    let now = clock::now_ms();
    if user == homeserver::sender() {
        for id in call::in_progress(1000)? {
            if let Some(c) = Call::load(&id)?.filter(|c| c.room_id == room) {
                c.end(now)?;
            }
        }
        return Ok(());
    }
    if let Some(c) = Call::of_caller(room, user)? {
        log::info(&format!("{user} left {room}: call {} ends", c.call_id));
        c.end(now)?;
    }
    Ok(())
}

/// An `m.call.invite` whose content is not what the spec says: counted and, when it has a
/// call id to answer to, declined with a word why, once.
pub fn malformed_invite(event: &Event, why: &str) -> Result<(), Error> {
    count("rejected/malformed_call")?;
    let Some(call_id) = event.content_str("call_id").filter(|c| valid_voip_id(c)) else {
        return Ok(());
    };
    if call::ended(call_id, clock::now_ms())? || Call::load(call_id)?.is_some() {
        return Ok(());
    }
    let why: String = why.chars().take(200).collect();
    outgoing::notice(
        &event.room_id,
        call_id,
        &format!("Cannot take the call: the invite is malformed ({why})."),
    )?;
    outgoing::hangup(&event.room_id, call_id, &party_id(), "unknown_error")?;
    let lifetime = event
        .content
        .get("lifetime")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    call::mark_ended(call_id, event.origin_server_ts, lifetime, clock::now_ms())
}
