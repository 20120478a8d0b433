//! Profiles: display name and avatar, reflected into the user's member event in every room
//! they are joined to.

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::{json, Value};

use super::identifiers::{check_mxc_uri, UserId};
use super::text::{check_line, MAX_DISPLAYNAME_BYTES};
use super::{Error, Result, Services};

impl Services {
    /// A user's profile: a local user's from storage, a remote user's asked of their server.
    pub(crate) async fn profile(&self, user_id: &UserId) -> Result<Value> {
        if user_id.server_name() == self.server_name() {
            return self.local_profile(user_id).await;
        }
        let uri = format!(
            "/_matrix/federation/v1/query/profile?user_id={}",
            utf8_percent_encode(user_id.as_str(), NON_ALPHANUMERIC)
        );
        match self.federation.client() {
            Ok(client) => Ok(client.get(user_id.server_name(), &uri).await?),
            // As before federation: a user of another server is not known here.
            Err(_) => Err(Error::NotFound(format!("unknown user {user_id}"))),
        }
    }

    /// A local user's profile (an application service may be asked to make the user).
    pub(crate) async fn local_profile(&self, user_id: &UserId) -> Result<Value> {
        let mut user = self.storage.user(user_id).await?;
        if user.is_none() && self.query_user(user_id).await? {
            user = self.storage.user(user_id).await?;
        }
        let Some(u) = user else {
            return Err(Error::NotFound(format!("unknown user {user_id}")));
        };
        let mut out = json!({});
        if let Some(d) = u.displayname {
            out["displayname"] = json!(d);
        }
        if let Some(a) = u.avatar_url {
            out["avatar_url"] = json!(a);
        }
        Ok(out)
    }

    pub(crate) async fn set_displayname(&self, user_id: &UserId, name: Option<&str>) -> Result<()> {
        if let Some(name) = name {
            check_line("displayname", name, MAX_DISPLAYNAME_BYTES)?;
        }
        self.storage.set_displayname(user_id, name).await?;
        self.rooms.refresh_profile(user_id).await
    }

    /// Sets (or with `None` or `""` clears) the avatar: an `mxc://` URI of at most 1000 bytes.
    pub(crate) async fn set_avatar_url(&self, user_id: &UserId, url: Option<&str>) -> Result<()> {
        if url.is_some_and(|u| u.len() > 1000) {
            return Err(Error::InvalidParam("avatar_url is too long".into()));
        }
        if let Some(u) = url.filter(|u| !u.is_empty()) {
            check_mxc_uri(u)?;
        }
        self.storage.set_avatar_url(user_id, url).await?;
        self.rooms.refresh_profile(user_id).await
    }
}
