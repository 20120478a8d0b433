//! The command line: `serve`, and the admin subcommands that work on the same data dir
//! (`user add` on the database, `appservice …` through the running server's admin API).

mod appservice;

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
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Replace the registration of a service added at runtime (the file's `id` names it); its
    /// queue is kept.
    Update {
        file: PathBuf,
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
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
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
                .register(&name, Some(&password), admin, None, None, true, None)
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
    }
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
    let client = appservice::AdminClient::new(&config, server.url.as_deref())?;
    match command {
        AppserviceCommand::Add { file, .. } => {
            let added = client.add(&file).await?;
            println!("added {}", added["id"].as_str().unwrap_or("?"));
            print!("{}", appservice::show_page(&added));
        }
        AppserviceCommand::Update { file, .. } => {
            let updated = client.update(&file).await?;
            println!("updated {}", updated["id"].as_str().unwrap_or("?"));
            print!("{}", appservice::show_page(&updated));
        }
        AppserviceCommand::Remove { id, .. } => {
            client.remove(&id).await?;
            println!("removed {id}");
        }
        AppserviceCommand::List { .. } => {
            print!("{}", appservice::list_table(&client.list().await?));
        }
        AppserviceCommand::Show { id, .. } => {
            print!("{}", appservice::show_page(&client.show(&id).await?));
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
