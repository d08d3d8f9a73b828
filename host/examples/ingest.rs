//! Ingest benchmark: the real `sluice` binary against the real mock node.
//!
//! For each scenario (no plugins; the stock filter; filter + an annotating plugin) it runs Sluice
//! `--runs` times on a fresh SQLite file, lets the mock node serve `--events` generated 2.x events
//! as fast as it can, and measures events/s from the first stored event to the last one,
//! plus Sluice's peak RSS. The mock node's own serving rate is measured the same way.
//! Run with `cargo xtask bench [--events N] [--runs R]`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: u64| {
        args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map_or(default, |v| v.parse().expect(name))
    };
    let events = arg("--events", 100_000);
    let runs = arg("--runs", 5);
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

    println!("{events} generated 2.x events (+7 fixtures), {runs} runs each, medians:\n");
    println!("| scenario | events/s | µs per event | peak RSS (MiB) |");
    println!("|---|---:|---:|---:|");
    let mock_rates: Vec<f64> = (0..runs).map(|_| mock_only(&sluice, events)).collect();
    println!(
        "| mock node alone (SSE read, no store) | {:.0} | {:.2} | – |",
        median(&mock_rates),
        1e6 / median(&mock_rates)
    );
    for (name, plugins) in &scenarios {
        let results: Vec<(f64, f64)> = (0..runs).map(|_| ingest(&sluice, &root, events, plugins)).collect();
        let rate = median(&results.iter().map(|r| r.0).collect::<Vec<_>>());
        let rss = median(&results.iter().map(|r| r.1).collect::<Vec<_>>());
        println!("| {name} | {rate:.0} | {:.2} | {rss:.0} |", 1e6 / rate);
    }
}

/// One run: returns (events/s, peak RSS in MiB).
fn ingest(sluice: &Path, root: &Path, events: u64, plugins: &str) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let (node, http, admin) = (free_port(), free_port(), free_port());
    let _mock = spawn(Command::new(sluice).args(mock_args(node, events)));
    let config = dir.path().join("bench.toml");
    std::fs::write(
        &config,
        format!(
            "[[nodes]]\nname = \"mock\"\nurl = \"http://127.0.0.1:{node}\"\n[storage]\npath = \"{}\"\nplugin_cache = \"{}\"\n\
             [http]\nlisten = \"127.0.0.1:{http}\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n{plugins}",
            dir.path().join("bench.db").display(),
            root.join("target/plugin-cache").display(),
        ),
    )
    .unwrap();
    let host = spawn(Command::new(sluice).args(["run", "--config"]).arg(&config).env("SLUICE_LOG", "warn"));
    let total = events + 7;
    let health = format!("http://127.0.0.1:{http}/health");
    let mut first = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        assert!(Instant::now() < deadline, "benchmark run did not finish");
        if let Some(h) = get_json(&health) {
            let stored = h["ingest"]["stored"].as_u64().unwrap_or(0);
            if stored > 0 && first.is_none() {
                first = Some(Instant::now());
            }
            if h["store"]["events"].as_u64() >= Some(total) {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let elapsed = first.expect("events arrived").elapsed().as_secs_f64();
    let rss = peak_rss_mib(host.id());
    (total as f64 / elapsed, rss)
}

/// The mock node's serving rate, read by a plain HTTP client: the ceiling for ingest figures.
fn mock_only(sluice: &Path, events: u64) -> f64 {
    use futures::StreamExt;
    let port = free_port();
    let _mock = spawn(Command::new(sluice).args(mock_args(port, events)));
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

fn mock_args(port: u16, events: u64) -> Vec<String> {
    let (listen, count) = (format!("127.0.0.1:{port}"), events.to_string());
    ["mock-node", "--listen", &listen, "--rate", "0", "--count", &count, "--buffer", "4000000000"]
        .map(String::from)
        .to_vec()
}

struct Killed(Child);

impl Killed {
    fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(command: &mut Command) -> Killed {
    Killed(command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn get_json(url: &str) -> Option<serde_json::Value> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
    runtime.block_on(async { reqwest::get(url).await.ok()?.json().await.ok() })
}

/// `VmHWM` of a live process, in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(PathBuf::from(format!("/proc/{pid}/status"))).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    sorted[sorted.len() / 2]
}
