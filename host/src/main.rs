//! The `sluice` binary. The pipeline, in module order:
//! [`source`] → [`store`] → [`plugins`] → [`bus`] → [`api`]; [`pipeline`] drives the middle three.

mod api;
mod app;
mod bus;
mod cli;
mod config;
mod event;
mod mock_node;
mod pipeline;
mod plugins;
mod source;
mod store;

use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("SLUICE_LOG").unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    match cli::Cli::parse().run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
