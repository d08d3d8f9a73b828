//! The commands that run the stand-ins and the demo: `sluice mock-node`, `mock-cspr-cloud`,
//! `mock-f1r3fly`, `demo` (flattened into the command line with the `mock-nodes` feature).

use super::MockOptions;
use crate::app::stop_signal;
use anyhow::Context;
use clap::Subcommand;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The stand-ins' commands.
#[derive(Subcommand)]
pub enum MockCommand {
    /// Serve the captured fixtures and a generated chain as a Casper 2.x node.
    MockNode {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:18101")]
        listen: SocketAddr,
        /// What it serves, and how fast.
        #[command(flatten)]
        options: MockOptions,
    },
    /// Serve a stand-in for CSPR.cloud's contract-event stream.
    MockCsprCloud {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:18102")]
        listen: SocketAddr,
        /// What it serves.
        #[command(flatten)]
        options: super::cspr_cloud::CloudOptions,
    },
    /// Serve a stand-in for an F1r3fly node's `/ws/events`.
    MockF1r3fly {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:18103")]
        listen: SocketAddr,
        /// What it serves.
        #[command(flatten)]
        options: super::f1r3fly::F1r3flyOptions,
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

impl MockCommand {
    /// Carry out the command.
    pub async fn run(self) -> anyhow::Result<()> {
        match self {
            MockCommand::MockNode { options, .. } if options.write_chain.is_some() => {
                let path = options.write_chain.clone().unwrap_or_default();
                tokio::task::spawn_blocking(move || super::write_chain(&options, &path)).await?
            }
            MockCommand::MockNode { listen, options } => {
                tracing::info!("mock node serving http://{listen}/events");
                until_stopped(super::serve(bind(listen).await?, options)).await
            }
            MockCommand::MockCsprCloud { listen, options } => {
                tracing::info!("mock CSPR.cloud serving ws://{listen}/contract-events");
                until_stopped(super::cspr_cloud::serve(bind(listen).await?, options)).await
            }
            MockCommand::MockF1r3fly { listen, options } => {
                tracing::info!("mock F1r3fly node serving ws://{listen}/ws/events");
                until_stopped(super::f1r3fly::serve(bind(listen).await?, options)).await
            }
            MockCommand::Demo { config, cluster: None } => crate::demo::single(&config, stop_signal()).await,
            MockCommand::Demo { config, cluster: Some(url) } => {
                crate::demo::cluster(&config, &url, stop_signal()).await
            }
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
