//! Accounts: registration (with user-interactive auth), password login, access tokens (cached
//! in memory, revoked on logout; expiring and refreshed when the client asks), devices.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde_json::{json, Value};

use super::identifiers::{check_device_id, parse_user_id, valid_localpart, UserId};
use super::keys::signing::random_alnum;
use super::text::{check_line, MAX_DEVICE_NAME_BYTES};
use super::{now_ms, Error, Result};
use crate::config::{Config, RegistrationMode};
use crate::lock::lock;
pub(crate) use crate::storage::users::DeviceRow as Device;
use crate::storage::Storage;

/// Who a request is from, once its token is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Session {
    pub(crate) user_id: UserId,
    /// Empty for an application service's request that names no `?device_id=`: no real
    /// device has an empty id, so nothing of a real device is shared with it.
    pub(crate) device_id: String,
    /// Set when an application service made the request with its `as_token`.
    pub(crate) appservice: Option<AppserviceSession>,
}

/// The application service behind a request made with its `as_token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AppserviceSession {
    pub(crate) id: String,
    /// Rate limits apply: the request acts as one of the service's users (not its sender)
    /// and the registration did not say `rate_limited: false`.
    pub(crate) rate_limited: bool,
}

impl Session {
    /// Refuses a request about another user's data: `M_INVALID_PARAM` for a malformed id,
    /// `M_FORBIDDEN` for someone else's. `what` names the data in the message.
    pub(crate) fn require_self(&self, user_id: &UserId, what: &str) -> Result<()> {
        if self.user_id != *user_id {
            return Err(Error::Forbidden(format!(
                "you can only use your own {what}"
            )));
        }
        Ok(())
    }
}

/// When a token made at `now` with `lifetime_ms` expires.
fn expiry(now: i64, lifetime_ms: u64) -> i64 {
    now.saturating_add(i64::try_from(lifetime_ms).unwrap_or(i64::MAX))
}

/// Whether a token that expires at `expires_at` (`None`: never) has expired at `now`.
fn expired(expires_at: Option<i64>, now: i64) -> bool {
    expires_at.is_some_and(|at| now >= at)
}

/// What registration or login answers.
#[derive(Debug, Clone)]
pub struct Login {
    pub(crate) user_id: String,
    pub(crate) device_id: Option<String>,
    pub access_token: Option<String>,
    /// Set when the client asked for a refresh token: the access token then expires after
    /// `expires_in_ms`.
    pub(crate) refresh_token: Option<String>,
    pub(crate) expires_in_ms: Option<u64>,
}

pub struct UserService {
    storage: Storage,
    config: Arc<Config>,
    /// Sessions by access token, with when the token expires (`None`: never).
    tokens: Mutex<HashMap<String, (Session, Option<i64>)>>,
    /// Users known to exist. Accounts are never deleted, so a user once found stays found;
    /// it spares a database read on every request an application service makes as one.
    known: Mutex<HashSet<String>>,
    /// Bumped under the `tokens` lock after every revocation, so that a lookup which read a
    /// token from the database before the revocation committed does not cache it afterwards.
    revocations: AtomicU64,
}

impl UserService {
    pub(crate) fn new(storage: Storage, config: Arc<Config>) -> Self {
        UserService {
            storage,
            config,
            tokens: Mutex::new(HashMap::new()),
            known: Mutex::new(HashSet::new()),
            revocations: AtomicU64::new(0),
        }
    }

    pub(crate) fn user_id(&self, localpart: &str) -> String {
        format!("@{localpart}:{}", self.config.server_name)
    }

    /// Checks a localpart for registration: well-formed and free.
    pub(crate) async fn check_available(&self, localpart: &str) -> Result<()> {
        if !valid_localpart(localpart) {
            return Err(Error::InvalidUsername(format!(
                "'{localpart}' is not a valid username: use a-z, 0-9 and ._=-/+"
            )));
        }
        if self.storage.user(&self.user_id(localpart)).await?.is_some() {
            return Err(Error::UserInUse(format!("'{localpart}' is taken")));
        }
        Ok(())
    }

    /// Whether `token` would let someone register (`/register/m.login.registration_token/
    /// validity`); asking is refused where registration does not use tokens.
    pub(crate) fn registration_token_valid(&self, token: &str) -> Result<bool> {
        if self.config.registration_mode() != RegistrationMode::Token {
            return Err(Error::Forbidden(
                "registration on this server does not use registration tokens".into(),
            ));
        }
        Ok(self.config.registration_tokens.iter().any(|t| t == token))
    }

    /// Runs one step of user-interactive auth for registration. `Ok` once the flow is done;
    /// otherwise `AuthRequired` with what is left.
    pub(crate) fn registration_auth(&self, auth: Option<&Value>) -> Result<()> {
        let flow: Vec<&str> = match self.config.registration_mode() {
            RegistrationMode::Closed => {
                return Err(Error::Forbidden("registration is closed".into()))
            }
            RegistrationMode::Open => vec!["m.login.dummy"],
            RegistrationMode::Token => vec!["m.login.registration_token"],
        };
        let session_id = auth
            .and_then(|a| a["session"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| random_alnum(24));
        // Every flow offered has one stage, so a session has nothing to remember between
        // requests: what this request completes is all there is (and nobody can grow a map
        // of sessions by asking for 401s).
        let mut done: Vec<String> = Vec::new();
        let mut error = None;
        if let Some(a) = auth {
            match a["type"].as_str() {
                Some("m.login.dummy") if flow.contains(&"m.login.dummy") => {
                    done.push("m.login.dummy".into())
                }
                Some("m.login.registration_token")
                    if flow.contains(&"m.login.registration_token") =>
                {
                    let token = a["token"].as_str().unwrap_or("");
                    if self.config.registration_tokens.iter().any(|t| t == token) {
                        done.push("m.login.registration_token".into());
                    } else {
                        error = Some(("M_FORBIDDEN", "invalid registration token"));
                    }
                }
                Some(_) => {
                    error = Some(("M_UNRECOGNIZED", "unsupported authentication type"));
                }
                None => {}
            }
        }
        if flow.iter().all(|s| done.iter().any(|d| d == s)) {
            return Ok(());
        }
        let mut body = json!({
            "flows": [{ "stages": flow }],
            "params": {},
            "session": session_id,
            "completed": done,
        });
        if let Some((code, msg)) = error {
            body["errcode"] = json!(code);
            body["error"] = json!(msg);
        }
        Err(Error::AuthRequired(Box::new(body)))
    }

    /// Creates an account, made by the application service or plugin `made_by` (`None`: a
    /// person registering, or an admin); with `inhibit_login` no device or token is made.
    #[allow(clippy::too_many_arguments)]
    pub async fn register(
        &self,
        localpart: &str,
        password: Option<&str>,
        is_admin: bool,
        made_by: Option<&str>,
        device_id: Option<&str>,
        device_name: Option<&str>,
        inhibit_login: bool,
        ip: Option<&str>,
    ) -> Result<Login> {
        self.check_available(localpart).await?;
        if !inhibit_login {
            // Refused before the account exists, so a bad device leaves no account behind.
            device_id.map(check_device_id).transpose()?;
            device_name.map(check_device_name).transpose()?;
        }
        let user_id = self.user_id(localpart);
        let hash = match password {
            Some(p) => Some(hash_password(p).await?),
            None => None,
        };
        if !self
            .storage
            // The localpart is the display name until the user sets one, as other servers
            // do: clients then show a name, not a bare id, in member lists and mentions.
            .create_user(
                &user_id,
                hash.as_deref(),
                is_admin,
                made_by,
                Some(localpart),
                now_ms(),
            )
            .await?
        {
            return Err(Error::UserInUse(format!("'{localpart}' is taken")));
        }
        if inhibit_login {
            return Ok(Login {
                user_id,
                device_id: None,
                access_token: None,
                refresh_token: None,
                expires_in_ms: None,
            });
        }
        self.new_session(&user_id, device_id, device_name, ip).await
    }

    /// A generated localpart for registrations that name none.
    pub(crate) fn generated_localpart(&self) -> String {
        random_alnum(12).to_lowercase()
    }

    pub(crate) async fn login_password(
        &self,
        user: &str,
        password: &str,
        device_id: Option<&str>,
        device_name: Option<&str>,
        ip: Option<&str>,
    ) -> Result<Login> {
        let user_id = if user.starts_with('@') {
            parse_user_id(user)
                .map_err(|_| Error::Forbidden("invalid username or password".into()))?;
            user.to_string()
        } else {
            self.user_id(&user.to_lowercase())
        };
        self.check_password(&user_id, password).await?;
        self.new_session(&user_id, device_id, device_name, ip).await
    }

    /// `Forbidden` unless `password` is the user's; `UserDeactivated` for a deactivated
    /// account, which has none (as Synapse answers, whatever the password).
    pub(crate) async fn check_password(&self, user_id: &str, password: &str) -> Result<()> {
        let denied = || Error::Forbidden("invalid username or password".into());
        let row = self.storage.user(user_id).await?.ok_or_else(denied)?;
        let Some(hash) = row.password_hash else {
            if self.storage.is_deactivated(user_id).await? {
                return Err(Error::UserDeactivated(
                    "this account has been deactivated".into(),
                ));
            }
            return Err(denied());
        };
        let password = password.to_string();
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .map(|h| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &h)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
        if ok {
            Ok(())
        } else {
            Err(denied())
        }
    }

    /// A new device (or the named one) with a fresh access token.
    pub(crate) async fn new_session(
        &self,
        user_id: &str,
        device_id: Option<&str>,
        device_name: Option<&str>,
        ip: Option<&str>,
    ) -> Result<Login> {
        let device_id = device_id
            .map(str::to_string)
            .unwrap_or_else(|| random_alnum(10).to_uppercase());
        check_device_id(&device_id)?;
        device_name.map(check_device_name).transpose()?;
        let token = format!("pb_{}", random_alnum(40));
        self.storage
            .create_session(user_id, &device_id, device_name, &token, now_ms(), ip)
            .await?;
        // The database replaced the device's old token: forget it from the cache too, now
        // that no lookup can read it again.
        let mut cache = self.lock_tokens();
        self.revocations.fetch_add(1, Ordering::SeqCst);
        cache.retain(|_, (s, _)| !(s.user_id == user_id && s.device_id == device_id));
        drop(cache);
        Ok(Login {
            user_id: user_id.to_string(),
            device_id: Some(device_id),
            access_token: Some(token),
            refresh_token: None,
            expires_in_ms: None,
        })
    }

    /// Makes a new login's access token expire after the configured lifetime and gives it a
    /// refresh token (`refresh_token: true` in `/register` and `/login`).
    pub(crate) async fn with_refresh_token(&self, mut login: Login) -> Result<Login> {
        let Some(token) = &login.access_token else {
            return Ok(login);
        };
        let lifetime = self.config.access_token_lifetime_ms;
        let refresh_token = format!("pbr_{}", random_alnum(40));
        let expires_at = expiry(now_ms(), lifetime);
        if !self
            .storage
            .make_refreshable(token, &refresh_token, expires_at)
            .await?
        {
            return Err(Error::UnknownToken("the new access token is gone".into()));
        }
        // A lookup between the login and now may have cached the token as never expiring.
        self.lock_tokens().remove(token);
        login.refresh_token = Some(refresh_token);
        login.expires_in_ms = Some(lifetime);
        Ok(login)
    }

    /// `POST /refresh`: a new access token and refresh token for a refresh token, which is
    /// then used up; the old access token stops working.
    pub(crate) async fn refresh(&self, refresh_token: &str) -> Result<Login> {
        let lifetime = self.config.access_token_lifetime_ms;
        let token = format!("pb_{}", random_alnum(40));
        let new_refresh = format!("pbr_{}", random_alnum(40));
        let Some(old) = self
            .storage
            .refresh_session(
                refresh_token,
                &token,
                &new_refresh,
                expiry(now_ms(), lifetime),
            )
            .await?
        else {
            return Err(Error::UnknownToken("unknown refresh token".into()));
        };
        {
            let mut cache = self.lock_tokens();
            self.revocations.fetch_add(1, Ordering::SeqCst);
            cache.remove(&old);
        }
        let session = self.authenticate(&token).await?;
        Ok(Login {
            user_id: session.user_id.to_string(),
            device_id: Some(session.device_id),
            access_token: Some(token),
            refresh_token: Some(new_refresh),
            expires_in_ms: Some(lifetime),
        })
    }

    fn lock_tokens(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Session, Option<i64>)>> {
        lock(&self.tokens)
    }

    /// The session of an access token; an expired one is a soft logout (the client
    /// refreshes, or logs in again to the same device).
    pub(crate) async fn authenticate(&self, token: &str) -> Result<Session> {
        let cached = self.lock_tokens().get(token).cloned();
        let (session, expires_at) = match cached {
            Some(found) => found,
            None => self.authenticate_from_storage(token).await?,
        };
        if expired(expires_at, now_ms()) {
            return Err(Error::SoftLogout("the access token has expired".into()));
        }
        Ok(session)
    }

    async fn authenticate_from_storage(&self, token: &str) -> Result<(Session, Option<i64>)> {
        let revocations = self.revocations.load(Ordering::SeqCst);
        match self.storage.token_owner(token).await? {
            Some((user_id, device_id, expires_at)) => {
                let s = Session {
                    // Made by this server when the account was registered.
                    user_id: UserId::parse(user_id)?,
                    device_id,
                    appservice: None,
                };
                let mut cache = self.lock_tokens();
                // A revocation since the read may have been of this token: do not cache it.
                if self.revocations.load(Ordering::SeqCst) == revocations {
                    cache.insert(token.to_string(), (s.clone(), expires_at));
                }
                Ok((s, expires_at))
            }
            None => Err(Error::UnknownToken("unknown access token".into())),
        }
    }

    /// Deletes devices (all when `None`) and revokes their tokens.
    pub(crate) async fn delete_devices(
        &self,
        user_id: &str,
        devices: Option<&[String]>,
    ) -> Result<()> {
        let revoked = self.storage.delete_devices(user_id, devices).await?;
        let mut cache = self.lock_tokens();
        self.revocations.fetch_add(1, Ordering::SeqCst);
        for t in revoked {
            cache.remove(&t);
        }
        Ok(())
    }

    pub(crate) async fn devices(&self, user_id: &str) -> Result<Vec<Device>> {
        Ok(self.storage.devices(user_id).await?)
    }

    pub(crate) async fn device(&self, user_id: &str, device_id: &str) -> Result<Device> {
        self.storage
            .device(user_id, device_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("unknown device {device_id}")))
    }

    pub(crate) async fn rename_device(
        &self,
        user_id: &str,
        device_id: &str,
        name: &str,
    ) -> Result<()> {
        check_device_name(name)?;
        if !self.storage.rename_device(user_id, device_id, name).await? {
            return Err(Error::NotFound(format!("unknown device {device_id}")));
        }
        Ok(())
    }

    /// Makes device `device_id` of `user_id` unless it exists (MSC4190: an application service
    /// manages its users' devices, which log in with its as_token, not a token of their own).
    /// Whether it was made.
    pub(crate) async fn create_device(
        &self,
        user_id: &str,
        device_id: &str,
        display_name: Option<&str>,
    ) -> Result<bool> {
        check_device_id(device_id)?;
        display_name.map(check_device_name).transpose()?;
        Ok(self
            .storage
            .create_device(user_id, device_id, display_name)
            .await?)
    }

    /// Replaces the user's password.
    pub(crate) async fn set_password(&self, user_id: &str, password: &str) -> Result<()> {
        check_new_password(password)?;
        let hash = hash_password(password).await?;
        Ok(self.storage.set_password_hash(user_id, &hash).await?)
    }

    /// User-interactive auth by password, for deleting devices: `Ok` once `auth` carries the
    /// user's password.
    pub(crate) async fn password_auth(&self, user_id: &str, auth: Option<&Value>) -> Result<()> {
        let mut body = json!({
            "flows": [{ "stages": ["m.login.password"] }],
            "params": {},
            "session": auth.and_then(|a| a["session"].as_str()).map(str::to_string)
                .unwrap_or_else(|| random_alnum(24)),
        });
        if let Some(a) = auth {
            if a["type"].as_str() == Some("m.login.password") {
                let password = a["password"].as_str().unwrap_or("");
                let who = a["identifier"]["user"]
                    .as_str()
                    .or_else(|| a["user"].as_str())
                    .unwrap_or(user_id);
                let who = if who.starts_with('@') {
                    who.to_string()
                } else {
                    self.user_id(who)
                };
                if who != user_id {
                    return Err(Error::Forbidden(
                        "you can only authenticate as yourself".into(),
                    ));
                }
                // A failed stage is another 401 of the same flow, carrying the error.
                return match self.check_password(user_id, password).await {
                    Err(Error::Forbidden(msg)) => {
                        body["errcode"] = json!("M_FORBIDDEN");
                        body["error"] = json!(msg);
                        Err(Error::AuthRequired(Box::new(body)))
                    }
                    other => other,
                };
            }
        }
        Err(Error::AuthRequired(Box::new(body)))
    }

    pub(crate) async fn is_admin(&self, user_id: &str) -> Result<bool> {
        Ok(self
            .storage
            .user(user_id)
            .await?
            .map(|u| u.is_admin)
            .unwrap_or(false))
    }

    pub(crate) async fn exists(&self, user_id: &str) -> Result<bool> {
        if self.lock_known().contains(user_id) {
            return Ok(true);
        }
        let found = self.storage.user(user_id).await?.is_some();
        if found {
            self.lock_known().insert(user_id.to_string());
        }
        Ok(found)
    }

    /// Makes sure `user_id` has an account, creating a passwordless one made by the service
    /// `made_by` if not: an application service's sender acts without ever registering.
    pub(crate) async fn ensure_account(&self, user_id: &str, made_by: &str) -> Result<()> {
        if self.lock_known().contains(user_id) {
            return Ok(());
        }
        // Creating is a no-op for an account that exists: who made it stays as it was.
        self.storage
            .create_user(user_id, None, false, Some(made_by), None, now_ms())
            .await?;
        self.lock_known().insert(user_id.to_string());
        Ok(())
    }

    fn lock_known(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        lock(&self.known)
    }
}

/// A new password: not empty, and short enough that hashing it costs what any other does.
fn check_new_password(password: &str) -> Result<()> {
    if password.is_empty() {
        return Err(Error::InvalidParam("the new password is empty".into()));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::InvalidParam(format!(
            "the new password is longer than {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(())
}

/// The longest password taken, in bytes.
const MAX_PASSWORD_BYTES: usize = 512;

/// A device's display name, as the device list shows it.
fn check_device_name(name: &str) -> Result<()> {
    check_line("the device display name", name, MAX_DEVICE_NAME_BYTES)
}

async fn hash_password(password: &str) -> Result<String> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::Internal(format!("password hashing: {e}")))
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?
}

#[cfg(test)]
mod token_tests {
    use super::*;

    #[test]
    fn a_token_expires_at_its_lifetime_and_one_without_never() {
        let at = expiry(1_000, 300_000);
        assert_eq!(at, 301_000);
        assert!(!expired(Some(at), 300_999));
        assert!(expired(Some(at), 301_000));
        assert!(expired(Some(at), 999_999));
        assert!(!expired(None, i64::MAX));
    }

    #[test]
    fn a_huge_lifetime_does_not_overflow_into_the_past() {
        assert_eq!(expiry(1_000, u64::MAX), i64::MAX);
        assert!(!expired(Some(expiry(1_000, u64::MAX)), 2_000));
    }
}
