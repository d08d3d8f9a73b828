//! What the benchmarks share: starting the real binaries, ports, memory, medians.

#![allow(dead_code)] // each benchmark uses a part

pub mod fan_out;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A `sluice run` on a fresh database, following one mock node (or a `sluice serve` on one).
pub struct Host {
    pub dir: tempfile::TempDir,
    pub http: u16,
    pub admin: u16,
    pub process: Killed,
    /// The PostgreSQL database's URL, when it stores there.
    pub database: Option<String>,
    /// Its configuration.
    config: String,
}

impl Host {
    /// Start it with `plugins` (TOML) and more `[http]` keys, and wait until it answers. It
    /// stores in SQLite, or, when `SLUICE_BENCH_POSTGRES` gives a server's administrator URL
    /// (`postgresql://user:password@host:port`), in a fresh database there.
    pub fn start(sluice: &Path, root: &Path, node: u16, plugins: &str, http: &str) -> Host {
        Host::start_with_node(sluice, root, node, "", plugins, http)
    }

    /// Like [`Host::start`], with `node_keys` (TOML) in the node's entry.
    pub fn start_with_node(sluice: &Path, root: &Path, node: u16, node_keys: &str, plugins: &str, http: &str) -> Host {
        let dir = tempfile::tempdir().unwrap();
        let (http_keys, (http, admin)) = (http, (free_port(), free_port()));
        let database = std::env::var("SLUICE_BENCH_POSTGRES").ok().map(|server| {
            let name = format!("bench_{}_{}", std::process::id(), now_ms());
            let mut admin = postgres::Client::connect(&format!("{server}/postgres"), postgres::NoTls).unwrap();
            admin.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
            format!("{server}/{name}")
        });
        let storage = match &database {
            Some(url) => format!("url = \"{url}\""),
            None => format!("path = \"{}\"", dir.path().join("bench.db").display()),
        };
        let config = format!(
            "[[nodes]]\nname = \"mock\"\nurl = \"http://127.0.0.1:{node}\"\n{node_keys}\n[storage]\n{storage}\n\
             plugin_cache = \"{}\"\n[http]\nlisten = \"127.0.0.1:{http}\"\n{http_keys}\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n{plugins}",
            root.join("target/plugin-cache").display(),
        );
        // `SLUICE_HOST_BIN` runs another build as the host (an older commit's, side by side
        // with this one; the mock stays this one).
        let host_binary = std::env::var_os("SLUICE_HOST_BIN").map_or(sluice.to_path_buf(), PathBuf::from);
        Host::launch(&host_binary, "run", dir, config, (http, admin), database)
    }

    /// A `sluice serve` on this host's database, on ports of its own.
    pub fn serve(&self, sluice: &Path) -> Host {
        let (http, admin) = (free_port(), free_port());
        let config = self
            .config
            .replace(&format!("127.0.0.1:{}\"", self.http), &format!("127.0.0.1:{http}\""))
            .replace(&format!("127.0.0.1:{}\"", self.admin), &format!("127.0.0.1:{admin}\""));
        Host::launch(sluice, "serve", tempfile::tempdir().unwrap(), config, (http, admin), self.database.clone())
    }

    /// Run `sluice {command}` on `config`, written in `dir` (with `host.log`, where warnings
    /// go), and wait until it answers.
    fn launch(
        sluice: &Path,
        command: &str,
        dir: tempfile::TempDir,
        config: String,
        (http, admin): (u16, u16),
        database: Option<String>,
    ) -> Host {
        let path = dir.path().join("bench.toml");
        std::fs::write(&path, &config).unwrap();
        let log = std::fs::File::create(dir.path().join("host.log")).unwrap();
        let mut run = Command::new(sluice);
        run.args([command, "--config"]).arg(&path).env("SLUICE_LOG", "warn").stdout(Stdio::null()).stderr(log);
        let process = Killed(run.spawn().expect("spawn"));
        let host = Host { dir, http, admin, process, database, config };
        while get_json(&host.url("/health")).is_none() {
            std::thread::sleep(Duration::from_millis(10));
        }
        host
    }

    /// A URL of its public API.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }
}

/// Wait until `host` stored `total` events (at most 30 minutes).
pub fn wait_for_stored(host: &Host, total: u64) {
    let deadline = Instant::now() + Duration::from_secs(1800);
    while get_json(&host.url("/health")).and_then(|h| h["store"]["events"].as_u64()).unwrap_or(0) < total {
        assert!(Instant::now() < deadline, "ingest did not finish");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Latencies (ms) of `GET /block/{hash}` from `connections` clients looping for `duration`.
pub async fn load(host: &Host, hashes: &[String], connections: usize, duration: Duration) -> Vec<f64> {
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

/// Read the SSE stream at `url` until `done(arrivals so far)`, the stream ends or `deadline`:
/// each frame's id (the store's sequence) and when it arrived (milliseconds since the epoch).
pub async fn sse_arrivals(url: &str, deadline: Instant, done: impl Fn(&[(u64, i64)]) -> bool) -> Vec<(u64, i64)> {
    use futures::StreamExt;
    let response = reqwest::get(url).await.expect("SSE request");
    let mut body = response.bytes_stream();
    let (mut text, mut arrivals) = (String::new(), Vec::new());
    while !done(&arrivals) && Instant::now() < deadline {
        let chunk = match tokio::time::timeout(Duration::from_millis(100), body.next()).await {
            Ok(Some(Ok(chunk))) => chunk,
            Ok(_) => break,
            Err(_) => continue,
        };
        let now = now_ms();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        // Keep only the unfinished frame; note the id of every complete one.
        while let Some(end) = text.find("\n\n") {
            let frame: String = text.drain(..end + 2).collect();
            if let Some(id) = frame.lines().find_map(|l| l.strip_prefix("id:")) {
                arrivals.push((id.trim().parse().unwrap(), now));
            }
        }
    }
    arrivals
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Mock node arguments; `rate` 0 means every event is available at once.
pub fn mock_args(port: u16, events: u64, rate: f64) -> Vec<String> {
    let (listen, count, rate) = (format!("127.0.0.1:{port}"), events.to_string(), rate.to_string());
    ["mock-node", "--listen", &listen, "--rate", &rate, "--count", &count, "--buffer", "4000000000"]
        .map(String::from)
        .to_vec()
}

/// Mock node arguments replaying `events` generated 2.x events of `mix` at once from a chain
/// file (`target/bench-chains/`, written on first use): a generated chain is signed, which costs
/// more than serving it, and a benchmark must measure Sluice, not the mock.
pub fn chain_mock_args(sluice: &Path, root: &Path, port: u16, events: u64, mix: &str) -> Vec<String> {
    let dir = root.join("target/bench-chains");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{mix}-{events}.jsonl"));
    if !file.is_file() {
        let partial = dir.join(format!("{mix}-{events}.partial"));
        let written = Command::new(sluice)
            .args(["mock-node", "--mix", mix, "--count", &events.to_string(), "--write-chain"])
            .arg(&partial)
            .status()
            .expect("sluice mock-node --write-chain");
        assert!(written.success(), "writing the chain failed");
        std::fs::rename(&partial, &file).unwrap();
    }
    let mut args = mock_args(port, 0, 0.0);
    args.extend(["--script".to_owned(), file.display().to_string()]);
    args
}

/// A child process, killed when dropped.
pub struct Killed(Child);

impl Killed {
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn spawn(command: &mut Command) -> Killed {
    Killed(command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn"))
}

pub use sluice::mock_node::free_port;

pub fn get_json(url: &str) -> Option<serde_json::Value> {
    // One runtime and client a thread: a new client each time (its TLS roots loaded again) cost
    // the measured host CPU when polled every 20 ms.
    thread_local! {
        static CLIENT: (tokio::runtime::Runtime, reqwest::Client) = (
            tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime"),
            reqwest::Client::new(),
        );
    }
    CLIENT.with(|(runtime, client)| runtime.block_on(async { client.get(url).send().await.ok()?.json().await.ok() }))
}

/// `VmHWM` (peak resident memory) of a live process, in MiB.
pub fn peak_rss_mib(pid: u32) -> f64 {
    memory_mib(pid, "VmHWM:")
}

/// `VmRSS` (resident memory now) of a live process, in MiB.
pub fn rss_mib(pid: u32) -> f64 {
    memory_mib(pid, "VmRSS:")
}

fn memory_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(PathBuf::from(format!("/proc/{pid}/status"))).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// The value after `--name` on the command line, if given.
pub fn arg_text(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

/// The number after `--name` on the command line, or `default`.
pub fn arg(name: &str, default: u64) -> u64 {
    arg_text(name).map_or(default, |v| v.parse().expect(name))
}

/// The value below which the share `q` of `values` lies (sorting them).
pub fn percentile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * q) as usize]
}

pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    sorted[sorted.len() / 2]
}
