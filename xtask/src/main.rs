//! Project automation, run as `cargo xtask <command>`: every set-up step lives here so that a
//! fresh clone needs nothing but `cargo`.
//!
//! - `plugins`: add the `wasm32-wasip2` target and build the stock and test plugins;
//! - `test`: `plugins`, the official Casper SDKs the tests check the mock chain with (npm) and a
//!   throwaway PostgreSQL server (`postgres.rs`), then the whole test suite on SQLite, then the
//!   integration tests again on PostgreSQL;
//! - `demo`: `plugins`, then `sluice demo` (`--cluster`: on a PostgreSQL server it starts);
//! - `bench`: `plugins`, then the ingest, plugin-call and route-flood benchmarks (see BENCHMARKS.md);
//! - `bench-serve`: the serving benchmark (REST under load, SSE fan-out; see BENCHMARKS.md);
//! - `bench-cluster`: a leader and a `serve` instance on a PostgreSQL server it starts (REST, SSE);
//! - `bench-history`: history sync over JSON-RPC, parallel against one request at a time.

mod postgres;

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
        Some("test") => plugins().and_then(|()| sdks()).and_then(|()| test(&args[1..])),
        Some("demo") if args[1..].iter().any(|arg| arg == "--cluster") => plugins()
            .and_then(|()| cargo(&native("build", &["--bin", "sluice"]), &[]))
            .and_then(|()| demo_cluster(&args[1..])),
        Some("demo") => plugins()
            .and_then(|()| cargo(&native("build", &["--bin", "sluice"]), &[]))
            .and_then(|()| built("sluice", &[&["demo".to_owned()], &args[1..]].concat())),
        Some("bench") => plugins()
            .and_then(|()| {
                let examples = ["--example", "ingest", "--example", "plugin_call", "--example", "route_flood"];
                cargo(&native("build", &[&["--bin", "sluice"][..], &examples].concat()), &[])
            })
            .and_then(|()| built("examples/ingest", &args[1..]))
            .and_then(|()| built("examples/plugin_call", &[]))
            .and_then(|()| built("examples/route_flood", &[])),
        Some("bench-serve") => {
            cargo(&native("build", &["--bin", "sluice", "--example", "fanout_floor", "--example", "serve"]), &[])
                .and_then(|()| built("examples/serve", &args[1..]))
        }
        Some("bench-cluster") => {
            cargo(&native("build", &["--bin", "sluice", "--example", "cluster"]), &[]).and_then(|()| {
                let server = postgres::TestServer::start()?;
                let mut bench = Command::new(workspace_root().join("target/release/examples/cluster"));
                run(bench.current_dir(workspace_root()).args(&args[1..]).env("SLUICE_BENCH_POSTGRES", &server.url))
            })
        }
        Some("bench-history") => cargo(&native("build", &["--bin", "sluice", "--example", "history"]), &[])
            .and_then(|()| built("examples/history", &args[1..])),
        _ => Err(
            "usage: cargo xtask <plugins|test|demo|bench|bench-serve|bench-cluster|bench-history> [extra arguments]"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `cargo <command> --release` over the workspace's native crates (all but those that only build
/// for wasm32-wasip2), then `targets`. Every command selects the same crates, so Cargo resolves
/// the same features for each and they share one build: `demo` and `bench` after `test` (or
/// the other way round) compile nothing again. (With `-p sluice` alone, features unify
/// differently and wasmtime and most dependencies were built twice.)
fn native<'a>(command: &'a str, targets: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![command, "--release", "--workspace"];
    args.extend(PLUGINS.iter().flat_map(|plugin| ["--exclude", *plugin]));
    args.extend(targets);
    args
}

/// Tests that only concern the SQLite backend (they fill its file system or read its file).
const SQLITE_ONLY: &[&str] = &["storage_failures_show_in_health_and_metrics_and_lose_nothing"];
/// Tests that run on PostgreSQL whatever the pass (their names start so): run once.
const POSTGRES_ONLY: &str = "cluster_";

/// The whole suite with a PostgreSQL server beside it (for the tests of what only PostgreSQL
/// does), then the integration tests again with every host storing in PostgreSQL.
fn test(extra: &[String]) -> Result<(), String> {
    let server = postgres::TestServer::start()?;
    let ca = server.ca.display().to_string();
    let env = |backend: &str| {
        [
            ("SLUICE_TEST_POSTGRES", server.url.clone()),
            ("SLUICE_TEST_POSTGRES_CA", ca.clone()),
            ("SLUICE_TEST_POSTGRES_REPLICA", server.replica_url.clone()),
            ("SLUICE_TEST_BACKEND", backend.into()),
            // What plugins' own tests run (`sluice_plugin_sdk::testing`).
            ("SLUICE", workspace_root().join("target/release/sluice").display().to_string()),
        ]
    };
    // The binary without the stand-ins and the demo (what a package ships) still builds.
    cargo(&["check", "--release", "-p", "sluice", "--no-default-features"], &[])?;
    cargo_with(&native("test", &[]), extra, &env("sqlite"))?;
    let mut skip = vec!["--".to_owned()];
    skip.extend(SQLITE_ONLY.iter().chain([&POSTGRES_ONLY]).flat_map(|test| ["--skip".to_owned(), test.to_string()]));
    let extra: Vec<String> = match extra.iter().position(|arg| arg == "--") {
        Some(split) => [&extra[..split], &skip[..], &extra[split + 1..]].concat(),
        None => [extra, &skip[..]].concat(),
    };
    cargo_with(&native("test", &["--test", "*"]), &extra, &env("postgres"))
}

/// `sluice demo --cluster` on a throwaway PostgreSQL server (its `postgres` database), which is
/// stopped and removed when the demo ends: Ctrl-C stops the demo, not this process.
fn demo_cluster(args: &[String]) -> Result<(), String> {
    let server = postgres::TestServer::start()?;
    let url = format!("{}/postgres", server.url);
    let args: Vec<&str> = args.iter().map(String::as_str).filter(|arg| *arg != "--cluster").collect();
    let mut demo = Command::new(workspace_root().join("target/release/sluice"));
    demo.current_dir(workspace_root()).args(["demo", "--cluster", &url]).args(args);
    let mut demo = demo.spawn().map_err(|e| format!("sluice demo: {e}"))?;
    // The terminal's Ctrl-C reaches the demo and this process alike: this one lives on to stop
    // the server. (Declared here rather than adding the libc crate for one call.)
    unsafe extern "C" {
        fn signal(signal: i32, handler: usize) -> usize;
    }
    const SIGINT: i32 = 2;
    const SIG_IGN: usize = 1;
    // SAFETY: ignoring a signal touches no Rust state.
    unsafe { signal(SIGINT, SIG_IGN) };
    let status = demo.wait().map_err(|e| e.to_string())?;
    drop(server);
    if status.success() { Ok(()) } else { Err(format!("sluice demo --cluster failed ({status})")) }
}

/// Run `target/release/{binary}` with `args`, from the workspace root.
fn built(binary: &str, args: &[String]) -> Result<(), String> {
    run(Command::new(workspace_root().join("target/release").join(binary)).current_dir(workspace_root()).args(args))
}

/// Build every plugin for `wasm32-wasip2` into `target/wasm32-wasip2/release/`, and the
/// TypeScript example into its `dist/`.
fn plugins() -> Result<(), String> {
    // This rustup does not install the targets listed in rust-toolchain.toml by itself.
    run(Command::new("rustup").args(["target", "add", "wasm32-wasip2"]))?;
    let mut build = vec!["build", "--release", "--target", "wasm32-wasip2"];
    for plugin in PLUGINS.iter().chain(TESTED_PLUGINS) {
        build.extend(["-p", plugin]);
    }
    cargo(&build, &[])?;
    typescript_example()
}

/// The TypeScript example plugin, built as its README says (`npm ci` again only when its lock
/// file changed).
fn typescript_example() -> Result<(), String> {
    let dir = workspace_root().join("examples/cep18-indexer-ts");
    let (lock, installed) = (dir.join("package-lock.json"), dir.join("node_modules/.installed-package-lock.json"));
    let wanted = std::fs::read(&lock).map_err(|e| format!("{}: {e}", lock.display()))?;
    if std::fs::read(&installed).ok() != Some(wanted) {
        run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir))?;
        std::fs::copy(&lock, &installed).map_err(|e| format!("{}: {e}", installed.display()))?;
    }
    run(Command::new("npm").args(["run", "build"]).current_dir(&dir))
}

/// Install the official SDKs the tests check Sluice with (`tests/sdk`: casper-js-sdk 5 and 2 from
/// `package-lock.json`, pycspr from `requirements.txt`) into `target/sdk-check`, again only when a
/// list changed.
fn sdks() -> Result<(), String> {
    let (source, target) = (workspace_root().join("tests/sdk"), workspace_root().join("target/sdk-check"));
    std::fs::create_dir_all(&target).map_err(|e| format!("{}: {e}", target.display()))?;
    let copy = |file: &str, to: &str| {
        std::fs::copy(source.join(file), target.join(to)).map(drop).map_err(|e| format!("{file}: {e}"))
    };
    // A lock file is copied beside what it installed once the install succeeded.
    let installed = |lock: &str| {
        let wanted = std::fs::read(source.join(lock)).map_err(|e| format!("tests/sdk/{lock}: {e}"))?;
        Ok::<_, String>(std::fs::read(target.join(format!("{lock}.installed"))).ok() == Some(wanted))
    };
    // casper-js-sdk 5 and 2, from the npm lock file.
    if !installed("package-lock.json")? {
        copy("package.json", "package.json")?;
        copy("package-lock.json", "package-lock.json")?;
        run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&target))?;
        copy("package-lock.json", "package-lock.json.installed")?;
    }
    // pycspr, pinned, in a virtual environment of its own.
    if !installed("requirements.txt")? {
        run(Command::new("python3").args(["-m", "venv", "--clear", "python"]).current_dir(&target))?;
        let pip = target.join("python/bin/pip");
        run(Command::new(pip)
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(source.join("requirements.txt")))?;
        copy("requirements.txt", "requirements.txt.installed")?;
    }
    Ok(())
}

fn cargo(args: &[&str], extra: &[String]) -> Result<(), String> {
    cargo_with(args, extra, &[])
}

fn cargo_with(args: &[&str], extra: &[String], env: &[(&str, String)]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(workspace_root()).args(args).args(extra);
    run(command.envs(env.iter().map(|(name, value)| (name, value))))
}

fn run(command: &mut Command) -> Result<(), String> {
    let status = command.status().map_err(|e| format!("{command:?}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{command:?} failed ({status})")) }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}
