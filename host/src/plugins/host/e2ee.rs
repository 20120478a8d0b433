//! `e2ee`: the devices, keys and to-device messages of the plugin's users, so that a plugin
//! can encrypt. Each function acts as one of the plugin's users (its sender when none), under
//! the rule of an appservice's `?user_id=` and, for a device, of its `?device_id=` (MSC4190),
//! and calls the same service as the client API's endpoint for it through the narrow [`E2ee`]
//! trait (the runtime's [`backend`](crate::plugins::backend) answers it with the real
//! services). Bodies and answers are the client API's JSON: what a crypto library makes and
//! reads.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Weak};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use wasmtime::component::{HasSelf, Linker};

use super::homeserver::{to_wit, Reply};
use crate::plugins::bindings::e2ee::{self, Host};
use crate::plugins::bindings::{Error, Extras};
use crate::plugins::guest::{Alive, Guest, ServerGone};
use crate::service::e2ee::keys::{ClaimBody, QueryBody, UploadBody};
use crate::service::users::Session;
use crate::service::Error as ServiceError;

type Answer<T> = wasmtime::Result<Result<T, Error>>;

/// The largest body a call takes: a key upload of a hundred one-time keys is about 20 KB, a
/// to-device send to a few hundred devices some 100 KB.
pub(crate) const MAX_BODY_BYTES: usize = 1 << 20;

/// What `e2ee` needs of the server, in the server's own types.
pub(crate) trait E2ee: Send + Sync {
    /// The session of plugin `plugin` acting as `as_user` (its sender when none), as its
    /// device `device` when one is named: `M_FORBIDDEN` outside its users namespace,
    /// `M_UNKNOWN_DEVICE` for a device the user does not have.
    fn device_session<'a>(
        &'a self,
        plugin: &'a str,
        as_user: Option<&'a str>,
        device: Option<&'a str>,
    ) -> Reply<'a, Session>;
    /// Makes the device unless it exists: whether it was made.
    fn create_device<'a>(
        &'a self,
        session: &'a Session,
        device: &'a str,
        display_name: Option<&'a str>,
    ) -> Reply<'a, bool>;
    /// Deletes the session's device, with its keys and waiting messages.
    fn delete_device<'a>(&'a self, session: &'a Session) -> Reply<'a, ()>;
    fn upload_keys<'a>(&'a self, session: &'a Session, body: UploadBody) -> Reply<'a, Value>;
    fn query_keys<'a>(
        &'a self,
        session: &'a Session,
        wanted: BTreeMap<String, Vec<String>>,
    ) -> Reply<'a, Value>;
    fn claim_keys(&self, wanted: BTreeMap<String, BTreeMap<String, String>>) -> Reply<'_, Value>;
    fn send_to_device<'a>(
        &'a self,
        session: &'a Session,
        event_type: &'a str,
        txn_id: &'a str,
        messages: BTreeMap<String, Map<String, Value>>,
    ) -> Reply<'a, ()>;
}

/// Links `e2ee` into `linker`, its host found in the store's data by `get`.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut E2eeCtx,
) -> wasmtime::Result<()> {
    e2ee::add_to_linker::<T, HasSelf<E2eeCtx>>(linker, get)
}

pub(crate) struct E2eeCtx {
    guest: Arc<Guest>,
    server: Weak<dyn E2ee>,
    alive: Alive,
    /// What the transaction being delivered carries for encryption, during its call.
    extras: Option<Extras>,
}

/// A request body of the client API as the plugin gave it: refused past [`MAX_BODY_BYTES`]
/// before it is parsed, `M_NOT_JSON` when it is not JSON, `M_BAD_JSON` when it is not the
/// shape the endpoint takes.
pub(crate) fn body<T: DeserializeOwned>(text: &str, what: &str) -> Result<T, ServiceError> {
    if text.len() > MAX_BODY_BYTES {
        return Err(ServiceError::TooLarge(format!(
            "{what} is {} bytes; at most {MAX_BODY_BYTES}",
            text.len()
        )));
    }
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ServiceError::NotJson(format!("{what} is not JSON: {e}")))?;
    serde_json::from_value(value).map_err(|e| ServiceError::BadJson(format!("{what}: {e}")))
}

impl E2eeCtx {
    pub(crate) fn new(guest: Arc<Guest>, server: Weak<dyn E2ee>, alive: Alive) -> E2eeCtx {
        E2eeCtx {
            guest,
            server,
            alive,
            extras: None,
        }
    }

    /// Sets (before an `on-transaction` call) or clears (after it) what
    /// `transaction-extras` answers.
    pub(crate) fn set_extras(&mut self, extras: Option<Extras>) {
        self.extras = extras;
    }

    /// Runs `f` with the server and the session of `as_user` (as `device`, when named).
    fn act<T, F, Fut>(&mut self, as_user: Option<String>, device: Option<String>, f: F) -> Answer<T>
    where
        F: FnOnce(Arc<dyn E2ee>, Session) -> Fut,
        Fut: Future<Output = Result<T, ServiceError>>,
    {
        self.alive.check()?;
        let s = self
            .server
            .upgrade()
            .ok_or_else(|| wasmtime::Error::from(ServerGone))?;
        let id = self.guest.id.clone();
        let answer = self.guest.block_on(async move {
            let session = s
                .device_session(&id, as_user.as_deref(), device.as_deref())
                .await?;
            f(s, session).await
        });
        Ok(answer.map_err(|e| to_wit(&self.guest.id, e)))
    }
}

impl Host for E2eeCtx {
    fn transaction_extras(&mut self) -> wasmtime::Result<Extras> {
        self.alive.check()?;
        Ok(self.extras.clone().unwrap_or(Extras {
            to_device: Vec::new(),
            device_lists_changed: Vec::new(),
            device_keys: Vec::new(),
        }))
    }

    fn create_device(
        &mut self,
        as_user: Option<String>,
        device_id: String,
        display_name: Option<String>,
    ) -> Answer<bool> {
        self.act(as_user, None, async move |s, session| {
            s.create_device(&session, &device_id, display_name.as_deref())
                .await
        })
    }

    fn delete_device(&mut self, as_user: Option<String>, device_id: String) -> Answer<()> {
        self.act(as_user, Some(device_id), async move |s, session| {
            s.delete_device(&session).await
        })
    }

    fn upload_keys(
        &mut self,
        as_user: Option<String>,
        device_id: String,
        keys: String,
    ) -> Answer<String> {
        self.act(as_user, Some(device_id), async move |s, session| {
            let upload: UploadBody = body(&keys, "the key upload")?;
            Ok(s.upload_keys(&session, upload).await?.to_string())
        })
    }

    fn query_keys(&mut self, as_user: Option<String>, query: String) -> Answer<String> {
        self.act(as_user, None, async move |s, session| {
            let query: QueryBody = body(&query, "the key query")?;
            Ok(s.query_keys(&session, query.device_keys).await?.to_string())
        })
    }

    fn claim_keys(&mut self, as_user: Option<String>, claim: String) -> Answer<String> {
        self.act(as_user, None, async move |s, _session| {
            let claim: ClaimBody = body(&claim, "the key claim")?;
            Ok(s.claim_keys(claim.one_time_keys).await?.to_string())
        })
    }

    fn send_to_device(
        &mut self,
        as_user: Option<String>,
        device_id: String,
        event_type: String,
        txn_id: String,
        messages: String,
    ) -> Answer<()> {
        self.act(as_user, Some(device_id), async move |s, session| {
            let messages = body(&messages, "the messages")?;
            s.send_to_device(&session, &event_type, &txn_id, messages)
                .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_too_large_not_json_or_of_the_wrong_shape_is_refused_with_the_apis_errcodes() {
        let large = format!("\"{}\"", "x".repeat(MAX_BODY_BYTES));
        let e = body::<QueryBody>(&large, "q").err().unwrap();
        assert_eq!(e.errcode(), "M_TOO_LARGE");
        let e = body::<QueryBody>("{nope", "q").err().unwrap();
        assert_eq!(e.errcode(), "M_NOT_JSON");
        let e = body::<QueryBody>(r#"{"device_keys": []}"#, "q")
            .err()
            .unwrap();
        assert_eq!(e.errcode(), "M_BAD_JSON");
        let q = body::<QueryBody>(r#"{"device_keys": {"@a:x": []}}"#, "q").unwrap();
        assert_eq!(q.device_keys.len(), 1);
    }
}
