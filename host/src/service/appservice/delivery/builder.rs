//! The transaction builder of application services (HTTP and plugins): which events, receipts
//! and typing notices after a service's position go into its next transaction (interest as
//! its namespaces and rooms decide, the sizes as [`queue`](super::super::queue) caps them),
//! the body it is pushed with, and where its queue is stored. It is the application
//! services' [`Destination`]; a push gateway or a remote server would be another. What it
//! carries for encrypting bridges (to-device messages, device lists, key counts) is
//! [`e2ee`]'s.

pub(crate) mod e2ee;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

use super::txn::{Built, Cursor, Stored, Txn, Write};
use super::worker::{load_queue, Body, Destination, StepError};
use crate::service::appservice::queue::{take, Candidate, Caps, Item, MAX_TXN_EVENTS};
use crate::service::appservice::registration::CompiledService;
use crate::service::rooms::pdu::{out_of_room_client_event, Pdu};
use crate::service::rooms::values::Membership;
use crate::service::sync::changes::{Kind, WHOLE_SERVER};
use crate::service::Services;
use crate::storage::queue::{QueueKind, QueueWrite};
use crate::storage::StorageError;

/// Events read from the stream per build; unwanted ones are passed over in the same build,
/// and the read stops early once a transaction is full. The federation sender's builds read
/// as far.
pub(crate) const READ_AHEAD: i64 = 500;
/// Events read per query within a build: a service that wants everything fills its
/// transaction from the first page, without reading (and copying) the rest of the rows.
const READ_PAGE: i64 = MAX_TXN_EVENTS as i64;

/// Where a build's read of one kind of stream row in `(after, read_end]`, at most
/// [`READ_AHEAD`] rows of which `last` is the latest, leaves the range: a read that came back
/// full ends at its last row, so the rows after it are read by the next build instead of being
/// passed over with the rest of the range.
pub(crate) fn read_cut(read_end: i64, rows: usize, last: Option<i64>) -> i64 {
    match last {
        Some(last) if rows as i64 >= READ_AHEAD => read_end.min(last),
        _ => read_end,
    }
}

/// One application service's queue. It reads the stream, the rooms' events, typing and the
/// registry's room interest: more of the server than any narrow handle holds, so it keeps
/// the services (the worker that drives it does not).
pub(crate) struct AppserviceTxns {
    services: Arc<Services>,
    service: CompiledService,
    /// The queue its transactions wait in (an HTTP service's, or a plugin's).
    kind: QueueKind,
    /// The typing serial the service has been told up to (typing lives outside the stream).
    typing_sent: AtomicU64,
}

impl AppserviceTxns {
    pub(crate) fn new(
        services: Arc<Services>,
        service: CompiledService,
        kind: QueueKind,
    ) -> AppserviceTxns {
        let typing_sent = AtomicU64::new(services.typing.serial());
        AppserviceTxns {
            services,
            service,
            kind,
            typing_sent,
        }
    }

    /// Whether this service wants every event of a room: from the shared room cache, or
    /// computed from the room's aliases and local joined members and cached.
    async fn wants_room(
        &self,
        rooms: &mut HashMap<String, bool>,
        room_id: &str,
    ) -> Result<bool, StepError> {
        if let Some(wanted) = rooms.get(room_id) {
            return Ok(*wanted);
        }
        let cache = &self.services.appservices.room_cache;
        let interest = match cache.get(room_id) {
            Some(interest) => interest,
            None => {
                let generation = cache.generation();
                let storage = &self.services.storage;
                let aliases = storage.room_aliases(room_id).await?;
                let members: Vec<String> = storage
                    .room_members(room_id, Some(Membership::Join.as_str()))
                    .await?
                    .into_iter()
                    .map(|m| m.user_id)
                    .collect();
                let interest = self
                    .services
                    .appservices
                    .registry()
                    .room_interest(room_id, &aliases, &members);
                cache.insert(room_id, interest.clone(), generation);
                interest
            }
        };
        let wanted = interest.wants_room(&self.service.id);
        rooms.insert(room_id.to_string(), wanted);
        Ok(wanted)
    }
}

impl AppserviceTxns {
    /// The member events of our users in rooms this server is not in (an invite from another
    /// server, its refusal) after `after` up to `read_end` as candidates: they are in no
    /// room's timeline here, but a bot invited from another server has to hear of it to join.
    /// Answers the end of the range read.
    async fn out_of_room_members(
        &self,
        after: i64,
        read_end: i64,
        rooms: &mut HashMap<String, bool>,
        candidates: &mut Vec<Candidate<Value>>,
    ) -> Result<i64, StepError> {
        let storage = &self.services.storage;
        let rows = storage
            .out_of_room_members_range(after, read_end, READ_AHEAD)
            .await?;
        let read_end = read_cut(read_end, rows.len(), rows.last().map(|r| r.stream));
        for row in rows {
            let pdu: Value = serde_json::from_str(&row.json).map_err(StorageError::Corrupt)?;
            let sender = pdu["sender"].as_str().unwrap_or_default();
            let wanted = self.service.takes_events_of(sender)
                && (self.wants_room(rooms, &row.room_id).await?
                    || self.service.namespaces.event_interest(
                        sender,
                        "m.room.member",
                        pdu["state_key"].as_str(),
                    ));
            candidates.push(Candidate {
                stream: row.stream,
                wanted: wanted.then(|| {
                    Item::Event(out_of_room_client_event(
                        &pdu,
                        &row.event_id,
                        &row.room_id,
                        true,
                    ))
                }),
            });
        }
        Ok(read_end)
    }
}

/// A transaction of `body`, its events and ephemeral items counted.
fn txn(txn_id: i64, last_stream: i64, body: Value) -> Txn<Body> {
    let count = |key: &str| body[key].as_array().map_or(0, Vec::len);
    Txn {
        txn_id,
        last_stream,
        full: count("events") == MAX_TXN_EVENTS,
        events: count("events"),
        ephemeral: count("ephemeral") + e2ee::extra_items(&body),
        body: Arc::new(body),
    }
}

impl Destination for AppserviceTxns {
    fn name(&self) -> &str {
        &self.service.id
    }

    async fn load(&self, start: i64) -> Result<Stored<Body>, StepError> {
        let storage = &self.services.storage;
        load_queue(storage, self.kind, &self.service.id, start, txn).await
    }

    /// The next transaction after `from.position` (nothing in flight), or how far the
    /// position may move past events the service does not want.
    async fn build(&self, from: Cursor) -> Result<Built<Body>, StepError> {
        let storage = &self.services.storage;
        let upto = self.services.notifier.position().stream;
        let caps = if from.lone { Caps::LONE } else { Caps::FULL };
        let ephemeral = self.service.registration.receive_ephemeral;
        let typing_serial = self.services.typing.serial();
        let typing_changed = ephemeral && typing_serial > self.typing_sent.load(Ordering::SeqCst);
        if from.position >= upto && !typing_changed {
            return Ok(Built::default());
        }
        let mut rooms: HashMap<String, bool> = HashMap::new();
        let mut candidates = Vec::new();
        let mut wanted_events = 0;
        // A read cut short ends at its last event; a whole one at `upto`.
        let mut read_end = upto;
        let mut after = from.position;
        let mut read = 0;
        'read: while read < READ_AHEAD {
            let limit = READ_PAGE.min(READ_AHEAD - read);
            let rows = storage.events_range(after, upto, limit).await?;
            let whole = (rows.len() as i64) < limit;
            read += rows.len() as i64;
            for row in rows {
                after = row.stream;
                // Interest is decided on the row's columns; only wanted events are parsed.
                let wanted = self.service.takes_events_of(&row.sender)
                    && (self.wants_room(&mut rooms, &row.room_id).await?
                        || self.service.namespaces.event_interest(
                            &row.sender,
                            &row.kind,
                            row.state_key.as_deref(),
                        ));
                let stream = row.stream;
                let payload = if wanted {
                    let pdu = Pdu::try_from(row)?;
                    wanted_events += 1;
                    Some(Item::Event(
                        self.services.rooms.client_event(&pdu, None, true).await?,
                    ))
                } else {
                    None
                };
                candidates.push(Candidate {
                    stream,
                    wanted: payload,
                });
                if wanted_events == caps.events {
                    read_end = stream;
                    break 'read;
                }
            }
            if whole {
                break;
            }
            if read == READ_AHEAD {
                read_end = after;
            }
        }
        // Usually there are none: the query is skipped unless one was written since.
        let changes = &self.services.changes;
        if changes.changed_since(Kind::OutOfRoomMembers, WHOLE_SERVER, from.position) {
            read_end = self
                .out_of_room_members(from.position, read_end, &mut rooms, &mut candidates)
                .await?;
        }
        if ephemeral {
            let receipts = storage
                .receipts_range(from.position, read_end, READ_AHEAD)
                .await?;
            read_end = read_cut(read_end, receipts.len(), receipts.last().map(|r| r.stream));
            for r in receipts {
                // Private receipts are for their owner's clients only.
                if r.receipt_type == "m.read.private" {
                    continue;
                }
                let wanted = self.wants_room(&mut rooms, &r.room_id).await?;
                let mut content = json!({});
                content[r.event_id.as_str()][r.receipt_type.as_str()][r.user_id.as_str()] =
                    json!({ "ts": r.ts });
                candidates.push(Candidate {
                    stream: r.stream,
                    wanted: wanted.then(|| {
                        Item::Ephemeral(
                            json!({ "type": "m.receipt", "room_id": r.room_id, "content": content }),
                        )
                    }),
                });
            }
        }
        let extras = e2ee::Extras::of(&self.service.registration);
        if extras.any() {
            read_end = self
                .e2ee_candidates(extras, from.position, read_end, &mut rooms, &mut candidates)
                .await?;
        }
        // The reads other than the timeline's interleave with it.
        candidates.sort_by_key(|c| c.stream);
        let mut next = take(candidates, read_end, caps);
        // Typing is not in the stream: its current state goes with the next transaction, but
        // not with a lone first one, whose content must be just its first item.
        if typing_changed && !from.lone {
            let since = self.typing_sent.load(Ordering::SeqCst);
            for room in self.services.typing.rooms_changed_since(since) {
                if next.ephemeral.len() < caps.ephemeral
                    && self.wants_room(&mut rooms, &room).await?
                {
                    let users = self.services.typing.typing_in(&room);
                    next.ephemeral.push(json!({
                        "type": "m.typing",
                        "room_id": room,
                        "content": { "user_ids": users },
                    }));
                }
            }
            self.typing_sent.store(typing_serial, Ordering::SeqCst);
        }
        let last_stream = next.last_stream.max(from.position);
        if next.is_empty() {
            return Ok(Built {
                txn: None,
                advance_to: (last_stream > from.position).then_some(last_stream),
            });
        }
        let keys = if extras.msc3202 {
            self.key_state(&next.events, &next.ephemeral, &next.to_device)
                .await?
        } else {
            e2ee::KeyState::default()
        };
        let mut body = json!({ "events": next.events });
        if ephemeral {
            body["ephemeral"] = json!(next.ephemeral);
            body["de.sorunome.msc2409.ephemeral"] = json!(next.ephemeral);
        }
        e2ee::add_to_body(&mut body, extras, next.to_device, next.device_lists, keys);
        Ok(Built {
            txn: Some(txn(from.next_txn_id, last_stream, body)),
            advance_to: None,
        })
    }

    fn queue_write(&self, write: &Write<Body>) -> QueueWrite {
        write.to_queue(self.kind, &self.service.id)
    }
}
