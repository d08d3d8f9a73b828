//! Scale-out benchmark on PostgreSQL: a `sluice run` leader and a `sluice serve` instance on one
//! database (the real binaries; `SLUICE_BENCH_POSTGRES` names the server's administrator URL,
//! `cargo xtask bench-cluster` starts one), side by side:
//!
//! 1. `GET /block/{hash}` for random stored blocks over `--events` (1,000,000) stored events of
//!    the realistic mix, from 1, 8 and 64 keep-alive connections for 5 s each, through the
//!    leader and through the serve instance: requests/s, p50/p99/p99.9 (ms);
//! 2. SSE: `--subscribers` (100) clients on each of the two while a node sends `--rate` (100)
//!    events/s for 20 s: each delivery's latency from the leader reading the event off the node
//!    (`received_at_ms`) to the client reading it; the serve instance's extra latency is what
//!    following the log through the database (LISTEN/NOTIFY, then a read) adds.
//!
//! Run with `cargo xtask bench-cluster [--events N] [--subscribers N] [--rate R]`.

mod bench;

use bench::{Host, arg, chain_mock_args, fan_out, free_port, load, mock_args, percentile, spawn, wait_for_stored};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// How long SSE delivery is measured, after every subscriber connected.
const MEASURED: Duration = Duration::from_secs(20);

fn main() {
    sluice::install_tls_provider();
    assert!(
        std::env::var("SLUICE_BENCH_POSTGRES").is_ok(),
        "set SLUICE_BENCH_POSTGRES (cargo xtask bench-cluster does)"
    );
    let (events, subscribers, rate) = (arg("--events", 1_000_000), arg("--subscribers", 100), arg("--rate", 100));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let sluice = root.join("target/release/sluice");
    assert!(sluice.is_file(), "build first: cargo xtask bench-cluster does");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();

    // 1. REST over a large store.
    let node = free_port();
    let _mock = spawn(Command::new(&sluice).args(chain_mock_args(&sluice, &root, node, events, "realistic")));
    let leader = Host::start(&sluice, &root, node, "", "max_concurrent_requests = 4096");
    let started = Instant::now();
    wait_for_stored(&leader, events + 7);
    println!("{} events stored in PostgreSQL in {:.1} s\n", events + 7, started.elapsed().as_secs_f64());
    let serve = leader.serve(&sluice);
    let hashes: Vec<String> =
        query(&leader, "SELECT block_hash FROM events WHERE kind = 'BlockAdded' ORDER BY random() LIMIT 1000")
            .iter()
            .map(|row| row.get(0))
            .collect();
    println!("`GET /block/{{hash}}` over {} stored blocks, 5 s per row:\n", hashes.len());
    println!(
        "| instance | connections | requests/s | p50 (ms) | p99 (ms) | p99.9 (ms) |\n|---|---:|---:|---:|---:|---:|"
    );
    for connections in [1, 8, 64] {
        for (name, host) in [("leader (`run`)", &leader), ("`serve`", &serve)] {
            let mut latencies = runtime.block_on(load(host, &hashes, connections, Duration::from_secs(5)));
            let count = latencies.len() as f64;
            let (p50, p99, p999) =
                (percentile(&mut latencies, 0.5), percentile(&mut latencies, 0.99), percentile(&mut latencies, 0.999));
            println!("| {name} | {connections} | {:.0} | {p50:.2} | {p99:.2} | {p999:.2} |", count / 5.0);
        }
    }
    drop((serve, leader));

    // 2. SSE delivery, live.
    let node = free_port();
    let _live =
        spawn(Command::new(&sluice).args(mock_args(node, rate * 3600, rate as f64)).args(["--mix", "realistic"]));
    let limit = format!("max_subscribers = {0}\nmax_concurrent_requests = {0}", subscribers + 100);
    let leader = Host::start(&sluice, &root, node, "", &limit);
    let serve = leader.serve(&sluice);
    // Called on the runtime, where the blocking client may not run: on a thread of its own.
    let received = || {
        let rows =
            std::thread::scope(|scope| scope.spawn(|| query(&leader, "SELECT seq, received_at_ms FROM events")).join());
        rows.unwrap().iter().map(|row| (row.get::<_, i64>(0) as u64, row.get::<_, i64>(1))).collect()
    };
    let (mut on_leader, mut on_serve) = runtime.block_on(async {
        tokio::join!(
            fan_out::run(leader.http, &leader.process, subscribers, MEASURED, received),
            fan_out::run(serve.http, &serve.process, subscribers, MEASURED, received),
        )
    });
    println!(
        "\nSSE: {subscribers} subscribers on each instance, the realistic mix at {rate} events/s, {} s measured:\n\n\
         | instance | deliveries/s | p50 (ms) | p99 (ms) | max (ms) |\n|---|---:|---:|---:|---:|",
        MEASURED.as_secs()
    );
    let mut p99s = Vec::new();
    for (name, run) in [("leader (`run`)", &mut on_leader), ("`serve`", &mut on_serve)] {
        let latencies = &mut run.latencies;
        let (p50, p99, max) = (percentile(latencies, 0.5), percentile(latencies, 0.99), percentile(latencies, 1.0));
        println!("| {name} | {:.0} | {p50:.0} | {p99:.0} | {max:.0} |", run.deliveries as f64 / MEASURED.as_secs_f64());
        assert!(run.ended_early.is_empty(), "{name}: streams ended early: {:?}", run.ended_early);
        p99s.push(p99);
    }
    println!("\nextra p99 of `serve` over the leader: {:.0} ms", p99s[1] - p99s[0]);
}

/// The rows `sql` selects from `host`'s database.
fn query(host: &Host, sql: &str) -> Vec<postgres::Row> {
    let url = host.database.as_deref().expect("a PostgreSQL database");
    postgres::Client::connect(url, postgres::NoTls).unwrap().query(sql, &[]).unwrap()
}
