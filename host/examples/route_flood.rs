//! Plugin route flood: the real `sluice run` ingesting the realistic mix as fast as it can (a
//! replayed chain) while `--clients` (700) clients each keep a request in flight to a plugin
//! route that spins to its time limit (the test-only `hostile` plugin), against the same run
//! without the flood. Measured over 10 s: `/health` latency (sampled every 20 ms: p50, p99,
//! max) and the ingest rate. Run with `cargo xtask bench` (after the ingest benchmark) or
//! `target/release/examples/route_flood [--clients N] [--runs N]`.

mod bench;

use bench::{Host, arg, chain_mock_args, free_port, median, percentile, spawn};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn main() {
    sluice::install_tls_provider();
    let (clients, runs) = (arg("--clients", 700) as usize, arg("--runs", 3));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let sluice = root.join("target/release/sluice");
    assert!(sluice.is_file(), "build first: cargo xtask bench does");
    let hostile = root.join("target/wasm32-wasip2/release/hostile.wasm");
    assert!(hostile.is_file(), "build the plugins first: cargo xtask bench does");
    let plugins = format!("[[plugins]]\nname = \"hostile\"\npath = \"{}\"\n", hostile.display());

    println!(
        "\nPlugin route flood: {clients} clients on a route that spins to its 100 ms limit, while ingesting the realistic mix; 10 s measured, medians of {runs} runs:\n"
    );
    println!(
        "| flood | /health p50 (ms) | /health p99 (ms) | /health max (ms) | ingest (events/s) | flood answers (503 / 502) |"
    );
    println!("|---|---:|---:|---:|---:|---|");
    for flooding in [false, true] {
        let results: Vec<Run> = (0..runs).map(|_| run(&sluice, &root, &plugins, flooding.then_some(clients))).collect();
        let pick = |f: fn(&Run) -> f64| median(&results.iter().map(f).collect::<Vec<_>>());
        let answers = results.iter().map(|r| format!("{} / {}", r.refused, r.failed)).collect::<Vec<_>>().join(", ");
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.0} | {} |",
            if flooding { format!("{clients} clients") } else { "none".into() },
            pick(|r| r.p50),
            pick(|r| r.p99),
            pick(|r| r.max),
            pick(|r| r.ingest),
            if flooding { answers } else { "–".into() },
        );
    }
}

struct Run {
    p50: f64,
    p99: f64,
    max: f64,
    ingest: f64,
    refused: u64,
    failed: u64,
}

/// One host, ingesting; with `flood` clients on the spinning route.
fn run(sluice: &Path, root: &Path, plugins: &str, flood: Option<usize>) -> Run {
    let node = free_port();
    let _mock = spawn(Command::new(sluice).args(chain_mock_args(sluice, root, node, 1_000_000, "realistic")));
    let host = Host::start(sluice, root, node, plugins, "");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let stop = Instant::now() + Duration::from_secs(13);
        let url = host.url("/plugins/hostile/spin");
        let flooders: Vec<_> = (0..flood.unwrap_or(0))
            .map(|_| {
                let (http, url) = (reqwest::Client::new(), url.clone());
                tokio::spawn(async move {
                    let (mut refused, mut failed) = (0, 0);
                    while Instant::now() < stop {
                        match http.get(&url).send().await.map(|r| r.status().as_u16()) {
                            Ok(503) => refused += 1,
                            Ok(_) => failed += 1,
                            Err(_) => {}
                        }
                    }
                    (refused, failed)
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let stored = |health: &serde_json::Value| health["ingest"]["stored"].as_f64().unwrap_or(0.0);
        let (http, started, mut latencies) = (reqwest::Client::new(), Instant::now(), Vec::new());
        let (mut first, mut last) = (None, 0.0);
        while started.elapsed() < Duration::from_secs(10) {
            let asked = Instant::now();
            let health: serde_json::Value = http.get(host.url("/health")).send().await.unwrap().json().await.unwrap();
            latencies.push(asked.elapsed().as_secs_f64() * 1e3);
            last = stored(&health);
            first.get_or_insert(last);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let ingest = (last - first.unwrap_or(last)) / started.elapsed().as_secs_f64();
        let (mut refused, mut failed) = (0, 0);
        for flooder in flooders {
            let (r, f) = flooder.await.unwrap();
            (refused, failed) = (refused + r, failed + f);
        }
        let mut pick = |q: f64| percentile(&mut latencies, q);
        Run { p50: pick(0.5), p99: pick(0.99), max: pick(1.0), ingest, refused, failed }
    })
}
