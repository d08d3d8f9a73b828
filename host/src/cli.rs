//! Command line: `run`, `serve`, `migrate`, `check`, `plugin`, `replay`, and (feature `mock-nodes`)
//! the commands of [`crate::mock_node::command`].

use crate::config::Config;
use clap::{Parser, Subcommand};
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
    #[cfg(feature = "mock-nodes")]
    #[command(flatten)]
    Mocks(crate::mock_node::command::MockCommand),
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
            Command::Run { config: path } => {
                crate::app::run(Config::load(&path)?, Some(&path), crate::app::stop_signal()).await
            }
            Command::Serve { config } => crate::app::serve(Config::load(&config)?, crate::app::stop_signal()).await,
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
            #[cfg(feature = "mock-nodes")]
            Command::Mocks(command) => command.run().await,
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
        }
    }
}
