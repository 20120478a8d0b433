//! What a user does to their own account: change its password (`POST /account/password`,
//! logging out their other devices unless asked not to) and deactivate it
//! (`POST /account/deactivate`: no more logins, every device and token gone, every room
//! left). Both are behind the password's user-interactive auth, as device deletion is.

use serde_json::Value;

use crate::service::identifiers::RoomId;
use crate::service::rooms::values::Membership;
use crate::service::users::Session;
use crate::service::{Result, Services};

impl Services {
    /// POST /account/password.
    pub(crate) async fn change_password(
        &self,
        session: &Session,
        new_password: &str,
        logout_devices: bool,
        auth: Option<&Value>,
    ) -> Result<()> {
        let user = &session.user_id;
        self.users.password_auth(user, auth).await?;
        self.users.set_password(user, new_password).await?;
        if logout_devices {
            let others: Vec<String> = self
                .users
                .devices(user)
                .await?
                .into_iter()
                .map(|d| d.device_id)
                .filter(|d| *d != session.device_id)
                .collect();
            if !others.is_empty() {
                self.remove_devices(user, Some(&others)).await?;
            }
        }
        Ok(())
    }

    /// POST /account/deactivate. An application service deactivates its own users without
    /// a password (they have none).
    pub(crate) async fn deactivate_account(
        &self,
        session: &Session,
        auth: Option<&Value>,
    ) -> Result<()> {
        let user = &session.user_id;
        if session.appservice.is_none() {
            self.users.password_auth(user, auth).await?;
        }
        // First no login, then no device: nothing new can start while the rest is undone.
        self.storage.deactivate_user(user).await?;
        self.remove_devices(user, None).await?;
        for row in self.storage.user_memberships(user, None).await? {
            let leaves = matches!(
                Membership::parse(&row.membership),
                Some(Membership::Join | Membership::Invite | Membership::Knock)
            );
            if !leaves {
                continue;
            }
            let room = RoomId::parse(row.room_id)?;
            let left = self
                .rooms
                .set_membership(user, &room, user, Membership::Leave, None)
                .await;
            if let Err(e) = left {
                // One room that refuses (its state is broken, say) must not keep the
                // account in the others.
                tracing::warn!(%room, %user, error = %e, "a deactivated user did not leave a room");
            }
        }
        Ok(())
    }
}
