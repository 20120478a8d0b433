//! Profiles: display name and avatar, reflected into the user's member event in every room
//! they are joined to.

use serde_json::{json, Value};

use super::identifiers::{check_mxc_uri, UserId};
use super::text::{check_line, MAX_DISPLAYNAME_BYTES};
use super::{Error, Result, Services};

impl Services {
    pub(crate) async fn profile(&self, user_id: &UserId) -> Result<Value> {
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
