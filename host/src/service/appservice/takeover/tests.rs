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
        .create_user(user_id, None, false, made_by, None, 0)
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
