//! The rooms two users are both joined to (`/mutual_rooms`): what a client shows on a user's
//! profile. Only the asker's own view: rooms they are joined to themselves.

use std::collections::BTreeSet;

use super::identifiers::UserId;
use super::{Error, Result, Services};

impl Services {
    /// The rooms `me` and `other` are both joined to, in room id order.
    pub(crate) async fn mutual_rooms(&self, me: &UserId, other: &UserId) -> Result<Vec<String>> {
        if other == me {
            return Err(Error::InvalidParam(
                "the user_id is your own: ask about another user".into(),
            ));
        }
        let mine: BTreeSet<String> = self.rooms.joined_rooms(me).await?.into_iter().collect();
        let theirs = self.rooms.joined_rooms(other).await?;
        let mut both: Vec<String> = theirs.into_iter().filter(|r| mine.contains(r)).collect();
        both.sort();
        Ok(both)
    }
}
