//! `GET /health`, `GET /status` (public) and `GET /plugins` (admin): how Sluice is doing.

use super::AppState;
use super::error::ApiError;
use crate::store::reader;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

/// Node connections, ingestion counters and store totals.
#[utoipa::path(get, path = "/health", tag = "status",
    responses((status = 200, description = "Node connections, ingestion counters, store totals (also at `/api/health`)")))]
pub async fn health(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let totals = state.store.read(reader::totals).await?;
    Ok(Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "nodes": &*state.nodes,
        "ingest": &*state.ingest,
        "store": totals,
    })))
}

/// Each source's connection state and counters.
#[utoipa::path(get, path = "/status", tag = "status",
    responses((status = 200, description = "Sources' connection states and counters; plugin reloads")))]
pub async fn status(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": state.started.elapsed().as_secs(),
        "sources": &*state.nodes,
        "plugin_reload": &*state.reload,
    }))
}

/// Per-plugin call counters, failures and suspension state.
pub async fn plugins(State(state): State<AppState>) -> Json<Value> {
    let plugins = state.plugins.read().expect("registry lock").clone();
    Json(json!({ "plugins": plugins }))
}
