//! `GET /block` (latest), `GET /block/{hash|height}`, a block's transactions, and the Casper
//! Event Store's `GET /blocks?page=&limit=` (with a height range).

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::params::{ApiQuery, Pages, is_hash};
use super::transactions::TransactionView;
use super::views::EventView;
use crate::store::read::BlockId;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};

/// The latest block served.
#[utoipa::path(get, path = "/block", tag = "blocks",
    responses((status = 200, description = "The latest block (`BlockAdded` event view)"), (status = 404, description = "Nothing stored under that name", body = ErrorBody)))]
pub async fn latest(State(state): State<AppState>) -> Result<Response, ApiError> {
    find(&state, BlockId::Latest).await
}

/// A block by hash (64 hex digits) or height (decimal).
#[utoipa::path(get, path = "/block/{id}", tag = "blocks",
    params(("id" = String, Path, description = "Block hash (64 hex digits) or height", pattern = "^([0-9a-fA-F]{64}|[0-9]{1,19})$")),
    responses((status = 200, description = "The block (`BlockAdded` event view)"), (status = 400, description = "A malformed parameter", body = ErrorBody), (status = 404, description = "Nothing stored under that name", body = ErrorBody)))]
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
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BlocksQuery {
    /// From 1.
    #[param(minimum = 1)]
    #[serde(default, deserialize_with = "super::params::int64")]
    page: Option<u64>,
    /// Blocks per page, 1 to 100.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u64>,
    /// Lowest height wanted.
    #[serde(default, deserialize_with = "super::params::int64")]
    from_height: Option<u64>,
    /// Highest height wanted (below `from_height`: no blocks).
    #[serde(default, deserialize_with = "super::params::int64")]
    to_height: Option<u64>,
}

/// Blocks, highest first, in the Event Store's page shape: `{"data", "pageCount", "itemCount",
/// "pages": [{"number", "url"}]}` (default page 1, limit 10; past the end, `data` is empty),
/// optionally within `from_height..=to_height`.
#[utoipa::path(get, path = "/blocks", tag = "blocks",
    params(BlocksQuery),
    responses((status = 200, description = "A page of blocks: `{data, pageCount, itemCount, pages}` (the Casper Event Store's shape)"), (status = 400, description = "A malformed parameter", body = ErrorBody)))]
pub async fn page(State(state): State<AppState>, ApiQuery(query): ApiQuery<BlocksQuery>) -> Result<Response, ApiError> {
    let pages = Pages::new(query.page, query.limit)?;
    let heights = query.from_height.unwrap_or(0)..=query.to_height.unwrap_or(i64::MAX as u64);
    let range: String = [("from_height", query.from_height), ("to_height", query.to_height)]
        .iter()
        .filter_map(|(name, value)| value.map(|v| format!("&{name}={v}")))
        .collect();
    let (blocks, count) = state
        .store
        .read(move |conn| {
            let (blocks, count) = conn.blocks_page(heights, pages.page, pages.limit)?;
            Ok((conn.all_with_seen_by(blocks)?, count))
        })
        .await?;
    let data = blocks.iter().map(EventView::of).collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Json(pages.body(data, count, "/blocks", &range)).into_response())
}

/// The transactions a block lists, in its order, each with its stored events (as
/// `/transaction/{hash}` answers).
#[utoipa::path(get, path = "/block/{id}/transactions", tag = "blocks",
    params(("id" = String, Path, description = "Block hash or height", pattern = "^([0-9a-fA-F]{64}|[0-9]{1,19})$")),
    responses((status = 200, description = "The transactions the block lists, each with its accepted/processed/expired events"), (status = 400, description = "A malformed parameter", body = ErrorBody), (status = 404, description = "Nothing stored under that name", body = ErrorBody)))]
pub async fn transactions(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_block_id(&id)?;
    let found = state
        .store
        .read(move |conn| {
            let Some(stored) = conn.block(&id)? else { return Ok(None) };
            let event: serde_json::Value = serde_json::from_str(&stored.raw).unwrap_or_default();
            let block = event.pointer("/BlockAdded/block").map(unversioned).cloned().unwrap_or_default();
            let hashes = transaction_hashes(&block);
            let events = hashes
                .iter()
                .map(|hash| {
                    let events = conn.transaction_events(hash)?;
                    conn.all_with_seen_by(events)
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            Ok(Some((event, block, hashes, events)))
        })
        .await?;
    let Some((event, block, hashes, events)) = found else { return Err(ApiError::not_found("no such block")) };
    let transactions = hashes
        .iter()
        .zip(&events)
        .map(|(hash, events)| TransactionView::of(hash, events))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let body = BlockTransactions {
        block_hash: event.pointer("/BlockAdded/block_hash"),
        height: block.pointer("/header/height"),
        transactions,
    };
    Ok(Json(body).into_response())
}

/// `/block/{id}/transactions`' body: serialized as it is, so events' JSON goes out as stored.
#[derive(serde::Serialize)]
struct BlockTransactions<'a> {
    block_hash: Option<&'a serde_json::Value>,
    height: Option<&'a serde_json::Value>,
    transactions: Vec<TransactionView<'a>>,
}

/// A block as `BlockAdded` carries it, without its `Version1`/`Version2` wrapper (1.x has none).
fn unversioned(block: &serde_json::Value) -> &serde_json::Value {
    block.get("Version2").or_else(|| block.get("Version1")).unwrap_or(block)
}

/// The transaction (or deploy) hashes a block lists: 2.x blocks by lane
/// (`{"0": [{"Version1": hash}, ...]}`), 1.x blocks as deploy and transfer hashes.
fn transaction_hashes(block: &serde_json::Value) -> Vec<String> {
    let body = block.get("body");
    let lanes = body.and_then(|b| b.get("transactions")).and_then(|t| t.as_object());
    let listed: Vec<&serde_json::Value> = match lanes {
        Some(lanes) => lanes.values().filter_map(|lane| lane.as_array()).flatten().collect(),
        None => ["deploy_hashes", "transfer_hashes"]
            .iter()
            .filter_map(|field| body?.get(field)?.as_array())
            .flatten()
            .collect(),
    };
    let hash_of = |entry: &serde_json::Value| match entry {
        serde_json::Value::String(hash) => Some(hash.to_lowercase()),
        serde_json::Value::Object(versioned) => versioned.values().next()?.as_str().map(str::to_lowercase),
        _ => None,
    };
    listed.into_iter().filter_map(hash_of).collect()
}

async fn find(state: &AppState, id: BlockId) -> Result<Response, ApiError> {
    let query = id.clone();
    let block =
        state.store.read(move |conn| conn.block(&query)?.map(|block| conn.with_seen_by(block)).transpose()).await?;
    let Some(block) = block else {
        return Err(ApiError::not_found(match id {
            BlockId::Hash(hash) => format!("no block {hash}"),
            BlockId::Height(height) => format!("no block at height {height}"),
            BlockId::Latest => "no block stored yet".into(),
        }));
    };
    Ok(Json(EventView::of(&block)?).into_response())
}
