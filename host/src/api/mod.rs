//! HTTP: the public API (REST + SSE) and the admin API, both axum on hyper.

mod blocks;
mod contract_events;
mod deploys;
mod docs;
mod error;
mod events;
mod filter;
mod gaps;
mod health;
mod legacy;
pub mod limits;
mod log;
mod lookups;
pub mod metrics;
mod params;
mod plugin_changes;
pub mod plugin_data;
mod plugin_routes;
pub mod serve;
mod sidecar;
mod sse;
pub mod subscription;
mod transactions;
mod views;
mod websocket;

use crate::bus::Bus;
use crate::pipeline::IngestStats;
use crate::plugins::{Registry, Routes};
use crate::source::NodeStatus;
use crate::store::Store;
use axum::Router;
use axum::routing::get;
use std::sync::Arc;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Read access to the event log.
    pub store: Store,
    /// Live events.
    pub bus: Bus,
    /// What this instance does.
    pub role: Role,
    /// Node connection states.
    pub nodes: Arc<[Arc<NodeStatus>]>,
    /// Ingestion counters.
    pub ingest: Arc<IngestStats>,
    /// Plugin counters.
    pub plugins: Registry,
    /// Plugins serving HTTP under `/plugins/{name}/`.
    pub routes: Routes,
    /// Changes (or closes) when the server shuts down; ends open streams.
    pub shutdown: tokio::sync::watch::Receiver<()>,
    /// When the host started.
    pub started: std::time::Instant,
    /// How plugin reloads go.
    pub reload: Arc<crate::plugins::ReloadStatus>,
    /// Open subscriptions (SSE streams, WebSocket subscriptions) and their limit.
    pub subscribers: Arc<subscription::Subscribers>,
    /// Response times of the public API, by route.
    pub response_times: metrics::ResponseTimes,
    /// The history sync, when `[history]` is configured (on `sluice run`).
    pub history: Option<Arc<crate::backfill::HistoryStatus>>,
}

/// What an instance does: `sluice run` ingests and serves; `sluice serve` only serves what
/// another instance stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// `sluice run`.
    Run,
    /// `sluice serve`.
    Serve,
    /// `sluice run` waiting for another instance to stop writing; it serves as `serve` does.
    Standby,
}

/// Routes served on `[http] listen`, within the limits of `config`.
pub fn public(state: AppState, config: &crate::config::HttpConfig) -> Router {
    let routes = Router::new()
        .route("/events", get(events::serve))
        .route("/events/sidecar", get(sidecar::serve))
        .route("/events/{channel}", get(events::channel))
        .route("/ws/events", get(websocket::events))
        .route("/block", get(blocks::latest))
        .route("/block/{id}", get(blocks::by_id))
        .route("/block/{id}/transactions", get(blocks::transactions))
        .route("/blocks", get(blocks::page))
        .route("/deploy/{hash}", get(deploys::by_hash))
        .route("/accountDeploys/{account}", get(deploys::of_account))
        .route("/transaction/{hash}", get(transactions::by_hash))
        .route("/transaction/{type}/{hash}", get(transactions::by_type_and_hash))
        .route("/transaction/{state}/{type}/{hash}", get(transactions::one_state))
        .route("/signatures/{block_hash}", get(lookups::signatures))
        .route("/faults/{id}", get(lookups::faults))
        .route("/step/{era}", get(lookups::step))
        .route("/contract-events", get(contract_events::list))
        .route("/gaps", get(gaps::list))
        .route("/health", get(health::health))
        .route("/api/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/status", get(health::status))
        .route("/plugins/{name}", axum::routing::any(plugin_routes::root))
        .route("/plugins/{name}/collections", axum::routing::any(plugin_data::index))
        .route("/plugins/{name}/changes/{collection}", axum::routing::any(plugin_changes::follow))
        .route("/plugins/{name}/collections/{collection}", axum::routing::any(plugin_data::list))
        .route("/plugins/{name}/collections/{collection}/{*key}", axum::routing::any(plugin_data::entry))
        .route("/plugins/{name}/{*path}", axum::routing::any(plugin_routes::path))
        .route("/api-doc.json", get(docs::document))
        .route("/swagger-ui", get(docs::swagger_redirect))
        .route("/swagger-ui/", get(docs::swagger_index))
        .route("/swagger-ui/{*file}", get(docs::swagger_asset))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), metrics::time_response))
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::wrong_method)
        .with_state(state);
    limits::apply(routes, config)
}

/// Routes served on `[admin] listen` (localhost by default).
pub fn admin(state: AppState) -> Router {
    Router::new()
        .route("/plugins", get(health::plugins))
        .route("/metrics", get(metrics::metrics))
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::wrong_method)
        .with_state(state)
}
