//! Ingest benchmark: the real `sluice` binary against the real mock node.
//!
//! For each scenario (no plugins; the stock filter; filter + an annotating plugin) it runs Sluice
//! `--runs` times on a fresh SQLite file, lets the mock node serve `--events` generated 2.x events
//! as fast as it can, and measures events/s from the first stored event to the last one,
//! plus Sluice's peak RSS. The mock node's own serving rate is measured the same way, and so is
//! the realistic block mix of the node-connection issue (141 events per block), without plugins
//! and with three (a decoder, a filter and an indexer). Then the live latency of the SSE
//! firehose at a steady 1000 events/s (p50, p99, max), the cold start with three cached plugins,
//! and the pipeline's pause when a plugin is hot-reloaded.
//! Run with `cargo xtask bench [--events N] [--runs R]`.

mod bench;

use bench::{
    Host, arg, arg_text, chain_mock_args, free_port, get_json, median, mock_args, peak_rss_mib, percentile, spawn,
    sse_arrivals,
};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn main() {
    sluice::install_tls_provider();
    let events = arg("--events", 100_000);
    let runs = arg("--runs", 5);
    // `--only TEXT`: just the ingest scenarios whose name holds TEXT (`latency`: the live latency).
    let only = arg_text("--only");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let sluice = root.join("target/release/sluice");
    assert!(sluice.is_file(), "build first: cargo xtask bench does");
    let wasm = |name: &str| root.join(format!("target/wasm32-wasip2/release/{name}.wasm")).display().to_string();
    let plugin = |name: &str, file: &str, config: &str| {
        format!("[[plugins]]\nname = \"{name}\"\npath = \"{}\"\n[plugins.config]\n{config}\n", wasm(file))
    };
    let filter = plugin("filter", "filter", "drop = [\"Fault\"]");
    let scenarios = [
        ("no plugins", String::new()),
        ("stock filter plugin", filter.clone()),
        ("filter + annotating plugin", filter + &plugin("tagger", "chaos", "annotate = true")),
    ];

    if only.as_deref() == Some("latency") {
        for _ in 0..runs {
            print_live_latency(&sluice, &root);
        }
        return;
    }
    println!("{events} generated 2.x events (+7 fixtures), {runs} runs each, medians:\n");
    println!("| scenario | events/s | µs per event | peak RSS (MiB) |");
    println!("|---|---:|---:|---:|");
    let mock_rates: Vec<f64> = (0..runs).map(|_| mock_only(&sluice, &root, events)).collect();
    println!(
        "| mock node alone (SSE read, no store) | {:.0} | {:.2} | – |",
        median(&mock_rates),
        1e6 / median(&mock_rates)
    );
    let realistic = format!("realistic mix (141 events per block, ≈1.24 KB each), {events} events, no plugins");
    let three = [
        plugin("decoder", "tally", "kinds = []\nderive = true"),
        plugin("filter", "filter", "drop = [\"Fault\"]"),
        plugin("indexer", "tally", ""),
    ]
    .concat();
    let realistic_three = "realistic mix, decoder + filter + indexer (derives 1 event per processed transaction)";
    use sluice::mock_node::token;
    let ces_decoder = token::decoder_plugin_toml("ces", &wasm("ces_decoder"));
    let ces =
        ces_decoder.clone() + &plugin("cep18", "cep18_indexer", &format!("contract_hash = \"{}\"", token::CONTRACT));
    // The TypeScript example (`cargo xtask plugins` builds it), the Rust one's twin.
    let typescript = root.join("examples/cep18-indexer-ts/dist/cep18_indexer.wasm").display().to_string();
    let ces_typescript = ces_decoder.clone()
        + &format!(
            "[[plugins]]\nname = \"cep18\"\npath = \"{typescript}\"\n[plugins.config]\ncontract_hash = \"{}\"\n",
            token::CONTRACT
        );
    let token_mix = "cep18 mix (realistic; 20% of transactions carry 10 CES events)";
    let scenarios = scenarios.iter().map(|(name, plugins)| (name.to_string(), plugins.as_str(), "simple"));
    let realistic = [
        (realistic, "", "realistic"),
        (realistic_three.to_owned(), three.as_str(), "realistic"),
        (format!("{token_mix}, no plugins"), "", "cep18"),
        (format!("{token_mix}, CES decoder"), ces_decoder.as_str(), "cep18"),
        (format!("{token_mix}, CES decoder + CEP-18 indexer"), ces.as_str(), "cep18"),
        (format!("{token_mix}, CES decoder + CEP-18 indexer in TypeScript"), ces_typescript.as_str(), "cep18"),
    ];
    let chosen =
        scenarios.chain(realistic).filter(|(name, ..)| only.as_ref().is_none_or(|o| name.contains(o.as_str())));
    for (name, plugins, mix) in chosen {
        let results: Vec<(f64, f64)> = (0..runs).map(|_| ingest(&sluice, &root, events, plugins, mix)).collect();
        let rate = median(&results.iter().map(|r| r.0).collect::<Vec<_>>());
        let rss = median(&results.iter().map(|r| r.1).collect::<Vec<_>>());
        println!("| {name} | {rate:.0} | {:.2} | {rss:.0} |", 1e6 / rate);
    }

    if only.is_some() {
        return;
    }
    print_live_latency(&sluice, &root);

    let starts: Vec<f64> = (0..runs).map(|_| cold_start(&sluice, &root, &three)).collect();
    println!(
        "\nCold start, `sluice run` to `/health` answering, three cached plugins: median {:.0} ms",
        median(&starts)
    );
    let pauses = reload_pauses(&sluice, &root, &wasm("tally"), runs);
    println!(
        "Hot reload of a plugin under a 1000 events/s stream, pipeline pause: median {:.2} ms, max {:.2} ms ({runs} reloads)",
        median(&pauses),
        pauses.iter().copied().fold(0.0, f64::max)
    );
}

/// Measure and print the live latency of the SSE firehose: 10,000 events at 1,000 events/s.
fn print_live_latency(sluice: &Path, root: &Path) {
    let (latency_events, latency_rate) = (10_000, 1000.0);
    let (p50, p99, max) = live_latency(sluice, root, latency_events, latency_rate);
    println!(
        "\nLive SSE latency, node frame read → SSE frame received, {latency_events} events at {latency_rate} events/s:\n"
    );
    println!("| p50 (ms) | p99 (ms) | max (ms) |\n|---:|---:|---:|\n| {p50:.0} | {p99:.0} | {max:.0} |");
}

/// Milliseconds from starting `sluice run` (empty store, `plugins` in the compile cache) to
/// `/health` answering.
fn cold_start(sluice: &Path, root: &Path, plugins: &str) -> f64 {
    let node = free_port();
    let _mock = spawn(Command::new(sluice).args(mock_args(node, 10, 0.0)));
    let started = Instant::now();
    let _host = Host::start(sluice, root, node, plugins, "");
    started.elapsed().as_secs_f64() * 1e3
}

/// The pipeline's pause (ms, as `/status` reports it) for each of `reloads` config changes of
/// a filter plugin while events flow.
fn reload_pauses(sluice: &Path, root: &Path, tally: &str, reloads: u64) -> Vec<f64> {
    let node = free_port();
    let _mock = spawn(Command::new(sluice).args(mock_args(node, 1_000_000, 1000.0)));
    let plugin = |label: u64| {
        format!(
            "[[plugins]]\nname = \"tally\"\npath = \"{tally}\"\n[plugins.config]\nkinds = []\nlabel = \"v{label}\"\n"
        )
    };
    let host = Host::start(sluice, root, node, &plugin(0), "");
    let config = host.dir.path().join("bench.toml");
    let template = std::fs::read_to_string(&config).unwrap();
    (1..=reloads)
        .map(|n| {
            std::fs::write(&config, template.replace("label = \"v0\"", &format!("label = \"v{n}\""))).unwrap();
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                assert!(Instant::now() < deadline, "no reload");
                let status = get_json(&host.url("/status")).unwrap_or_default();
                if status["plugin_reload"]["reloads"].as_u64() == Some(n) {
                    return status["plugin_reload"]["last_pause_us"].as_f64().unwrap_or_default() / 1e3;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
        .collect()
}

/// One run: returns (events/s, peak RSS in MiB).
fn ingest(sluice: &Path, root: &Path, events: u64, plugins: &str, mix: &str) -> (f64, f64) {
    let node = free_port();
    let _mock = spawn(Command::new(sluice).args(chain_mock_args(sluice, root, node, events, mix)));
    let host = Host::start(sluice, root, node, plugins, "");
    let total = events + 7;
    let mut first = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        assert!(Instant::now() < deadline, "benchmark run did not finish");
        if let Some(h) = get_json(&host.url("/health")) {
            // Events from the node: decoders' derived events are not counted.
            let stored = h["ingest"]["stored"].as_u64().unwrap_or(0);
            if stored > 0 && first.is_none() {
                first = Some(Instant::now());
            }
            if stored >= total {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let elapsed = first.expect("events arrived").elapsed().as_secs_f64();
    (total as f64 / elapsed, peak_rss_mib(host.process.id()))
}

/// Live latency: the mock node produces `rate` events/s; an SSE client subscribed to `/events`
/// notes when each event arrives; the difference to the event's `received_at_ms` (when Sluice
/// read it from the node) is Sluice's latency: queue, batch, commit, bus, HTTP.
/// Returns (p50, p99, max) in milliseconds.
fn live_latency(sluice: &Path, root: &Path, events: u64, rate: f64) -> (f64, f64, f64) {
    let node = free_port();
    let _mock = spawn(Command::new(sluice).args(mock_args(node, events, rate)));
    let host = Host::start(sluice, root, node, "", "");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(events / rate as u64 + 30);
    let arrivals = runtime.block_on(sse_arrivals(&host.url("/events"), deadline, |a| a.len() >= events as usize));
    let db = rusqlite::Connection::open(host.dir.path().join("bench.db")).unwrap();
    let mut received = db.prepare("SELECT received_at_ms FROM events WHERE seq = ?1").unwrap();
    let mut latencies: Vec<f64> = arrivals
        .iter()
        .map(|(seq, at)| (at - received.query_row([seq], |r| r.get::<_, i64>(0)).unwrap()) as f64)
        .collect();
    (percentile(&mut latencies, 0.5), percentile(&mut latencies, 0.99), percentile(&mut latencies, 1.0))
}

/// The mock node's serving rate (replaying the simple mix's chain), read by a plain HTTP client:
/// the ceiling for ingest figures.
fn mock_only(sluice: &Path, root: &Path, events: u64) -> f64 {
    use futures::StreamExt;
    let port = free_port();
    let _mock = spawn(Command::new(sluice).args(chain_mock_args(sluice, root, port, events, "simple")));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let url = format!("http://127.0.0.1:{port}/events?start_from=0");
        let response = loop {
            if let Ok(r) = reqwest::get(&url).await {
                break r;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let start = Instant::now();
        let mut body = response.bytes_stream();
        let (mut ids, mut carry) = (0u64, Vec::new());
        while ids < events + 7 {
            let chunk = body.next().await.expect("stream open").expect("chunk");
            // `\nid:` may straddle two chunks: keep the previous chunk's last 3 bytes.
            carry.extend_from_slice(&chunk);
            ids += carry.windows(4).filter(|w| w == b"\nid:").count() as u64;
            carry.drain(..carry.len().saturating_sub(3));
        }
        ids as f64 / start.elapsed().as_secs_f64()
    })
}
