//! Serving benchmark: the real `sluice` binary over a store of `--events` events (1,000,000 by
//! default, the realistic mix: 141 events per block), then:
//!
//! 1. `GET /block/{hash}` for random stored blocks, from `C` concurrent keep-alive connections
//!    for 5 s each (C = 1, 8, 64): requests/s and p50/p99/p99.9 latency as the client sees it;
//! 2. SSE fan-out: `--subscribers` (10,000) clients on `/events` while a node sends `--rate`
//!    events/s for 20 s: each delivery's latency from Sluice reading the event off the node
//!    (`received_at_ms`) to the client reading it, the host's RSS before and with them, and
//!    the CPU the host and the subscribers used per delivery;
//! 3. the same fan-out from a bare relay of the node's stream (`fanout_floor.rs`), with a task
//!    per subscriber (Sluice's shape) and with one loop per core writing to every socket (the
//!    least possible): the floors for any server on this machine.
//!
//! The load generator runs in this process, on the same 2 cores as the host. `--runs N`
//! alternates steps 2 and 3 N times and ends with the median p99s and the median ratio of
//! Sluice's p99 to the relay with tasks in the same round: the machine is noisy, and the ratio
//! within a round less so.
//! Run with `cargo xtask bench-serve [--events N] [--subscribers N] [--rate R] [--runs N] [--fan-out-only]`.

mod bench;

use bench::{
    Host, Killed, arg, chain_mock_args, fan_out, free_port, load, median, mock_args, percentile, rss_mib, spawn,
    wait_for_stored,
};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn main() {
    sluice::install_tls_provider();
    let args: Vec<String> = std::env::args().collect();
    let (events, subscribers, rate) = (arg("--events", 1_000_000), arg("--subscribers", 10_000), arg("--rate", 20));
    let runs = arg("--runs", 1);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let sluice = root.join("target/release/sluice");
    assert!(sluice.is_file(), "build first: cargo xtask bench-serve does");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();

    if !args.iter().any(|a| a == "--fan-out-only") {
        rest_under_load(&runtime, &sluice, &root, events);
    }

    println!(
        "\nSSE fan-out: {subscribers} subscribers, the realistic mix at {rate} events/s, 20 s measured:\n\n\
         | server | connected | deliveries/s | p50 (ms) | p99 (ms) | max (ms) | first read (ms) | last − first (ms) \
         | server RSS before → with (MiB) | per subscriber (KiB) | server CPU (µs/delivery) | load generator CPU (µs/delivery) | packets dropped |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let bench = FanOutBench { runtime: &runtime, sluice: &sluice, root: &root, subscribers, rate };
    let mut p99s = Vec::new();
    for _ in 0..runs {
        let sluice_p99 = report("Sluice", bench.sluice(), subscribers);
        let tasks_p99 = report("bare relay, a task per subscriber", bench.floor("tasks"), subscribers);
        let direct_p99 = report("bare relay, direct writes", bench.floor("direct"), subscribers);
        p99s.push((sluice_p99, tasks_p99, direct_p99));
    }
    if runs > 1 {
        let column = |pick: fn(&(f64, f64, f64)) -> f64| p99s.iter().map(pick).collect::<Vec<_>>();
        let ratio = column(|p| p.0 / p.1);
        println!(
            "\nMedian p99 over {runs} alternating runs: Sluice {:.0} ms, the relay with a task per subscriber \
             {:.0} ms, with direct writes {:.0} ms; Sluice / the relay with tasks in the same run: median {:.2} \
             (each: {})",
            median(&column(|p| p.0)),
            median(&column(|p| p.1)),
            median(&column(|p| p.2)),
            median(&ratio),
            ratio.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>().join(", "),
        );
    }
}

/// What every fan-out run shares: `subscribers` clients, a node sending `rate` events/s.
struct FanOutBench<'a> {
    runtime: &'a tokio::runtime::Runtime,
    sluice: &'a Path,
    root: &'a Path,
    subscribers: u64,
    rate: u64,
}

impl FanOutBench<'_> {
    /// A fresh mock node sending the realistic mix for an hour: its port and process.
    fn mock_node(&self) -> (u16, Killed) {
        let port = free_port();
        let args = mock_args(port, self.rate * 3600, self.rate as f64);
        (port, spawn(Command::new(self.sluice).args(args).args(["--mix", "realistic"])))
    }

    /// Fan-out from Sluice, and its RSS before the subscribers came.
    fn sluice(&self) -> (fan_out::FanOut, f64) {
        let (node, _its_node) = self.mock_node();
        let subscribers = self.subscribers;
        // They all connect at once: let as many requests in as there are subscribers.
        let limit = format!("max_subscribers = {0}\nmax_concurrent_requests = {0}", subscribers + 100);
        let host = Host::start(self.sluice, self.root, node, "", &limit);
        let rss_before = rss_mib(host.process.id());
        let db = host.dir.path().join("bench.db");
        let received = || {
            let db = rusqlite::Connection::open(db).unwrap();
            let mut query = db.prepare("SELECT seq, received_at_ms FROM events").unwrap();
            query
                .query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        (self.runtime.block_on(fan_out::run(host.http, &host.process, subscribers, MEASURED, received)), rss_before)
    }

    /// The same subscribers on a bare relay of a fresh node's stream, written to the `way`
    /// `fanout_floor.rs` names: a floor on this machine.
    fn floor(&self, way: &str) -> (fan_out::FanOut, f64) {
        let (node, _its_node) = self.mock_node();
        let (port, dir) = (free_port(), tempfile::tempdir().unwrap());
        let times = dir.path().join("received");
        let floor = spawn(Command::new(self.root.join("target/release/examples/fanout_floor")).args([
            format!("http://127.0.0.1:{node}/events"),
            format!("127.0.0.1:{port}"),
            times.display().to_string(),
            way.to_owned(),
        ]));
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            std::thread::sleep(Duration::from_millis(10));
        }
        let rss_before = rss_mib(floor.id());
        let received = || {
            let lines = std::fs::read_to_string(times).unwrap();
            lines
                .lines()
                .filter_map(|l| l.split_once(' '))
                .map(|(id, at)| (id.parse().unwrap(), at.parse().unwrap()))
                .collect()
        };
        (self.runtime.block_on(fan_out::run(port, &floor, self.subscribers, MEASURED, received)), rss_before)
    }
}

/// How long fan-out is measured, after every subscriber connected.
const MEASURED: Duration = Duration::from_secs(20);

/// One row of the fan-out table, and why streams ended early if some did; the p99 (ms).
fn report(server: &str, (mut run, rss_before): (fan_out::FanOut, f64), subscribers: u64) -> f64 {
    let latencies = &mut run.latencies;
    let (p50, p99, max) = (percentile(latencies, 0.5), percentile(latencies, 0.99), percentile(latencies, 1.0));
    let per = (run.rss_with - rss_before) * 1024.0 / subscribers as f64;
    let per_delivery = |seconds: f64| seconds * 1e6 / run.deliveries as f64;
    let (server_cpu, client_cpu) = (per_delivery(run.cpu.0), per_delivery(run.cpu.1));
    println!(
        "| {server} | {} | {:.0} | {p50:.0} | {p99:.0} | {max:.0} | {:.0} | {:.0} | {rss_before:.0} → {:.0} | {per:.1} \
         | {server_cpu:.1} | {client_cpu:.1} | {} |",
        run.connected,
        run.deliveries as f64 / MEASURED.as_secs_f64(),
        run.first,
        run.spread,
        run.rss_with,
        run.dropped,
    );
    if !run.ended_early.is_empty() {
        let mut reasons = std::collections::BTreeMap::<&str, usize>::new();
        for reason in &run.ended_early {
            *reasons.entry(reason).or_default() += 1;
        }
        println!("\n{} streams ended early: {reasons:?}\n", run.ended_early.len());
    }
    p99
}

/// `GET /block/{hash}` from 1, 8 and 64 connections over `events` stored events.
fn rest_under_load(runtime: &tokio::runtime::Runtime, sluice: &Path, root: &Path, events: u64) {
    let node = free_port();
    let _mock = spawn(Command::new(sluice).args(chain_mock_args(sluice, root, node, events, "realistic")));
    let host = Host::start(sluice, root, node, "", "max_concurrent_requests = 4096");
    let started = Instant::now();
    wait_for_stored(&host, events + 7);
    println!("{} events stored in {:.1} s\n", events + 7, started.elapsed().as_secs_f64());
    let hashes = block_hashes(&host);
    println!("`GET /block/{{hash}}` over {} stored blocks, 5 s per row:\n", hashes.len());
    println!("| connections | requests/s | p50 (ms) | p99 (ms) | p99.9 (ms) |\n|---:|---:|---:|---:|---:|");
    for connections in [1, 8, 64] {
        let mut latencies = runtime.block_on(load(&host, &hashes, connections, Duration::from_secs(5)));
        let count = latencies.len() as f64;
        let (p50, p99, p999) =
            (percentile(&mut latencies, 0.5), percentile(&mut latencies, 0.99), percentile(&mut latencies, 0.999));
        println!("| {connections} | {:.0} | {p50:.2} | {p99:.2} | {p999:.2} |", count / 5.0);
    }
}

/// Up to 1000 random stored block hashes.
fn block_hashes(host: &Host) -> Vec<String> {
    let db = rusqlite::Connection::open(host.dir.path().join("bench.db")).unwrap();
    let mut query =
        db.prepare("SELECT block_hash FROM events WHERE kind = 'BlockAdded' ORDER BY random() LIMIT 1000").unwrap();
    query.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
}
