//! Server-side aggregation of relations: the `unsigned.m.relations` a served event carries
//! (spec "Aggregations of child events"). A thread root gets its reply count, latest reply
//! and whether the reader took part; an edited event its latest edit by its own sender (the
//! whole event, as since v1.7, the content left as sent); a referenced event the ids of the
//! events referencing it. [`bundle`] is the rule; [`RoomService::bundle_relations`] reads
//! its inputs, one query for a whole timeline.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::pdu::Pdu;
use super::RoomService;
use crate::service::Result;
use crate::storage::relations::RelationSummary;

/// The aggregations of each parent that has any, by event id. `latest` holds the client
/// form of the newest thread reply or edit by stream position, for those the reader may
/// see; `root_sender` the sender of each parent; `user` the reader.
pub(crate) fn bundle(
    summaries: &[RelationSummary],
    latest: &HashMap<i64, Value>,
    root_sender: &HashMap<&str, &str>,
    user: &str,
) -> HashMap<String, Map<String, Value>> {
    let mut out: HashMap<String, Map<String, Value>> = HashMap::new();
    for s in summaries {
        let aggregation = match s.rel_type.as_str() {
            "m.thread" => {
                let Some(event) = latest.get(&s.latest) else {
                    continue;
                };
                let started = root_sender.get(s.parent.as_str()) == Some(&user);
                json!({
                    "latest_event": event,
                    "count": s.count,
                    "current_user_participated": s.by_user || started,
                })
            }
            "m.replace" => match latest.get(&s.latest) {
                Some(event) => event.clone(),
                None => continue,
            },
            "m.reference" => {
                let ids = s.ids.as_deref().unwrap_or_default();
                let chunk: Vec<Value> = ids
                    .split(',')
                    .filter(|id| !id.is_empty())
                    .map(|id| json!({ "event_id": id }))
                    .collect();
                json!({ "chunk": chunk })
            }
            _ => continue,
        };
        out.entry(s.parent.clone())
            .or_default()
            .insert(s.rel_type.clone(), aggregation);
    }
    out
}

impl RoomService {
    /// Adds `unsigned.m.relations` to `served` (the client forms of `pdus`, in order) for
    /// `user`. State events and redacted events aggregate nothing.
    pub(crate) async fn bundle_relations(
        &self,
        pdus: &[Pdu],
        served: &mut [Value],
        user: &str,
    ) -> Result<()> {
        let parents: Vec<&str> = pdus
            .iter()
            .filter(|p| p.state_key.is_none() && p.redacted_by.is_none())
            .map(|p| p.event_id.as_str())
            .collect();
        let summaries = self.storage.relation_summaries(&parents, user).await?;
        if summaries.is_empty() {
            return Ok(());
        }
        let wanted: Vec<i64> = summaries
            .iter()
            .filter(|s| s.rel_type != "m.reference")
            .map(|s| s.latest)
            .collect();
        let mut latest = HashMap::new();
        let mut viewers = HashMap::new();
        for row in self.storage.events_at(&wanted).await? {
            let pdu = Pdu::try_from(row)?;
            if !viewers.contains_key(&pdu.room_id) {
                let viewer = self.viewer(&pdu.room_id, user).await?;
                viewers.insert(pdu.room_id.clone(), viewer);
            }
            if viewers[&pdu.room_id].sees(&pdu) {
                latest.insert(pdu.stream, pdu.to_client(Some((user, "")), None, true));
            }
        }
        let root_sender: HashMap<&str, &str> = pdus
            .iter()
            .map(|p| (p.event_id.as_str(), p.sender.as_str()))
            .collect();
        let mut bundles = bundle(&summaries, &latest, &root_sender, user);
        for (pdu, event) in pdus.iter().zip(served.iter_mut()) {
            if let Some(relations) = bundles.remove(&pdu.event_id) {
                event["unsigned"]["m.relations"] = Value::Object(relations);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(
        parent: &str,
        rel_type: &str,
        count: i64,
        latest: i64,
        by_user: bool,
    ) -> RelationSummary {
        RelationSummary {
            parent: parent.into(),
            rel_type: rel_type.into(),
            count,
            latest,
            by_user,
            ids: None,
        }
    }

    #[test]
    fn a_thread_root_carries_its_count_latest_reply_and_whether_the_reader_took_part() {
        let latest = HashMap::from([(9, json!({ "event_id": "$reply" }))]);
        let roots = HashMap::from([("$root", "@a:x"), ("$other", "@b:x")]);
        let s = [summary("$root", "m.thread", 3, 9, false)];
        let got = bundle(&s, &latest, &roots, "@a:x");
        assert_eq!(
            Value::Object(got["$root"].clone()),
            json!({ "m.thread": {
                "latest_event": { "event_id": "$reply" },
                "count": 3,
                "current_user_participated": true
            } })
        );
        let got = bundle(&s, &latest, &roots, "@b:x");
        assert_eq!(got["$root"]["m.thread"]["current_user_participated"], false);
        let replied = [summary("$root", "m.thread", 3, 9, true)];
        let got = bundle(&replied, &latest, &roots, "@b:x");
        assert_eq!(got["$root"]["m.thread"]["current_user_participated"], true);
    }

    #[test]
    fn an_edit_is_the_whole_latest_event_and_references_list_their_ids() {
        let latest = HashMap::from([(7, json!({ "event_id": "$edit2" }))]);
        let mut refs = summary("$root", "m.reference", 2, 8, false);
        refs.ids = Some("$r1,$r2".into());
        let s = [summary("$root", "m.replace", 2, 7, false), refs];
        let got = bundle(&s, &latest, &HashMap::new(), "@a:x");
        assert_eq!(got["$root"]["m.replace"], json!({ "event_id": "$edit2" }));
        assert_eq!(
            got["$root"]["m.reference"],
            json!({ "chunk": [{ "event_id": "$r1" }, { "event_id": "$r2" }] })
        );
    }

    #[test]
    fn what_the_reader_may_not_see_is_not_bundled() {
        let s = [
            summary("$root", "m.thread", 1, 5, false),
            summary("$root", "m.replace", 1, 6, false),
            summary("$root", "m.annotation", 4, 7, false),
        ];
        assert!(bundle(&s, &HashMap::new(), &HashMap::new(), "@a:x").is_empty());
    }
}
