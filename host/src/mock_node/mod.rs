//! Stand-ins for the services Sluice reads from and does not own, speaking their real wire
//! formats: `sluice mock-node`, a Casper node (2.x, or 1.x with `--protocol 1`), here;
//! `sluice mock-cspr-cloud` in [`cspr_cloud`]; `sluice mock-f1r3fly` in [`f1r3fly`].
//!
//! `GET /events?start_from=N` (1.x: `/events/main`, `/events/deploys`, `/events/sigs`, each with
//! its own ids) sends `data:{"ApiVersion":"…"}` (no id), then `data:<event>\nid:<n>\n\n` frames
//! from the node's buffer and live as events are "produced"; `:` keepalive comments while idle.
//! `GET /status` answers like a node's REST status; `POST /rpc` answers the JSON-RPC queries of
//! history sync and gap backfill. When the node restarts, open connections get the bare `"Shutdown"` frame first.

mod chain;
pub mod command;
pub mod cspr_cloud;
pub mod f1r3fly;
mod generator;
mod parsed_args;
mod rpc;
pub mod token;

pub(crate) use chain::Chain;
pub use chain::Mix;

/// A loopback port for a mock or a host under test to listen on. It is below the kernel's
/// ephemeral range, so no outgoing connection can take it before the listener binds it (a port
/// picked by binding port 0 can be, and was, in CI); each process walks its own stretch.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let bind = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).and_then(|l| l.local_addr());
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let ephemeral_from: u32 = range.split_whitespace().next().and_then(|p| p.parse().ok()).unwrap_or(32768);
    let span = ephemeral_from.saturating_sub(1024).min(12_000);
    let start = std::process::id().wrapping_mul(97);
    for _ in 0..span {
        let port = ephemeral_from - span + (start.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed))) % span;
        if bind(port as u16).is_ok() {
            return port as u16;
        }
    }
    bind(0).expect("a loopback port").port()
}

/// Which Casper node the mock imitates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// 1.x: `/events/main`, `/events/deploys`, `/events/sigs`.
    #[value(name = "1")]
    V1,
    /// 2.x: `/events`.
    #[default]
    #[value(name = "2")]
    V2,
}

use anyhow::Context;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// How the mock chain behaves.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct MockOptions {
    /// Casper node version to imitate.
    #[arg(long, value_enum, default_value_t = Protocol::V2)]
    pub protocol: Protocol,
    /// Events per generated 2.x block.
    #[arg(long, value_enum, default_value_t = Mix::Simple)]
    pub mix: Mix,
    /// Generated events per second after the fixtures, over all streams (0: all at once).
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Generated events already produced when the node starts (a chain with a past).
    #[arg(long, default_value_t = 0)]
    pub produced: u32,
    /// Stop producing after this many generated events (default: never).
    #[arg(long)]
    pub count: Option<u32>,
    /// Events the node keeps for `start_from` replays.
    #[arg(long, default_value_t = 10_000)]
    pub buffer: u32,
    /// Generated blocks kept in memory once made (signing them is the mock's main cost).
    #[arg(long, default_value_t = 256)]
    pub keep_blocks: usize,
    /// Close each connection after sending this many events (to exercise resuming).
    #[arg(long)]
    pub drop_after: Option<u32>,
    /// Send every Nth generated event as a truncated, invalid JSON frame (to exercise bad input).
    #[arg(long)]
    pub corrupt_every: Option<u32>,
    /// Send every Nth generated event with a byte that is not UTF-8, which no SSE parser reads.
    #[arg(long)]
    pub garble_every: Option<u32>,
    /// Send the `ApiVersion` frame that opens every connection with a byte that is not UTF-8:
    /// an unreadable frame without an id, before any event.
    #[arg(long)]
    pub garble_greeting: bool,
    /// Nest a field of every Nth generated event 200 arrays deep (valid JSON no one serves).
    #[arg(long)]
    pub deep_every: Option<u32>,
    /// Pad every Nth generated event with JSON white space (to exercise frame limits).
    #[arg(long)]
    pub bloat_every: Option<u32>,
    /// MiB of padding `--bloat-every` adds (a real 2.x `Step` can exceed 30 MB).
    #[arg(long, default_value_t = 2)]
    pub bloat_mib: usize,
    /// Restart once this many events exist: connections get `"Shutdown"` and close, the buffer
    /// empties and ids start again from 0 while the chain goes on.
    #[arg(long)]
    pub restart_after: Option<u32>,
    /// Go silent (no events, no keepalives, the connection held open) after sending this many
    /// events on a connection (to exercise the silence timeout).
    #[arg(long)]
    pub silent_after: Option<u32>,
    /// More events to serve after the captured fixtures (on 1.x, on `/events/main`): a file of
    /// node event JSON, one per line.
    #[arg(long)]
    pub script: Option<std::path::PathBuf>,
    /// Write the `--count` generated 2.x events of `--mix` to this file, one per line (a script
    /// for `--script`: benchmarks replay a chain without signing it again), and exit.
    #[arg(long)]
    pub write_chain: Option<std::path::PathBuf>,
    /// Answer each JSON-RPC request this many milliseconds late (a node across a network).
    #[arg(long, default_value_t = 0)]
    pub rpc_latency_ms: u64,
    /// Make every Nth block height's `chain_get_block` flaky: its first request answers garbage,
    /// its second answers 3 s late, the next ones answer right.
    #[arg(long)]
    pub rpc_flaky_every: Option<u64>,
    /// Make every Nth block height unknown to `chain_get_block` (a pruned node's answer).
    #[arg(long)]
    pub rpc_missing_every: Option<u64>,
    /// Global state for `query_global_state`: a file holding a JSON object of keys
    /// (`hash-…`, `uref-…-007`) and their stored values (`{"Contract": {…}}`, `{"CLValue": {…}}`).
    #[arg(long)]
    pub state: Option<std::path::PathBuf>,
}

struct Node {
    options: MockOptions,
    started: Instant,
    /// The SSE streams by name: `""` (2.x `/events`) or `main`, `deploys`, `sigs` (1.x).
    streams: Vec<(&'static str, Chain)>,
    /// Transactions listed by blocks served over JSON-RPC: hash → (block, position in it).
    transactions: std::sync::Mutex<std::collections::HashMap<String, (u64, u64)>>,
    /// Stored values by key, for `query_global_state`.
    state: serde_json::Map<String, serde_json::Value>,
    /// `chain_get_block` requests per height.
    rpc_requests: std::sync::Mutex<std::collections::BTreeMap<u64, u32>>,
}

impl Node {
    /// Generated events produced so far, over all streams.
    fn generated(&self) -> u64 {
        let limit = self.options.count.map_or(u64::from(u32::MAX), u64::from);
        if self.options.rate <= 0.0 {
            limit
        } else {
            let produced = f64::from(self.options.produced) + self.started.elapsed().as_secs_f64() * self.options.rate;
            produced.min(limit as f64) as u64
        }
    }

    /// Events `0..head` of `chain` have been produced so far.
    fn head(&self, chain: &Chain) -> u32 {
        chain.produced(self.generated())
    }

    /// Chain index of the current run's id 0: 0, or `restart_after` once the node restarted.
    fn first_of_run(&self, head: u32) -> u32 {
        self.options.restart_after.filter(|&n| head >= n).unwrap_or(0)
    }

    /// Whether event `index` is the Nth generated one of `chain` for `every` = N.
    fn every(chain: &Chain, index: u32, every: Option<u32>) -> bool {
        let fixtures = chain.fixtures();
        every.is_some_and(|n| index >= fixtures && n > 0 && (index - fixtures) % n == n - 1)
    }

    /// Append the SSE frame of event `index` of `chain` with SSE id `id`, damaged as the options ask.
    fn frame(&self, chain: &Chain, index: u32, id: u32, out: &mut Vec<u8>, scratch: &mut String) {
        scratch.clear();
        if Node::every(chain, index, self.options.corrupt_every) {
            scratch.push_str("{\"BlockAdded\":{\"block_hash\":");
        } else {
            chain.render(index, scratch);
        }
        if Node::every(chain, index, self.options.bloat_every) {
            scratch.insert_str(scratch.len() - 1, &" ".repeat(self.options.bloat_mib << 20));
        }
        if Node::every(chain, index, self.options.deep_every) {
            // Inside the event's body: `{"Kind":{…,"deep":[[…1…]]}}`.
            scratch.insert_str(scratch.len() - 2, &format!(",\"deep\":{}1{}", "[".repeat(200), "]".repeat(200)));
        }
        out.extend_from_slice(b"data:");
        out.extend_from_slice(scratch.as_bytes());
        if Node::every(chain, index, self.options.garble_every) {
            let at = out.len() - scratch.len() + 2;
            out[at] = 0xff;
        }
        out.extend_from_slice(format!("\nid:{id}\n\n").as_bytes());
    }

    fn api_version(&self) -> &'static str {
        match self.options.protocol {
            Protocol::V1 => "1.5.8",
            Protocol::V2 => "2.0.0",
        }
    }
}

/// The mock node's routes; fails when the script or state file cannot be read.
pub fn router(options: MockOptions) -> anyhow::Result<Router> {
    let mut streams: Vec<(&str, Chain)> = match options.protocol {
        Protocol::V1 => Chain::casper1(options.keep_blocks).into(),
        Protocol::V2 => vec![("", Chain::casper2(options.mix, options.keep_blocks))],
    };
    if let Some(path) = &options.script {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let lines = text.lines().filter(|line| !line.trim().is_empty());
        let events: Vec<String> = lines.map(str::to_owned).collect();
        let malformed = events.iter().position(|e| serde_json::from_str::<serde::de::IgnoredAny>(e).is_err());
        if let Some(line) = malformed {
            anyhow::bail!("{}: line {} is not one JSON event", path.display(), line + 1);
        }
        streams[0].1.append_fixtures(events);
    }
    // The mock token's package, contract and schema, then what `--state` adds.
    let mut state = token::state();
    if let Some(path) = &options.state {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let more: serde_json::Map<_, _> =
            serde_json::from_str(&text).with_context(|| format!("{}: a JSON object", path.display()))?;
        state.extend(more);
    }
    let node = Arc::new(Node {
        options,
        started: Instant::now(),
        streams,
        transactions: Default::default(),
        state,
        rpc_requests: Default::default(),
    });
    Ok(Router::new()
        .route("/events", get(events_2x))
        .route("/events/{stream}", get(events_1x))
        .route("/status", get(status))
        .route("/rpc", axum::routing::post(rpc::rpc))
        .route("/rpc-requests", get(rpc::requests))
        .with_state(node))
}

#[derive(Deserialize)]
struct EventsQuery {
    start_from: Option<u32>,
}

async fn events_2x(state: State<Arc<Node>>, query: Query<EventsQuery>) -> Response {
    events(state, "", query)
}

async fn events_1x(state: State<Arc<Node>>, Path(stream): Path<String>, query: Query<EventsQuery>) -> Response {
    events(state, &stream, query)
}

fn events(State(node): State<Arc<Node>>, stream: &str, Query(query): Query<EventsQuery>) -> Response {
    let Some(index) = node.streams.iter().position(|(name, _)| *name == stream) else {
        return axum::http::StatusCode::NOT_FOUND.into_response();
    };
    let (sender, receiver) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    tokio::spawn(stream_events(node, index, query.start_from, sender));
    ([(header::CONTENT_TYPE, "text/event-stream")], Body::from_stream(ReceiverStream::new(receiver))).into_response()
}

/// Write frames until the client leaves, `drop_after` is reached or the node restarts, in chunks
/// of up to 64 KiB.
async fn stream_events(
    node: Arc<Node>,
    stream: usize,
    start_from: Option<u32>,
    out: mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    const CHUNK: usize = 64 * 1024;
    const KEEPALIVE: Duration = Duration::from_secs(5);
    let chain = &node.streams[stream].1;
    let head = node.head(chain);
    let run = node.first_of_run(head);
    let (head_id, oldest_id) = (head - run, (head - run).saturating_sub(node.options.buffer));
    // Like a node: the buffered events from `start_from` on (clamped to what the buffer holds),
    // then live ones; no start_from means live events only.
    let mut next = start_from.map_or(head_id, |from| from.clamp(oldest_id, head_id));
    let mut sent = 0u32;
    let per_connection = node.options.drop_after.into_iter().chain(node.options.silent_after).min();
    let mut buffer = format!("data:{{\"ApiVersion\":\"{}\"}}\n\n", node.api_version()).into_bytes();
    if node.options.garble_greeting {
        buffer[6] = 0xff;
    }
    let mut scratch = String::new();
    let mut idle_since = Instant::now();
    loop {
        let head = node.head(chain);
        // After a restart this connection belongs to the old run: it gets what the old run
        // produced (events go out as they happen), then it is closed.
        let restarted = node.first_of_run(head) != run;
        let end = if restarted { node.first_of_run(head) } else { head };
        while run + next < end && buffer.len() < CHUNK && per_connection.is_none_or(|n| sent < n) {
            node.frame(chain, run + next, next, &mut buffer, &mut scratch);
            next += 1;
            sent += 1;
        }
        if buffer.is_empty() && idle_since.elapsed() >= KEEPALIVE {
            buffer.extend_from_slice(b":\n\n");
        }
        if !buffer.is_empty() {
            idle_since = Instant::now();
            if out.send(Ok(Bytes::from(std::mem::take(&mut buffer)))).await.is_err() {
                return;
            }
        }
        if node.options.drop_after.is_some_and(|n| sent >= n) {
            return;
        }
        if restarted && run + next >= end {
            _ = out.send(Ok(Bytes::from_static(b"data:\"Shutdown\"\n\n"))).await;
            return;
        }
        if node.options.silent_after.is_some_and(|n| sent >= n) {
            // Hold the connection open without a byte until the client gives up.
            return out.closed().await;
        }
        if run + next >= end {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn status(State(node): State<Arc<Node>>) -> impl IntoResponse {
    let head = node.head(&node.streams[0].1);
    let last_event_id = (head - node.first_of_run(head)).checked_sub(1);
    axum::Json(serde_json::json!({
        "api_version": node.api_version(),
        "build_version": format!("{}-sluice-mock", node.api_version()),
        "chainspec_name": "casper-net-1",
        "last_event_id": last_event_id,
        // Not a node's field: whether the mock has restarted (`--restart-after`), for tests.
        "restarted": node.first_of_run(head) > 0,
    }))
}

/// Write the chain `options` describe (2.x, its generated events only) to `path`, one event per
/// line, signing blocks on every core.
pub fn write_chain(options: &MockOptions, path: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Write;
    let chain = Chain::casper2(options.mix, 1024);
    let (first, end) = (chain.fixtures(), chain.produced(u64::from(options.count.unwrap_or(0))));
    let threads = std::thread::available_parallelism().map_or(1, usize::from) as u32;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).with_context(|| path.display().to_string())?);
    // In slices of whole blocks' worth, each split between the threads, written in order.
    for slice in (first..end).step_by(65_536) {
        let slice_end = (slice + 65_536).min(end);
        let per_thread = (slice_end - slice).div_ceil(threads);
        let parts: Vec<String> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    let (from, to) = (slice + t * per_thread, (slice + (t + 1) * per_thread).min(slice_end));
                    let chain = &chain;
                    scope.spawn(move || {
                        let mut out = String::new();
                        for id in from..to {
                            chain.render(id, &mut out);
                            out.push('\n');
                        }
                        out
                    })
                })
                .collect();
            workers.into_iter().map(|worker| worker.join().expect("a chain writer")).collect()
        });
        for part in parts {
            file.write_all(part.as_bytes())?;
        }
    }
    Ok(file.flush()?)
}

/// Serve the mock node on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, options: MockOptions) -> anyhow::Result<()> {
    Ok(axum::serve(listener, router(options)?).await?)
}
