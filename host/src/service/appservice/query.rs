//! Queries: when a user or a room alias inside an application service's namespace is needed
//! and does not exist, the server asks the service (`GET {url}/_matrix/app/v1/users/{userId}`,
//! `GET {url}/_matrix/app/v1/rooms/{roomAlias}`, with its `hs_token`), which may create it on
//! the spot through the client-server API — the lazily made virtual users and rooms of a
//! bridge. Then the lookup is done again.
//!
//! Queries are calls on the request path, bounded by `appservice_delivery.query_timeout_ms`;
//! they share nothing with the delivery workers, so a slow or dead service delays only the
//! request that needs it, never a transaction. Any answer but a 2xx, and any failure, means
//! "no such user / room".
//!
//! The lookups that ask are methods of [`Services`] (which sees both the rooms and the
//! registry): [`Services::lookup_alias`], [`Services::invite`] and [`Services::profile`]
//! (and the joins and knocks, through `lookup_alias`); the
//! [`RoomService`](crate::service::rooms::RoomService) methods of the same names look at what
//! is stored only.

use std::time::Duration;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use super::registration::CompiledService;
use super::transport::QueryKind;
use crate::service::identifiers::{RoomAlias, RoomId, UserId};
use crate::service::rooms::pdu::Pdu;
use crate::service::{Error, Result, Services};

impl Services {
    /// Asks the services whose users namespace holds `user_id` (a local user not stored, as
    /// the caller found), those holding it exclusively first, until one of them has created
    /// it. Answers whether the user exists now; `false` at once when no service holds it.
    /// A service's sender is nobody's to create: it exists as soon as it is needed.
    pub(crate) async fn query_user(&self, user_id: &UserId) -> Result<bool> {
        let registry = self.appservices.registry();
        if let Some(service) = registry
            .services()
            .iter()
            .find(|s| s.namespaces.sender() == user_id)
        {
            self.users.ensure_account(user_id, &service.id).await?;
            return Ok(true);
        }
        let mut asked: Vec<&CompiledService> = registry
            .services()
            .iter()
            .filter(|s| self.can_query(s) && s.namespaces.is_interested_in_user(user_id))
            .collect();
        asked.sort_by_key(|s| !s.namespaces.is_exclusive_user(user_id));
        for service in asked {
            if self.query(service, "users", user_id).await && self.users.exists(user_id).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Makes sure a user the request needs exists if an application service holds it: a
    /// local user in a service's users namespace that is not stored is asked for, and is
    /// `NotFound` when no service creates it. Users outside every namespace are left alone.
    pub(crate) async fn require_namespaced_user(&self, user_id: &UserId) -> Result<()> {
        let registry = self.appservices.registry();
        let held = registry
            .services()
            .iter()
            .any(|s| s.namespaces.is_interested_in_user(user_id));
        if !held || self.users.exists(user_id).await? {
            return Ok(());
        }
        if self.query_user(user_id).await? {
            Ok(())
        } else {
            Err(Error::NotFound(format!("unknown user {user_id}")))
        }
    }

    /// `(room_id, servers)` of a local alias; an alias that is not stored but lies in a
    /// service's aliases namespace is asked for (those holding it exclusively first), and
    /// looked up again after each service that answered.
    pub(crate) async fn lookup_alias(&self, alias: &RoomAlias) -> Result<(String, Vec<String>)> {
        let missing = match self.rooms.lookup_alias(alias).await {
            Err(Error::NotFound(m)) => m,
            found => return found,
        };
        if alias.server_name() != self.server_name() {
            return self.remote_alias(alias).await;
        }
        let registry = self.appservices.registry();
        let mut asked: Vec<&CompiledService> = registry
            .services()
            .iter()
            .filter(|s| self.can_query(s) && s.namespaces.is_interested_in_alias(alias))
            .collect();
        asked.sort_by_key(|s| !s.namespaces.is_exclusive_alias(alias));
        for service in asked {
            if !self.query(service, "rooms", alias).await {
                continue;
            }
            match self.rooms.lookup_alias(alias).await {
                Err(Error::NotFound(_)) => {}
                found => return found,
            }
        }
        Err(Error::NotFound(missing))
    }

    /// Invites `target`, who must exist if an application service holds them
    /// ([`Services::require_namespaced_user`]), with an optional reason.
    pub(crate) async fn invite(
        &self,
        sender: &UserId,
        room_id: &RoomId,
        target: &UserId,
        reason: Option<&str>,
    ) -> Result<Pdu> {
        if target.server_name() != self.server_name() {
            return self.invite_remote(sender, room_id, target, reason).await;
        }
        self.require_namespaced_user(target).await?;
        self.rooms.invite(sender, room_id, target, reason).await
    }

    /// A service with a URL, or a plugin, can be asked.
    fn can_query(&self, service: &CompiledService) -> bool {
        service.registration.url.is_some()
            || self.appservices.plugin_transport(&service.id).is_some()
    }

    /// `GET {url}/_matrix/app/v1/{kind}/{id}` (a plugin's `query-user` / `query-alias`):
    /// whether the service answered yes (it has the user or room, and has created it). A
    /// failure is logged and counts as "no".
    async fn query(&self, service: &CompiledService, kind: &str, id: &str) -> bool {
        if let Some(plugin) = self.appservices.plugin_transport(&service.id) {
            let kind = if kind == "users" {
                QueryKind::User
            } else {
                QueryKind::Alias
            };
            return plugin.query(kind, id).await;
        }
        let Some(url) = service.registration.url.as_deref() else {
            return false;
        };
        let timeout = Duration::from_millis(self.appservices.delivery.query_timeout_ms.max(1));
        let url = format!(
            "{}/_matrix/app/v1/{kind}/{}",
            url.trim_end_matches('/'),
            utf8_percent_encode(id, NON_ALPHANUMERIC)
        );
        let answer = self
            .appservices
            .http
            .get(url)
            .bearer_auth(&service.registration.hs_token)
            .timeout(timeout)
            .send()
            .await;
        match answer {
            Ok(resp) if resp.status().is_success() => true,
            Ok(resp) => {
                tracing::debug!(appservice = %service.id, kind, id, status = resp.status().as_u16(), "query answered no");
                false
            }
            Err(e) => {
                tracing::warn!(appservice = %service.id, kind, id, error = %e, "query failed");
                false
            }
        }
    }
}
