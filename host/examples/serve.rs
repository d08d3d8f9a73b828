//! Serving benchmark: the real `sluice` binary over a store of `--events` events (1,000,000 by
//! default, the realistic mix: 141 events per block), then:
//!
//! 1. `GET /block/{hash}` for random stored blocks, from `C` concurrent keep-alive connections
//!    for 5 s each (C = 1, 8, 64): requests/s and p50/p99/p99.9 latency as the client sees it;
//! 2. SSE fan-out: `--subscribers` (10,000) clients on `/events` while a node sends `--rate`
//!    events/s for 20 s: each delivery's latency from Sluice reading the event off the node
//!    (`received_at_ms`) to the client reading it, and the host's RSS before and with them.
//!
//! The load generator runs in this process, on the same 2 cores as the host.
//! Run with `cargo xtask bench-serve [--events N] [--subscribers N] [--rate R]`.

mod bench;

use bench::{Host, free_port, get_json, mock_args, rss_mib, spawn};
use futures::StreamExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    sluice::install_tls_provider();
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: u64| {
        args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map_or(default, |v| v.parse().expect(name))
    };
    let (events, subscribers, rate) = (arg("--events", 1_000_000), arg("--subscribers", 10_000), arg("--rate", 20));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let sluice = root.join("target/release/sluice");
    assert!(sluice.is_file(), "build first: cargo xtask bench-serve does");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();

    let node = free_port();
    let _mock = spawn(Command::new(&sluice).args(mock_args(node, events, 0.0)).args(["--mix", "realistic"]));
    let host = Host::start(&sluice, &root, node, "", "max_concurrent_requests = 4096");
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
    drop(host);

    let node = free_port();
    let _mock =
        spawn(Command::new(&sluice).args(mock_args(node, rate * 3600, rate as f64)).args(["--mix", "realistic"]));
    // They all connect at once: let as many requests in as there are subscribers.
    let limit = format!("max_subscribers = {0}\nmax_concurrent_requests = {0}", subscribers + 100);
    let host = Host::start(&sluice, &root, node, "", &limit);
    let rss_before = rss_mib(host.process.id());
    let (mut latencies, delivered, rss_with) = runtime.block_on(fan_out(&host, subscribers, Duration::from_secs(20)));
    println!(
        "\nSSE fan-out: {subscribers} subscribers, the realistic mix at {rate} events/s for 20 s, \
         {delivered} deliveries ({:.0}/s):\n",
        delivered as f64 / 20.0
    );
    println!(
        "| p50 (ms) | p99 (ms) | max (ms) | host RSS before (MiB) | with the subscribers (MiB) | per subscriber (KiB) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    let (p50, p99, max) =
        (percentile(&mut latencies, 0.5), percentile(&mut latencies, 0.99), percentile(&mut latencies, 1.0));
    let per = (rss_with - rss_before) * 1024.0 / subscribers as f64;
    println!("| {p50:.0} | {p99:.0} | {max:.0} | {rss_before:.0} | {rss_with:.0} | {per:.1} |");
}

fn wait_for_stored(host: &Host, total: u64) {
    let deadline = Instant::now() + Duration::from_secs(1800);
    while get_json(&host.url("/health")).and_then(|h| h["store"]["events"].as_u64()).unwrap_or(0) < total {
        assert!(Instant::now() < deadline, "ingest did not finish");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Up to 1000 random stored block hashes.
fn block_hashes(host: &Host) -> Vec<String> {
    let db = rusqlite::Connection::open(host.dir.path().join("bench.db")).unwrap();
    let mut query =
        db.prepare("SELECT block_hash FROM events WHERE kind = 'BlockAdded' ORDER BY random() LIMIT 1000").unwrap();
    query.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
}

/// Latencies (ms) of `GET /block/{hash}` from `connections` clients looping for `duration`.
async fn load(host: &Host, hashes: &[String], connections: usize, duration: Duration) -> Vec<f64> {
    let client = reqwest::Client::new();
    let urls: Arc<Vec<String>> = Arc::new(hashes.iter().map(|h| host.url(&format!("/block/{h}"))).collect());
    let deadline = Instant::now() + duration;
    let tasks: Vec<_> = (0..connections)
        .map(|n| {
            let (client, urls) = (client.clone(), urls.clone());
            tokio::spawn(async move {
                let (mut latencies, mut pick) = (Vec::new(), n * 7919);
                while Instant::now() < deadline {
                    pick = (pick * 1_103_515_245 + 12_345) % (1 << 31);
                    let started = Instant::now();
                    let response = client.get(&urls[pick % urls.len()]).send().await.expect("request");
                    assert_eq!(response.status(), 200);
                    response.bytes().await.expect("body");
                    latencies.push(started.elapsed().as_secs_f64() * 1e3);
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all
}

/// Open `subscribers` SSE streams, keep them for `duration`, and return each delivery's latency
/// (ms), the number of deliveries and the host's RSS (MiB) with every subscriber connected.
async fn fan_out(host: &Host, subscribers: u64, duration: Duration) -> (Vec<f64>, usize, f64) {
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let url = host.url("/events");
    let (ready, mut all_ready) = tokio::sync::mpsc::channel::<()>(subscribers as usize);
    let stop = Arc::new(tokio::sync::Notify::new());
    let tasks: Vec<_> = (0..subscribers)
        .map(|_| {
            let (client, url, ready, stop) = (client.clone(), url.clone(), ready.clone(), stop.clone());
            tokio::spawn(async move {
                let response = client.get(&url).send().await.expect("subscribe");
                assert_eq!(response.status(), 200);
                ready.send(()).await.unwrap();
                let mut body = response.bytes_stream();
                let (mut arrivals, mut carry) = (Vec::new(), Vec::new());
                loop {
                    let chunk = tokio::select! {
                        chunk = body.next() => chunk,
                        _ = stop.notified() => None,
                    };
                    let Some(Ok(chunk)) = chunk else { return arrivals };
                    let now = bench::now_ms();
                    carry.extend_from_slice(&chunk);
                    // Every complete `id: N` line; a partial one waits for the next chunk.
                    let mut scan = 0;
                    while let Some(found) = find(&carry[scan..], b"\nid: ") {
                        let start = scan + found + 5;
                        let Some(end) = carry[start..].iter().position(|&b| b == b'\n') else {
                            scan += found;
                            break;
                        };
                        let id: u64 = std::str::from_utf8(&carry[start..start + end]).unwrap().parse().unwrap();
                        arrivals.push((id, now));
                        scan = start + end;
                    }
                    // What cannot hold the start of a marker is done with.
                    let done = match find(&carry[scan..], b"\nid: ") {
                        Some(_) => scan,
                        None => scan.max(carry.len().saturating_sub(4)),
                    };
                    carry.drain(..done);
                }
            })
        })
        .collect();
    drop(ready);
    for _ in 0..subscribers {
        all_ready.recv().await.expect("every subscriber connects");
    }
    let rss_with = rss_mib(host.process.id());
    // Deliveries while subscribers were still connecting do not count.
    let measured_from = bench::now_ms();
    tokio::time::sleep(duration).await;
    stop.notify_waiters();
    let mut arrivals = Vec::new();
    for task in tasks {
        arrivals.extend(task.await.unwrap());
    }
    let db = rusqlite::Connection::open(host.dir.path().join("bench.db")).unwrap();
    let received: std::collections::HashMap<u64, i64> = db
        .prepare("SELECT seq, received_at_ms FROM events")
        .unwrap()
        .query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    arrivals.retain(|(_, at)| *at >= measured_from);
    let latencies: Vec<f64> = arrivals.iter().map(|(seq, at)| (at - received[seq]) as f64).collect();
    (latencies, arrivals.len(), rss_with.max(rss_mib(host.process.id())))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn percentile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * q) as usize]
}
