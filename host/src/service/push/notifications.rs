//! `GET /notifications`: the events that notified a user in the rooms they are in, newest
//! first, each with its actions for them and whether their read receipt has passed it.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::counts::{read_floor, read_up_to};
use crate::service::{Error, Result, Services};

/// Notifications per page when the client names no limit, and the most it may ask for.
const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 1000;

/// `from` as a stream position: the page ends before it.
fn parse_from(from: Option<&str>) -> Result<i64> {
    match from {
        None => Ok(i64::MAX),
        Some(t) => t
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| Error::InvalidParam("`from` is not a token this server gave".into())),
    }
}

fn parse_limit(limit: Option<&str>) -> Result<i64> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(|n| n.min(MAX_LIMIT))
            .ok_or_else(|| Error::InvalidParam("`limit` must be a non-negative integer".into())),
    }
}

impl Services {
    /// One page of `user_id`'s notifications.
    pub(crate) async fn notifications(
        &self,
        user_id: &str,
        from: Option<&str>,
        limit: Option<&str>,
        only: Option<&str>,
    ) -> Result<Value> {
        let before = parse_from(from)?;
        let limit = parse_limit(limit)?;
        let only_highlight = only.is_some_and(|o| o.split(',').any(|w| w == "highlight"));
        let rows = self
            .storage
            .notifications(user_id, before, limit, only_highlight)
            .await?;
        let mut read_points = HashMap::new();
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let Some(pdu) = self.rooms.event(&row.event_id).await? else {
                continue;
            };
            if !read_points.contains_key(&row.room_id) {
                let points = self.storage.read_points(&row.room_id, user_id).await?;
                read_points.insert(row.room_id.clone(), points);
            }
            let points = &read_points[&row.room_id];
            let read = row.stream <= read_up_to(read_floor(0, points), points, &row.thread_id);
            let actions: Value = serde_json::from_str(&row.actions).unwrap_or_else(|_| json!([]));
            out.push(json!({
                "actions": actions,
                "event": self.rooms.client_event(&pdu, None, true).await?,
                "profile_tag": Value::Null,
                "read": read,
                "room_id": row.room_id,
                "ts": row.ts,
            }));
        }
        let mut body = json!({ "notifications": out });
        if rows.len() as i64 == limit && limit > 0 {
            if let Some(last) = rows.last() {
                body["next_token"] = json!(last.stream.to_string());
            }
        }
        Ok(body)
    }
}
