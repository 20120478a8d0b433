//! `/sync`: initial and incremental, with long-poll. A request computes what changed for the
//! user between its `since` token and the current position; when nothing did, it waits on the
//! notifier until something does or the time-out passes. The response is written room by room
//! (see [`super::response`]); one that grows past [`STREAM_AFTER_BYTES`] goes out while the
//! rest is written, so its size is never held in memory.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::changes::{Kind, WHOLE_SERVER};
use super::filter::SyncFilter;
use super::response::{ResponseWriter, Section, UserParts};
use super::token::{pagination_token, Position};
use crate::service::presence::MAX_PRESENCE_PER_SYNC;
use crate::service::push;
use crate::service::rooms::pdu::Pdu;
use crate::service::rooms::values::Membership;
use crate::service::rooms::visibility::EventVisibility;
use crate::service::users::Session;
use crate::service::{Result, Services};
use crate::storage::rooms::MembershipRow;

/// Long-polls are capped so a client's huge time-out cannot pin a request forever.
const MAX_TIMEOUT: Duration = Duration::from_secs(300);

/// A response that grows past this is sent while the rest of it is written.
pub(crate) const STREAM_AFTER_BYTES: usize = 1 << 20;

/// What each further piece of a streamed response holds, about.
const CHUNK_BYTES: usize = 64 << 10;

#[derive(Debug, Clone, Default)]
pub(crate) struct SyncRequest {
    pub(crate) since: Option<String>,
    pub(crate) timeout: Duration,
    pub(crate) full_state: bool,
    pub(crate) filter: SyncFilter,
}

/// A /sync response, serialized.
pub(crate) enum SyncBody {
    Whole(Vec<u8>),
    /// Too large to hold at once: its beginning, then the rest as it is written.
    Streamed {
        first: Vec<u8>,
        rest: SyncRest,
    },
}

/// What a streamed response has still to write.
pub(crate) struct SyncRest {
    build: Box<Build>,
}

impl SyncRest {
    /// The next piece of the response; `None` once it has all been handed out.
    pub(crate) async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        if !self.build.write_rooms(CHUNK_BYTES).await? {
            self.build.writer.finish();
        }
        let chunk = self.build.writer.take();
        Ok((!chunk.is_empty()).then_some(chunk))
    }
}

/// Per-sync context: who asks, from where to where.
struct Span<'a> {
    session: &'a Session,
    since: Option<Position>,
    upto: Position,
    filter: &'a SyncFilter,
    full_state: bool,
}

impl Span<'_> {
    fn after(&self) -> i64 {
        self.since.map(|s| s.stream).unwrap_or(0)
    }

    fn viewer(&self) -> Option<(&str, &str)> {
        Some((&self.session.user_id, &self.session.device_id))
    }
}

/// One response being written: its context, the rooms it has still to write (in the order
/// the response has them) and what it has written.
struct Build {
    services: Arc<Services>,
    session: Session,
    since: Option<Position>,
    upto: Position,
    filter: Arc<SyncFilter>,
    full_state: bool,
    rooms: std::vec::IntoIter<(Section, MembershipRow)>,
    /// Room account data, by room.
    room_data: BTreeMap<String, Vec<Value>>,
    /// Whether anything outside `rooms` is news: account data, device lists, to-device.
    has_user_news: bool,
    writer: ResponseWriter,
}

impl Build {
    /// Writes rooms until `bytes` wait to be handed out or none is left; answers whether
    /// some are left. Each room's part is serialized and dropped before the next is computed.
    async fn write_rooms(&mut self, bytes: usize) -> Result<bool> {
        while self.writer.pending() < bytes {
            let Some((section, m)) = self.rooms.next() else {
                return Ok(false);
            };
            let data = self.room_data.remove(&m.room_id).unwrap_or_default();
            let span = Span {
                session: &self.session,
                since: self.since,
                upto: self.upto,
                filter: &self.filter,
                full_state: self.full_state,
            };
            let part = match section {
                Section::Join => self.services.joined_room(&span, &m, data).await?,
                Section::Invite => Some(self.services.stripped_room(&m, "invite_state").await?),
                Section::Knock => Some(self.services.stripped_room(&m, "knock_state").await?),
                Section::Leave => Some(self.services.left_room(&span, &m).await?),
            };
            if let Some(part) = part {
                self.writer.room(section, &m.room_id, &part);
            }
        }
        Ok(self.rooms.len() > 0)
    }

    /// Whether the response has nothing for the client (an incremental sync waits then).
    fn is_empty(&self) -> bool {
        self.writer.rooms() == 0 && !self.has_user_news
    }
}

impl Services {
    pub(crate) async fn sync(
        self: &Arc<Self>,
        session: &Session,
        req: SyncRequest,
    ) -> Result<SyncBody> {
        let since = req.since.as_deref().map(Position::parse_sync).transpose()?;
        let deadline = tokio::time::Instant::now() + req.timeout.min(MAX_TIMEOUT);
        let filter = Arc::new(req.filter);
        let mut rx = self.notifier.subscribe();
        loop {
            let upto = *rx.borrow_and_update();
            let mut build = self
                .plan(session, since, upto, &filter, req.full_state)
                .await?;
            if build.write_rooms(STREAM_AFTER_BYTES).await? {
                let first = build.writer.take();
                return Ok(SyncBody::Streamed {
                    first,
                    rest: SyncRest {
                        build: Box::new(build),
                    },
                });
            }
            let empty = build.is_empty();
            build.writer.finish();
            let body = build.writer.take();
            if !empty || since.is_none() || req.full_state {
                return Ok(SyncBody::Whole(body));
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                _ => return Ok(SyncBody::Whole(body)),
            }
        }
    }

    /// What a response at `upto` has to write: the user's account data, and their rooms by
    /// section, each section in room id order.
    async fn plan(
        self: &Arc<Self>,
        session: &Session,
        since: Option<Position>,
        upto: Position,
        filter: &Arc<SyncFilter>,
        full_state: bool,
    ) -> Result<Build> {
        let user = &session.user_id;
        let after = since.map(|s| s.stream).unwrap_or(0);
        let memberships = self.storage.user_memberships(user, None).await?;
        let account_data = if self.changes.changed_since(Kind::AccountData, user, after) {
            self.storage
                .account_data_since(user, after, upto.stream)
                .await?
        } else {
            Vec::new()
        };
        let mut room_data: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        let mut global_data = Vec::new();
        for row in account_data {
            let content: Value = serde_json::from_str(&row.content).unwrap_or(json!({}));
            let ev = json!({ "type": row.kind, "content": content });
            if row.room_id.is_empty() {
                if filter.account_data.matches(&row.kind, user) {
                    global_data.push(ev);
                }
            } else if filter.room_account_data.matches(&row.kind, user) {
                room_data.entry(row.room_id).or_default().push(ev);
            }
        }
        // Every user has push rules, the server's defaults until they change one: a first
        // sync carries them even when none are kept.
        let push_rules = push::rules::ACCOUNT_DATA_TYPE;
        if since.is_none()
            && filter.account_data.matches(push_rules, user)
            && !global_data.iter().any(|ev| ev["type"] == push_rules)
        {
            let defaults = push::rules::server_default(user)?;
            global_data.push(json!({
                "type": push_rules,
                "content": push::rules::account_data(&defaults),
            }));
        }

        let mut rooms = Vec::new();
        for m in memberships {
            if !filter.includes_room(&m.room_id) {
                continue;
            }
            // A membership that changed after `upto` (while this sync ran) is reported as it
            // was at `upto`; the change comes with the next sync.
            let Some(m) = self.membership_at(m, upto.stream).await? else {
                continue;
            };
            let section = match Membership::parse(&m.membership) {
                Some(Membership::Join) => Section::Join,
                Some(Membership::Invite) if since.is_none() || m.stream > after => Section::Invite,
                Some(Membership::Knock) if since.is_none() || m.stream > after => Section::Knock,
                Some(Membership::Leave | Membership::Ban) => {
                    let changed = since.is_some() && m.stream > after;
                    if !(changed || (since.is_none() && filter.include_leave)) {
                        continue;
                    }
                    Section::Leave
                }
                _ => continue,
            };
            rooms.push((section, m));
        }
        rooms.sort_by(|(s1, m1), (s2, m2)| (s1, &m1.room_id).cmp(&(s2, &m2.room_id)));
        let device_lists = match since {
            Some(_) => self.device_list_changes(user, after, upto.stream).await?,
            None => Default::default(),
        };
        let to_device = self.to_device_for_sync(session, since, upto.stream).await?;
        let (counts, fallback) = if session.device_id.is_empty() {
            (None, Vec::new())
        } else {
            let device = &session.device_id;
            let counts = self.one_time_key_counts(user, device).await?;
            let fallback = self.storage.unused_fallback_key_types(user, device).await?;
            (Some(json!(counts)), fallback)
        };
        let presence = if self
            .changes
            .changed_since(Kind::Presence, WHOLE_SERVER, after)
            && filter.presence.matches_type("m.presence")
        {
            let limit = filter.presence.limit.unwrap_or(MAX_PRESENCE_PER_SYNC);
            let events = self
                .presence_for_sync(user, after, upto.stream, limit)
                .await?;
            events
                .into_iter()
                .filter(|e| {
                    filter
                        .presence
                        .matches("m.presence", e["sender"].as_str().unwrap_or(""))
                })
                .collect()
        } else {
            Vec::new()
        };
        let has_user_news = !global_data.is_empty()
            || !device_lists.is_empty()
            || !to_device.is_empty()
            || !presence.is_empty();
        let parts = UserParts {
            account_data: global_data,
            device_lists: Some(device_lists.to_json()),
            one_time_key_counts: counts,
            unused_fallback_key_types: fallback,
            to_device,
            presence,
        };
        Ok(Build {
            services: self.clone(),
            session: session.clone(),
            since,
            upto,
            filter: filter.clone(),
            full_state,
            rooms: rooms.into_iter(),
            room_data,
            has_user_news,
            writer: ResponseWriter::new(parts, &upto.sync_token()),
        })
    }

    /// The membership row as it stood at `upto`, or `None` if there was none yet.
    async fn membership_at(&self, m: MembershipRow, upto: i64) -> Result<Option<MembershipRow>> {
        if m.stream <= upto {
            return Ok(Some(m));
        }
        let history = self.storage.member_history(&m.room_id, &m.user_id).await?;
        Ok(history
            .into_iter()
            .find(|e| e.stream <= upto)
            .map(|e| MembershipRow {
                membership: e.membership,
                stream: e.stream,
                event_id: e.event_id,
                ..m
            }))
    }

    /// A joined room's section, or `None` when an incremental sync has nothing for it.
    async fn joined_room(
        &self,
        span: &Span<'_>,
        m: &MembershipRow,
        account_data: Vec<Value>,
    ) -> Result<Option<Value>> {
        let after = span.after();
        // Joined after `since`, or left and came back since: the room starts over for the
        // client, within what the user may see (a rejoin must not reveal the gap).
        let newly_joined = span.since.is_some() && m.stream > after && {
            let history = self.storage.member_history(&m.room_id, &m.user_id).await?;
            history
                .iter()
                .filter(|e| e.stream > after && e.stream <= span.upto.stream)
                .any(|e| !Membership::Join.is(&e.membership))
                || history
                    .iter()
                    .find(|e| e.stream <= after)
                    .is_none_or(|e| !Membership::Join.is(&e.membership))
        };
        // `full_state` sends the whole state, but the timeline still starts at `since`.
        let initial = span.since.is_none() || newly_joined;
        let full = initial || span.full_state;
        // A user joined throughout (after, upto] sees all of it; a room that starts over is
        // filtered by the per-event visibility rule.
        let (timeline_after, visibility) = if initial {
            let v = self.rooms.event_visibility(&m.room_id, &m.user_id).await?;
            (0, Some(v))
        } else {
            (after, None)
        };
        let (timeline, limited) = self
            .timeline(
                span,
                &m.room_id,
                timeline_after,
                span.upto.stream,
                visibility.as_ref(),
            )
            .await?;

        let in_timeline: HashSet<&str> = timeline.iter().map(|p| p.event_id.as_str()).collect();
        let mut state = Vec::new();
        // Reading the whole state is only worth it when some of it goes out.
        if full || limited {
            for row in self.storage.current_state(&m.room_id).await? {
                let changed = full || row.stream > after;
                if !changed || in_timeline.contains(row.event_id.as_str()) {
                    continue;
                }
                if !span.filter.state.matches(&row.kind, &row.sender) {
                    continue;
                }
                let pdu = Pdu::try_from(row)?;
                state.push(self.rooms.client_event(&pdu, span.viewer(), false).await?);
            }
        }

        let ephemeral = self.room_ephemeral(span, &m.room_id, full).await?;
        if !full
            && timeline.is_empty()
            && state.is_empty()
            && ephemeral.is_empty()
            && account_data.is_empty()
        {
            return Ok(None);
        }
        let prev_batch = timeline
            .first()
            .map(|p| pagination_token(p.stream - 1))
            .unwrap_or_else(|| pagination_token(span.upto.stream));
        let events = self
            .rooms
            .client_events(&timeline, span.viewer(), false)
            .await?;
        // The summary only changes with membership; the spec lets it be left out otherwise.
        let membership_changed =
            full || timeline.iter().any(|p| p.kind == "m.room.member") || !state.is_empty();
        let summary = if membership_changed {
            let members = self.storage.room_members(&m.room_id, None).await?;
            let joined = members
                .iter()
                .filter(|r| Membership::Join.is(&r.membership))
                .count();
            let invited = members
                .iter()
                .filter(|r| Membership::Invite.is(&r.membership))
                .count();
            let heroes: Vec<&str> = members
                .iter()
                .filter(|r| r.user_id != m.user_id && Membership::Join.is(&r.membership))
                .map(|r| r.user_id.as_str())
                .take(5)
                .collect();
            json!({
                "m.joined_member_count": joined,
                "m.invited_member_count": invited,
                "m.heroes": heroes,
            })
        } else {
            json!({})
        };
        let by_thread = span.filter.timeline.unread_thread_notifications;
        let unread = self
            .unread_counts(
                &m.room_id,
                &m.user_id,
                m.stream,
                span.upto.stream,
                by_thread,
            )
            .await?;
        let mut room = json!({
            "timeline": { "events": events, "limited": limited, "prev_batch": prev_batch },
            "state": { "events": state },
            "ephemeral": { "events": ephemeral },
            "account_data": { "events": account_data },
            "summary": summary,
            "unread_notifications": unread.main.json(),
        });
        if by_thread {
            let threads: Map<String, Value> = unread
                .threads
                .iter()
                .map(|(thread, counts)| (thread.clone(), counts.json()))
                .collect();
            room["unread_thread_notifications"] = Value::Object(threads);
        }
        Ok(Some(room))
    }

    /// The newest timeline events in `after < stream <= upto` that pass the filter (and the
    /// visibility rule, when given), and whether older ones were left out.
    async fn timeline(
        &self,
        span: &Span<'_>,
        room_id: &str,
        after: i64,
        upto: i64,
        visibility: Option<&EventVisibility>,
    ) -> Result<(Vec<Pdu>, bool)> {
        let limit = span.filter.timeline_limit();
        let visible = |p: &Pdu| visibility.is_none_or(|v| v.can_see(p));
        if let Some(recent) = self.rooms.recent.range(room_id, after, upto) {
            // Newest first, as from the database: only what the limit keeps is parsed.
            let mut picked = Vec::new();
            let mut limited = false;
            for row in recent.iter().rev() {
                if !span.filter.timeline.matches(&row.kind, &row.sender) {
                    continue;
                }
                let pdu = Pdu::try_from((**row).clone())?;
                if !visible(&pdu) {
                    continue;
                }
                if picked.len() == limit {
                    limited = true;
                    break;
                }
                picked.push(pdu);
            }
            picked.reverse();
            return Ok((picked, limited));
        }
        let mut picked = Vec::new();
        let mut bound = upto;
        let mut limited = false;
        loop {
            let batch = self
                .storage
                .room_events_latest(room_id, after, bound, (limit * 2) as i64)
                .await?;
            let exhausted = batch.len() < limit * 2;
            let Some(first) = batch.first() else { break };
            bound = first.stream - 1;
            for row in batch.into_iter().rev() {
                if !span.filter.timeline.matches(&row.kind, &row.sender) {
                    continue;
                }
                let pdu = Pdu::try_from(row)?;
                if !visible(&pdu) {
                    continue;
                }
                if picked.len() == limit {
                    limited = true;
                    break;
                }
                picked.push(pdu);
            }
            if limited || exhausted {
                break;
            }
        }
        picked.reverse();
        Ok((picked, limited))
    }

    async fn room_ephemeral(
        &self,
        span: &Span<'_>,
        room_id: &str,
        full: bool,
    ) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        let typing_since = span.since.map(|s| s.typing).unwrap_or(0);
        if full || self.typing.changed_since(room_id, typing_since) {
            let users = self.typing.typing_in(room_id);
            if !(full && users.is_empty()) {
                out.push(json!({ "type": "m.typing", "content": { "user_ids": users } }));
            }
        }
        let after = if full { 0 } else { span.after() };
        let receipts = if self.changes.changed_since(Kind::Receipts, room_id, after) {
            self.storage
                .receipts_since(room_id, after, span.upto.stream)
                .await?
        } else {
            Vec::new()
        };
        let mut content: Map<String, Value> = Map::new();
        for r in receipts {
            if r.receipt_type == "m.read.private" && r.user_id != span.session.user_id {
                continue;
            }
            let mut receipt = json!({ "ts": r.ts });
            if !r.thread_id.is_empty() {
                receipt["thread_id"] = json!(r.thread_id);
            }
            let event = content.entry(r.event_id).or_insert_with(|| json!({}));
            event[r.receipt_type.as_str()][r.user_id.as_str()] = receipt;
        }
        if !content.is_empty() {
            out.push(json!({ "type": "m.receipt", "content": content }));
        }
        out.retain(|e| {
            span.filter
                .ephemeral
                .matches_type(e["type"].as_str().unwrap_or(""))
        });
        Ok(out)
    }

    /// An invited or knocking room as its user sees it from outside: the stripped state that
    /// names and describes it, the inviter's member event, and their own membership, under
    /// `key` (`invite_state` or `knock_state`).
    async fn stripped_room(&self, m: &MembershipRow, key: &str) -> Result<Value> {
        if !self.storage.room_exists(&m.room_id).await? {
            // An invite to, or a knock on, a room of another server that this server is not in.
            let events = self.remote_stripped_state(&m.event_id).await?;
            return Ok(json!({ key: { "events": events } }));
        }
        let state = self.rooms.current_state(&m.room_id).await?;
        let mut events = crate::service::rooms::pdu::stripped_state(&state);
        if let Some(inviter) = state
            .get(&("m.room.member".to_string(), m.user_id.clone()))
            .map(|p| p.sender.clone())
            .filter(|sender| *sender != m.user_id)
        {
            if let Some(p) = state.get(&("m.room.member".to_string(), inviter)) {
                events.push(p.to_stripped());
            }
        }
        if let Some(invite) = self.rooms.event(&m.event_id).await? {
            events.push(invite.to_stripped());
        }
        Ok(json!({ key: { "events": events } }))
    }

    async fn left_room(&self, span: &Span<'_>, m: &MembershipRow) -> Result<Value> {
        if !self.storage.room_exists(&m.room_id).await? {
            // A refused invite to a room of another server this server is not in: the
            // refusal is all there is to show.
            let leave = self.out_of_room_event(&m.event_id, &m.room_id).await?;
            return Ok(json!({
                "state": { "events": [] },
                "timeline": { "events": leave.into_iter().collect::<Vec<_>>(), "limited": false },
                "account_data": { "events": [] },
            }));
        }
        // Clipped to what the user may read; with nothing readable, just the leave itself.
        let after = match self.rooms.visible_window(&m.room_id, &m.user_id).await? {
            Some(_) => span.after(),
            None => span.after().max(m.stream - 1),
        };
        let visibility = self.rooms.event_visibility(&m.room_id, &m.user_id).await?;
        let (timeline, limited) = self
            .timeline(span, &m.room_id, after, m.stream, Some(&visibility))
            .await?;
        let prev_batch = timeline
            .first()
            .map(|p| pagination_token(p.stream - 1))
            .unwrap_or_else(|| pagination_token(m.stream));
        let events = self
            .rooms
            .client_events(&timeline, span.viewer(), false)
            .await?;
        Ok(json!({
            "timeline": { "events": events, "limited": limited, "prev_batch": prev_batch },
            "state": { "events": [] },
            "account_data": { "events": [] },
        }))
    }
}
