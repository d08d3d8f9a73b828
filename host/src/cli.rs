//! Command line: `run`, `serve`, `migrate`, `check`, `mock-node`, `mock-cspr-cloud`, `mock-f1r3fly`, `demo`.

use crate::config::Config;
use crate::mock_node::{self, MockOptions};
use anyhow::Context;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Sluice: a WebAssembly-extensible event host for the Casper network.
#[derive(Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ingest from the configured nodes and serve the API.
    Run {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Serve the API only, from the database another instance (`sluice run`) writes.
    Serve {
        /// Configuration file (TOML); its `[storage]` names the shared database.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Copy a SQLite store into an empty PostgreSQL database (stop `sluice run` first).
    Migrate {
        /// The SQLite file (`[storage] path`).
        #[arg(long)]
        from: PathBuf,
        /// The database (`postgresql://user@host:port/db`; the password may come from
        /// `SLUICE_DATABASE_PASSWORD`).
        #[arg(long)]
        to: String,
    },
    /// Validate a configuration file without starting.
    Check {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Serve the captured fixtures and a generated chain as a Casper 2.x node.
    MockNode {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:18101")]
        listen: SocketAddr,
        #[command(flatten)]
        options: MockOptions,
    },
    /// Serve a stand-in for CSPR.cloud's contract-event stream.
    MockCsprCloud {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:18102")]
        listen: SocketAddr,
        #[command(flatten)]
        options: mock_node::cspr_cloud::CloudOptions,
    },
    /// Serve a stand-in for an F1r3fly node's `/ws/events`.
    MockF1r3fly {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:18103")]
        listen: SocketAddr,
        #[command(flatten)]
        options: mock_node::f1r3fly::F1r3flyOptions,
    },
    /// Plugin development.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Rebuild one indexer's storage from the stored log (while `sluice run` is stopped).
    Replay {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// The plugin to replay.
        #[arg(long)]
        plugin: String,
        /// First sequence to replay (default: the plugin's `replay_from`).
        #[arg(long)]
        from: Option<u64>,
    },
    /// Start a mock node and Sluice with the stock plugins, and print what to try.
    Demo {
        /// Configuration used for the Sluice side.
        #[arg(long, default_value = "examples/demo.toml")]
        config: PathBuf,
        /// Run a cluster on this PostgreSQL database instead: a leader, a standby and two
        /// `serve` instances (`cargo xtask demo --cluster` starts a server for it).
        #[arg(long, value_name = "POSTGRESQL_URL")]
        cluster: Option<String>,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Create a plugin (Rust or TypeScript): an indexer with HTTP routes and a test in the real
    /// host runtime, with the SDK it builds with.
    New {
        /// Crate name (lowercase letters, digits, `-`, `_`).
        name: String,
        /// Folder to create it in.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The language to write it in.
        #[arg(long, value_enum, default_value = "rust")]
        lang: crate::scaffold::Language,
    },
    /// Run a built plugin in the host runtime over events from a file, ask its routes, and
    /// print what happened as JSON (exit status 2 when the plugin failed).
    Test(crate::harness::run::TestRun),
}

impl Cli {
    /// Carry out the command.
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Run { config: path } => crate::app::run(Config::load(&path)?, Some(&path), stop_signal()).await,
            Command::Serve { config } => crate::app::serve(Config::load(&config)?, stop_signal()).await,
            Command::Migrate { from, to } => {
                let started = std::time::Instant::now();
                let copied = tokio::task::spawn_blocking(move || crate::store::migrate::migrate(&from, &to)).await??;
                let rows: Vec<String> = copied.iter().map(|(table, rows)| format!("{table} {rows}")).collect();
                println!("copied in {:.1} s: {}", started.elapsed().as_secs_f64(), rows.join(", "));
                Ok(())
            }
            Command::Check { config } => {
                let parsed = Config::load(&config)?;
                println!("{}: ok ({} nodes, {} plugins)", config.display(), parsed.nodes.len(), parsed.plugins.len());
                Ok(())
            }
            Command::MockNode { options, .. } if options.write_chain.is_some() => {
                let path = options.write_chain.clone().unwrap_or_default();
                tokio::task::spawn_blocking(move || mock_node::write_chain(&options, &path)).await?
            }
            Command::MockNode { listen, options } => {
                tracing::info!("mock node serving http://{listen}/events");
                until_stopped(mock_node::serve(bind(listen).await?, options)).await
            }
            Command::MockCsprCloud { listen, options } => {
                tracing::info!("mock CSPR.cloud serving ws://{listen}/contract-events");
                until_stopped(mock_node::cspr_cloud::serve(bind(listen).await?, options)).await
            }
            Command::MockF1r3fly { listen, options } => {
                tracing::info!("mock F1r3fly node serving ws://{listen}/ws/events");
                until_stopped(mock_node::f1r3fly::serve(bind(listen).await?, options)).await
            }
            Command::Plugin(PluginCommand::New { name, dir, lang }) => {
                let created = crate::scaffold::new_plugin(&name, &dir, lang)?;
                let next = match lang {
                    crate::scaffold::Language::Rust => "cargo build --release --target wasm32-wasip2 && cargo test",
                    crate::scaffold::Language::Typescript => "npm install && npm run build && npm test",
                };
                println!("created {}\n  cd {0} && {next}", created.display());
                Ok(())
            }
            Command::Plugin(PluginCommand::Test(test)) => {
                let report = tokio::task::spawn_blocking(move || crate::harness::run::run(&test)).await??;
                println!("{}", serde_json::to_string_pretty(&report)?);
                if !report["error"].is_null() {
                    std::process::exit(2);
                }
                Ok(())
            }
            Command::Replay { config, plugin, from } => {
                let config = Config::load(&config)?;
                tokio::task::spawn_blocking(move || crate::replay::replay(config, &plugin, from)).await?
            }
            Command::Demo { config, cluster: None } => crate::demo::single(&config, stop_signal()).await,
            Command::Demo { config, cluster: Some(url) } => crate::demo::cluster(&config, &url, stop_signal()).await,
        }
    }
}

async fn bind(listen: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(listen).await.with_context(|| format!("listen on {listen}"))
}

/// Run `serve` until it ends or Ctrl-C (or SIGTERM) stops it.
async fn until_stopped<E: Into<anyhow::Error>>(serve: impl Future<Output = Result<(), E>>) -> anyhow::Result<()> {
    tokio::select! {
        served = serve => served.map_err(Into::into),
        () = stop_signal() => Ok(()),
    }
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM (what service managers send).
pub async fn stop_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
