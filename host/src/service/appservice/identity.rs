//! Who an application service may act as, and which user ids and aliases anyone may claim.
//!
//! - A request with a service's `as_token` acts as the service's sender; with `?user_id=` as a
//!   registered local user in its users namespace (`M_FORBIDDEN` otherwise); with
//!   `?device_id=` as one of that user's devices (`M_UNKNOWN_DEVICE` otherwise).
//! - An exclusive namespace reserves its user ids and aliases: nobody else may register or
//!   create them (`M_EXCLUSIVE`). A service itself registers, logs in as and creates aliases
//!   only inside its own namespaces (`M_EXCLUSIVE`, as the spec says).
//! - Only a service may set an event's `origin_server_ts` (`?ts=`).

use super::registration::{CompiledService, Registry};
use crate::service::identifiers::{parse_user_id, valid_localpart, RoomAlias, UserId};
use crate::service::users::{AppserviceSession, Login, Session};
use crate::service::{Error, Result, Services};

/// The largest `origin_server_ts` a service may assert: JSON integers in events stop at
/// 2^53 - 1.
const MAX_TS: i64 = (1 << 53) - 1;

/// How a new account is to be logged in, for [`Services::register_for_appservice`].
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct NewLogin<'a> {
    pub(crate) device_id: Option<&'a str>,
    pub(crate) device_name: Option<&'a str>,
    /// Make the account only: no device, no access token.
    pub(crate) inhibit_login: bool,
    pub(crate) ip: Option<&'a str>,
}

impl Services {
    /// The session of a request's access token: a user's token, or a service's `as_token`
    /// acting as its sender or as `user_id`, and then as `device_id` when one is given.
    pub(crate) async fn authenticate(
        &self,
        token: &str,
        user_id: Option<&str>,
        device_id: Option<&str>,
    ) -> Result<Session> {
        let registry = self.appservices.registry();
        let Some(service) = registry.by_as_token(token) else {
            return self.users.authenticate(token).await;
        };
        let sender = service.namespaces.sender();
        let user_id = self.acting_user(&registry, service, user_id).await?;
        let device_id = self.asserted_device(&user_id, device_id).await?;
        let rate_limited = service.registration.rate_limited && user_id != *sender;
        Ok(Session {
            user_id,
            device_id,
            appservice: Some(AppserviceSession {
                id: service.id.clone(),
                rate_limited,
            }),
        })
    }

    /// The device a service asserts for its user (`?device_id=`): none, or one the user has
    /// (`M_UNKNOWN_DEVICE` otherwise).
    async fn asserted_device(&self, user_id: &UserId, device: Option<&str>) -> Result<String> {
        let Some(device) = device else {
            return Ok(String::new());
        };
        match self.users.device(user_id, device).await {
            Ok(_) => Ok(device.to_string()),
            Err(Error::NotFound(_)) => Err(Error::UnknownDevice(format!(
                "{user_id} has no device {device}"
            ))),
            Err(e) => Err(e),
        }
    }

    /// [`Services::service_session`] as the user's device `device` when one is named: what a
    /// plugin's `e2ee` calls act as, under the rule of an appservice's `?device_id=`.
    pub(crate) async fn service_device_session(
        &self,
        service_id: &str,
        as_user: Option<&str>,
        device: Option<&str>,
    ) -> Result<Session> {
        let mut session = self.service_session(service_id, as_user).await?;
        session.device_id = self.asserted_device(&session.user_id, device).await?;
        Ok(session)
    }

    /// The session of service `service_id` acting as `as_user`, or as its sender when none:
    /// what a plugin's host imports act as, under the same rule as an appservice request's
    /// `?user_id=`. No device: a plugin's sends are idempotent per user and txn id.
    pub(crate) async fn service_session(
        &self,
        service_id: &str,
        as_user: Option<&str>,
    ) -> Result<Session> {
        let registry = self.appservices.registry();
        let Some(service) = registry.get(service_id) else {
            return Err(Error::Forbidden(format!(
                "there is no application service {service_id}"
            )));
        };
        let user_id = self.acting_user(&registry, service, as_user).await?;
        Ok(Session {
            user_id,
            device_id: String::new(),
            appservice: Some(AppserviceSession {
                id: service.id.clone(),
                rate_limited: false,
            }),
        })
    }

    /// Who `service` acts as: `user` when it may ([`Services::may_act_as`]), else its sender
    /// (whose account is made when first needed).
    async fn acting_user(
        &self,
        registry: &Registry,
        service: &CompiledService,
        user: Option<&str>,
    ) -> Result<UserId> {
        let sender = service.namespaces.sender();
        match user {
            Some(user) if user != sender => {
                let user = UserId::parse(user)?;
                self.may_act_as(registry, service, &user).await?;
                Ok(user)
            }
            _ => {
                self.users.ensure_account(sender, &service.id).await?;
                Ok(sender.clone())
            }
        }
    }

    /// `service` may act as `user_id` (not its sender): a registered local user in its users
    /// namespace that no other service holds exclusively.
    async fn may_act_as(
        &self,
        registry: &Registry,
        service: &CompiledService,
        user_id: &UserId,
    ) -> Result<()> {
        let refuse = |why: &str| {
            Err(Error::Forbidden(format!(
                "the application service cannot act as {user_id}: {why}"
            )))
        };
        if !service.namespaces.is_interested_in_user(user_id) {
            return refuse("it is outside the service's users namespace");
        }
        if registry
            .exclusive_owner_of_user(user_id)
            .is_some_and(|owner| owner != service.id)
        {
            return refuse("another application service holds it exclusively");
        }
        if !self.users.exists(user_id).await? {
            return refuse("no such user is registered");
        }
        Ok(())
    }

    /// The service whose `as_token` a registration or login of type
    /// `m.login.application_service` carries: `M_MISSING_TOKEN` without a token,
    /// `M_UNKNOWN_TOKEN` when it is not an `as_token`.
    pub(crate) fn appservice_by_token(&self, token: Option<&str>) -> Result<CompiledService> {
        let Some(token) = token else {
            return Err(Error::MissingToken(
                "m.login.application_service needs the application service's as_token".into(),
            ));
        };
        self.appservices
            .registry()
            .by_as_token(token)
            .cloned()
            .ok_or_else(|| Error::UnknownToken("unknown application service token".into()))
    }

    /// `user_id` may be registered by a normal user (`by` is `None`) unless a service holds
    /// it exclusively; by the service `by` only inside its users namespace and outside any
    /// other service's exclusive one. `M_EXCLUSIVE` otherwise.
    pub(crate) fn check_user_claim(&self, user_id: &str, by: Option<&str>) -> Result<()> {
        let registry = self.appservices.registry();
        let owner = registry.exclusive_owner_of_user(user_id);
        match by {
            None if owner.is_some() => Err(Error::Exclusive(format!(
                "{user_id} is reserved by an application service"
            ))),
            None => Ok(()),
            Some(id) => {
                let inside = registry
                    .get(id)
                    .is_some_and(|s| s.namespaces.is_interested_in_user(user_id));
                if !inside {
                    Err(Error::Exclusive(format!(
                        "{user_id} is outside the users namespace of application service {id}"
                    )))
                } else if owner.is_some_and(|owner| owner != id) {
                    Err(Error::Exclusive(format!(
                        "{user_id} is reserved by another application service"
                    )))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// `session` may create the local alias `alias`: a normal user unless a service holds it
    /// exclusively (that service's sender may); a service only inside its aliases namespace
    /// and outside any other service's exclusive one. `M_EXCLUSIVE` otherwise. A malformed
    /// alias is `M_INVALID_PARAM`; another server's alias is left to the alias directory to
    /// refuse.
    pub(crate) fn check_alias_claim(&self, session: &Session, alias: &RoomAlias) -> Result<()> {
        if alias.server_name() != self.server_name() {
            return Ok(());
        }
        let registry = self.appservices.registry();
        let owner = registry.exclusive_owner_of_alias(alias);
        match &session.appservice {
            None => {
                let Some(owner) = owner.and_then(|id| registry.get(id)) else {
                    return Ok(());
                };
                if *owner.namespaces.sender() == session.user_id {
                    return Ok(());
                }
                Err(Error::Exclusive(format!(
                    "{alias} is reserved by an application service"
                )))
            }
            Some(us) => {
                let inside = registry
                    .get(&us.id)
                    .is_some_and(|s| s.namespaces.is_interested_in_alias(alias));
                if !inside {
                    Err(Error::Exclusive(format!(
                        "{alias} is outside the aliases namespace of application service {}",
                        us.id
                    )))
                } else if owner.is_some_and(|owner| owner != us.id) {
                    Err(Error::Exclusive(format!(
                        "{alias} is reserved by another application service"
                    )))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Registers `localpart` for the service `service_id` (`m.login.application_service`):
    /// no interactive auth and whatever the registration mode, but only inside the service's
    /// users namespace. `password` is optional: the service acts by its `as_token`.
    pub(crate) async fn register_for_appservice(
        &self,
        service_id: &str,
        localpart: &str,
        password: Option<&str>,
        login: NewLogin<'_>,
    ) -> Result<Login> {
        // A malformed localpart is refused as such by `register`, not as outside a namespace.
        if valid_localpart(localpart) {
            self.check_user_claim(&self.users.user_id(localpart), Some(service_id))?;
        }
        self.users
            .register(
                localpart,
                password,
                false,
                Some(service_id),
                login.device_id,
                login.device_name,
                login.inhibit_login,
                login.ip,
            )
            .await
    }

    /// Logs the service `service` in as `user` (a localpart or a user id) without a
    /// password: `M_EXCLUSIVE` outside its users namespace, `M_FORBIDDEN` for a user that is
    /// not registered.
    pub(crate) async fn login_for_appservice(
        &self,
        service: &CompiledService,
        user: &str,
        login: NewLogin<'_>,
    ) -> Result<Login> {
        let user_id = if user.starts_with('@') {
            parse_user_id(user)?;
            user.to_string()
        } else {
            self.users.user_id(user)
        };
        self.check_user_claim(&user_id, Some(&service.id))?;
        if user_id == service.namespaces.sender() {
            self.users.ensure_account(&user_id, &service.id).await?;
        } else if !self.users.exists(&user_id).await? {
            return Err(Error::Forbidden(format!("{user_id} is not registered")));
        }
        self.users
            .new_session(&user_id, login.device_id, login.device_name, login.ip)
            .await
    }
}

impl Session {
    /// The `origin_server_ts` a request asserts with `?ts=`: only an application service may
    /// (anyone else's `ts` is ignored), with a whole number of milliseconds since the epoch
    /// (`M_INVALID_PARAM` otherwise).
    pub(crate) fn asserted_ts(&self, ts: Option<&str>) -> Result<Option<i64>> {
        let (Some(_), Some(ts)) = (&self.appservice, ts) else {
            return Ok(None);
        };
        match ts.parse::<i64>() {
            Ok(ms) if (0..=MAX_TS).contains(&ms) => Ok(Some(ms)),
            _ => Err(Error::InvalidParam(format!(
                "ts must be milliseconds since the epoch, from 0 to {MAX_TS}, not '{ts}'"
            ))),
        }
    }
}
