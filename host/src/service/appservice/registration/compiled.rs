//! A registration compiled for matching: its namespaces built into one [`RegexSet`] per kind
//! for this server's name, when the set of registrations changes.

use regex::RegexSet;

use super::{NamespaceKind, Registration, RegistrationError};
use crate::service::identifiers::{parse_user_id, UserId};

/// One service's namespaces, compiled for a given server name.
#[derive(Clone, Debug)]
pub struct CompiledNamespaces {
    server_name: String,
    /// The service's own user, `@{sender_localpart}:{server_name}`.
    sender: UserId,
    users: RegexSet,
    exclusive_users: RegexSet,
    aliases: RegexSet,
    exclusive_aliases: RegexSet,
    rooms: RegexSet,
}

impl CompiledNamespaces {
    /// Compiles `registration`'s namespaces; `server_name` is ours, used to keep user
    /// namespaces to local users and to make the service's sender.
    pub fn compile(
        registration: &Registration,
        server_name: &str,
    ) -> Result<CompiledNamespaces, RegistrationError> {
        let set = |ns_kind: NamespaceKind, exclusive_only: bool| {
            let patterns = registration
                .namespaces
                .get(ns_kind)
                .iter()
                .filter(|ns| ns.exclusive || !exclusive_only)
                .map(|ns| ns.anchored_pattern());
            RegexSet::new(patterns).map_err(|e| RegistrationError::Invalid {
                file: registration.origin.clone(),
                field: format!("namespaces.{}", ns_kind.key()),
                message: format!("the regexes do not compile together: {e}"),
            })
        };
        Ok(CompiledNamespaces {
            server_name: server_name.to_owned(),
            sender: UserId::parse(registration.sender(server_name)).map_err(|e| {
                RegistrationError::Invalid {
                    file: registration.origin.clone(),
                    field: "sender_localpart".into(),
                    message: e.to_string(),
                }
            })?,
            users: set(NamespaceKind::Users, false)?,
            exclusive_users: set(NamespaceKind::Users, true)?,
            aliases: set(NamespaceKind::Aliases, false)?,
            exclusive_aliases: set(NamespaceKind::Aliases, true)?,
            rooms: set(NamespaceKind::Rooms, false)?,
        })
    }

    /// The service's own user id.
    pub(crate) fn sender(&self) -> &UserId {
        &self.sender
    }

    /// Whether `user_id` is of this server: only such users are a service's own (to act as,
    /// to ask about, to hold exclusively), whatever the regex says.
    pub(super) fn is_local_user(&self, user_id: &str) -> bool {
        matches!(parse_user_id(user_id), Ok((_, server)) if server == self.server_name)
    }

    /// The user, of any server, is in the service's users namespace or is its sender: whose
    /// events the service is sent, as Synapse sends them (a regex that names no server
    /// matches every server's users; bridges name theirs).
    pub(crate) fn matches_user(&self, user_id: &str) -> bool {
        user_id == self.sender || self.users.is_match(user_id)
    }

    /// The user is the service's sender, or a local user in its users namespace: one the
    /// service may act as, be asked about, or hold the devices of.
    pub(crate) fn is_interested_in_user(&self, user_id: &str) -> bool {
        user_id == self.sender || (self.is_local_user(user_id) && self.users.is_match(user_id))
    }

    /// The user is the service's sender, or a local user in one of its exclusive users
    /// namespaces: nobody else may register or act as that user.
    pub(crate) fn is_exclusive_user(&self, user_id: &str) -> bool {
        user_id == self.sender
            || (self.is_local_user(user_id) && self.exclusive_users.is_match(user_id))
    }

    pub(crate) fn is_interested_in_alias(&self, alias: &str) -> bool {
        self.aliases.is_match(alias)
    }

    /// The alias is in one of the service's exclusive aliases namespaces.
    pub(crate) fn is_exclusive_alias(&self, alias: &str) -> bool {
        self.exclusive_aliases.is_match(alias)
    }

    pub(crate) fn is_interested_in_room(&self, room_id: &str) -> bool {
        self.rooms.is_match(room_id)
    }

    /// The user is one of the service's own: its sender, or in an exclusive users namespace.
    pub(crate) fn is_own_user(&self, user_id: &str) -> bool {
        self.is_exclusive_user(user_id)
    }
}

/// One registered service, ready for matching.
#[derive(Clone, Debug)]
pub(crate) struct CompiledService {
    pub(crate) id: String,
    pub(crate) registration: Registration,
    pub(crate) namespaces: CompiledNamespaces,
}

impl CompiledService {
    /// Events sent by the service's own users come back to it only when its registration
    /// sets `receive_own_events` (always so for a registration file; a plugin's manifest may
    /// turn it off).
    pub(crate) fn takes_events_of(&self, sender: &str) -> bool {
        self.registration.receive_own_events || !self.namespaces.is_own_user(sender)
    }
}
