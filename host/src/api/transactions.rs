//! `GET /transaction/{hash}`: what is known of a transaction (or 1.x deploy); the sidecar's
//! `GET /transaction/{type}/{hash}` and `GET /transaction/{accepted|processed|expired}/{type}/{hash}`
//! (`type`: `deploy` or `version1`).

use super::AppState;
use super::blocks::is_hash;
use super::error::ApiError;
use super::views::EventView;
use crate::store::reader;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Serialize, Default)]
struct TransactionView<'a> {
    transaction_hash: &'a str,
    accepted: Option<EventView<'a>>,
    processed: Option<EventView<'a>>,
    expired: Option<EventView<'a>>,
}

/// The accepted, processed and expired events of one transaction or deploy.
pub async fn by_hash(State(state): State<AppState>, Path(hash): Path<String>) -> Result<Response, ApiError> {
    let events = events(&state, &hash).await?;
    let mut view = TransactionView { transaction_hash: &hash, ..TransactionView::default() };
    for event in &events {
        let slot = match state_of(&event.0.kind) {
            Stage::Accepted => &mut view.accepted,
            Stage::Processed => &mut view.processed,
            Stage::Expired => &mut view.expired,
        };
        *slot = Some(EventView::of(event)?);
    }
    Ok(Json(view).into_response())
}

/// The same, with the sidecar's transaction type in the path.
pub async fn by_type_and_hash(
    state: State<AppState>,
    Path((kind, hash)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    check_type(&kind)?;
    by_hash(state, Path(hash)).await
}

/// One of a transaction's events: `accepted`, `processed` or `expired`.
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
    check_type(&kind)?;
    let events = events(&state, &hash).await?;
    match events.iter().find(|event| state_of(&event.0.kind) == wanted) {
        Some(event) => Ok(Json(EventView::of(event)?).into_response()),
        None => Err(ApiError::not_found(format!("transaction {hash} has no such event"))),
    }
}

/// Which of its events: where a transaction is.
#[derive(PartialEq)]
enum Stage {
    Accepted,
    Processed,
    Expired,
}

fn state_of(kind: &str) -> Stage {
    match kind {
        "TransactionAccepted" | "DeployAccepted" => Stage::Accepted,
        "TransactionProcessed" | "DeployProcessed" => Stage::Processed,
        _ => Stage::Expired,
    }
}

/// The sidecar's transaction types: a 1.x deploy or a 2.x transaction.
fn check_type(kind: &str) -> Result<(), ApiError> {
    match kind {
        "deploy" | "version1" => Ok(()),
        _ => Err(ApiError::bad_request("invalid_transaction_type", format!("{kind:?} is not deploy or version1"))),
    }
}

/// A transaction's visible events (404 when there are none).
async fn events(state: &AppState, hash: &str) -> Result<Vec<(crate::store::StoredEvent, Vec<String>)>, ApiError> {
    if !is_hash(hash) {
        return Err(ApiError::bad_request("invalid_hash", format!("{hash:?} is not 64 hex digits")));
    }
    let query = hash.to_owned();
    let events = state
        .store
        .read(move |conn| {
            let events = reader::transaction_events(conn, &query)?;
            reader::all_with_seen_by(conn, events)
        })
        .await?;
    match events.is_empty() {
        true => Err(ApiError::not_found(format!("no transaction {hash}"))),
        false => Ok(events),
    }
}
