//! plugboard-bench: a load generator for any Matrix homeserver (Plugboard, Synapse, …).
//!
//! It registers users, puts them in one or more rooms, has C concurrent clients send
//! m.room.message events for a while, and measures send latency plus how long a /sync
//! long-poller takes to see each event. The result is one JSON line on stdout; everything
//! else goes to stderr so the line can be piped straight into a results file.
//!
//! With `--appservices N` it also plays N HTTP application services and measures how fast
//! the homeserver pushes the bench events to them (see `appservice.rs`).

mod appservice;
mod load;
mod matrix;
mod plugin;
mod reader;
mod setup;
mod stats;

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{json, Value};

use crate::appservice::Receivers;
use crate::matrix::Matrix;
use crate::reader::Tracker;
use crate::stats::{ordered_object, round3, Summary};

/// How the sync wake-up figures are defined; echoed into the result line.
const WAKEUP_DEFINITION: &str = "sync_wakeup_ms: reader's /sync response containing the event fully received minus the sender's send 200 fully received (0 if the sync came first); sync_end_to_end_ms: the same arrival minus the send start stamped in content.bench_ts_us";

/// How long to wait after the load for the reader (and the appservice receivers, outside
/// backlog mode) to see the last acked events.
const DRAIN_GRACE: Duration = Duration::from_secs(10);

const DEFAULT_DURATION: Duration = Duration::from_secs(20);

#[derive(Parser, Debug)]
#[command(
    name = "plugboard-bench",
    // A later option wins, so wrapper scripts can take overrides after their own defaults.
    args_override_self = true,
    about = "Matrix homeserver load generator: events/s, send latency and /sync wake-up latency over the client-server API"
)]
struct Args {
    /// Homeserver base URL (plain HTTP).
    #[arg(long, default_value = "http://127.0.0.1:8008")]
    url: String,
    /// Sending users to register; clients use their tokens round-robin.
    #[arg(long, default_value_t = 16)]
    users: usize,
    /// Concurrent sending clients.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Length of the load phase in seconds [default: 20, or no time limit with --events].
    #[arg(long)]
    duration: Option<f64>,
    /// Stop the load once this many events have been acked.
    #[arg(long)]
    events: Option<u64>,
    /// Rooms to spread the clients over (client i sends into room i mod N).
    #[arg(long, default_value_t = 1)]
    rooms: usize,
    /// Give every client its own room (same as --rooms equal to --concurrency).
    #[arg(long, conflicts_with = "rooms")]
    room_per_client: bool,
    /// Token for servers that require m.login.registration_token.
    #[arg(long)]
    registration_token: Option<String>,
    /// Target total events/s, paced evenly; without it every client sends back to back.
    #[arg(long)]
    rate: Option<f64>,
    /// Free text copied into the result line.
    #[arg(long, default_value = "")]
    label: String,
    /// Play N HTTP application services (as1..asN) and measure delivery to them.
    #[arg(long, default_value_t = 0)]
    appservices: usize,
    /// Receiver asI listens on 127.0.0.1:(base + I - 1).
    #[arg(long, default_value_t = 9100)]
    appservice_port_base: u16,
    /// Receiver asI expects `Authorization: Bearer <prefix>asI`.
    #[arg(long, default_value = "bench_hs_")]
    appservice_hs_token_prefix: String,
    /// Receivers answer 503 during the load, then 200; measures the catch-up.
    #[arg(long)]
    appservice_backlog: bool,
    /// Longest wait for the catch-up in backlog mode, in seconds.
    #[arg(long, default_value_t = 300.0)]
    catchup_timeout: f64,
    /// The user of a plugin that answers `!echo TEXT` with TEXT (the bundled echo bot,
    /// `@echo:SERVER`): it is invited into the bench rooms, the senders ask it, and the
    /// reader times send -> answer (`plugin_reply_ms`).
    #[arg(long, value_name = "USER_ID")]
    plugin: Option<String>,
    /// With --plugin: disable the plugin (admin API) during the load of plain messages, then
    /// enable it and time its catch-up (`plugin_catchup_s`, `plugin_events_per_s`).
    #[arg(long, requires = "plugin", requires = "admin_token")]
    plugin_backlog: bool,
    /// The plugin's id for --plugin-backlog.
    #[arg(long, default_value = "echo-bot")]
    plugin_id: String,
    /// A file holding the server's admin token (data_dir/admin.token).
    #[arg(long, value_name = "FILE")]
    admin_token: Option<std::path::PathBuf>,
}

impl Args {
    /// The load's time limit: `--duration`, else 20 s unless `--events` ends the load.
    fn load_duration(&self) -> Option<Duration> {
        match (self.duration, self.events) {
            (Some(d), _) => Some(Duration::from_secs_f64(d)),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_DURATION),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(problem) = validate(&args) {
        eprintln!("plugboard-bench: {problem}");
        return ExitCode::from(2);
    }
    match run(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("plugboard-bench: setup failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn validate(args: &Args) -> Result<(), String> {
    if args.users == 0 || args.concurrency == 0 || args.rooms == 0 {
        return Err("--users, --concurrency and --rooms must be at least 1".into());
    }
    if let Some(duration) = args.duration {
        if !(duration.is_finite() && duration > 0.0) {
            return Err("--duration must be a positive number of seconds".into());
        }
    }
    if args.events == Some(0) {
        return Err("--events must be at least 1".into());
    }
    if args.appservice_backlog && args.appservices == 0 {
        return Err("--appservice-backlog needs --appservices 1 or more".into());
    }
    if !(args.catchup_timeout.is_finite() && args.catchup_timeout >= 0.0) {
        return Err("--catchup-timeout must be a number of seconds".into());
    }
    if let Some(rate) = args.rate {
        if !(rate.is_finite() && rate > 0.0) {
            return Err("--rate must be a positive number of events/s".into());
        }
    }
    Ok(())
}

async fn run(args: Args) -> Result<ExitCode, matrix::Error> {
    let rooms = if args.room_per_client {
        args.concurrency
    } else {
        args.rooms
    };
    // Random names so repeated runs against the same server never collide.
    let run_id = format!("{:08x}", random_u64() as u32);

    let http = reqwest::Client::builder()
        // One idle connection per sender plus the reader's long poll, so steady state
        // reuses keep-alive connections instead of opening new ones.
        .pool_max_idle_per_host(args.concurrency + 2)
        .tcp_nodelay(true)
        .no_proxy()
        .connect_timeout(Duration::from_secs(10))
        // Above the 30 s long poll, so only a stuck server trips it.
        .timeout(Duration::from_secs(90))
        .build()?;
    let matrix = Matrix::new(http, &args.url);
    matrix.versions().await?;
    // Before setup: setup's own events (joins) go to the appservices too, and in backlog
    // mode they are the first transactions refused.
    let receivers_start_us = reader::unix_micros();
    let receivers = if args.appservices > 0 {
        let config = appservice::Config {
            count: args.appservices,
            port_base: args.appservice_port_base,
            hs_token_prefix: args.appservice_hs_token_prefix.clone(),
            failing: args.appservice_backlog,
        };
        match Receivers::start(&config).await {
            Ok(r) => {
                eprintln!(
                    "appservice: {} receiver(s) on 127.0.0.1:{}..{}{}",
                    args.appservices,
                    args.appservice_port_base,
                    usize::from(args.appservice_port_base) + args.appservices - 1,
                    if args.appservice_backlog {
                        ", answering 503 until the load is over"
                    } else {
                        ""
                    }
                );
                Some(r)
            }
            Err(e) => return Err(matrix::Error::Protocol(e.to_string())),
        }
    } else {
        None
    };
    let setup_start = Instant::now();
    let plan = setup::Plan {
        run_id: run_id.clone(),
        users: args.users,
        clients: args.concurrency,
        rooms,
        registration_token: args.registration_token.clone(),
        parallelism: args.concurrency.clamp(1, 16),
        invite: args.plugin.clone(),
    };
    let setup::Fixture {
        users,
        reader: reader_session,
        room_ids,
    } = setup::prepare(&matrix, &plan).await?;

    let filter = reader::filter_for(&room_ids);
    let since = reader::initial_sync(&matrix, &reader_session, &filter).await?;
    let load_duration = args.load_duration();
    eprintln!(
        "setup: done in {:.1}s; loading {} with {} clients{}",
        setup_start.elapsed().as_secs_f64(),
        match (load_duration, args.events) {
            (Some(d), Some(n)) => format!("for {}s or {n} events", d.as_secs_f64()),
            (Some(d), None) => format!("for {}s", d.as_secs_f64()),
            (None, Some(n)) => format!("until {n} events"),
            (None, None) => "forever".to_owned(),
        },
        args.concurrency,
        args.rate
            .map(|r| format!(" at {r} events/s"))
            .unwrap_or_default()
    );

    let tracker = Arc::new(Tracker::default());
    // In backlog mode the senders send plain messages: the plugin only receives them.
    let replies = args
        .plugin
        .as_ref()
        .filter(|_| !args.plugin_backlog)
        .map(|_| Arc::new(plugin::Replies::default()));
    let plugin_admin = match (&args.admin_token, args.plugin_backlog) {
        (Some(file), true) => {
            let token = std::fs::read_to_string(file)
                .map_err(|e| matrix::Error::Protocol(format!("{}: {e}", file.display())))?;
            let admin = plugin::Admin {
                matrix: matrix.clone(),
                session: matrix::Session {
                    user_id: "admin".into(),
                    access_token: token.trim().to_string(),
                },
                plugin_id: args.plugin_id.clone(),
            };
            admin.set_enabled(false).await?;
            eprintln!("plugin: {} disabled for the load", args.plugin_id);
            Some(admin)
        }
        _ => None,
    };
    let reader_task = tokio::spawn(reader::run(
        matrix.clone(),
        reader_session,
        filter,
        since,
        tracker.clone(),
        args.plugin
            .clone()
            .zip(replies.clone())
            .map(|(user_id, replies)| reader::PluginWatch { user_id, replies }),
    ));

    let senders = (0..args.concurrency)
        .map(|i| load::Sender {
            session: users[i % args.users].clone(),
            room_id: room_ids[i % rooms].clone(),
        })
        .collect();
    let config = load::LoadConfig {
        duration: load_duration,
        max_events: args.events,
        rate: args.rate,
        run_id: run_id.clone(),
        replies: replies.clone(),
    };
    let load_start_us = reader::unix_micros();
    let result = load::run(&matrix, senders, &config, tracker.clone()).await;
    let load_end_us = reader::unix_micros();

    let switch_us = match &receivers {
        Some(r) if args.appservice_backlog => {
            let at = reader::unix_micros();
            r.set_failing(false);
            eprintln!(
                "appservice: load over; receivers answer 200 now, waiting for {} acked events at each",
                result.acked_event_ids.len()
            );
            Some(at)
        }
        _ => None,
    };
    // The reader is usually one sync behind when the senders stop; give it a moment. The
    // appservice receivers get the same grace, or the catch-up timeout in backlog mode.
    let reader_drain = async {
        let drain_start = Instant::now();
        let awaiting = || tracker.awaiting() + replies.as_ref().map_or(0, |r| r.awaiting());
        while awaiting() > 0 && drain_start.elapsed() < DRAIN_GRACE {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let appservice_drain = async {
        if let Some(r) = &receivers {
            let limit = if args.appservice_backlog {
                Duration::from_secs_f64(args.catchup_timeout)
            } else {
                DRAIN_GRACE
            };
            if !r.wait_for(&result.acked_event_ids, limit, true).await {
                eprintln!(
                    "appservice: not every acked event arrived at every receiver within {limit:?}"
                );
            }
        }
    };
    tokio::join!(reader_drain, appservice_drain);
    reader_task.abort();
    let wakeups = tracker.take();

    if !result.error_kinds.is_empty() {
        eprintln!("errors by kind: {:?}", result.error_kinds);
    }
    if wakeups.unseen > 0 || wakeups.limited_timelines > 0 {
        eprintln!(
            "reader: {} acked events never seen, {} limited (gappy) timelines",
            wakeups.unseen, wakeups.limited_timelines
        );
    }

    let elapsed = result.elapsed.as_secs_f64();
    let wakeup = Summary::of(wakeups.wakeup_ms);
    let end_to_end = Summary::of(wakeups.end_to_end_ms);
    let mut fields = vec![
        ("label", json!(args.label).to_string()),
        ("url", json!(args.url).to_string()),
        ("users", args.users.to_string()),
        ("concurrency", args.concurrency.to_string()),
        ("rooms", rooms.to_string()),
        (
            "rate",
            args.rate.map_or(Value::Null, |r| json!(r)).to_string(),
        ),
        (
            "event_limit",
            args.events.map_or(Value::Null, |n| json!(n)).to_string(),
        ),
        ("duration_s", json!(round3(elapsed)).to_string()),
        ("events", result.events.to_string()),
        ("errors", result.errors.to_string()),
        (
            "events_per_s",
            json!(round3(result.events as f64 / elapsed)).to_string(),
        ),
        (
            "send_latency_ms",
            Summary::of(result.send_latency_ms).to_json(false),
        ),
        ("sync_wakeup_ms", wakeup.to_json(true)),
        ("sync_end_to_end_ms", end_to_end.to_json(true)),
        (
            "sync_arrived_before_ack",
            wakeups.arrived_before_ack.to_string(),
        ),
        ("sync_unseen", wakeups.unseen.to_string()),
        (
            "sync_wakeup_definition",
            json!(WAKEUP_DEFINITION).to_string(),
        ),
    ];
    if let Some(admin) = &plugin_admin {
        let caught = admin
            .catch_up(Duration::from_secs_f64(args.catchup_timeout))
            .await?;
        let (took, events) = (caught.took, caught.events);
        eprintln!(
            "plugin: caught up with {events} events in {:.3}s",
            took.as_secs_f64()
        );
        fields.push((
            "plugin_catchup_s",
            json!(round3(took.as_secs_f64())).to_string(),
        ));
        fields.push(("plugin_catchup_events", events.to_string()));
        fields.push((
            "plugin_events_per_s",
            json!((events as f64 / took.as_secs_f64()).round()).to_string(),
        ));
        if events > 0 {
            fields.push((
                "plugin_call_us_per_event",
                json!(round3(caught.call_ms * 1000.0 / events as f64)).to_string(),
            ));
        }
    }
    if let Some(r) = &replies {
        let (reply_ms, unseen) = r.take();
        fields.push(("plugin_reply_ms", Summary::of(reply_ms).to_json(true)));
        fields.push(("plugin_replies_unseen", unseen.to_string()));
        fields.push((
            "plugin_reply_definition",
            json!(plugin::DEFINITION).to_string(),
        ));
    }
    if let Some(r) = &receivers {
        let window = appservice::Window {
            receivers_start_us,
            load_start_us,
            load_end_us,
            switch_us,
        };
        fields.extend(r.report(&result.acked_event_ids, &window));
    }
    println!("{}", ordered_object(&fields));

    // A run in which nothing got through is a failed measurement, even though it printed.
    Ok(if result.events == 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

/// A random number from the standard library's randomly seeded hasher, which is all the
/// randomness unique user names need.
fn random_u64() -> u64 {
    RandomState::new().hash_one(std::time::SystemTime::now())
}
