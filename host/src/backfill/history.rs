//! History sync (`[history]`): every block from `from_height` up to `to_height` (default: the
//! nodes' highest block when Sluice starts; the live stream brings the rest) is fetched over the
//! nodes' JSON-RPC and stored as the events the node would have streamed (same natural keys, so
//! what the live stream or an earlier run stored is stored once).
//!
//! Blocks are fetched `max_requests` requests at a time over all the nodes and sent to the
//! pipeline in height order, each block's events in one delivery the pipeline stores in one
//! transaction: a stored `BlockAdded` means its block's events are stored, so after a restart
//! (even `kill -9`) only the heights without one are fetched again. A
//! block that fails on every try is left out and reported (`/status`, metrics, the log), and the
//! heights left out are tried again later, with a growing pause.

use super::blocks::{self, parsed_block};
use super::nodes::RpcNodes;
use crate::event::{Delivery, NodeEvent, Payload};
use crate::store::Store;
use futures::{StreamExt, future};
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Failed heights kept for `/status` (their count is always exact).
const FAILURES_SHOWN: usize = 20;
/// Blocks sent to the pipeline and not yet committed, at most (the gap backfill's count too: a
/// bound, not an exact count).
const MAX_UNCOMMITTED: u64 = 64;
/// Longest pause before the heights left out are tried again.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(600);

/// What `/status` and `/metrics` show of the history sync.
#[derive(Debug, Default)]
pub struct HistoryStatus {
    /// The first height.
    pub from_height: u64,
    /// The last height (0 until known).
    pub to_height: AtomicU64,
    /// Heights of the range stored, from any source.
    pub heights_stored: AtomicU64,
    /// Blocks fetched and sent to the store by this run.
    pub blocks_fetched: AtomicU64,
    /// Events sent to the store by this run.
    pub events_sent: AtomicU64,
    /// Heights that failed on every try in the last pass.
    pub heights_failed: AtomicU64,
    progress: Mutex<Progress>,
    /// True until every height of the range is stored (indexers wait to replay until then).
    syncing: tokio::sync::watch::Sender<bool>,
}

#[derive(Debug, Default)]
struct Progress {
    state: &'static str,
    /// When this run started fetching, and how many heights were stored then.
    started: Option<(Instant, u64)>,
    /// How long it took, once done.
    took: Option<Duration>,
    /// Some failed heights and why.
    failed: BTreeMap<u64, String>,
}

impl HistoryStatus {
    /// The status of a sync from `from_height`.
    pub fn new(from_height: u64) -> HistoryStatus {
        let status = HistoryStatus { from_height, ..HistoryStatus::default() };
        status.set_state("starting");
        status.syncing.send_replace(true);
        status
    }

    /// Told whether the sync is still storing the chain's past: true until every height of the
    /// range is stored.
    pub fn syncing(&self) -> tokio::sync::watch::Receiver<bool> {
        self.syncing.subscribe()
    }

    fn set_state(&self, state: &'static str) {
        let mut progress = self.progress.lock().expect("history status lock");
        progress.state = state;
        if state == "done" {
            progress.took = progress.started.map(|(at, _)| at.elapsed());
        }
    }

    /// Fetching starts (again): the rate counts from the first time.
    fn fetching(&self) {
        let mut progress = self.progress.lock().expect("history status lock");
        progress.state = "syncing";
        progress.started.get_or_insert_with(|| (Instant::now(), self.heights_stored.load(Relaxed)));
    }

    /// Heights in the range.
    pub fn heights_total(&self) -> u64 {
        let to = self.to_height.load(Relaxed);
        if to == 0 { 0 } else { to + 1 - self.from_height }
    }

    /// The heights the sync fetches: up to `to_height`, or every height from `from_height` on
    /// while the last one is not known yet.
    pub fn covers(&self) -> std::ops::RangeInclusive<u64> {
        let to = self.to_height.load(Relaxed);
        self.from_height..=if to == 0 { u64::MAX } else { to }
    }
}

impl Serialize for HistoryStatus {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let progress = self.progress.lock().expect("history status lock");
        let (total, stored) = (self.heights_total(), self.heights_stored.load(Relaxed));
        let rate = progress.started.map(|(at, stored_then)| {
            let elapsed = progress.took.unwrap_or_else(|| at.elapsed());
            (stored.saturating_sub(stored_then)) as f64 / elapsed.as_secs_f64().max(1e-3)
        });
        let eta = rate.filter(|r| *r > 0.0 && progress.state == "syncing").map(|r| (total - stored) as f64 / r);
        let to = Some(self.to_height.load(Relaxed)).filter(|&to| to > 0);
        json!({
            "state": progress.state,
            "from_height": self.from_height,
            "to_height": to,
            "heights_total": total,
            "heights_stored": stored,
            "blocks_fetched": self.blocks_fetched.load(Relaxed),
            "events_sent": self.events_sent.load(Relaxed),
            "blocks_per_second": rate.map(|r| (r * 10.0).round() / 10.0),
            "eta_seconds": eta.map(f64::round),
            "heights_failed": self.heights_failed.load(Relaxed),
            "failed": progress.failed.iter().map(|(h, why)| json!({"height": h, "error": why})).collect::<Vec<_>>(),
        })
        .serialize(serializer)
    }
}

/// Everything a sync needs.
pub struct History {
    /// The range.
    pub config: crate::config::HistoryConfig,
    /// The nodes to ask.
    pub nodes: Arc<RpcNodes>,
    /// To learn what is stored.
    pub store: Store,
    /// The pipeline.
    pub out: mpsc::Sender<Delivery>,
    /// What it shows.
    pub status: Arc<HistoryStatus>,
    /// What the pipeline committed: blocks sent wait for it.
    pub committed: tokio::sync::watch::Receiver<crate::pipeline::Committed>,
}

impl History {
    /// Sync until every height of the range is stored, or the pipeline is gone.
    pub async fn run(self) {
        let mut pause = Duration::from_secs(1);
        let (to_height, chain_name_hash) = loop {
            match self.chain().await {
                Ok(chain) => break chain,
                Err(e) => {
                    tracing::warn!("history: cannot ask the nodes about the chain, trying again in {pause:?}: {e}");
                    self.status.set_state("waiting for a node");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_RETRY_PAUSE);
                }
            }
        };
        self.status.to_height.store(to_height, Relaxed);
        let progress = ProgressBar::new(self.status.heights_total());
        // What is stored is read once: afterwards, what was sent may not be committed yet.
        let mut missing = loop {
            match self.missing(to_height).await {
                Ok(missing) => break missing,
                Err(e) => {
                    tracing::warn!("history: cannot read the stored blocks: {e:#}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        let mut pause = Duration::from_secs(1);
        while !missing.is_empty() {
            self.status.fetching();
            progress.show(self.status.heights_stored.load(Relaxed));
            tracing::info!(blocks = missing.len(), from = missing[0], "history: fetching blocks over JSON-RPC");
            let Some(failures) = self.pass(missing, chain_name_hash.as_deref(), &progress).await else { return };
            missing = self.report(failures).await;
            if !missing.is_empty() {
                let count = missing.len();
                tracing::warn!("history: {count} blocks could not be fetched; trying them again in {pause:?}");
                self.status.set_state("retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_RETRY_PAUSE);
            }
        }
        // The last blocks sent may not be committed yet.
        while !self.missing(to_height).await.is_ok_and(|missing| missing.is_empty()) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.status.set_state("done");
        self.status.syncing.send_replace(false);
        progress.finish();
        tracing::info!(from = self.status.from_height, to = to_height, "history: every block is stored");
    }

    /// The last height (`to_height`, or the nodes' highest block now) and the hash of the
    /// chain's name (2.x signatures carry it).
    async fn chain(&self) -> Result<(u64, Option<String>), String> {
        let (status, _) = self.nodes.call("info_get_status", &json!({})).await.map_err(|e| e.to_string())?;
        let chain_name_hash = status["chainspec_name"].as_str().map(blocks::chain_name_hash);
        let highest = status["last_added_block_info"]["height"].as_u64();
        match (self.config.to_height, highest) {
            (Some(to), _) => Ok((to, chain_name_hash)),
            (None, Some(highest)) => Ok((highest.max(self.status.from_height), chain_name_hash)),
            (None, None) => Err("info_get_status names no last added block".into()),
        }
    }

    /// The heights of the range without a stored block, lowest first.
    async fn missing(&self, to_height: u64) -> anyhow::Result<Vec<u64>> {
        let from = self.status.from_height;
        // Blocks stored above `from - 1` (a stored block at height 0 is not seen: fetched again,
        // and stored once).
        let count = (to_height - from + 1) as usize;
        let stored = self.store.read(move |conn| conn.block_heights_above(from.saturating_sub(1), count)).await?;
        let stored: std::collections::HashSet<u64> =
            stored.into_iter().filter(|h| (from..=to_height).contains(h)).collect();
        self.status.heights_stored.store(stored.len() as u64, Relaxed);
        Ok((from..=to_height).filter(|h| !stored.contains(h)).collect())
    }

    /// Fetch `heights` and send their blocks in order; the heights that failed and why, or
    /// `None` once the pipeline is gone.
    async fn pass(
        &self,
        heights: Vec<u64>,
        chain_name_hash: Option<&str>,
        progress: &ProgressBar,
    ) -> Option<BTreeMap<u64, String>> {
        let mut failures = BTreeMap::new();
        let window = self.config.max_requests as usize;
        // Blocks sent and not yet committed stay few: each is a whole block's events.
        let mut committed = self.committed.clone();
        let (base, mut sent) = (committed.borrow_and_update().fetched_blocks, 0);
        let mut blocks = futures::stream::iter(heights)
            .map(|height| async move { (height, self.fetch(height, chain_name_hash).await) })
            .buffered(window);
        while let Some((height, fetched)) = blocks.next().await {
            match fetched {
                Ok((node, events)) => {
                    let count = events.len() as u64;
                    committed.wait_for(|c| c.fetched_blocks + MAX_UNCOMMITTED >= base + sent).await.ok()?;
                    self.out.send(Delivery::now(node.clone(), node, None, Payload::Block(events))).await.ok()?;
                    sent += 1;
                    self.status.events_sent.fetch_add(count, Relaxed);
                    self.status.blocks_fetched.fetch_add(1, Relaxed);
                    self.status.heights_stored.fetch_add(1, Relaxed);
                    progress.advance();
                }
                Err(error) => {
                    tracing::warn!(height, "history: block left out: {error}");
                    failures.insert(height, error);
                }
            }
        }
        Some(failures)
    }

    /// Show the heights that failed and are still not stored (another source may have brought
    /// some meanwhile); they are the ones to fetch again.
    async fn report(&self, mut failures: BTreeMap<u64, String>) -> Vec<u64> {
        if let (Some(&lowest), Some(&highest)) = (failures.keys().next(), failures.keys().next_back()) {
            let count = (highest - lowest + 1) as usize;
            let stored = self.store.read(move |conn| conn.block_heights_above(lowest.saturating_sub(1), count)).await;
            for height in stored.unwrap_or_default() {
                if failures.remove(&height).is_some() {
                    self.status.heights_stored.fetch_add(1, Relaxed);
                }
            }
        }
        self.status.heights_failed.store(failures.len() as u64, Relaxed);
        let failed = failures.keys().copied().collect();
        self.status.progress.lock().expect("history status lock").failed =
            failures.into_iter().take(FAILURES_SHOWN).collect();
        failed
    }

    /// The block at `height` as the events a node streams about it, and the node that answered
    /// for it; every part must be fetched.
    async fn fetch(&self, height: u64, chain_name_hash: Option<&str>) -> Result<(Arc<str>, Vec<NodeEvent>), String> {
        let params = json!({"block_identifier": {"Height": height}});
        let (answer, node) =
            self.nodes.call("chain_get_block", &params).await.map_err(|e| format!("chain_get_block: {e}"))?;
        let block = blocks::block(&answer, chain_name_hash)
            .filter(|block| block.height == height)
            .ok_or("chain_get_block answered another block, or in an unexpected shape")?;
        let executions = future::join_all(block.transactions.iter().map(|transaction| async move {
            let (method, params) = transaction.request();
            let (answer, _) = self.nodes.call(method, &params).await.map_err(|e| format!("{method}: {e}"))?;
            let unexpected = || format!("{method} answered in an unexpected shape for {}", transaction.hash());
            transaction.events(&answer).ok_or_else(unexpected)
        }))
        .await;
        let executions = executions.into_iter().collect::<Result<_, _>>()?;
        Ok((node, parsed_block(block, executions)?))
    }
}

/// The sync's progress on the terminal (hidden when standard error is not one).
struct ProgressBar(indicatif::ProgressBar);

impl ProgressBar {
    fn new(heights: u64) -> ProgressBar {
        let style =
            indicatif::ProgressStyle::with_template("history {bar:40} {pos}/{len} blocks, {per_sec}, {eta} left")
                .expect("a valid template");
        ProgressBar(indicatif::ProgressBar::new(heights).with_style(style))
    }

    /// `stored` of the heights are stored already.
    fn show(&self, stored: u64) {
        self.0.set_position(stored);
    }

    fn advance(&self) {
        self.0.inc(1);
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}
