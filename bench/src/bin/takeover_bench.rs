//! plugboard-takeover-bench: what the takeover check costs on a server with many accounts.
//! A fresh SQLite database (in `--dir`, or a temporary one) gets `--users` accounts
//! (`@user_N`, one in a hundred `@irc_N`, made by people); then the check runs for a few
//! registrations, each `--runs` times, and the settling of accounts made before makers were
//! recorded runs once on the same accounts made "old" as the migration makes them. Prints one
//! JSON line.

use std::time::{Duration, Instant};

use clap::Parser;
use plugboard::service::appservice::registration::{Origin, Registration};
use plugboard::service::appservice::takeover;
use plugboard::storage::Storage;
use serde_json::{json, Value};

#[derive(Parser)]
#[command(name = "plugboard-takeover-bench")]
struct Args {
    /// Accounts in the database.
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    /// Runs of each check (the median and the slowest are reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Where the database goes (default: a temporary directory).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

const SERVER: &str = "localhost";

fn registration(id: &str, sender: &str, users: &[&str]) -> Registration {
    let mut text = format!(
        "id: {id}\nurl: null\nas_token: as_{id}\nhs_token: hs_{id}\nsender_localpart: {sender}\n\
         namespaces:\n  users:\n"
    );
    for regex in users {
        text.push_str(&format!("    - regex: '{regex}'\n      exclusive: true\n"));
    }
    Registration::from_yaml(&text, Origin::File(id.into())).expect("a valid registration")
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let tmp = tempfile_dir(args.dir.as_deref());
    let url = format!("sqlite://{}", tmp.join("takeover.sqlite").display());
    let storage = Storage::open(&url).await.expect("open the database");

    let started = Instant::now();
    let mut tx = storage.pool().begin().await.expect("begin");
    for i in 0..args.users {
        let user_id = if i % 100 == 0 {
            format!("@irc_{i}:{SERVER}")
        } else {
            format!("@user_{i}:{SERVER}")
        };
        sqlx::query("INSERT INTO users (user_id, password_hash, created_ts) VALUES (?, 'x', 0)")
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .expect("insert");
    }
    tx.commit().await.expect("commit");
    let fill = started.elapsed();

    // (name, registration): a sender that is someone's, a bridge namespace with a literal
    // prefix (reads the 1 % of ids with it), one over every account (`@.*`: reads them all),
    // and one without a literal prefix (reads them all too).
    let cases = [
        ("sender", registration("s", "user_1", &[])),
        ("prefix_irc", registration("irc", "ircbot", &["@irc_.*"])),
        ("catch_all", registration("all", "allbot", &["@.*"])),
        (
            "no_prefix",
            registration("np", "npbot", &[".*_5:localhost"]),
        ),
        (
            "nothing_taken",
            registration("new", "newbot", &["@newbridge_.*"]),
        ),
    ];
    let mut checks = serde_json::Map::new();
    for (name, reg) in &cases {
        let mut times = Vec::with_capacity(args.runs);
        let mut count = 0;
        for _ in 0..args.runs {
            let t = Instant::now();
            let found = takeover::find(&storage, reg, SERVER)
                .await
                .expect("the check");
            times.push(t.elapsed());
            count = found.map_or(0, |f| f.count);
        }
        times.sort();
        checks.insert(
            (*name).to_owned(),
            json!({
                "median_ms": ms(times[times.len() / 2]),
                "max_ms": ms(*times.last().expect("runs")),
                "accounts_taken": count,
            }),
        );
    }

    // The accounts as the migration leaves those made before it: maker unknown, to settle.
    sqlx::query(
        "UPDATE users SET appservice_id = NULL, password_hash = NULL WHERE user_id LIKE '@irc_%'",
    )
    .execute(storage.pool())
    .await
    .expect("make the bridge's accounts passwordless");
    sqlx::query("INSERT INTO users_maker_unknown (user_id) SELECT user_id FROM users")
        .execute(storage.pool())
        .await
        .expect("mark every account unknown");
    let t = Instant::now();
    let (settled, by_services) =
        takeover::settle(&storage, &[cases[1].1.clone(), cases[4].1.clone()], SERVER)
            .await
            .expect("settle");
    let settle = t.elapsed();

    let line: Value = json!({
        "users": args.users,
        "runs": args.runs,
        "fill_s": (fill.as_secs_f64() * 1000.0).round() / 1000.0,
        "check": checks,
        "settle": {"ms": ms(settle), "accounts": settled, "made_by_services": by_services},
    });
    println!("{line}");
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
}

/// `dir`, or a fresh directory under the system's temporary one.
fn tempfile_dir(dir: Option<&std::path::Path>) -> std::path::PathBuf {
    let path = match dir {
        Some(d) => d.to_path_buf(),
        None => std::env::temp_dir().join(format!("plugboard-takeover-{}", std::process::id())),
    };
    std::fs::create_dir_all(&path).expect("create the database's directory");
    path
}
