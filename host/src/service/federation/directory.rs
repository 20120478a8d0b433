//! Room aliases across servers: another server's alias asked of that server
//! (`/query/directory`), and ours answered for others.

use super::client::path_segment;
use crate::service::identifiers::RoomAlias;
use crate::service::{Error, Result, Services};

impl Services {
    /// `(room_id, servers)` of an alias of another server, asked of that server.
    pub(crate) async fn remote_alias(&self, alias: &RoomAlias) -> Result<(String, Vec<String>)> {
        let uri = format!(
            "/_matrix/federation/v1/query/directory?room_alias={}",
            path_segment(alias.as_str())
        );
        let answer = self
            .federation
            .client()?
            .get(alias.server_name(), &uri)
            .await?;
        let room_id = answer["room_id"]
            .as_str()
            .ok_or_else(|| Error::NotFound(format!("unknown alias {alias}")))?
            .to_string();
        let servers = answer["servers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect();
        Ok((room_id, servers))
    }

    /// What `/query/directory` answers for one of our aliases: the room and the servers in it.
    pub(crate) async fn local_alias_for_server(
        &self,
        alias: &RoomAlias,
    ) -> Result<(String, Vec<String>)> {
        if alias.server_name() != self.server_name() {
            return Err(Error::NotFound(format!(
                "{alias} is not an alias of this server"
            )));
        }
        let (room_id, _) = self.lookup_alias(alias).await?;
        let mut servers = self.servers_in_room(&room_id).await.unwrap_or_default();
        // The resident server first: it is the one to join through.
        servers.retain(|s| s != self.server_name());
        servers.insert(0, self.server_name().to_string());
        Ok((room_id, servers))
    }
}
