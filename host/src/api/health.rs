//! `GET /health` and `GET /ready`, `GET /status` (public) and `GET /plugins` (admin): how Sluice
//! is doing, read from the pipeline, the sources and the plugins at each request.

use super::{AppState, Role};
use crate::source::ConnectionState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::atomic::Ordering::Relaxed;

/// Overall condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Everything works.
    Ok,
    /// Serving and storing, but a source is not connected or a plugin is suspended.
    Degraded,
    /// Not storing: the store fails (disk full, a damaged file) or the pipeline stopped.
    Failing,
}

/// What `/health` checks, each with its condition.
#[derive(Debug, Serialize)]
pub struct Checks {
    /// Writes to the store (on a `serve` instance: reads of the log it follows).
    pub storage: Value,
    /// The thread that stores and runs the plugins (on a `serve` instance: that follows the log).
    pub pipeline: Value,
    /// Node and stream connections.
    pub sources: Value,
    /// Plugins suspended or catching up.
    pub plugins: Value,
}

impl Checks {
    /// The checks now, and the worst condition among them.
    pub fn now(state: &AppState) -> (Condition, Checks) {
        let ingest = &state.ingest;
        let storage = match ingest.storage_failing_since() {
            Some(since) => (
                Condition::Failing,
                json!({
                    "status": Condition::Failing,
                    "failing_since_ms": since,
                    "failures": ingest.storage_failures.load(Relaxed),
                    "last_error": ingest.last_storage_error.lock().expect("stats lock").clone(),
                }),
            ),
            None => {
                (Condition::Ok, json!({"status": Condition::Ok, "failures": ingest.storage_failures.load(Relaxed)}))
            }
        };
        let running = ingest.running.load(Relaxed);
        let pipeline_condition = if pipeline_stopped(state) { Condition::Failing } else { Condition::Ok };
        let pipeline = json!({"status": pipeline_condition, "running": running});
        let connected = connected(state);
        let sources_condition = if connected.len() == state.nodes.len() { Condition::Ok } else { Condition::Degraded };
        let sources =
            json!({"status": sources_condition, "connected": connected.len(), "configured": state.nodes.len()});
        let plugins = state.plugins.read().expect("registry lock").clone();
        let suspended: Vec<&str> =
            plugins.iter().filter(|p| p.suspended.load(Relaxed)).map(|p| p.name.as_str()).collect();
        let catching_up: Vec<&str> =
            plugins.iter().filter(|p| p.catching_up.load(Relaxed)).map(|p| p.name.as_str()).collect();
        let plugins_condition = if suspended.is_empty() { Condition::Ok } else { Condition::Degraded };
        let plugins = json!({"status": plugins_condition, "suspended": suspended, "catching_up": catching_up});
        let worst = [storage.0, pipeline_condition, sources_condition, plugins_condition].into_iter().max();
        (worst.unwrap_or(Condition::Ok), Checks { storage: storage.1, pipeline, sources, plugins })
    }
}

/// Whether Sluice can serve current data: storing works and, with sources configured, at least
/// one is connected. The reasons it cannot, if it cannot.
pub fn readiness(state: &AppState) -> Result<(), Vec<String>> {
    let mut reasons = Vec::new();
    if state.ingest.storage_failing_since().is_some() {
        reasons.push("storing fails (see /health)".to_owned());
    }
    if pipeline_stopped(state) {
        reasons.push("the pipeline stopped".to_owned());
    }
    if !state.nodes.is_empty() && connected(state).is_empty() {
        reasons.push("no source is connected".to_owned());
    }
    if reasons.is_empty() { Ok(()) } else { Err(reasons) }
}

/// Whether the pipeline (on a `serve` instance: the thread following the log) stopped though it
/// has work: with no source, `sluice run`'s pipeline ends by design, and the store is only
/// served.
fn pipeline_stopped(state: &AppState) -> bool {
    let has_work = state.role != Role::Run || !state.nodes.is_empty();
    has_work && !state.ingest.running.load(Relaxed)
}

/// The sources connected now, by name.
fn connected(state: &AppState) -> Vec<&str> {
    let connected = state.nodes.iter().filter(|n| *n.state.lock().expect("status lock") == ConnectionState::Connected);
    connected.map(|node| node.name.as_str()).collect()
}

/// Sluice's condition (`ok`, `degraded`, `failing`) and its checks, node connections,
/// ingestion counters and store totals; 503 while failing.
#[utoipa::path(get, path = "/health", tag = "status",
    responses(
        (status = 200, description = "`{status: ok|degraded, checks: {storage, pipeline, sources, plugins}, nodes, ingest, store}` (also at `/api/health`)"),
        (status = 503, description = "The same, with `status: failing`: storing fails or the pipeline stopped")))]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let (condition, checks) = Checks::now(&state);
    // A store that cannot be read is reported, not an error of this request.
    let store = match state.store.read(|conn| conn.totals()).await {
        Ok(totals) => json!(totals),
        Err(error) => json!({"error": format!("{error:#}")}),
    };
    let code = if condition == Condition::Failing { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    let body = json!({
        "status": condition,
        "version": env!("CARGO_PKG_VERSION"),
        "role": state.role,
        "checks": checks,
        "nodes": &*state.nodes,
        "ingest": &*state.ingest,
        "store": store,
    });
    (code, Json(body))
}

/// 200 when Sluice can serve current data, 503 (with the reasons) when it cannot.
#[utoipa::path(get, path = "/ready", tag = "status",
    responses(
        (status = 200, description = "`{ready: true}`: storing works and a source is connected"),
        (status = 503, description = "`{ready: false, reasons: […]}`")))]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match readiness(&state) {
        Ok(()) => (StatusCode::OK, Json(json!({"ready": true}))),
        Err(reasons) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"ready": false, "reasons": reasons}))),
    }
}

/// Each source's connection state and counters.
#[utoipa::path(get, path = "/status", tag = "status",
    responses((status = 200, description = "Sources' connection states and counters; plugin reloads; the history sync")))]
pub async fn status(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": state.started.elapsed().as_secs(),
        "sources": &*state.nodes,
        "plugin_reload": &*state.reload,
        "history": state.history.as_deref(),
    }))
}

/// Per-plugin call counters, failures and suspension state.
pub async fn plugins(State(state): State<AppState>) -> Json<Value> {
    let plugins = state.plugins.read().expect("registry lock").clone();
    Json(json!({ "plugins": plugins }))
}
