//! The command line: `serve`, and the admin subcommands that work on the same data dir.

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
    }
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
