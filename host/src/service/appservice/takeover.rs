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
pub const NAMED: usize = 5;

/// Account ids read per query of a scan.
const PAGE: i64 = 5000;

/// What to do with a registration that would take over accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takeovers {
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
pub struct Taken {
    pub user_id: String,
    /// The service that made it; `None` for a person's (or an admin's) account.
    pub made_by: Option<String>,
}

/// The accounts a registration would take over: the first few, and how many in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Takeover {
    pub service: String,
    /// Where the registration came from (a file, `registration`, `plugin `x``).
    pub source: String,
    pub named: Vec<Taken>,
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
pub enum TakeoverError {
    #[error("{0}")]
    Refused(Takeover),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Refuses `registration` if it would take over existing accounts, unless `takeovers` says
/// to go on; a takeover that goes on is logged at warn, naming the accounts.
pub async fn check(
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
mod tests {
    use super::*;
    use crate::service::appservice::registration::Origin;

    fn registration(id: &str, sender: &str, users: &[(&str, bool)]) -> Registration {
        let mut text = format!(
            "id: {id}\nurl: null\nas_token: as_{id}\nhs_token: hs_{id}\nsender_localpart: {sender}\n\
             namespaces:\n  users:\n"
        );
        for (regex, exclusive) in users {
            text.push_str(&format!(
                "    - regex: '{regex}'\n      exclusive: {exclusive}\n"
            ));
        }
        Registration::from_yaml(&text, Origin::File(format!("{id}.yaml").into())).unwrap()
    }

    /// A database at the schema before makers were recorded, holding `users` (id, whether
    /// it has a password); then opened, which runs the later migrations.
    async fn upgraded_from(dir: &std::path::Path, users: &[(&str, bool)]) -> Storage {
        let url = format!("sqlite://{}", dir.join("db.sqlite").display());
        let pool = crate::storage::pool_at_version(&dir.join("db.sqlite"), 6).await;
        for (user_id, password) in users {
            sqlx::query("INSERT INTO users (user_id, password_hash, created_ts) VALUES (?, ?, 0)")
                .bind(user_id)
                .bind(password.then_some("$argon2id$…"))
                .execute(&pool)
                .await
                .unwrap();
        }
        pool.close().await;
        Storage::open(&url).await.unwrap()
    }

    async fn fresh(dir: &std::path::Path) -> Storage {
        upgraded_from(dir, &[]).await
    }

    async fn add_user(storage: &Storage, user_id: &str, made_by: Option<&str>) {
        assert!(storage
            .create_user(user_id, None, false, made_by, 0)
            .await
            .unwrap());
    }

    async fn found(storage: &Storage, r: &Registration) -> Option<(Vec<String>, u64)> {
        find(storage, r, "x")
            .await
            .unwrap()
            .map(|t| (t.named.into_iter().map(|u| u.user_id).collect(), t.count))
    }

    #[tokio::test]
    async fn a_sender_that_is_someones_account_is_a_takeover_and_ones_own_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let storage = fresh(dir.path()).await;
        add_user(&storage, "@alice:x", None).await;
        add_user(&storage, "@bot:x", Some("bridge")).await;
        let thief = registration("thief", "alice", &[]);
        assert_eq!(
            found(&storage, &thief).await,
            Some((vec!["@alice:x".to_owned()], 1))
        );
        assert_eq!(
            found(&storage, &registration("bridge", "bot", &[])).await,
            None
        );
        assert_eq!(
            found(&storage, &registration("other", "bot", &[])).await,
            Some((vec!["@bot:x".to_owned()], 1))
        );
        assert_eq!(
            found(&storage, &registration("new", "nobody", &[])).await,
            None
        );
    }

    #[tokio::test]
    async fn only_exclusive_namespaces_take_over_and_only_what_the_service_did_not_make() {
        let dir = tempfile::tempdir().unwrap();
        let storage = fresh(dir.path()).await;
        for user in [
            "@irc_a:x",
            "@irc_b:x",
            "@ircfan:x",
            "@irc_c:other",
            "@zed:x",
        ] {
            add_user(&storage, user, None).await;
        }
        add_user(&storage, "@irc_mine:x", Some("irc")).await;
        add_user(&storage, "@irc_theirs:x", Some("old")).await;
        let shared = registration("irc", "ircbot", &[("@irc_.*", false)]);
        assert_eq!(found(&storage, &shared).await, None);
        let exclusive = registration("irc", "ircbot", &[("@irc_.*", true)]);
        let (named, count) = found(&storage, &exclusive).await.unwrap();
        assert_eq!(named, ["@irc_a:x", "@irc_b:x", "@irc_theirs:x"]);
        assert_eq!(count, 3, "not its own, not another server's, not @ircfan");
    }

    #[tokio::test]
    async fn a_takeover_names_five_and_counts_them_all_across_pages() {
        let dir = tempfile::tempdir().unwrap();
        let storage = fresh(dir.path()).await;
        let n = PAGE as usize * 2 + 7;
        let mut tx = storage.pool().begin().await.unwrap();
        for i in 0..n {
            sqlx::query("INSERT INTO users (user_id, created_ts) VALUES (?, 0)")
                .bind(format!("@p_{i:05}:x"))
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
        add_user(&storage, "@q_0:x", None).await;
        for regex in ["@p_.*", "(@p|@q)_0.*", ".*p_"] {
            let r = registration("p", "pbot", &[(regex, true)]);
            let (named, count) = found(&storage, &r).await.unwrap();
            assert_eq!(named.len(), NAMED, "{regex}");
            assert_eq!(named[0], "@p_00000:x");
            // The second regex: the `@p_` ids with a leading 0, and `@q_0`.
            let expected = match regex {
                "(@p|@q)_0.*" => (0..n).filter(|i| *i < 10_000).count() as u64 + 1,
                _ => n as u64,
            };
            assert_eq!(count, expected, "{regex}");
        }
    }

    #[tokio::test]
    async fn accounts_made_before_makers_were_recorded_are_settled_once() {
        let dir = tempfile::tempdir().unwrap();
        let storage = upgraded_from(
            dir.path(),
            &[
                ("@alice:x", true),
                ("@ircbot:x", false),
                ("@irc_puppet:x", false),
                ("@irc_person:x", true),
                ("@shared_p:x", false),
                ("@both_p:x", false),
                ("@admin_made:x", true),
                ("@orphan:x", false),
            ],
        )
        .await;
        let services = [
            registration("irc", "ircbot", &[("@irc_.*", true)]),
            registration("sh", "shbot", &[("@shared_.*", false), ("@both_.*", false)]),
            registration("sh2", "sh2bot", &[("@both_.*", false)]),
        ];
        assert_eq!(settle(&storage, &services, "x").await.unwrap(), (8, 3));
        let made_by = |user: &'static str| {
            let storage = storage.clone();
            async move { storage.user_made_by(user).await.unwrap().unwrap() }
        };
        assert_eq!(made_by("@ircbot:x").await.as_deref(), Some("irc"));
        assert_eq!(made_by("@irc_puppet:x").await.as_deref(), Some("irc"));
        assert_eq!(made_by("@shared_p:x").await.as_deref(), Some("sh"));
        assert_eq!(made_by("@both_p:x").await, None, "two services could have");
        assert_eq!(
            made_by("@irc_person:x").await,
            None,
            "a person's: it has a password"
        );
        assert_eq!(made_by("@alice:x").await, None);
        assert_eq!(made_by("@orphan:x").await, None);
        // So the bridge loads as it did, and a takeover made before the check shows.
        assert_eq!(
            found(&storage, &services[0]).await,
            Some((vec!["@irc_person:x".to_owned()], 1))
        );
        // Once only.
        assert_eq!(settle(&storage, &services, "x").await.unwrap(), (0, 0));
        let fresh_dir = tempfile::tempdir().unwrap();
        let storage = fresh(fresh_dir.path()).await;
        add_user(&storage, "@irc_new:x", None).await;
        assert_eq!(settle(&storage, &services, "x").await.unwrap(), (0, 0));
    }

    fn ns(regex: &str) -> Namespace {
        Namespace::new(regex, true).unwrap()
    }

    fn ranges_of(regexes: &[&str]) -> Vec<(String, Option<String>)> {
        let list: Vec<Namespace> = regexes.iter().map(|r| ns(r)).collect();
        ranges(&list.iter().collect::<Vec<_>>())
    }

    fn range(from: &str, until: &str) -> (String, Option<String>) {
        (from.to_owned(), Some(until.to_owned()))
    }

    #[test]
    fn a_bridge_namespace_reads_only_the_ids_with_its_prefix() {
        assert_eq!(
            ranges_of(&[r"@irc_.*:example\.org"]),
            [range("@irc_", "@irc`")]
        );
        assert_eq!(
            ranges_of(&["@_discord_[0-9]+$"]),
            [range("@_discord_0", "@_discord_:")],
            "the ten digits' ranges joined"
        );
    }

    #[test]
    fn an_alternation_reads_one_range_per_branch() {
        assert_eq!(
            ranges_of(&["@(irc|slack)_.*"]),
            [range("@irc_", "@irc`"), range("@slack_", "@slack`")]
        );
    }

    #[test]
    fn a_prefix_inside_another_ones_range_is_read_once() {
        assert_eq!(
            ranges_of(&["@irc_.*", "@irc_bridge_.*", "@irc_.*:x"]),
            [range("@irc_", "@irc`")]
        );
    }

    #[test]
    fn a_namespace_without_a_prefix_reads_everything() {
        assert_eq!(ranges_of(&["@irc_.*", ".*"]), [(String::new(), None)]);
        assert_eq!(ranges_of(&[r"\w+"]), [(String::new(), None)]);
    }

    #[test]
    fn a_catch_all_namespace_reads_every_user_id() {
        assert_eq!(ranges_of(&["@.*"]), [range("@", "A")]);
    }

    #[test]
    fn no_exclusive_namespace_reads_nothing() {
        assert!(ranges_of(&[]).is_empty());
    }

    #[test]
    fn the_range_ends_after_every_id_with_the_prefix() {
        assert_eq!(next_after_prefix("@a"), Some("@b".into()));
        assert_eq!(next_after_prefix("@é"), Some("@ê".into()));
        assert_eq!(
            next_after_prefix("@\u{D7FF}"),
            Some("@\u{E000}".into()),
            "surrogates are not characters"
        );
        assert_eq!(next_after_prefix("@\u{10FFFF}"), Some("A".into()));
        assert_eq!(next_after_prefix(""), None);
        for id in ["@a", "@a:x", "@a\u{10FFFF}"] {
            assert!(id < next_after_prefix("@a").unwrap().as_str());
        }
    }

    #[test]
    fn case_insensitive_namespaces_read_each_spelling_of_a_shorter_prefix() {
        let found = literal_prefixes("(?i)@ab").unwrap();
        assert_eq!(found.len(), 4, "{found:?}");
        assert!(found.contains(&"@aB".to_owned()));
        // The extractor stops before its limit of literals: shorter prefixes, still prefixes.
        let long = literal_prefixes("(?i)@abcdefghijklmnopqrstuvwxyz_.*").unwrap();
        assert!(long.len() <= 250, "{}", long.len());
        for prefix in &long {
            assert!(
                "@abcdefghijklmnopqrstuvwxyz_".starts_with(&prefix.to_lowercase()),
                "{prefix}"
            );
        }
    }

    #[test]
    fn the_message_names_a_few_accounts_who_made_them_and_the_rest_counted() {
        let t = Takeover {
            service: "bridge".into(),
            source: "bridge.yaml".into(),
            named: vec![
                Taken {
                    user_id: "@alice:x".into(),
                    made_by: None,
                },
                Taken {
                    user_id: "@irc_bob:x".into(),
                    made_by: Some("irc".into()),
                },
            ],
            count: 7,
        };
        assert_eq!(
            t.to_string(),
            "bridge.yaml: `bridge` would act as 7 existing accounts it did not create: \
             @alice:x, @irc_bob:x (made by `irc`) and 5 more (its sender or an exclusive users \
             namespace covers them: its token could read their rooms and send as them)"
        );
    }
}
