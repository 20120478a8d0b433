//! Interest: which service wants which room and event, decided on its compiled namespaces.
//! The rules live here together (the two halves below, and the per-room value that is
//! cached), apart from the matching of single identifiers in [`compiled`](super::compiled).
//!
//! An event goes to a service when
//! - its sender, or (for an `m.room.member` event) its `state_key`, of any server, is in the
//!   service's users namespace or is the service's sender — the event-level part,
//!   [`CompiledNamespaces::event_interest`];
//! - or its room id is in the rooms namespace, one of the room's aliases is in the aliases
//!   namespace, or one of the room's local members is in the users namespace (or is the
//!   service's sender) — the room-level part, [`CompiledNamespaces::room_interest`].
//!
//! The room-level part does not depend on the event, so a caller computes it once per room
//! ([`Registry::room_interest`](super::Registry::room_interest)), keeps the resulting
//! [`Interest`] in a room → interest cache, and only evaluates the cheap event-level part per
//! event (the delivery builder does so per service; the tests through `Registry::interested`).

use std::collections::BTreeSet;

use super::CompiledNamespaces;
#[cfg(test)]
use super::CompiledService;

impl CompiledNamespaces {
    /// The room-level part of interest: the service wants every event of the room because of
    /// the room's id, one of its `aliases`, or one of its `local_members` (the room's joined
    /// members on this server). It changes only when those do, so it can be cached per room.
    pub(crate) fn room_interest(
        &self,
        room_id: &str,
        aliases: &[String],
        local_members: &[String],
    ) -> bool {
        self.is_interested_in_room(room_id)
            || aliases
                .iter()
                .any(|alias| self.is_interested_in_alias(alias))
            || local_members
                .iter()
                .any(|member| self.is_interested_in_user(member))
    }

    /// The event-level part of interest: the event's `sender`, or the `state_key` of an
    /// `m.room.member` event (`kind` is the event type), is a user the service is interested
    /// in.
    pub(crate) fn event_interest(&self, sender: &str, kind: &str, state_key: Option<&str>) -> bool {
        self.matches_user(sender)
            || (kind == "m.room.member" && state_key.is_some_and(|key| self.matches_user(key)))
    }
}

/// The room-level interest of every service in one room: the ids of the services that want
/// all of the room's events. A value to cache per room; drop a room's entry when its aliases
/// or its local membership change, and the whole cache when the [`Registry`] is replaced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Interest {
    pub(super) services: BTreeSet<String>,
}

impl Interest {
    /// The service wants every event of this room.
    pub(crate) fn wants_room(&self, service_id: &str) -> bool {
        self.services.contains(service_id)
    }

    /// The service wants this event of this room: the room-level part, or else the event-level
    /// part ([`CompiledNamespaces::event_interest`]).
    #[cfg(test)]
    pub(crate) fn wants(
        &self,
        service: &CompiledService,
        sender: &str,
        kind: &str,
        state_key: Option<&str>,
    ) -> bool {
        self.wants_room(&service.id) || service.namespaces.event_interest(sender, kind, state_key)
    }
}

#[cfg(test)]
mod tests;
