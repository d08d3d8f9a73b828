//! The `sluice` binary: logging set-up, then the command line (see [`sluice::cli`]).

use clap::Parser;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // `SLUICE_LOG`, else `RUST_LOG`, else `info`. tungstenite traces whole upgrade requests,
    // credentials included: never below debug.
    let filter = EnvFilter::try_from_env("SLUICE_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let filter = filter.add_directive("tungstenite=debug".parse().expect("a valid directive"));
    // Colours only for a terminal: a log file or journal gets plain text.
    let ansi = std::io::stderr().is_terminal();
    // A log line that cannot be written (a full disk under the log file) is lost, not reported
    // with `eprintln!`, which would panic on the same full disk.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .log_internal_errors(false)
        .init();
    // A file size limit (`ulimit -f`, systemd's LimitFSIZE) must make writes fail, which the
    // store retries and /health shows, not kill the process (SIGXFSZ's default).
    // SAFETY: setting a signal's disposition to "ignore" touches no Rust state.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    sluice::install_tls_provider();
    match sluice::cli::Cli::parse().run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
