//! The command line: `serve`, and the admin subcommands that work on the same data dir
//! (`user add` on the database, `appservice …`, `plugin …` and `report …` through the running
//! server's admin API).

mod admin_client;
mod appservice;
mod format;
mod plugin;
mod report;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, LogFormat, Overrides};

#[derive(Parser)]
#[command(
    name = "plugboard",
    version,
    about = "A Matrix homeserver with WebAssembly application services"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where to find the configuration; shared by every subcommand.
#[derive(Args, Clone)]
struct ConfigArgs {
    /// The TOML configuration file (every key has a default).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// The data directory: database, signing key, admin token, media.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The server name users and rooms are on.
    #[arg(long)]
    server_name: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the homeserver.
    Serve {
        #[command(flatten)]
        config: ConfigArgs,
        /// The address to listen on, e.g. 127.0.0.1:8008.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Manage local users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage application services on the running server, with the admin token from the
    /// data dir.
    Appservice {
        #[command(subcommand)]
        command: AppserviceCommand,
    },
    /// Manage WASM plugins on the running server, with the admin token from the data dir.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Read and dismiss what users reported (events, rooms, users) on the running server,
    /// with the admin token from the data dir.
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
}

#[derive(Subcommand)]
enum ReportCommand {
    /// List the reports, newest first, a page at a time.
    List {
        /// Only reports older than this one (the `--from` the previous page names).
        #[arg(long, value_name = "ID")]
        from: Option<i64>,
        /// At most this many (default 100, at most 1000).
        #[arg(long)]
        limit: Option<u32>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Dismiss (delete) a report.
    Dismiss {
        id: i64,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Install a plugin: a component (.wasm) and its manifest (plugin.toml beside it unless
    /// --manifest names one). By default it receives what happens from now on.
    Install {
        file: PathBuf,
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// The admin's configuration for the plugin (TOML), over the manifest's [config].
        /// (`--config` names the server's configuration, as for every subcommand.)
        #[arg(long = "plugin-config", value_name = "FILE")]
        plugin_config: Option<PathBuf>,
        /// Replay the stored history of the rooms it is interested in first.
        #[arg(long, conflicts_with_all = ["from", "live"])]
        from_beginning: bool,
        /// Replay the stored history from this event on first.
        #[arg(long, value_name = "EVENT_ID", conflicts_with = "live")]
        from: Option<String>,
        /// Only what happens from now on (the default).
        #[arg(long)]
        live: bool,
        /// Do not follow the replay's progress.
        #[arg(long)]
        no_wait: bool,
        /// Let it act as existing accounts it did not create (its sender, or accounts in
        /// an exclusive users namespace): refused otherwise, naming them.
        #[arg(long)]
        allow_takeover: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Replace a plugin's component (and manifest) between two transactions; its queue is
    /// kept.
    Upgrade {
        id: String,
        file: PathBuf,
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// Let it act as existing accounts it did not create (its sender, or accounts in
        /// an exclusive users namespace): refused otherwise, naming them.
        #[arg(long)]
        allow_takeover: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List the plugins: state, events behind, counters, call times, memory, kv.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Show one plugin in detail.
    Show {
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Start a disabled plugin again; it catches up with what came meanwhile.
    Enable {
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Stop delivering to a plugin (its queue grows meanwhile).
    Disable {
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Read the plugin's directory again (component, manifest, configuration).
    Reload {
        id: String,
        /// Let it act as existing accounts it did not create (its sender, or accounts in
        /// an exclusive users namespace): refused otherwise, naming them.
        #[arg(long)]
        allow_takeover: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Remove a plugin with its queue, store and timers.
    Remove {
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Acknowledge the transaction in flight without delivering it (a transaction the
    /// plugin cannot take).
    Skip {
        id: String,
        txn: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Turn a plugin's web endpoints on or off.
    Endpoints {
        id: String,
        #[arg(value_parser = ["on", "off"])]
        state: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// How to reach the running server: the data dir (for the admin token and the address the
/// server listens on) and, if need be, its URL.
#[derive(Args, Clone)]
struct ServerArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// The server's base URL, e.g. http://127.0.0.1:8008 (default: the address the server
    /// wrote to the data dir, else `listen` from the configuration).
    #[arg(long)]
    url: Option<String>,
}

#[derive(Subcommand)]
enum AppserviceCommand {
    /// Register a service from its Synapse-format registration file (YAML); it is stored and
    /// comes back at every start.
    Add {
        file: PathBuf,
        /// Let it act as existing accounts it did not create (its sender, or accounts in
        /// an exclusive users namespace): refused otherwise, naming them.
        #[arg(long)]
        allow_takeover: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Replace the registration of a service added at runtime (the file's `id` names it); its
    /// queue is kept.
    Update {
        file: PathBuf,
        /// Let it act as existing accounts it did not create (its sender, or accounts in
        /// an exclusive users namespace): refused otherwise, naming them.
        #[arg(long)]
        allow_takeover: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Remove a service added at runtime, with its queue.
    Remove {
        id: String,
        /// Remove it from the database of a stopped server (e.g. one that cannot start
        /// because the registration clashes with a file) instead of through the running one.
        #[arg(long)]
        offline: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List the services: state, events behind, last success and error, counters, p50 / p99
    /// delivery time.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Show one service in detail.
    Show {
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user, e.g. when registration is closed.
    Add {
        /// The localpart (`alice` for `@alice:server`).
        name: String,
        /// The password; read from standard input when not given.
        #[arg(long)]
        password: Option<String>,
        /// Make the user a server admin.
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

fn load(args: &ConfigArgs, listen: Option<SocketAddr>) -> Result<Config, String> {
    Config::load(
        args.config.as_deref(),
        &Overrides {
            listen,
            server_name: args.server_name.clone(),
            data_dir: args.data_dir.clone(),
        },
    )
    .map_err(|e| e.to_string())
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("plugboard: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("plugboard: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Serve { config, listen } => {
            let config = load(&config, listen)?;
            init_logging(&config);
            let listener = crate::server::bind(config.listen)
                .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
            crate::server::run(listener, config, shutdown_signal())
                .await
                .map_err(|e| e.to_string())
        }
        Command::User {
            command:
                UserCommand::Add {
                    name,
                    password,
                    admin,
                    config,
                },
        } => {
            let config = load(&config, None)?;
            init_logging(&config);
            let password = match password {
                Some(p) => p,
                None => {
                    let mut line = String::new();
                    std::io::stdin()
                        .read_line(&mut line)
                        .map_err(|e| format!("cannot read the password: {e}"))?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            if password.is_empty() {
                return Err("the password is empty".into());
            }
            let services = crate::server::build_services(config)
                .await
                .map_err(|e| e.to_string())?;
            let login = services
                .users
                .register(&name, Some(&password), admin, None, None, None, true, None)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "created {}{}",
                login.user_id,
                if admin { " (admin)" } else { "" }
            );
            Ok(())
        }
        Command::Appservice { command } => run_appservice(command).await,
        Command::Plugin { command } => run_plugin(command).await,
        Command::Report { command } => run_report(command).await,
    }
}

async fn run_report(command: ReportCommand) -> Result<(), String> {
    let server = match &command {
        ReportCommand::List { server, .. } | ReportCommand::Dismiss { server, .. } => {
            server.clone()
        }
    };
    let config = load(&server.config, None)?;
    let client = admin_client::AdminClient::new(&config, server.url.as_deref())?;
    match command {
        ReportCommand::List { from, limit, .. } => {
            print!(
                "{}",
                report::list_table(&report::list(&client, from, limit).await?)
            );
        }
        ReportCommand::Dismiss { id, .. } => {
            report::dismiss(&client, id).await?;
            println!("dismissed report {id}");
        }
    }
    Ok(())
}

async fn run_plugin(command: PluginCommand) -> Result<(), String> {
    let server = match &command {
        PluginCommand::Install { server, .. }
        | PluginCommand::Upgrade { server, .. }
        | PluginCommand::List { server }
        | PluginCommand::Show { server, .. }
        | PluginCommand::Enable { server, .. }
        | PluginCommand::Disable { server, .. }
        | PluginCommand::Reload { server, .. }
        | PluginCommand::Remove { server, .. }
        | PluginCommand::Skip { server, .. }
        | PluginCommand::Endpoints { server, .. } => server.clone(),
    };
    let config = load(&server.config, None)?;
    let client = admin_client::AdminClient::new(&config, server.url.as_deref())?;
    let page = match command {
        PluginCommand::Install {
            file,
            manifest,
            plugin_config,
            from_beginning,
            from,
            no_wait,
            allow_takeover,
            ..
        } => {
            let start = match (from_beginning, from) {
                (true, _) => plugin::Start::Beginning,
                (false, Some(event)) => plugin::Start::From(event),
                (false, None) => plugin::Start::Live,
            };
            let replays = !matches!(start, plugin::Start::Live);
            let mut p = plugin::install(
                &client,
                &file,
                manifest.as_deref(),
                plugin_config.as_deref(),
                start,
                allow_takeover,
            )
            .await?;
            println!(
                "installed {} from {}",
                format::text(&p["id"]),
                file.display()
            );
            if replays && !no_wait {
                p = plugin::follow_replay(&client, p["id"].as_str().unwrap_or_default()).await?;
            }
            p
        }
        PluginCommand::Upgrade {
            id,
            file,
            manifest,
            allow_takeover,
            ..
        } => {
            let p =
                plugin::upgrade(&client, &id, &file, manifest.as_deref(), allow_takeover).await?;
            println!("upgraded {id}");
            p
        }
        PluginCommand::List { .. } => {
            print!("{}", plugin::list_table(&plugin::list(&client).await?));
            return Ok(());
        }
        PluginCommand::Show { id, .. } => plugin::show(&client, &id).await?,
        PluginCommand::Enable { id, .. } => plugin::action(&client, &id, "enable").await?,
        PluginCommand::Disable { id, .. } => plugin::action(&client, &id, "disable").await?,
        PluginCommand::Reload {
            id, allow_takeover, ..
        } => plugin::reload(&client, &id, allow_takeover).await?,
        PluginCommand::Remove { id, .. } => {
            plugin::remove(&client, &id).await?;
            println!("removed {id}");
            return Ok(());
        }
        PluginCommand::Skip { id, txn, .. } => {
            let p = plugin::skip(&client, &id, &txn).await?;
            println!("skipped transaction {txn} of {id}");
            p
        }
        PluginCommand::Endpoints { id, state, .. } => {
            plugin::endpoints(&client, &id, state == "on").await?
        }
    };
    print!("{}", plugin::show_page(&page));
    Ok(())
}

async fn run_appservice(command: AppserviceCommand) -> Result<(), String> {
    let server = match &command {
        AppserviceCommand::Add { server, .. }
        | AppserviceCommand::Update { server, .. }
        | AppserviceCommand::Remove { server, .. }
        | AppserviceCommand::List { server }
        | AppserviceCommand::Show { server, .. } => server.clone(),
    };
    let config = load(&server.config, None)?;
    if let AppserviceCommand::Remove {
        id, offline: true, ..
    } = &command
    {
        appservice::remove_offline(&config, id).await?;
        println!("removed {id} from the database; it is gone at the next start");
        return Ok(());
    }
    let client = admin_client::AdminClient::new(&config, server.url.as_deref())?;
    match command {
        AppserviceCommand::Add {
            file,
            allow_takeover,
            ..
        } => {
            let added = appservice::add(&client, &file, allow_takeover).await?;
            println!("added {}", added["id"].as_str().unwrap_or("?"));
            print!("{}", appservice::show_page(&added));
        }
        AppserviceCommand::Update {
            file,
            allow_takeover,
            ..
        } => {
            let updated = appservice::update(&client, &file, allow_takeover).await?;
            println!("updated {}", updated["id"].as_str().unwrap_or("?"));
            print!("{}", appservice::show_page(&updated));
        }
        AppserviceCommand::Remove { id, .. } => {
            appservice::remove(&client, &id).await?;
            println!("removed {id}");
        }
        AppserviceCommand::List { .. } => {
            print!(
                "{}",
                appservice::list_table(&appservice::list(&client).await?)
            );
        }
        AppserviceCommand::Show { id, .. } => {
            print!(
                "{}",
                appservice::show_page(&appservice::show(&client, &id).await?)
            );
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}
