//! `GET /transaction/{hash}`: what is known of a transaction (or 1.x deploy); the sidecar's
//! `GET /transaction/{type}/{hash}` and `GET /transaction/{accepted|processed|expired}/{type}/{hash}`
//! (`type`: `deploy` or `version1`).

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::params::hash_param;
use super::views::EventView;
use crate::store::StoredEvent;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A transaction's events, by stage.
#[derive(Serialize, Default)]
pub struct TransactionView<'a> {
    transaction_hash: &'a str,
    accepted: Option<EventView<'a>>,
    processed: Option<EventView<'a>>,
    expired: Option<EventView<'a>>,
}

/// The accepted, processed and expired events of one transaction or deploy.
#[utoipa::path(get, path = "/transaction/{hash}", tag = "transactions",
    params(("hash" = String, Path, description = "Transaction or deploy hash", pattern = "^(.*-)?[0-9a-fA-F]{64}$")),
    responses((status = 200, description = "`{transaction_hash, accepted, processed, expired}`"), (status = 400, description = "A malformed parameter", body = ErrorBody), (status = 404, description = "Nothing stored under that name", body = ErrorBody)))]
pub async fn by_hash(State(state): State<AppState>, Path(hash): Path<String>) -> Result<Response, ApiError> {
    let events = events(&state, &hash).await?;
    Ok(Json(TransactionView::of(&hash, &events)?).into_response())
}

impl<'a> TransactionView<'a> {
    /// The view of transaction `hash` with its visible `events`.
    pub fn of(hash: &'a str, events: &'a [(StoredEvent, Vec<String>)]) -> anyhow::Result<TransactionView<'a>> {
        let mut view = TransactionView { transaction_hash: hash, ..TransactionView::default() };
        for event in events {
            let slot = match Stage::of(&event.0.kind) {
                Some(Stage::Accepted) => &mut view.accepted,
                Some(Stage::Processed) => &mut view.processed,
                Some(Stage::Expired) => &mut view.expired,
                None => continue,
            };
            *slot = Some(EventView::of(event)?);
        }
        Ok(view)
    }
}

/// The same, with the sidecar's transaction type in the path.
#[utoipa::path(get, path = "/transaction/{type}/{hash}", tag = "transactions",
    params(("type" = String, Path, description = "`deploy` or `version1`", pattern = "^(deploy|version1)$"), ("hash" = String, Path, description = "Transaction or deploy hash", pattern = "^(.*-)?[0-9a-fA-F]{64}$")),
    responses((status = 200, description = "As `/transaction/{hash}` (the casper-sidecar's path)"), (status = 400, description = "A malformed parameter", body = ErrorBody), (status = 404, description = "Nothing stored under that name", body = ErrorBody)))]
pub async fn by_type_and_hash(
    State(state): State<AppState>,
    Path((kind, hash)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let events = events_of_type(&state, &kind, &hash).await?;
    Ok(Json(TransactionView::of(&hash, &events)?).into_response())
}

/// One of a transaction's events: `accepted`, `processed` or `expired`.
#[utoipa::path(get, path = "/transaction/{state}/{type}/{hash}", tag = "transactions",
    params(("state" = String, Path, description = "`accepted`, `processed` or `expired`", pattern = "^(accepted|processed|expired)$"), ("type" = String, Path, description = "`deploy` or `version1`", pattern = "^(deploy|version1)$"), ("hash" = String, Path, description = "Transaction or deploy hash", pattern = "^(.*-)?[0-9a-fA-F]{64}$")),
    responses((status = 200, description = "That event of the transaction"), (status = 400, description = "A malformed parameter", body = ErrorBody), (status = 404, description = "Nothing stored under that name", body = ErrorBody)))]
pub async fn one_state(
    State(state): State<AppState>,
    Path((wanted, kind, hash)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let wanted = match wanted.as_str() {
        "accepted" => Stage::Accepted,
        "processed" => Stage::Processed,
        "expired" => Stage::Expired,
        _ => return Err(ApiError::bad_request("invalid_state", "expected accepted, processed or expired")),
    };
    let events = events_of_type(&state, &kind, &hash).await?;
    match events.iter().find(|event| Stage::of(&event.0.kind) == Some(wanted)) {
        Some(event) => Ok(Json(EventView::of(event)?).into_response()),
        None => Err(ApiError::not_found(format!("transaction {hash} has no such event"))),
    }
}

/// Which of its events: where a transaction is.
#[derive(PartialEq, Clone, Copy)]
pub enum Stage {
    /// Accepted by a node, not yet executed.
    Accepted,
    /// Executed in a block.
    Processed,
    /// Expired before it was executed.
    Expired,
}

impl Stage {
    /// The stage a transaction event of type `kind` tells of (`None`: not a transaction event).
    pub fn of(kind: &str) -> Option<Stage> {
        match kind {
            "TransactionAccepted" | "DeployAccepted" => Some(Stage::Accepted),
            "TransactionProcessed" | "DeployProcessed" => Some(Stage::Processed),
            "TransactionExpired" | "DeployExpired" => Some(Stage::Expired),
            _ => None,
        }
    }
}

/// A transaction's visible events, when it is of the sidecar's type `kind` (`deploy`: a 1.x
/// deploy or 2.x's legacy `Deploy`; `version1`: a 2.x transaction); 404 for another type.
async fn events_of_type(state: &AppState, kind: &str, hash: &str) -> Result<Vec<(StoredEvent, Vec<String>)>, ApiError> {
    if !matches!(kind, "deploy" | "version1") {
        let message = format!("{kind:?} is not deploy or version1");
        return Err(ApiError::bad_request("invalid_transaction_type", message));
    }
    let events = events(state, hash).await?;
    match events.iter().any(|(event, _)| crate::event::transaction_type(&event.kind, &event.raw) == Some(kind)) {
        true => Ok(events),
        false => Err(ApiError::not_found(format!("transaction {hash} is not of type {kind}"))),
    }
}

/// A transaction's visible events (400 for a malformed hash, 404 when there are none).
pub async fn events(state: &AppState, hash: &str) -> Result<Vec<(StoredEvent, Vec<String>)>, ApiError> {
    let query = hash_param("transaction hash", hash)?;
    let events = state
        .store
        .read(move |conn| {
            let events = conn.transaction_events(&query)?;
            conn.all_with_seen_by(events)
        })
        .await?;
    match events.is_empty() {
        true => Err(ApiError::not_found(format!("no transaction {hash}"))),
        false => Ok(events),
    }
}
