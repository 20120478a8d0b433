//! `GET /admin/whois/{userId}`: a user's devices and where each was last seen, for a server
//! admin or the user themself.

use serde_json::{json, Map, Value};

use crate::service::identifiers::UserId;
use crate::service::users::Session;
use crate::service::{Error, Result, Services};

impl Services {
    pub(crate) async fn whois(&self, session: &Session, user: &UserId) -> Result<Value> {
        if session.user_id != *user && !self.users.is_admin(&session.user_id).await? {
            return Err(Error::Forbidden(
                "only a server admin may ask who another user is".into(),
            ));
        }
        if self.storage.user(user).await?.is_none() {
            return Err(Error::NotFound(format!("no user {user}")));
        }
        let mut devices = Map::new();
        for d in self.users.devices(user).await? {
            let mut connection = json!({});
            if let Some(ip) = d.last_seen_ip {
                connection["ip"] = json!(ip);
            }
            if let Some(ts) = d.last_seen_ts {
                connection["last_seen"] = json!(ts);
            }
            devices.insert(
                d.device_id,
                json!({ "sessions": [{ "connections": [connection] }] }),
            );
        }
        Ok(json!({ "user_id": user, "devices": devices }))
    }
}
