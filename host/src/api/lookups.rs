//! The casper-sidecar's lookups: `GET /signatures/{block_hash}`, `GET /faults/{era|public_key}`,
//! `GET /step/{era}`.

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::params::hash_param;
use super::views::EventView;
use crate::store::read::Lookup;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};

/// Most events one lookup returns (a block has at most a few hundred signatures).
const MAX_EVENTS: usize = 10_000;

/// A block's finality signatures, as a list.
#[utoipa::path(get, path = "/signatures/{block_hash}", tag = "lookups",
    params(("block_hash" = String, Path, description = "Block hash", pattern = "^(.*-)?[0-9a-fA-F]{64}$")),
    responses((status = 200, description = "The block's finality signatures"), (status = 400, description = "A malformed parameter", body = ErrorBody)))]
pub async fn signatures(State(state): State<AppState>, Path(block_hash): Path<String>) -> Result<Response, ApiError> {
    list(&state, Lookup::Signatures(hash_param("block hash", &block_hash)?)).await
}

/// The faults of an era (a number) or of a validator (a public key), as a list.
#[utoipa::path(get, path = "/faults/{id}", tag = "lookups",
    params(("id" = String, Path, description = "Era number or validator public key", pattern = "^([0-9]+|01[0-9a-fA-F]{64}|02[0-9a-fA-F]{66})$")),
    responses((status = 200, description = "Faults of the era or of the validator"), (status = 400, description = "A malformed parameter", body = ErrorBody)))]
pub async fn faults(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let lookup = match id.parse::<u64>() {
        Ok(era) => Lookup::FaultsInEra(era),
        Err(_) if is_public_key(&id) => Lookup::FaultsOf(id),
        Err(_) => {
            let message = format!("{id:?} is neither an era nor a public key (01 or 02 and hex)");
            return Err(ApiError::bad_request("invalid_fault_id", message));
        }
    };
    list(&state, lookup).await
}

/// The step that ended an era.
#[utoipa::path(get, path = "/step/{era}", tag = "lookups",
    params(("era" = u64, Path, description = "Era number")),
    responses((status = 200, description = "The `Step` event that ended the era"), (status = 400, description = "A malformed parameter", body = ErrorBody), (status = 404, description = "Nothing stored under that name", body = ErrorBody)))]
pub async fn step(State(state): State<AppState>, Path(era): Path<String>) -> Result<Response, ApiError> {
    let era: u64 = era.parse().map_err(|_| ApiError::bad_request("invalid_era", format!("{era:?} is not an era")))?;
    let events = state
        .store
        .read(move |conn| {
            let events = conn.lookup(&Lookup::Step(era), 1)?;
            conn.all_with_seen_by(events)
        })
        .await?;
    match events.first() {
        Some(event) => Ok(Json(EventView::of(event)?).into_response()),
        None => Err(ApiError::not_found(format!("no step for era {era}"))),
    }
}

async fn list(state: &AppState, lookup: Lookup) -> Result<Response, ApiError> {
    let events = state
        .store
        .read(move |conn| {
            let events = conn.lookup(&lookup, MAX_EVENTS)?;
            conn.all_with_seen_by(events)
        })
        .await?;
    let views = events.iter().map(EventView::of).collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Json(views).into_response())
}

/// An ed25519 (`01` + 32 bytes) or secp256k1 (`02` + 33 bytes) public key in hex.
fn is_public_key(text: &str) -> bool {
    let hex = text.bytes().all(|b| b.is_ascii_hexdigit());
    hex && ((text.len() == 66 && text.starts_with("01")) || (text.len() == 68 && text.starts_with("02")))
}
