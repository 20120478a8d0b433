//! Room aliases and directories across servers: another server's alias asked of that server
//! (`/query/directory`), ours answered for others, and another server's public rooms asked
//! of it (`/publicRooms`) for a local client's `/publicRooms?server=`.

use super::client::path_segment;
use serde_json::{json, Value};

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

    /// Another server's public rooms: a GET with `limit` and `since`, or, with a search
    /// term, a POST with its filter.
    pub(crate) async fn remote_public_rooms(
        &self,
        server: &str,
        limit: Option<usize>,
        since: Option<&str>,
        term: Option<&str>,
    ) -> Result<Value> {
        let client = self.federation.client()?;
        let path = "/_matrix/federation/v1/publicRooms";
        if let Some(term) = term {
            let mut body = json!({ "filter": { "generic_search_term": term } });
            if let Some(limit) = limit {
                body["limit"] = json!(limit);
            }
            if let Some(since) = since {
                body["since"] = json!(since);
            }
            return Ok(client.post(server, path, &body).await?);
        }
        let mut query = Vec::new();
        if let Some(limit) = limit {
            query.push(format!("limit={limit}"));
        }
        if let Some(since) = since {
            query.push(format!("since={}", path_segment(since)));
        }
        let uri = if query.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{}", query.join("&"))
        };
        Ok(client.get(server, &uri).await?)
    }
}
