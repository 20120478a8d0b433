//! `POST /user_directory/search`: finding people to invite. A user finds those who share a
//! joined room with them and those joined to a public room, by id or display name, as
//! Synapse's default (`search_all_users = false`) does.

use serde_json::{json, Value};

use crate::service::{Error, Result, Services};

/// Results when the request names no limit, and the most it may ask for.
pub(crate) const DEFAULT_LIMIT: usize = 10;
const MAX_LIMIT: usize = 100;
/// The longest search term taken, in bytes.
const MAX_TERM_BYTES: usize = 256;

impl Services {
    pub(crate) async fn search_users(
        &self,
        searcher: &str,
        term: &str,
        limit: usize,
    ) -> Result<Value> {
        let term = term.trim();
        if term.len() > MAX_TERM_BYTES {
            return Err(Error::InvalidParam(format!(
                "search_term is longer than {MAX_TERM_BYTES} bytes"
            )));
        }
        let limit = limit.clamp(1, MAX_LIMIT);
        if term.is_empty() {
            return Ok(json!({ "results": [], "limited": false }));
        }
        let mut found = self
            .storage
            .search_user_directory(searcher, term, limit as i64 + 1)
            .await?;
        let limited = found.len() > limit;
        found.truncate(limit);
        let results: Vec<Value> = found
            .into_iter()
            .map(|u| {
                let mut r = json!({ "user_id": u.user_id });
                if let Some(name) = u.displayname {
                    r["display_name"] = json!(name);
                }
                if let Some(url) = u.avatar_url {
                    r["avatar_url"] = json!(url);
                }
                r
            })
            .collect();
        Ok(json!({ "results": results, "limited": limited }))
    }
}
