//! Project automation, run as `cargo xtask <command>`: every set-up step lives here so that a
//! fresh clone needs nothing but `cargo`.
//!
//! - `plugins`: add the `wasm32-wasip2` target and build the stock and test plugins;
//! - `test`: `plugins` and the official Casper SDKs the tests check the mock chain with (npm),
//!   then the whole test suite;
//! - `demo`: `plugins`, then `sluice demo`;
//! - `bench`: `plugins`, then the ingest and plugin-call benchmarks (see BENCHMARKS.md);
//! - `bench-serve`: the serving benchmark (REST under load, SSE fan-out; see BENCHMARKS.md).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Crates built for `wasm32-wasip2`: stock plugins and the test-only ones.
const PLUGINS: &[&str] = &["sluice-filter", "sluice-transfers", "sluice-chaos", "sluice-tally", "sluice-hostile"];
/// Plugins that also have tests of their own, run natively (unit tests, or the harness).
const TESTED_PLUGINS: &[&str] = &["sluice-ces-decoder", "cep18-indexer"];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("plugins") => plugins(),
        Some("test") => plugins().and_then(|()| sdks()).and_then(|()| {
            // Everything but the crates that only build for wasm32-wasip2.
            let mut test = vec!["test", "--release", "--workspace", "--exclude", "sluice-plugin-sdk"];
            test.extend(PLUGINS.iter().flat_map(|plugin| ["--exclude", *plugin]));
            cargo(&test, &args[1..])
        }),
        Some("demo") => plugins().and_then(|()| cargo(&["run", "--release", "-p", "sluice", "--", "demo"], &args[1..])),
        Some("bench") => plugins()
            .and_then(|()| cargo(&["build", "--release", "-p", "sluice", "--bins"], &[]))
            .and_then(|()| cargo(&["run", "--release", "-p", "sluice", "--example", "ingest", "--"], &args[1..]))
            .and_then(|()| cargo(&["run", "--release", "-p", "sluice", "--example", "plugin_call"], &[])),
        Some("bench-serve") => {
            cargo(&["build", "--release", "-p", "sluice", "--bins", "--example", "fanout_floor"], &[])
                .and_then(|()| cargo(&["run", "--release", "-p", "sluice", "--example", "serve", "--"], &args[1..]))
        }
        _ => Err("usage: cargo xtask <plugins|test|demo|bench|bench-serve> [extra arguments]".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Build every plugin for `wasm32-wasip2` into `target/wasm32-wasip2/release/`.
fn plugins() -> Result<(), String> {
    // This rustup does not install the targets listed in rust-toolchain.toml by itself.
    run(Command::new("rustup").args(["target", "add", "wasm32-wasip2"]))?;
    let mut build = vec!["build", "--release", "--target", "wasm32-wasip2"];
    for plugin in PLUGINS.iter().chain(TESTED_PLUGINS) {
        build.extend(["-p", plugin]);
    }
    cargo(&build, &[])
}

/// Install the official JavaScript SDKs of `tests/sdk/package-lock.json` into `target/sdk-check`
/// (`npm ci`, again only when the lock changed).
fn sdks() -> Result<(), String> {
    let (source, target) = (workspace_root().join("tests/sdk"), workspace_root().join("target/sdk-check"));
    let lock = std::fs::read(source.join("package-lock.json")).map_err(|e| format!("tests/sdk: {e}"))?;
    if std::fs::read(target.join("package-lock.json")).ok().as_ref() == Some(&lock)
        && target.join("node_modules").is_dir()
    {
        return Ok(());
    }
    std::fs::create_dir_all(&target).map_err(|e| format!("{}: {e}", target.display()))?;
    for file in ["package.json", "package-lock.json"] {
        std::fs::copy(source.join(file), target.join(file)).map_err(|e| format!("{file}: {e}"))?;
    }
    run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&target))
}

fn cargo(args: &[&str], extra: &[String]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(cargo).current_dir(workspace_root()).args(args).args(extra))
}

fn run(command: &mut Command) -> Result<(), String> {
    let status = command.status().map_err(|e| format!("{command:?}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{command:?} failed ({status})")) }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}
