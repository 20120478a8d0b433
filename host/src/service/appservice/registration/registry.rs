//! The registry: every registered service, compiled, built once per change of the set of
//! registrations; it finds a service by id or token, the exclusive owner of an identifier,
//! and the services interested in a room or an event.

use std::collections::HashMap;

use super::{
    validate_set, CompiledNamespaces, CompiledService, Interest, Registration, RegistrationError,
};

/// Every registered service, compiled. Built once per change of the set of registrations.
#[derive(Clone, Debug)]
pub(crate) struct Registry {
    services: Vec<CompiledService>,
    /// `as_token` → index in `services`.
    by_as_token: HashMap<String, usize>,
}

impl Registry {
    /// Checks the set ([`validate_set`]) and compiles every service for `server_name`.
    pub(crate) fn new(
        registrations: Vec<Registration>,
        server_name: &str,
    ) -> Result<Registry, RegistrationError> {
        validate_set(&registrations)?;
        let mut services = Vec::with_capacity(registrations.len());
        let mut by_as_token = HashMap::with_capacity(registrations.len());
        for registration in registrations {
            let namespaces = CompiledNamespaces::compile(&registration, server_name)?;
            by_as_token.insert(registration.as_token.clone(), services.len());
            services.push(CompiledService {
                id: registration.id.clone(),
                registration,
                namespaces,
            });
        }
        Ok(Registry {
            services,
            by_as_token,
        })
    }

    /// No services at all.
    #[cfg(test)]
    pub(crate) fn empty() -> Registry {
        Registry {
            services: Vec::new(),
            by_as_token: HashMap::new(),
        }
    }

    pub(crate) fn services(&self) -> &[CompiledService] {
        &self.services
    }

    pub(crate) fn get(&self, id: &str) -> Option<&CompiledService> {
        self.services.iter().find(|service| service.id == id)
    }

    /// The service that authenticates with `token`.
    pub(crate) fn by_as_token(&self, token: &str) -> Option<&CompiledService> {
        self.by_as_token.get(token).map(|&i| &self.services[i])
    }

    /// The id of the service that holds `user_id` exclusively (its sender, or a local user in
    /// one of its exclusive users namespaces). [`validate_set`] ensures there is at most one.
    pub(crate) fn exclusive_owner_of_user(&self, user_id: &str) -> Option<&str> {
        self.services
            .iter()
            .find(|service| service.namespaces.is_exclusive_user(user_id))
            .map(|service| service.id.as_str())
    }

    /// The id of the service that holds `alias` exclusively.
    pub(crate) fn exclusive_owner_of_alias(&self, alias: &str) -> Option<&str> {
        self.services
            .iter()
            .find(|service| service.namespaces.is_exclusive_alias(alias))
            .map(|service| service.id.as_str())
    }

    /// The room-level interest of every service in one room (see [`Interest`]).
    pub(crate) fn room_interest(
        &self,
        room_id: &str,
        aliases: &[String],
        local_members: &[String],
    ) -> Interest {
        Interest {
            services: self
                .services
                .iter()
                .filter(|service| {
                    service
                        .namespaces
                        .room_interest(room_id, aliases, local_members)
                })
                .map(|service| service.id.clone())
                .collect(),
        }
    }

    /// The services that want one event, given its room's (possibly cached) `room` interest.
    #[cfg(test)]
    pub(crate) fn interested<'a>(
        &'a self,
        room: &'a Interest,
        sender: &'a str,
        kind: &'a str,
        state_key: Option<&'a str>,
    ) -> impl Iterator<Item = &'a CompiledService> + 'a {
        self.services
            .iter()
            .filter(move |service| room.wants(service, sender, kind, state_key))
    }
}
