//! `GET /block` (latest), `GET /block/{hash|height}`.

use super::AppState;
use super::error::ApiError;
use super::views::EventView;
use crate::store::reader::{self, BlockId};
use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};

/// The latest block served.
pub async fn latest(State(state): State<AppState>) -> Result<Response, ApiError> {
    find(&state, BlockId::Latest).await
}

/// A block by hash (64 hex digits) or height (decimal).
pub async fn by_id(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    find(&state, parse_block_id(&id)?).await
}

fn parse_block_id(id: &str) -> Result<BlockId, ApiError> {
    if is_hash(id) {
        Ok(BlockId::Hash(id.to_owned()))
    } else if let Ok(height) = id.parse::<u64>() {
        Ok(BlockId::Height(height))
    } else {
        Err(ApiError::bad_request(
            "invalid_block_id",
            format!("{id:?} is neither a block hash (64 hex digits) nor a height"),
        ))
    }
}

/// True for a 32-byte hash in hex.
pub fn is_hash(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

async fn find(state: &AppState, id: BlockId) -> Result<Response, ApiError> {
    let query = id.clone();
    let block = state
        .store
        .read(move |conn| reader::block(conn, &query)?.map(|block| reader::with_seen_by(conn, block)).transpose())
        .await?;
    let Some(block) = block else {
        return Err(ApiError::not_found(match id {
            BlockId::Hash(hash) => format!("no block {hash}"),
            BlockId::Height(height) => format!("no block at height {height}"),
            BlockId::Latest => "no block stored yet".into(),
        }));
    };
    Ok(Json(EventView::of(&block)?).into_response())
}
