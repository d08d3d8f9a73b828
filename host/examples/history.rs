//! History sync benchmark: the mock node holds a chain of `--events` events of the realistic mix
//! (141 a block), answers JSON-RPC `--rpc-latency-ms` late (default 10: a node across a network)
//! and goes on producing live at `--live-rate` events/s; Sluice syncs the chain over JSON-RPC
//! with `max_requests = 1` (one request at a time: a sequential client, over its first
//! `--sequential-blocks`) and with the default 32 (all of it), alternating, `--runs` times each,
//! into fresh databases. Prints blocks/s,
//! events/s, the ratio, the peak RSS and, in a third parallel sync with an SSE client reading the
//! firehose (history events included), the latency of the live events.
//!
//! `cargo xtask bench-history -- --events 200000 --runs 3 --rpc-latency-ms 10`

mod bench;

use bench::{Host, arg, free_port, get_json, median, peak_rss_mib, percentile, spawn, sse_arrivals};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const PER_BLOCK: u64 = 141;
const FIRST_HEIGHT: u64 = 1_000_000;

fn main() {
    sluice::install_tls_provider();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let sluice = root.join("target/release/sluice");
    let (events, runs, live_rate) = (arg("--events", 200_000), arg("--runs", 3), arg("--live-rate", 100));
    let (latency, sequential_blocks) = (arg("--rpc-latency-ms", 10).to_string(), arg("--sequential-blocks", 50));
    let parallel_requests = arg("--max-requests", 32);
    let blocks = events / PER_BLOCK;
    let node = free_port();
    let (listen, produced, keep) =
        (format!("127.0.0.1:{node}"), (blocks * PER_BLOCK).to_string(), (blocks + 1000).to_string());
    let rate = live_rate.to_string();
    let mock = spawn(Command::new(&sluice).args(["mock-node", "--listen", &listen, "--mix", "realistic"]).args([
        "--produced",
        &produced,
        "--rate",
        &rate,
        "--buffer",
        "1410",
        "--keep-blocks",
        &keep,
        "--rpc-latency-ms",
        &latency,
    ]));
    let rpc = format!("rpc_url = \"http://127.0.0.1:{node}/rpc\"");
    let history = |max_requests: u64, blocks: u64| {
        let to = FIRST_HEIGHT + blocks - 1;
        format!("[history]\nfrom_height = {FIRST_HEIGHT}\nto_height = {to}\nmax_requests = {max_requests}\n")
    };
    // Signing the chain is the mock's main cost: one sync first, unmeasured, makes it keep every
    // block, so the runs measure Sluice.
    let warm = Instant::now();
    sync(&Host::start_with_node(&sluice, &root, node, &rpc, &history(32, blocks), ""), blocks, false);
    println!(
        "History sync, {blocks} blocks ({} events; the sequential client {sequential_blocks}), JSON-RPC answers {latency} ms late, live stream at {live_rate} events/s meanwhile (mock warmed in {:.1} s, its RSS {:.0} MiB)\n",
        blocks * PER_BLOCK,
        warm.elapsed().as_secs_f64(),
        bench::rss_mib(mock.id()),
    );
    println!("| run | client | seconds | blocks/s | events/s | peak RSS (MiB) | live p50 / p99 / max (ms) |");
    println!("|---|---|---:|---:|---:|---:|---|");
    let (mut sequential, mut parallel) = (Vec::new(), Vec::new());
    for run in 1..=runs {
        let (parallel_name, reader_name) =
            (format!("parallel ({parallel_requests})"), format!("parallel ({parallel_requests}), SSE reader"));
        let clients = [
            ("sequential (max_requests = 1)", 1, false),
            (parallel_name.as_str(), parallel_requests, false),
            (reader_name.as_str(), parallel_requests, true),
        ];
        for (name, max_requests, reader) in clients {
            let blocks = if max_requests == 1 { sequential_blocks.min(blocks) } else { blocks };
            let host = Host::start_with_node(&sluice, &root, node, &rpc, &history(max_requests, blocks), "");
            let (seconds, live) = sync(&host, blocks, reader);
            let rate = blocks as f64 / seconds;
            let live = live.map_or("-".into(), |(p50, p99, max)| format!("{p50:.0} / {p99:.0} / {max:.0}"));
            println!(
                "| {run} | {name} | {seconds:.1} | {rate:.0} | {:.0} | {:.0} | {live} |",
                rate * PER_BLOCK as f64,
                peak_rss_mib(host.process.id()),
            );
            match (max_requests, reader) {
                (1, _) => sequential.push(rate),
                (_, false) => parallel.push(rate),
                (_, true) => {}
            }
        }
    }
    let (sequential, parallel) = (median(&sequential), median(&parallel));
    println!(
        "\nMedians: sequential {sequential:.0} blocks/s ({:.0} events/s), parallel {parallel:.0} blocks/s ({:.0} events/s): {:.1}×",
        sequential * PER_BLOCK as f64,
        parallel * PER_BLOCK as f64,
        parallel / sequential
    );
}

/// Wait until `host` has synced the `blocks` of history and stored them; the seconds since it
/// started, and with `measure_live`, the live events' latency meanwhile (SSE frame received −
/// the event's arrival from the node).
fn sync(host: &Host, blocks: u64, measure_live: bool) -> (f64, Option<(f64, f64, f64)>) {
    let started = Instant::now();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let listener = measure_live.then(|| {
        let (url, stop) = (host.url("/events"), stop.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let deadline = Instant::now() + Duration::from_secs(3600);
            runtime.block_on(sse_arrivals(&url, deadline, |_| stop.load(std::sync::atomic::Ordering::Relaxed)))
        })
    });
    loop {
        let status = get_json(&host.url("/status")).unwrap_or_default();
        let history = &status["history"];
        let stored = history["heights_stored"].as_u64().unwrap_or(0);
        if history["state"] == "done" && stored >= blocks {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(1800), "the sync did not finish: {history}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Done means sent to the store: wait for the last blocks' commit.
    let block_count = || {
        let db = rusqlite::Connection::open(host.dir.path().join("bench.db")).unwrap();
        db.query_row(
            "SELECT count(*) FROM events WHERE kind = 'BlockAdded' AND block_height < ?1",
            [FIRST_HEIGHT + blocks],
            |r| r.get::<_, u64>(0),
        )
        .unwrap_or(0)
    };
    while block_count() < blocks {
        std::thread::sleep(Duration::from_millis(5));
    }
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let live = listener.map(|listener| {
        let arrivals = listener.join().unwrap();
        let db = rusqlite::Connection::open(host.dir.path().join("bench.db")).unwrap();
        let mut query =
            db.prepare("SELECT received_at_ms FROM events WHERE seq = ?1 AND node_event_id IS NOT NULL").unwrap();
        let mut latencies: Vec<f64> = arrivals
            .iter()
            .filter_map(|(seq, at)| {
                query.query_row([seq], |r| r.get::<_, i64>(0)).ok().map(|received| (at - received) as f64)
            })
            .collect();
        (percentile(&mut latencies, 0.5), percentile(&mut latencies, 0.99), percentile(&mut latencies, 1.0))
    });
    (seconds, live)
}
