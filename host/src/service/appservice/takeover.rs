//! Takeovers: the existing accounts a registration would act as without having made them.
//!
//! A service's token acts as its sender, and as any user of its users namespaces; its
//! exclusive namespaces and its sender are its alone. A registration (or a plugin's manifest)
//! whose sender is, or whose exclusive users namespace covers, an account that a person
//! registered or another service made would let its token read that account's private rooms
//! and send as it. [`find`] names those accounts, so that each path that registers a service
//! (files at start-up, the admin API and CLI, plugin install and upgrade) can refuse it unless
//! the admin says explicitly that it is meant, and log it when it is.
//!
//! Who made an account is stored with it (`users.appservice_id`). Accounts made before that
//! was recorded are worked out once, at the first start that has the column ([`settle`]).

use std::fmt;

use regex_syntax::hir::literal::{ExtractKind, Extractor};

use super::registration::{anchored, Namespace, Registration};
use crate::storage::{Storage, StorageError};

/// How many of the accounts taken over an error or a log line names.
pub(crate) const NAMED: usize = 5;

/// Account ids read per query of a scan.
const PAGE: i64 = 5000;

/// What to do with a registration that would take over accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Takeovers {
    /// Refuse it, naming them.
    Refuse,
    /// The admin said so (`--allow-takeover`, `?allow_takeover=true`,
    /// `appservice_allow_takeover`): accept it, and log the takeover at warn.
    Allow,
    /// A registration accepted earlier and loaded again at start-up: keep it, and log at warn
    /// what it acts as.
    Keep,
}

/// One account taken over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Taken {
    pub(crate) user_id: String,
    /// The service that made it; `None` for a person's (or an admin's) account.
    pub(crate) made_by: Option<String>,
}

/// The accounts a registration would take over: the first few, and how many in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Takeover {
    pub(crate) service: String,
    /// Where the registration came from (a file, `registration`, `plugin `x``).
    pub(crate) source: String,
    pub(crate) named: Vec<Taken>,
    pub count: u64,
}

impl fmt::Display for Takeover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let accounts = if self.count == 1 {
            "an existing account".to_owned()
        } else {
            format!("{} existing accounts", self.count)
        };
        write!(
            f,
            "{}: `{}` would act as {accounts} it did not create: ",
            self.source, self.service
        )?;
        for (i, taken) in self.named.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match &taken.made_by {
                None => write!(f, "{}", taken.user_id)?,
                Some(by) => write!(f, "{} (made by `{by}`)", taken.user_id)?,
            }
        }
        let more = self.count.saturating_sub(self.named.len() as u64);
        if more > 0 {
            write!(f, " and {more} more")?;
        }
        f.write_str(
            " (its sender or an exclusive users namespace covers them: its token could read \
             their rooms and send as them)",
        )
    }
}

/// Why [`check`] refused a registration.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TakeoverError {
    #[error("{0}")]
    Refused(Takeover),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Refuses `registration` if it would take over existing accounts, unless `takeovers` says
/// to go on; a takeover that goes on is logged at warn, naming the accounts.
pub(crate) async fn check(
    storage: &Storage,
    registration: &Registration,
    server_name: &str,
    takeovers: Takeovers,
) -> Result<(), TakeoverError> {
    let Some(found) = find(storage, registration, server_name).await? else {
        return Ok(());
    };
    match takeovers {
        Takeovers::Refuse => return Err(TakeoverError::Refused(found)),
        Takeovers::Allow => {
            tracing::warn!(appservice = %found.service, "takeover allowed by the admin: {found}")
        }
        Takeovers::Keep => tracing::warn!(
            appservice = %found.service,
            "{found}; it was accepted before (with the admin's consent, or before this server \
             checked): remove it, or change its sender or namespaces, if that is not meant"
        ),
    }
    Ok(())
}

/// The accounts `registration` would take over on `server_name`: its sender, and the accounts
/// its exclusive users namespaces match, when the service did not make them. `None` when
/// there are none.
///
/// Each exclusive namespace reads only the accounts that start with one of its literal
/// prefixes (`@irc_` for `@irc_.*:example\.org`): a range of the primary key. A namespace
/// without one (`.*@x`, or a class too wide to expand) reads every account.
pub async fn find(
    storage: &Storage,
    registration: &Registration,
    server_name: &str,
) -> Result<Option<Takeover>, StorageError> {
    let id = &registration.id;
    let mut named = Vec::new();
    let mut count = 0u64;
    let sender = registration.sender(server_name);
    if let Some(made_by) = storage.user_made_by(&sender).await? {
        if made_by.as_deref() != Some(id.as_str()) {
            named.push(Taken {
                user_id: sender.clone(),
                made_by,
            });
            count += 1;
        }
    }
    let exclusive: Vec<&Namespace> = registration
        .namespaces
        .users
        .iter()
        .filter(|ns| ns.exclusive)
        .collect();
    let suffix = format!(":{server_name}");
    for (from, until) in ranges(&exclusive) {
        let mut after = String::new();
        loop {
            let page = storage
                .user_ids_not_made_by(id, &from, until.as_deref(), &after, PAGE)
                .await?;
            let full = page.len() as i64 == PAGE;
            for user_id in page {
                let taken = user_id != sender
                    && user_id.ends_with(&suffix)
                    && exclusive.iter().any(|ns| ns.is_match(&user_id));
                if taken {
                    count += 1;
                    if named.len() < NAMED {
                        // Who made it, for the few named; `None` if it went meanwhile.
                        let made_by = storage.user_made_by(&user_id).await?.flatten();
                        named.push(Taken {
                            user_id: user_id.clone(),
                            made_by,
                        });
                    }
                }
                after = user_id;
            }
            if !full {
                break;
            }
        }
    }
    Ok((count > 0).then(|| Takeover {
        service: id.clone(),
        source: registration.origin.to_string(),
        named,
        count,
    }))
}

/// The ranges of user ids `[from, until)` (`until` `None`: to the end) that hold every id the
/// namespaces can match, without overlaps: one per literal prefix, a prefix inside another's
/// range dropped, ranges that meet joined. No namespace, no range; a namespace without a
/// prefix, one range of all.
fn ranges(namespaces: &[&Namespace]) -> Vec<(String, Option<String>)> {
    let mut prefixes = Vec::new();
    for ns in namespaces {
        match literal_prefixes(&ns.regex) {
            Some(found) => prefixes.extend(found),
            None => return vec![(String::new(), None)],
        }
    }
    prefixes.sort();
    prefixes.dedup();
    let mut kept: Vec<String> = Vec::new();
    for prefix in prefixes {
        // Sorted, so a prefix of this one (if any) is the last kept.
        if kept
            .last()
            .is_some_and(|last| prefix.starts_with(last.as_str()))
        {
            continue;
        }
        kept.push(prefix);
    }
    let mut out: Vec<(String, Option<String>)> = Vec::with_capacity(kept.len());
    for prefix in kept {
        let until = next_after_prefix(&prefix);
        // `@x_0`, `@x_1`, … (from a class): one range, not ten.
        match out.last_mut() {
            Some((_, end)) if end.as_deref() == Some(prefix.as_str()) => *end = until,
            _ => out.push((prefix, until)),
        }
    }
    out
}

/// The literal texts one of which starts every id `regex` matches (with our matching rule,
/// anchored at the start); `None` when there is no such finite set of non-empty texts. An
/// empty set: the regex matches nothing.
fn literal_prefixes(regex: &str) -> Option<Vec<String>> {
    let hir = regex_syntax::Parser::new().parse(&anchored(regex)).ok()?;
    let seq = Extractor::new().kind(ExtractKind::Prefix).extract(&hir);
    let literals = seq.literals()?;
    let mut out = Vec::with_capacity(literals.len());
    for literal in literals {
        let bytes = literal.as_bytes();
        // A prefix cut inside a character is still a prefix once cut back to whole ones.
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => std::str::from_utf8(&bytes[..e.valid_up_to()]).ok()?,
        };
        if text.is_empty() {
            return None;
        }
        out.push(text.to_owned());
    }
    Some(out)
}

/// The smallest text above every text that starts with `prefix`, in SQLite's byte order
/// (which for UTF-8 is code point order): `prefix` with its last character replaced by the
/// next one. `None` when there is none.
fn next_after_prefix(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (last as u32 + 1..=char::MAX as u32).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Works out who made the accounts made before that was recorded, from the services
/// registered now (`registrations`: files, runtime ones and installed plugins), and settles
/// them all. A person's account always has a password (registration and `plugboard user add`
/// require one); an account without one was made for a service: the one whose sender it is,
/// else the one holding it exclusively, else the only one whose users namespace has it. The
/// rest stay a person's. Answers how many were settled and how many of them were a
/// service's.
pub async fn settle(
    storage: &Storage,
    registrations: &[Registration],
    server_name: &str,
) -> Result<(usize, usize), StorageError> {
    let unknown = storage.users_made_by_unknown().await?;
    if unknown.is_empty() {
        return Ok((0, 0));
    }
    let senders: Vec<String> = registrations
        .iter()
        .map(|r| r.sender(server_name))
        .collect();
    let suffix = format!(":{server_name}");
    let mut made = Vec::new();
    for (user_id, has_password) in &unknown {
        if *has_password {
            continue;
        }
        let local = user_id.ends_with(&suffix);
        let holds = |r: &Registration, exclusive_only: bool| {
            local
                && r.namespaces
                    .users
                    .iter()
                    .any(|ns| (ns.exclusive || !exclusive_only) && ns.is_match(user_id))
        };
        let by_sender = senders.iter().position(|s| s == user_id);
        let maker = by_sender
            .map(|i| &registrations[i])
            .or_else(|| registrations.iter().find(|r| holds(r, true)))
            .or_else(|| {
                let mut holding = registrations.iter().filter(|r| holds(r, false));
                match (holding.next(), holding.next()) {
                    (Some(only), None) => Some(only),
                    _ => None,
                }
            });
        if let Some(r) = maker {
            made.push((user_id.clone(), r.id.clone()));
        }
    }
    storage.settle_unknown_makers(&made).await?;
    Ok((unknown.len(), made.len()))
}

#[cfg(test)]
mod tests;
