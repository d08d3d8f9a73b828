//! Gap backfill: when a node no longer held events Sluice asked for (a gap, recorded by the
//! stream), the blocks in between are fetched from the node's JSON-RPC and stored as the
//! events the node would have sent ([`super::blocks`]: the block, its transactions accepted and
//! processed, its finality signatures). They carry no node event id. What the answers cannot
//! give back (expired transactions, faults, steps, a 2.x execution's messages) is listed in
//! `/gaps`.
//!
//! Which blocks: those above the highest block stored when the gap was found, up to the blocks
//! stored since, that are not stored (another node may have delivered some), plus the block below
//! the gap and the one before each hole, whose transactions' events the gap may have cut off.
//! Only events the store does not hold are sent, so a streamed event (whose 2.x `messages` the
//! RPC cannot give back) is never replaced, and each is stored once either way.
//!
//! The filler reads the store when the pipeline says it committed a gap record, or a block while
//! a gap waits for one above it.

use super::blocks::{self, parsed_block};
use super::history::HistoryStatus;
use crate::config::NodeConfig;
use crate::event::{Delivery, NodeEvent, Payload};
use crate::pipeline::Committed;
use crate::rpc::{Rpc, RpcError};
use crate::source::NodeStatus;
use crate::source::backoff::Backoff;
use crate::store::Store;
use serde_json::json;
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Fill `node`'s gaps from its JSON-RPC at `rpc_url`, until `out` or `committed` is closed.
/// Heights the history sync covers (`history`) are left to it.
pub async fn fill_gaps(
    node: NodeConfig,
    rpc_url: String,
    status: Arc<NodeStatus>,
    store: Store,
    out: mpsc::Sender<Delivery>,
    mut committed: watch::Receiver<Committed>,
    history: Option<Arc<HistoryStatus>>,
) {
    let name: Arc<str> = Arc::from(node.name.get_ref().as_str());
    let client = match reqwest::Client::builder().connect_timeout(node.connect_timeout()).build() {
        Ok(client) => client,
        Err(e) => return tracing::error!(node = %name, "cannot build an HTTP client: {e}"),
    };
    let rpc = Rpc::new(client, &rpc_url, node.max_frame_bytes());
    let limit = node.max_backfill_blocks;
    let mut filler = Filler { rpc, name, status, store, out, limit, chain_name_hash: None, history };
    // Gaps filled whose record is still on its way to the store.
    let mut done = HashSet::new();
    let mut backoff = Backoff::new();
    // Whether a gap waits for a block above it: then a stored block is worth a look.
    let mut waiting = true;
    let mut seen = *committed.borrow_and_update();
    // At start: the gaps recorded before.
    let mut look = true;
    loop {
        if look {
            match filler.round(&mut done).await {
                Round::Waiting(w) => waiting = w,
                Round::Filled => {
                    backoff = Backoff::new();
                    waiting = true;
                }
                Round::Shutdown => return,
                Round::Paused(why) => {
                    let delay = backoff.next_delay(false).max(Duration::from_secs(1));
                    tracing::warn!(node = %filler.name, "backfill paused for {delay:.1?}: {why}");
                    tokio::time::sleep(delay).await;
                    continue;
                }
            }
        }
        if committed.changed().await.is_err() || filler.out.is_closed() {
            return;
        }
        let now = *committed.borrow_and_update();
        look = now.gaps != seen.gaps || (waiting && now.blocks != seen.blocks);
        seen = now;
    }
}

/// How a round went.
enum Round {
    /// Nothing filled; whether a gap waits for a block above it.
    Waiting(bool),
    /// A gap was filled.
    Filled,
    /// The pipeline is gone.
    Shutdown,
    /// The node's JSON-RPC or the store cannot be reached (why): try again after a pause.
    Paused(String),
}

/// One node's backfill.
struct Filler {
    rpc: Rpc,
    name: Arc<str>,
    status: Arc<NodeStatus>,
    store: Store,
    out: mpsc::Sender<Delivery>,
    /// Most blocks fetched for one gap.
    limit: u32,
    /// The hash of the chain's name, once asked (2.x signatures carry it).
    chain_name_hash: Option<String>,
    /// The history sync, whose heights are left to it.
    history: Option<Arc<HistoryStatus>>,
}

impl Filler {
    /// Read the gaps to fill and fill the first that can be.
    async fn round(&mut self, done: &mut HashSet<i64>) -> Round {
        let node = self.name.to_string();
        let gaps = match self.store.read(move |conn| conn.gaps_to_backfill(&node)).await {
            Ok(gaps) => gaps,
            Err(e) => return Round::Paused(format!("cannot read the gaps to backfill: {e:#}")),
        };
        // One gap at a time, and the next only once the last one's record is stored: it then
        // sees the blocks stored for the last one (a 1.x node has a gap per stream, usually over
        // the same blocks).
        done.retain(|gap| gaps.iter().any(|(listed, _)| listed == gap));
        if !done.is_empty() {
            return Round::Waiting(true);
        }
        let waiting = !gaps.is_empty();
        for (gap, below) in gaps {
            match self.fill(gap, below).await {
                Ok(true) => {
                    done.insert(gap);
                    return Round::Filled;
                }
                Ok(false) => {}
                Err(Stop::Shutdown) => return Round::Shutdown,
                Err(Stop::Unreachable(e)) => return Round::Paused(format!("the node's JSON-RPC failed: {e}")),
            }
        }
        Round::Waiting(waiting)
    }

    /// Fetch and store the blocks of gap `gap`, then record the backfill. `below` is the highest
    /// block stored when the gap was found. Returns false when it is too early: no block above
    /// the gap is stored yet, so where it ends is unknown.
    async fn fill(&mut self, gap: i64, below: Option<u64>) -> Result<bool, Stop> {
        let Some(below) = below else {
            self.record(gap, 0, vec!["no block was stored before the gap".into()]).await?;
            return Ok(true);
        };
        let limit = self.limit as usize;
        let stored = self.store.read(move |conn| conn.block_heights_above(below, limit)).await;
        let stored: HashSet<u64> = match stored {
            Ok(heights) if heights.is_empty() => return Ok(false),
            Ok(heights) => heights.into_iter().collect(),
            Err(e) => {
                tracing::warn!(node = %self.name, "cannot read the stored blocks: {e:#}");
                return Ok(false);
            }
        };
        let highest = stored.iter().max().copied().unwrap_or(below);
        // The newest missing heights first, at most `limit` (whatever height a node claims).
        let mut missing: Vec<u64> = (below + 1..highest).rev().filter(|h| !stored.contains(h)).take(limit).collect();
        missing.reverse();
        let mut notes = Vec::new();
        let all_missing = (highest - below - 1) as usize - (stored.len() - 1);
        if all_missing > missing.len() {
            notes.push(format!("{all_missing} blocks missing; only the newest {limit} fetched (max_backfill_blocks)"));
        }
        // The block below the gap and the stored block before each hole are fetched too: the gap
        // may have cut off their transactions' events. Only events not stored yet are sent.
        let mut heights: BTreeSet<u64> =
            missing.iter().map(|h| h - 1).chain(missing.iter().copied()).chain([below]).collect();
        if let Some(history) = &self.history {
            let covered = history.covers();
            let left = heights.iter().filter(|h| covered.contains(h)).count();
            if left > 0 {
                heights.retain(|h| !covered.contains(h));
                notes.push(format!("{left} blocks left to the history sync"));
            }
        }
        tracing::info!(node = %self.name, gap, blocks = missing.len(), "backfilling a gap over JSON-RPC");
        let mut blocks = 0;
        for height in heights {
            match self.fetch_block(height, &mut notes).await {
                Ok(events) => blocks += self.send_new(events).await?,
                Err(RpcError::Unreachable(e)) => return Err(Stop::Unreachable(e)),
                Err(e) => notes.push(format!("block {height}: {e}")),
            }
        }
        self.status.backfilled_blocks.fetch_add(u64::from(blocks), Relaxed);
        self.record(gap, blocks, notes).await?;
        Ok(true)
    }

    /// The block at `height` as node events: its transactions accepted and processed, the block,
    /// its signatures. A transaction that cannot be fetched is noted in `notes` and left out.
    async fn fetch_block(&mut self, height: u64, notes: &mut Vec<String>) -> Result<Vec<NodeEvent>, RpcError> {
        let result = self.rpc.call("chain_get_block", json!({"block_identifier": {"Height": height}})).await?;
        if result.get("block_with_signatures").is_some() && self.chain_name_hash.is_none() {
            let status = self.rpc.call("info_get_status", json!({})).await?;
            let name = status["chainspec_name"].as_str().unwrap_or_default();
            self.chain_name_hash = Some(blocks::chain_name_hash(name));
        }
        let block =
            blocks::block(&result, self.chain_name_hash.as_deref()).ok_or_else(|| unexpected("chain_get_block"))?;
        let mut executions = Vec::new();
        for transaction in &block.transactions {
            let (method, params) = transaction.request();
            let events = self.rpc.call(method, params).await;
            match events.and_then(|answer| transaction.events(&answer).ok_or_else(|| unexpected(method))) {
                Ok(events) => executions.push(events),
                Err(e @ RpcError::Unreachable(_)) => return Err(e),
                Err(e) => notes.push(format!("transaction {} of block {height}: {e}", transaction.hash())),
            }
        }
        parsed_block(block, executions).map_err(|message| RpcError::Answer { code: 0, message })
    }

    /// Send the events the store does not hold yet, together (a streamed event, which may carry
    /// more than the RPC answers, stays as it is); returns how many of them were blocks.
    async fn send_new(&self, events: Vec<NodeEvent>) -> Result<u32, Stop> {
        let keys: Vec<String> = events.iter().map(|e| e.key.clone()).collect();
        let stored = self.store.read(move |conn| conn.stored_keys(&keys)).await.unwrap_or_default();
        let new: Vec<NodeEvent> = events.into_iter().filter(|e| !stored.contains(&e.key)).collect();
        let blocks = new.iter().filter(|e| e.kind == "BlockAdded").count() as u32;
        if !new.is_empty() {
            self.send(Payload::Block(new)).await?;
        }
        Ok(blocks)
    }

    /// Record the end of a gap's backfill (after its events, so in the same or a later batch).
    async fn record(&self, gap: i64, blocks: u32, notes: Vec<String>) -> Result<(), Stop> {
        let note = (!notes.is_empty()).then(|| notes.join("; "));
        if let Some(note) = &note {
            tracing::warn!(node = %self.name, gap, blocks, "backfill incomplete: {note}");
        }
        self.send(Payload::Backfilled { gap, blocks, note }).await
    }

    async fn send(&self, payload: Payload) -> Result<(), Stop> {
        let delivery = Delivery::now(self.name.clone(), self.name.clone(), None, payload);
        self.out.send(delivery).await.map_err(|_| Stop::Shutdown)
    }
}

/// Why a backfill stopped early.
enum Stop {
    /// The pipeline is gone.
    Shutdown,
    /// The node's JSON-RPC cannot be reached: try again later.
    Unreachable(reqwest::Error),
}

fn unexpected(method: &str) -> RpcError {
    RpcError::Answer { code: 0, message: format!("{method} answered in an unexpected shape") }
}
