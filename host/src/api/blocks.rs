//! `GET /block` (latest), `GET /block/{hash|height}`, and the Casper Event Store's
//! `GET /blocks?page=&limit=`.

use super::AppState;
use super::error::{ApiError, ApiQuery};
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

/// Query parameters of `/blocks`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// From 1.
    page: Option<u64>,
    /// Blocks per page, 1 to 100.
    limit: Option<u64>,
}

/// Most blocks per page.
const MAX_PAGE: u64 = 100;

/// Blocks, highest first, in the Event Store's page shape: `{"data", "pageCount", "itemCount",
/// "pages": [{"number", "url"}]}` (default page 1, limit 10; past the end, `data` is empty).
pub async fn page(State(state): State<AppState>, ApiQuery(query): ApiQuery<PageQuery>) -> Result<Response, ApiError> {
    let (page, limit) = (query.page.unwrap_or(1), query.limit.unwrap_or(10));
    if page == 0 {
        return Err(ApiError::bad_request("invalid_page", "pages count from 1"));
    }
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request("invalid_limit", format!("limit must be 1 to {MAX_PAGE}")));
    }
    let (blocks, count) = state
        .store
        .read(move |conn| {
            let (blocks, count) = reader::blocks_page(conn, page, limit)?;
            Ok((reader::all_with_seen_by(conn, blocks)?, count))
        })
        .await?;
    let data = blocks.iter().map(EventView::of).collect::<anyhow::Result<Vec<_>>>()?;
    let page_count = count.div_ceil(limit);
    let pages: Vec<_> = (1..=page_count)
        .map(|number| serde_json::json!({"number": number, "url": format!("/blocks?page={number}&limit={limit}")}))
        .collect();
    let body = serde_json::json!({"data": data, "pageCount": page_count, "itemCount": count, "pages": pages});
    Ok(Json(body).into_response())
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
