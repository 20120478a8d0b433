//! OpenID: a token that lets a third party (an integration manager, a widget) learn, from this
//! server's federation endpoint `/openid/userinfo`, which user gave it; nothing else.

use serde_json::{json, Value};

use super::identifiers::UserId;
use super::keys::signing::random_alnum;
use super::{now_ms, Error, Result, Services};

/// How long a token holds, in seconds.
const LIFETIME_S: i64 = 3600;

impl Services {
    /// A new token for `user`, as `/openid/request_token` answers it.
    pub(crate) async fn request_openid_token(&self, user: &UserId) -> Result<Value> {
        let token = random_alnum(32);
        let now = now_ms();
        self.storage
            .insert_openid_token(&token, user, now + LIFETIME_S * 1000, now)
            .await?;
        Ok(json!({
            "access_token": token,
            "token_type": "Bearer",
            "matrix_server_name": self.server_name(),
            "expires_in": LIFETIME_S,
        }))
    }

    /// Whose token this is, while it holds.
    pub(crate) async fn openid_userinfo(&self, token: &str) -> Result<Value> {
        match self.storage.openid_token_owner(token, now_ms()).await? {
            Some(user) => Ok(json!({ "sub": user })),
            None => Err(Error::UnknownToken(
                "OpenID token unknown or expired".into(),
            )),
        }
    }
}
