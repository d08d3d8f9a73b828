//! `GET /metrics` (admin): the live counters in the OpenMetrics text format Prometheus scrapes,
//! read from the sources, the pipeline and the plugins at scrape time.

use super::AppState;
use crate::plugins::PluginStats;
use crate::source::{ConnectionState, NodeStatus};
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// How long the public API takes to answer, by route, method and status.
pub type ResponseTimes = Family<Vec<(&'static str, String)>, Histogram, fn() -> Histogram>;

/// Empty response-time histograms: buckets from 0.1 ms to ≈1.6 s.
pub fn response_times() -> ResponseTimes {
    Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0001, 2.0, 15)))
}

/// Middleware: time each request to a route until its response starts (a stream's headers).
pub async fn time_response(State(state): State<AppState>, path: MatchedPath, request: Request, next: Next) -> Response {
    let (method, started) = (request.method().to_string(), std::time::Instant::now());
    let response = next.run(request).await;
    let labels = vec![
        ("route", path.as_str().to_owned()),
        ("method", method),
        ("status", response.status().as_u16().to_string()),
    ];
    state.response_times.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    response
}

/// Render every metric.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut registry = Registry::default();
    let help = "Time to answer a request to the public API (until the response starts), by route";
    registry.register("sluice_http_response_seconds", help, state.response_times.clone());
    // A database that cannot be asked reports 0 (its failure shows in `sluice_health`).
    let db_bytes = state.store.read(|conn| conn.disk_bytes()).await.unwrap_or(0);
    registry.register_collector(Box::new(Live { state, db_bytes }));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("writing to a String");
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text)
}

/// A label value as the exposition format can carry it: quotes, backslashes and control
/// characters (which a source may put in an event type) become `_`.
fn label(value: &str) -> String {
    value.chars().map(|c| if c == '"' || c == '\\' || c.is_control() { '_' } else { c }).collect()
}

/// The process's resident memory (Linux `/proc/self/statm`; 0 elsewhere).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// `node_statuses` values, as the casper-sidecar reports them.
fn status_code(state: ConnectionState) -> i64 {
    match state {
        ConnectionState::Connecting => 1,
        ConnectionState::Connected => 2,
        ConnectionState::Reconnecting => 3,
        ConnectionState::Failed => -1,
        ConnectionState::Incompatible => -2,
    }
}

struct Live {
    state: AppState,
    /// `sluice_db_bytes`, asked before the scrape is encoded.
    db_bytes: u64,
}

impl fmt::Debug for Live {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Live")
    }
}

/// Per-source counters: metric name, help, and where the value is.
const SOURCE_COUNTERS: [(&str, &str, fn(&NodeStatus) -> &AtomicU64); 7] = [
    ("sluice_source_frames", "Frames or messages received", |s| &s.frames),
    ("sluice_source_bytes", "Bytes received", |s| &s.bytes),
    ("sluice_source_rejected", "Frames that could not be parsed (kept raw)", |s| &s.rejected),
    ("sluice_source_disconnects", "Connections lost or refused", |s| &s.disconnects),
    ("sluice_source_restarts", "Node restarts detected (event ids went backwards)", |s| &s.restarts),
    ("sluice_source_gaps", "Times a node no longer held the events asked for", |s| &s.gaps),
    ("sluice_source_backfilled_blocks", "Blocks fetched over JSON-RPC to fill gaps", |s| &s.backfilled_blocks),
];

/// Per-plugin counters: metric name, help, and where the value is.
const PLUGIN_COUNTERS: [(&str, &str, fn(&PluginStats) -> &AtomicU64); 5] = [
    ("sluice_plugin_calls", "Calls into a plugin (on-event, index, handle)", |p| &p.calls),
    ("sluice_plugin_indexed", "Events handed to a plugin's index", |p| &p.indexed),
    ("sluice_plugin_traps", "Plugin calls that trapped", |p| &p.traps),
    ("sluice_plugin_timeouts", "Plugin calls stopped at the time limit", |p| &p.timeouts),
    ("sluice_plugin_errors", "Plugin calls that returned an error or too much output", |p| &p.errors),
];

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let AppState { nodes, ingest, plugins, subscribers, .. } = &self.state;
        let (condition, _) = super::health::Checks::now(&self.state);
        for (name, help, value) in [
            ("sluice_health", "Condition: 0 ok, 1 degraded, 2 failing (see /health)", condition as i64),
            ("sluice_ready", "1 when storing works and a source is connected (see /ready)", {
                i64::from(super::health::readiness(&self.state).is_ok())
            }),
            ("sluice_storage_failing", "1 while writes to the store fail (retried; nothing is lost)", {
                i64::from(ingest.storage_failing_since().is_some())
            }),
            ("sluice_subscribers", "Open SSE streams and WebSocket subscriptions", subscribers.open() as i64),
            ("sluice_db_bytes", "Bytes the database takes on disk (file and write-ahead log)", self.db_bytes as i64),
            ("sluice_process_resident_bytes", "Resident memory of the process", resident_bytes() as i64),
        ] {
            ConstGauge::new(value).encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)?;
        }
        let help = "Source connection state: 1 connecting, 2 connected, 3 reconnecting, -1 failed, -2 incompatible";
        let mut family = encoder.encode_descriptor("node_statuses", help, None, MetricType::Gauge)?;
        for node in nodes.iter() {
            let state = *node.state.lock().expect("status lock");
            ConstGauge::new(status_code(state)).encode(family.encode_family(&[("node", label(&node.name))])?)?;
        }
        for (name, help, counter) in SOURCE_COUNTERS {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for node in nodes.iter() {
                let value = counter(node).load(Relaxed);
                ConstCounter::new(value).encode(family.encode_family(&[("node", label(&node.name))])?)?;
            }
        }
        let help = "Events received, per source and event type (duplicates included)";
        let mut family = encoder.encode_descriptor("sluice_source_events", help, None, MetricType::Counter)?;
        for node in nodes.iter() {
            for (kind, count) in node.events_by_kind.lock().expect("status lock").iter() {
                let labels = [("node", label(&node.name)), ("kind", label(kind))];
                ConstCounter::new(*count).encode(family.encode_family(&labels)?)?;
            }
        }
        for (name, help, value) in [
            ("sluice_ingest_stored", "Events from sources stored for the first time", &ingest.stored),
            ("sluice_ingest_derived", "Events decoders derived, stored", &ingest.derived),
            (
                "sluice_ingest_duplicates",
                "Events already stored (resent, or seen by several sources)",
                &ingest.duplicates,
            ),
            ("sluice_ingest_rejected", "Frames stored as rejected", &ingest.rejected),
            ("sluice_ingest_dropped", "Events hidden by a plugin", &ingest.dropped),
            ("sluice_storage_failures", "Writes to the store that failed (each is retried)", &ingest.storage_failures),
        ] {
            ConstCounter::new(value.load(Relaxed)).encode(encoder.encode_descriptor(
                name,
                help,
                None,
                MetricType::Counter,
            )?)?;
        }
        if let Some(history) = &self.state.history {
            for (name, help, value) in [
                ("sluice_history_heights_total", "Block heights of the [history] range", history.heights_total()),
                ("sluice_history_heights_stored", "Heights of the history range stored", {
                    history.heights_stored.load(Relaxed)
                }),
                ("sluice_history_heights_failed", "History heights that failed on every try in the last pass", {
                    history.heights_failed.load(Relaxed)
                }),
            ] {
                ConstGauge::new(value as i64).encode(encoder.encode_descriptor(
                    name,
                    help,
                    None,
                    MetricType::Gauge,
                )?)?;
            }
            for (name, help, value) in [
                ("sluice_history_blocks_fetched", "History blocks fetched over JSON-RPC", &history.blocks_fetched),
                ("sluice_history_events_sent", "History events sent to the store", &history.events_sent),
            ] {
                let value = ConstCounter::new(value.load(Relaxed));
                value.encode(encoder.encode_descriptor(name, help, None, MetricType::Counter)?)?;
            }
        }
        let plugins = plugins.read().expect("registry lock").clone();
        for (name, help, counter) in PLUGIN_COUNTERS {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for plugin in &plugins {
                let value = counter(plugin).load(Relaxed);
                ConstCounter::new(value).encode(family.encode_family(&[("plugin", label(&plugin.name))])?)?;
            }
        }
        let help = "Seconds spent in a plugin's calls";
        let mut family = encoder.encode_descriptor("sluice_plugin_busy_seconds", help, None, MetricType::Counter)?;
        for plugin in &plugins {
            let seconds = plugin.busy_ns.load(Relaxed) as f64 / 1e9;
            ConstCounter::new(seconds).encode(family.encode_family(&[("plugin", label(&plugin.name))])?)?;
        }
        // The casper-sidecar's `error_counts{category, description}`, from the counters above.
        let help = "Errors by where they happened: frames rejected, connections lost, plugin calls failed";
        let mut family = encoder.encode_descriptor("error_counts", help, None, MetricType::Counter)?;
        let of_sources = |counter: fn(&NodeStatus) -> &AtomicU64| nodes.iter().map(|n| counter(n).load(Relaxed)).sum();
        let of_plugins =
            |counter: fn(&PluginStats) -> &AtomicU64| plugins.iter().map(|p| counter(p).load(Relaxed)).sum();
        for (category, description, value) in [
            ("source", "rejected_frames", of_sources(|s| &s.rejected)),
            ("source", "disconnects", of_sources(|s| &s.disconnects)),
            ("storage", "write_failures", ingest.storage_failures.load(Relaxed)),
            ("plugin", "traps", of_plugins(|p| &p.traps)),
            ("plugin", "timeouts", of_plugins(|p| &p.timeouts)),
            ("plugin", "errors", of_plugins(|p| &p.errors)),
        ] {
            let labels = [("category", category), ("description", description)];
            ConstCounter::<u64>::new(value).encode(family.encode_family(&labels)?)?;
        }
        let head = ingest.last_seq.load(Relaxed);
        let help = "Stored events a plugin has not processed yet (an indexer catching up, a halted plugin)";
        let mut family = encoder.encode_descriptor("sluice_plugin_events_behind", help, None, MetricType::Gauge)?;
        for plugin in &plugins {
            let behind = head.saturating_sub(plugin.last_seq.load(Relaxed)) as i64;
            ConstGauge::new(behind).encode(family.encode_family(&[("plugin", label(&plugin.name))])?)?;
        }
        Ok(())
    }
}
