//! Reports of content: an event in a room the reporter is joined to, a room, or a user. A
//! report is checked (the target exists and the reporter may see it), stored until an admin
//! dismisses it, and logged; the admin reads them a page at a time, newest first.
//!
//! What bounds the table: reports are rate limited per user and per client address (the API
//! layer draws from `Action::Report` before asking here), a reason is at most
//! [`MAX_REASON_BYTES`], and a user has at most [`MAX_PENDING_PER_REPORTER`] reports waiting.

use super::identifiers::{EventId, RoomId, UserId};
use super::rooms::values::Membership;
use super::text::check_text;
use super::users::Session;
use super::{now_ms, Error, Result, Services};
use crate::storage::reports::{NewReport, ReportRow};
use crate::storage::StorageError;

/// The longest reason a report may give: a few paragraphs, so that a report stays a small
/// row however it is written (the spec sets no bound; Synapse sets none either).
pub(crate) const MAX_REASON_BYTES: usize = 2000;

/// The reports one user may have waiting for an admin: at [`MAX_REASON_BYTES`] each, a
/// couple of megabytes. More are refused until an admin dismisses some, which is what bounds
/// the table whatever the rate limit lets through over days.
pub(crate) const MAX_PENDING_PER_REPORTER: i64 = 1000;

/// The reports one admin page holds unless `limit` says otherwise, and at most.
pub(crate) const DEFAULT_PAGE: u32 = 100;
pub(crate) const MAX_PAGE: u32 = 1000;

/// What a report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReportKind {
    Event,
    Room,
    User,
}

impl ReportKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ReportKind::Event => "event",
            ReportKind::Room => "room",
            ReportKind::User => "user",
        }
    }

    fn parse(s: &str) -> Option<ReportKind> {
        match s {
            "event" => Some(ReportKind::Event),
            "room" => Some(ReportKind::Room),
            "user" => Some(ReportKind::User),
            _ => None,
        }
    }
}

/// The thing reported, its ids checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Event { room_id: RoomId, event_id: EventId },
    Room { room_id: RoomId },
    User { user_id: UserId },
}

impl Target {
    pub(crate) fn kind(&self) -> ReportKind {
        match self {
            Target::Event { .. } => ReportKind::Event,
            Target::Room { .. } => ReportKind::Room,
            Target::User { .. } => ReportKind::User,
        }
    }
}

/// A report as a client asked for it, checked for what can be checked without storage: the
/// ids and the reason. The API layer builds it before drawing from the rate limit, so that
/// malformed input costs the client nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReportRequest {
    pub(crate) target: Target,
    pub(crate) reason: Option<String>,
}

impl ReportRequest {
    /// `POST /rooms/{roomId}/report/{eventId}`: the reason is optional.
    pub(crate) fn event(room_id: String, event_id: String, reason: Option<String>) -> Result<Self> {
        let room_id = RoomId::parse(room_id)?;
        let event_id = EventId::parse(event_id)?;
        Self::checked(Target::Event { room_id, event_id }, reason)
    }

    /// `POST /rooms/{roomId}/report`: the reason is required (it may be blank).
    pub(crate) fn room(room_id: String, reason: String) -> Result<Self> {
        let room_id = RoomId::parse(room_id)?;
        Self::checked(Target::Room { room_id }, Some(reason))
    }

    /// `POST /users/{userId}/report`: the reason is required (it may be blank).
    pub(crate) fn user(user_id: String, reason: String) -> Result<Self> {
        let user_id = UserId::parse(user_id)?;
        Self::checked(Target::User { user_id }, Some(reason))
    }

    fn checked(target: Target, reason: Option<String>) -> Result<Self> {
        if let Some(r) = &reason {
            check_reason(r)?;
        }
        Ok(ReportRequest { target, reason })
    }
}

/// A report's reason: free text over several lines, without other control characters, at
/// most [`MAX_REASON_BYTES`].
pub(crate) fn check_reason(reason: &str) -> Result<()> {
    if reason.len() > MAX_REASON_BYTES {
        return Err(Error::InvalidParam(format!(
            "the reason is {} bytes; at most {MAX_REASON_BYTES} are allowed",
            reason.len()
        )));
    }
    check_text("the reason", reason)
}

/// The size of an admin's page: `limit` if given (at most [`MAX_PAGE`]), else
/// [`DEFAULT_PAGE`]; a page of nothing is refused, as it could never move on.
pub(crate) fn page_size(limit: Option<u32>) -> Result<u32> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(0) => Err(Error::InvalidParam("limit must be at least 1".into())),
        Some(n) => Ok(n.min(MAX_PAGE)),
    }
}

/// A stored report, as the admin sees it. `user_id` is the user reported, or the sender of
/// the event reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Report {
    pub(crate) id: i64,
    pub(crate) kind: ReportKind,
    pub(crate) reporter: String,
    pub(crate) room_id: Option<String>,
    pub(crate) event_id: Option<String>,
    pub(crate) user_id: Option<String>,
    pub(crate) reason: Option<String>,
    pub(crate) received_ts: i64,
}

impl TryFrom<ReportRow> for Report {
    type Error = StorageError;

    fn try_from(row: ReportRow) -> std::result::Result<Self, StorageError> {
        let kind = ReportKind::parse(&row.kind).ok_or_else(|| {
            StorageError::Corrupt(serde::de::Error::custom(format!(
                "report {} has the unknown kind '{}'",
                row.id, row.kind
            )))
        })?;
        Ok(Report {
            id: row.id,
            kind,
            reporter: row.reporter,
            room_id: row.room_id,
            event_id: row.event_id,
            user_id: row.user_id,
            reason: row.reason,
            received_ts: row.received_ts,
        })
    }
}

/// One page of reports, newest first; `next_from` asks for the next page when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReportPage {
    pub(crate) reports: Vec<Report>,
    pub(crate) next_from: Option<i64>,
    pub(crate) total: i64,
}

/// Splits the `limit + 1` rows read for a page into the page and the `from` of the next one
/// (the last id shown, as the next page holds the ids below it).
fn paged(mut rows: Vec<Report>, limit: u32) -> (Vec<Report>, Option<i64>) {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = if more {
        rows.last().map(|r| r.id)
    } else {
        None
    };
    (rows, next)
}

impl Services {
    /// Stores `req` made by `session`'s user, once its target is found; answers the report's
    /// id. An event must be in the room named and visible to the reporter, who must be
    /// joined to it; otherwise, as when it does not exist, `NotFound` (the spec's answer for
    /// both, so that a report does not tell whether an event exists in a room the reporter
    /// is not in). A room must exist here; a user must have an account here or be a member
    /// of a room here. `Forbidden` when the reporter already has
    /// [`MAX_PENDING_PER_REPORTER`] reports waiting.
    pub(crate) async fn report(&self, session: &Session, req: ReportRequest) -> Result<i64> {
        let reporter = session.user_id.as_str();
        let (room_id, event_id, user_id) = match &req.target {
            Target::Event { room_id, event_id } => {
                let hidden = || {
                    Error::NotFound(
                        "the event was not found or you are not joined to the room".into(),
                    )
                };
                if self.rooms.membership(room_id, reporter).await? != Some(Membership::Join) {
                    return Err(hidden());
                }
                let pdu = match self.visible_pdu(reporter, room_id, event_id).await {
                    Err(Error::NotFound(_)) => return Err(hidden()),
                    other => other?,
                };
                (Some(room_id), Some(event_id), Some(pdu.sender))
            }
            Target::Room { room_id } => {
                if !self.storage.room_exists(room_id).await? {
                    return Err(Error::NotFound("the room was not found".into()));
                }
                (Some(room_id), None, None)
            }
            Target::User { user_id } => {
                if !self.storage.user_known(user_id).await? {
                    return Err(Error::NotFound("the user was not found".into()));
                }
                (None, None, Some(user_id.to_string()))
            }
        };
        let kind = req.target.kind();
        let report = NewReport {
            kind: kind.as_str(),
            reporter,
            room_id: room_id.map(RoomId::as_str),
            event_id: event_id.map(EventId::as_str),
            user_id: user_id.as_deref(),
            reason: req.reason.as_deref(),
            now: now_ms(),
        };
        let Some(id) = self
            .storage
            .insert_report(&report, MAX_PENDING_PER_REPORTER)
            .await?
        else {
            tracing::warn!(reporter, "report refused: too many waiting for an admin");
            return Err(Error::Forbidden(format!(
                "you have {MAX_PENDING_PER_REPORTER} reports waiting for the server's admins; \
                 more are refused until they have dealt with some"
            )));
        };
        tracing::info!(
            report = id,
            kind = kind.as_str(),
            reporter,
            room_id = room_id.map(RoomId::as_str),
            event_id = event_id.map(EventId::as_str),
            user_id = user_id.as_deref(),
            reason = req.reason.as_deref(),
            "content reported"
        );
        Ok(id)
    }

    /// A page of the stored reports, newest first: those older than report `from` when it is
    /// given, at most `limit` ([`page_size`]).
    pub(crate) async fn reports(
        &self,
        from: Option<i64>,
        limit: Option<u32>,
    ) -> Result<ReportPage> {
        let limit = page_size(limit)?;
        let rows = self.storage.reports_before(from, limit + 1).await?;
        let reports = rows
            .into_iter()
            .map(Report::try_from)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let (reports, next_from) = paged(reports, limit);
        let total = self.storage.report_count().await?;
        Ok(ReportPage {
            reports,
            next_from,
            total,
        })
    }

    /// Dismisses (deletes) report `id`, logging which admin (`by`) did; `NotFound` when
    /// there is none.
    pub(crate) async fn dismiss_report(&self, id: i64, by: &str) -> Result<()> {
        if !self.storage.delete_report(id).await? {
            return Err(Error::NotFound(format!("there is no report {id}")));
        }
        tracing::info!(report = id, by, "report dismissed");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: i64) -> Report {
        Report {
            id,
            kind: ReportKind::Room,
            reporter: "@a:x".into(),
            room_id: Some("!r:x".into()),
            event_id: None,
            user_id: None,
            reason: None,
            received_ts: 0,
        }
    }

    #[test]
    fn a_reason_keeps_line_breaks_but_not_other_control_characters() {
        assert!(check_reason("spam\r\nand more\tspam").is_ok());
        assert!(check_reason("").is_ok());
        for bad in ["a\u{0}b", "\u{1b}[2J", "bell\u{7}"] {
            assert!(
                matches!(check_reason(bad), Err(Error::InvalidParam(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_reason_longer_than_the_cap_is_refused_naming_the_cap() {
        assert!(check_reason(&"r".repeat(MAX_REASON_BYTES)).is_ok());
        let Err(Error::InvalidParam(msg)) = check_reason(&"r".repeat(MAX_REASON_BYTES + 1)) else {
            panic!("accepted");
        };
        assert!(msg.contains(&MAX_REASON_BYTES.to_string()), "{msg}");
        // The cap is in bytes: 1000 three-byte characters are over it.
        assert!(check_reason(&"\u{5E9}\u{5E9}\u{5E9}".repeat(400)).is_err());
    }

    #[test]
    fn requests_refuse_bad_ids_and_bad_reasons() {
        assert!(ReportRequest::event("!r:x".into(), "$e".into(), None).is_ok());
        assert!(ReportRequest::event("r:x".into(), "$e".into(), None).is_err());
        assert!(ReportRequest::event("!r:x".into(), "e".into(), None).is_err());
        assert!(ReportRequest::event("!r:x".into(), "$e".into(), Some("a\u{0}".into())).is_err());
        assert!(ReportRequest::room("!r:x".into(), String::new()).is_ok());
        assert!(ReportRequest::room("#r:x".into(), String::new()).is_err());
        assert!(ReportRequest::user("@u:x".into(), "why".into()).is_ok());
        assert!(ReportRequest::user("u".into(), "why".into()).is_err());
        assert!(ReportRequest::user("@u:x".into(), "\u{1b}".into()).is_err());
    }

    #[test]
    fn each_target_has_its_kind() {
        let r = ReportRequest::user("@u:x".into(), "why".into()).unwrap();
        assert_eq!(r.target.kind(), ReportKind::User);
        for kind in [ReportKind::Event, ReportKind::Room, ReportKind::User] {
            assert_eq!(ReportKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(ReportKind::parse("other"), None);
    }

    #[test]
    fn a_page_is_the_default_size_at_most_the_maximum_and_never_empty() {
        assert_eq!(page_size(None).unwrap(), DEFAULT_PAGE);
        assert_eq!(page_size(Some(7)).unwrap(), 7);
        assert_eq!(page_size(Some(MAX_PAGE + 1)).unwrap(), MAX_PAGE);
        assert!(matches!(page_size(Some(0)), Err(Error::InvalidParam(_))));
    }

    #[test]
    fn a_full_page_points_at_the_next_and_the_last_page_does_not() {
        let (page, next) = paged(vec![report(9), report(7), report(4)], 2);
        assert_eq!(page.iter().map(|r| r.id).collect::<Vec<_>>(), [9, 7]);
        assert_eq!(next, Some(7));
        let (page, next) = paged(vec![report(9), report(7)], 2);
        assert_eq!(page.len(), 2);
        assert_eq!(next, None);
        assert_eq!(paged(Vec::new(), 2), (Vec::new(), None));
    }

    #[test]
    fn a_stored_row_of_an_unknown_kind_is_corrupt_not_a_report() {
        let row = ReportRow {
            id: 1,
            kind: "planet".into(),
            reporter: "@a:x".into(),
            room_id: None,
            event_id: None,
            user_id: None,
            reason: None,
            received_ts: 0,
        };
        assert!(matches!(
            Report::try_from(row),
            Err(StorageError::Corrupt(_))
        ));
    }
}
