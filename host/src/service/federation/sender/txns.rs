//! A remote server's queue as a [`Destination`] of the delivery machine: what its next
//! transaction holds, read from the global stream after its position (events, receipts,
//! presence, to-device messages and key changes, each with its stream position), chosen by
//! [`select`](super::select)'s rules, and stored in `federation_queues`. Typing is not in the
//! stream: the changes since the server was last told ride with the next transaction, best
//! effort, as they do for application services.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use super::select::{self, EventFacts, CAPS, MAX_PDUS};
use crate::service::appservice::delivery::{
    load_queue, read_cut, Body, Built, Cursor, Destination, StepError, Stored, Txn, Write,
    READ_AHEAD,
};
use crate::service::appservice::queue::{take, Candidate, Caps, Item};
use crate::service::rooms::pdu::Pdu;
use crate::service::rooms::values::Membership;
use crate::service::{now_ms, Services};
use crate::storage::queue::{QueueKind, QueueWrite};

/// One remote server's queue.
pub(super) struct ServerTxns {
    services: Arc<Services>,
    destination: String,
    /// Its name in the delivery worker's logs, as a pusher's is "pusher … of …".
    name: String,
    /// The typing serial the server has been told up to.
    typing_sent: AtomicU64,
    /// Who the server was last told is typing, by room.
    typing_told: Mutex<HashMap<String, BTreeSet<String>>>,
    /// The position of the build that last deleted the to-device messages sent to the
    /// server (up to its stored position).
    to_device_forgotten: AtomicI64,
}

/// What one build has looked up of the rooms and users it met.
#[derive(Default)]
struct Lookups {
    /// By room: the earliest join of the server's members joined to it now.
    rooms: HashMap<String, Option<i64>>,
    /// By local user: whether they share a joined room with the server.
    users: HashMap<String, bool>,
}

impl ServerTxns {
    pub(super) fn new(services: Arc<Services>, destination: String) -> ServerTxns {
        ServerTxns {
            services,
            name: format!("server {destination}"),
            destination,
            // From the start: a queue is made once the server's first member is stored, which
            // can be after someone started typing in its room. Its first transaction tells it
            // who is typing now (having told it nothing, there is nothing to take back).
            typing_sent: AtomicU64::new(0),
            typing_told: Mutex::new(HashMap::new()),
            to_device_forgotten: AtomicI64::new(0),
        }
    }

    fn is_local(&self, user_id: &str) -> bool {
        select::server_of(user_id) == Some(self.services.server_name())
    }

    /// When the server's members now joined to `room_id` joined it, the earliest.
    async fn joined_since(
        &self,
        looked: &mut Lookups,
        room_id: &str,
    ) -> Result<Option<i64>, StepError> {
        if let Some(since) = looked.rooms.get(room_id) {
            return Ok(*since);
        }
        let joined = Some(Membership::Join.as_str());
        let since = self
            .services
            .storage
            .room_members(room_id, joined)
            .await?
            .into_iter()
            .filter(|m| select::server_of(&m.user_id) == Some(self.destination.as_str()))
            .map(|m| m.stream)
            .min();
        looked.rooms.insert(room_id.to_string(), since);
        Ok(since)
    }

    /// Whether local user `user_id` shares a joined room with the server.
    async fn shares_a_room(&self, looked: &mut Lookups, user_id: &str) -> Result<bool, StepError> {
        if let Some(shares) = looked.users.get(user_id) {
            return Ok(*shares);
        }
        let joined = Some(Membership::Join.as_str());
        let mut shares = false;
        for m in self
            .services
            .storage
            .user_memberships(user_id, joined)
            .await?
        {
            if self.joined_since(looked, &m.room_id).await?.is_some() {
                shares = true;
                break;
            }
        }
        looked.users.insert(user_id.to_string(), shares);
        Ok(shares)
    }

    /// The events after `after` up to `upto` as candidates, the wanted ones as PDUs; answers
    /// the end of what was read (earlier than `upto` when the read stopped at a full
    /// transaction or at [`READ_AHEAD`] rows).
    async fn pdus(
        &self,
        looked: &mut Lookups,
        after: i64,
        upto: i64,
        caps: Caps,
        candidates: &mut Vec<Candidate<Value>>,
    ) -> Result<i64, StepError> {
        let ours = self.services.server_name();
        let rows = self
            .services
            .storage
            .events_range(after, upto, READ_AHEAD)
            .await?;
        let mut read_end = read_cut(upto, rows.len(), rows.last().map(|r| r.stream));
        let mut wanted = 0;
        for row in rows {
            let stream = row.stream;
            // Only local events are looked at further: the rest are passed over.
            let send = if self.is_local(&row.sender) {
                let membership = if row.kind == "m.room.member" {
                    serde_json::from_str::<Value>(&row.json)
                        .ok()
                        .and_then(|e| e["content"]["membership"].as_str().map(str::to_string))
                } else {
                    None
                };
                let facts = EventFacts {
                    stream,
                    sender: &row.sender,
                    kind: &row.kind,
                    state_key: row.state_key.as_deref(),
                    membership: membership.as_deref(),
                };
                let since = self.joined_since(looked, &row.room_id).await?;
                select::sends_pdu(ours, &self.destination, &facts, since)
            } else {
                false
            };
            let payload = if send {
                wanted += 1;
                Some(Item::Event(Pdu::try_from(row)?.to_federation()))
            } else {
                None
            };
            candidates.push(Candidate {
                stream,
                wanted: payload,
            });
            if wanted == caps.events {
                read_end = stream;
                break;
            }
        }
        Ok(read_end)
    }

    /// The receipts, presence and key changes after `after` up to `read_end` as candidates;
    /// answers the end of the range read.
    async fn edus(
        &self,
        looked: &mut Lookups,
        after: i64,
        mut read_end: i64,
        candidates: &mut Vec<Candidate<Value>>,
    ) -> Result<i64, StepError> {
        let storage = &self.services.storage;
        let receipts = storage.receipts_range(after, read_end, READ_AHEAD).await?;
        read_end = read_cut(read_end, receipts.len(), receipts.last().map(|r| r.stream));
        for r in receipts {
            let wanted = self.is_local(&r.user_id)
                && select::receipt_is_public(&r.receipt_type)
                && self.joined_since(looked, &r.room_id).await?.is_some();
            candidates.push(Candidate {
                stream: r.stream,
                wanted: wanted.then(|| {
                    Item::Ephemeral(select::receipt_edu(
                        &r.room_id,
                        &r.user_id,
                        &r.receipt_type,
                        &r.event_id,
                        r.ts,
                    ))
                }),
            });
        }
        let presence = storage.presence_range(after, read_end, READ_AHEAD).await?;
        read_end = read_cut(read_end, presence.len(), presence.last().map(|p| p.stream));
        let now = now_ms();
        for p in presence {
            let wanted =
                self.is_local(&p.user_id) && self.shares_a_room(looked, &p.user_id).await?;
            candidates.push(Candidate {
                stream: p.stream,
                wanted: wanted.then(|| {
                    Item::Ephemeral(select::presence_edu(
                        &p.user_id,
                        &p.presence,
                        p.status_msg.as_deref(),
                        p.last_active_ts,
                        now,
                    ))
                }),
            });
        }
        read_end = self.to_device(after, read_end, candidates).await?;
        let changes = storage
            .key_changes_range(after, read_end, READ_AHEAD)
            .await?;
        read_end = read_cut(read_end, changes.len(), changes.last().map(|c| c.0));
        for (stream, user) in changes {
            if !(self.is_local(&user) && self.shares_a_room(looked, &user).await?) {
                candidates.push(Candidate {
                    stream,
                    wanted: None,
                });
                continue;
            }
            for edu in self.key_edus(&user, stream).await? {
                candidates.push(Candidate {
                    stream,
                    wanted: Some(Item::Ephemeral(edu)),
                });
            }
        }
        Ok(read_end)
    }

    /// The to-device messages after `after` up to `read_end` as candidates, one
    /// `m.direct_to_device` EDU per send with messages for the server's users; answers the
    /// end of the range read.
    async fn to_device(
        &self,
        after: i64,
        read_end: i64,
        candidates: &mut Vec<Candidate<Value>>,
    ) -> Result<i64, StepError> {
        let storage = &self.services.storage;
        let rows = storage.to_device_range(after, read_end, READ_AHEAD).await?;
        // A read is never cut inside a send: its last send is whole.
        let read_end = read_cut(read_end, rows.len(), rows.last().map(|r| r.stream));
        let mut sends: Vec<(i64, &str, &str, Vec<select::Addressed<'_>>)> = Vec::new();
        for row in &rows {
            if sends.last().is_none_or(|s| s.0 != row.stream) {
                sends.push((row.stream, &row.sender, &row.kind, Vec::new()));
            }
            if select::server_of(&row.user_id) == Some(self.destination.as_str()) {
                let content = serde_json::from_str(&row.content).unwrap_or_default();
                if let Some(send) = sends.last_mut() {
                    send.3.push((&row.user_id, &row.device_id, content));
                }
            }
        }
        for (stream, sender, kind, to) in sends {
            candidates.push(Candidate {
                stream,
                wanted: (!to.is_empty())
                    .then(|| Item::Ephemeral(select::to_device_edu(sender, kind, stream, to))),
            });
        }
        Ok(read_end)
    }

    /// The EDUs of a change of `user`'s keys at `stream`: an update of each of their devices
    /// with keys, and their cross-signing keys.
    async fn key_edus(&self, user: &str, stream: i64) -> Result<Vec<Value>, StepError> {
        let storage = &self.services.storage;
        let mut edus = Vec::new();
        for (device, json) in storage.device_keys(user).await? {
            let keys: Option<Value> = serde_json::from_str(&json).ok();
            edus.push(select::device_list_edu(
                user,
                &device,
                stream,
                keys.as_ref(),
            ));
        }
        let cross_signing: Map<String, Value> = storage
            .cross_signing_keys(user)
            .await?
            .into_iter()
            .filter_map(|(kind, json)| Some((kind, serde_json::from_str(&json).ok()?)))
            .collect();
        edus.extend(select::signing_key_edu(user, &cross_signing));
        Ok(edus)
    }

    /// The typing changes of local users, in rooms the server is in, since it was last told:
    /// at most `max` EDUs.
    async fn typing(&self, looked: &mut Lookups, max: usize) -> Result<Vec<Value>, StepError> {
        let typing = &self.services.typing;
        let serial = typing.serial();
        let since = self.typing_sent.swap(serial, Ordering::SeqCst);
        let mut edus = Vec::new();
        for room_id in typing.rooms_changed_since(since) {
            if self.joined_since(looked, &room_id).await?.is_none() {
                continue;
            }
            let now: BTreeSet<String> = typing
                .typing_in(&room_id)
                .into_iter()
                .filter(|u| self.is_local(u))
                .collect();
            let mut told = crate::lock::lock(&self.typing_told);
            let before = told.entry(room_id.clone()).or_default();
            for (user, is_typing) in select::typing_changes(before, &now) {
                if edus.len() < max {
                    edus.push(select::typing_edu(&room_id, &user, is_typing));
                }
            }
            *before = now;
        }
        Ok(edus)
    }
}

/// A transaction of a stored or built `body`, its PDUs and EDUs counted.
pub(super) fn txn(txn_id: i64, last_stream: i64, body: Value) -> Txn<Body> {
    let (pdus, edus) = select::counts(&body);
    Txn {
        txn_id,
        last_stream,
        events: pdus,
        ephemeral: edus,
        full: pdus == MAX_PDUS,
        body: Arc::new(body),
    }
}

impl Destination for ServerTxns {
    fn name(&self) -> &str {
        &self.name
    }

    async fn load(&self, start: i64) -> Result<Stored<Body>, StepError> {
        let storage = &self.services.storage;
        load_queue(
            storage,
            QueueKind::Federation,
            &self.destination,
            start,
            txn,
        )
        .await
    }

    /// The next transaction after `from.position` (nothing in flight), or how far the
    /// position may move past what the server is not sent.
    async fn build(&self, from: Cursor) -> Result<Built<Body>, StepError> {
        let upto = self.services.notifier.position().stream;
        let caps = if from.lone { Caps::LONE } else { CAPS };
        let typing_changed =
            self.services.typing.serial() > self.typing_sent.load(Ordering::SeqCst);
        if from.position >= upto && !typing_changed {
            return Ok(Built::default());
        }
        if from.position
            > self
                .to_device_forgotten
                .swap(from.position, Ordering::SeqCst)
        {
            // What the server acknowledged is no longer kept.
            let storage = &self.services.storage;
            storage.forget_sent_to_device(&self.destination).await?;
        }
        let mut looked = Lookups::default();
        let mut candidates = Vec::new();
        let mut read_end = upto;
        if from.position < upto {
            read_end = self
                .pdus(&mut looked, from.position, upto, caps, &mut candidates)
                .await?;
            read_end = self
                .edus(&mut looked, from.position, read_end, &mut candidates)
                .await?;
            candidates.sort_by_key(|c| c.stream);
        }
        let mut next = take(candidates, read_end, caps);
        // Not with a lone first transaction, whose content must be its first item alone.
        if typing_changed && !from.lone {
            let room = caps.ephemeral.saturating_sub(next.ephemeral.len());
            next.ephemeral.extend(self.typing(&mut looked, room).await?);
        }
        let last_stream = next.last_stream.max(from.position);
        if next.is_empty() {
            return Ok(Built {
                txn: None,
                advance_to: (last_stream > from.position).then_some(last_stream),
            });
        }
        let body = select::txn_body(
            self.services.server_name(),
            now_ms(),
            next.events,
            next.ephemeral,
        );
        Ok(Built {
            txn: Some(txn(from.next_txn_id, last_stream, body)),
            advance_to: None,
        })
    }

    fn queue_write(&self, write: &Write<Body>) -> QueueWrite {
        write.to_queue(QueueKind::Federation, &self.destination)
    }
}
