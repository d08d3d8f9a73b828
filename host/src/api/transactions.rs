//! `GET /transaction/{hash}`: what is known of a transaction (or 1.x deploy).

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
    if !is_hash(&hash) {
        return Err(ApiError::bad_request("invalid_hash", format!("{hash:?} is not 64 hex digits")));
    }
    let query = hash.clone();
    let events = state
        .store
        .read(move |conn| {
            let events = reader::transaction_events(conn, &query)?;
            events.into_iter().map(|event| reader::with_seen_by(conn, event)).collect::<rusqlite::Result<Vec<_>>>()
        })
        .await?;
    if events.is_empty() {
        return Err(ApiError::not_found(format!("no transaction {hash}")));
    }
    let mut view = TransactionView { transaction_hash: &hash, ..TransactionView::default() };
    for event in &events {
        let slot = match event.0.kind.as_str() {
            "TransactionAccepted" | "DeployAccepted" => &mut view.accepted,
            "TransactionProcessed" | "DeployProcessed" => &mut view.processed,
            _ => &mut view.expired,
        };
        *slot = Some(EventView::of(event)?);
    }
    Ok(Json(view).into_response())
}
