//! The pipeline thread: deliveries → store (one batch per transaction) → plugins → bus.
//!
//! It owns the only write connection and the plugin instances. Each batch is one transaction:
//! new events are inserted (duplicates skipped), the plugins rule on each, the outcomes are
//! written, and only after the commit are the visible events published. An event is therefore
//! never served, nor lost, without its outcome; a plugin failure is contained by the plugin host.

use crate::bus::Bus;
use crate::event::{Delivery, Payload};
use crate::plugins::{DERIVED_BY, Plugins, Reload, ReloadStatus};
use crate::store::Writer;
use crate::store::{Outcome, StoredEvent};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Most deliveries stored in one transaction.
const MAX_BATCH: usize = 4096;

/// Most stored events replayed into catching-up indexers between two batches.
const REPLAY_SLICE: usize = 2048;

/// Ingestion counters, shared with the API.
#[derive(Debug, Default, Serialize)]
pub struct IngestStats {
    /// Events from sources stored for the first time.
    pub stored: AtomicU64,
    /// Events decoders derived, stored.
    pub derived: AtomicU64,
    /// Events that were already stored (resent by a node, or seen by several nodes).
    pub duplicates: AtomicU64,
    /// Frames stored as rejected.
    pub rejected: AtomicU64,
    /// Events hidden by a plugin.
    pub dropped: AtomicU64,
    /// The store's highest sequence.
    pub last_seq: AtomicU64,
    /// Whether the pipeline thread is running.
    pub running: AtomicBool,
    /// Storage writes that failed (each is retried).
    pub storage_failures: AtomicU64,
    /// Since when storing has been failing (milliseconds since the Unix epoch; 0: it is not).
    pub storage_failing_since_ms: AtomicU64,
    /// Why the last storage write failed.
    pub last_storage_error: Mutex<Option<String>>,
}

impl IngestStats {
    /// A storage write (on a `serve` instance: a read of the log) failed with `error`.
    pub fn storage_failed(&self, error: &anyhow::Error) {
        self.storage_failures.fetch_add(1, Relaxed);
        let now = crate::event::now_ms() as u64;
        _ = self.storage_failing_since_ms.compare_exchange(0, now, Relaxed, Relaxed);
        *self.last_storage_error.lock().expect("stats lock") = Some(format!("{error:#}"));
    }

    /// A storage write (on a `serve` instance: a read of the log) succeeded.
    pub fn storage_ok(&self) {
        self.storage_failing_since_ms.store(0, Relaxed);
    }

    /// Since when storing has been failing, if it is.
    pub fn storage_failing_since(&self) -> Option<u64> {
        Some(self.storage_failing_since_ms.load(Relaxed)).filter(|&since| since > 0)
    }
}

/// What the pipeline has committed so far, for the stage after the store (`backfill`) to
/// watch: counts that change when a batch stored gap records or blocks, or handled blocks
/// fetched over JSON-RPC.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// Gap records stored or marked backfilled.
    pub gaps: u64,
    /// Blocks stored.
    pub blocks: u64,
    /// Deliveries of whole blocks fetched over JSON-RPC (`Payload::Block`) handled.
    pub fetched_blocks: u64,
}

/// Everything the pipeline thread owns.
pub struct Pipeline {
    /// The store's only writer.
    pub writer: Writer,
    /// The loaded plugins.
    pub plugins: Plugins,
    /// Where visible events go once processed.
    pub bus: Bus,
    /// Counters.
    pub stats: Arc<IngestStats>,
    /// A read connection to the store, for replaying the log into catching-up indexers.
    pub log: Box<dyn crate::store::Read>,
    /// New plugin versions to switch to between two batches.
    pub reloads: mpsc::UnboundedReceiver<Reload>,
    /// How reloads go.
    pub reload_status: Arc<ReloadStatus>,
    /// Told what each batch committed.
    pub committed: tokio::sync::watch::Sender<Committed>,
    /// With `[history]`: whether the sync is still storing the chain's past (indexers wait to
    /// replay until it is done).
    pub history_syncing: Option<tokio::sync::watch::Receiver<bool>>,
}

/// What the pipeline waits for.
enum Next {
    /// Deliveries (0: the sources are gone).
    Received(usize),
    /// New plugin versions.
    Reload(Reload),
    /// The history sync started or finished.
    History,
}

impl Pipeline {
    /// Run on a dedicated thread until every sender of `deliveries` is dropped.
    pub fn spawn(self, deliveries: mpsc::Receiver<Delivery>) -> std::thread::JoinHandle<()> {
        std::thread::Builder::new()
            .name("pipeline".into())
            .spawn(move || self.run(deliveries))
            .expect("spawning the pipeline thread")
    }

    fn run(self, deliveries: mpsc::Receiver<Delivery>) {
        let stats = self.stats.clone();
        stats.running.store(true, Relaxed);
        self.ingest(deliveries);
        stats.running.store(false, Relaxed);
    }

    fn ingest(mut self, mut deliveries: mpsc::Receiver<Delivery>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let stats = self.stats.clone();
        let Some(mut head) =
            retrying(&stats, "reading the store", || deliveries.is_closed(), || self.writer.last_seq())
        else {
            return;
        };
        self.stats.last_seq.store(head, Relaxed);
        loop {
            while let Ok(reload) = self.reloads.try_recv() {
                self.reload(reload, head);
            }
            if let Some(syncing) = &self.history_syncing {
                self.plugins.set_history_syncing(*syncing.borrow());
            }
            // While plugins replay the log, a slice of it between batches; otherwise wait.
            if self.plugins.catching_up() {
                if !self.replay_slice(&mut head, || deliveries.is_closed()) {
                    break;
                }
                while batch.len() < MAX_BATCH
                    && let Ok(delivery) = deliveries.try_recv()
                {
                    batch.push(delivery);
                }
                if batch.is_empty() {
                    if deliveries.is_closed() && deliveries.is_empty() {
                        break;
                    }
                    continue;
                }
            } else {
                let (reloads, history) = (&mut self.reloads, &mut self.history_syncing);
                let next = futures::executor::block_on(async {
                    let history_changed = async {
                        match history {
                            Some(syncing) => syncing.changed().await.ok(),
                            None => None,
                        }
                    };
                    tokio::select! {
                        received = deliveries.recv_many(&mut batch, MAX_BATCH) => Next::Received(received),
                        Some(reload) = reloads.recv() => Next::Reload(reload),
                        Some(()) = history_changed => Next::History,
                    }
                });
                match next {
                    Next::Received(0) => break,
                    Next::Received(_) => {}
                    Next::History => continue,
                    Next::Reload(reload) => {
                        self.reload(reload, head);
                        continue;
                    }
                }
            }
            let plugins = &mut self.plugins;
            let shutting_down = || deliveries.is_closed();
            let Some(stored) =
                retrying(&stats, "storing a batch", shutting_down, || self.writer.append(&batch, plugins))
            else {
                tracing::error!("shutting down with a batch not stored; the nodes will send it again");
                break;
            };
            head = stored.last().map_or(head, |(event, _)| event.seq);
            self.stats.last_seq.store(head, Relaxed);
            self.count(&batch, &stored);
            self.tell_committed(&batch, &stored);
            batch.clear();
            self.publish(stored);
        }
        tracing::info!("pipeline stopped: no more sources");
    }

    /// Publish what was committed, but what a filter dropped.
    fn publish(&self, stored: Vec<(StoredEvent, Outcome)>) {
        for (mut event, outcome) in stored {
            if outcome.dropped {
                self.stats.dropped.fetch_add(1, Relaxed);
                continue;
            }
            event.annotations = outcome.annotations;
            self.bus.publish(event);
        }
    }

    /// Switch to new plugin versions, between two batches.
    fn reload(&mut self, reload: Reload, head: u64) {
        let started = std::time::Instant::now();
        let applied = self
            .writer
            .create_plugin_indexes(&reload.declared_indexes())
            .and_then(|()| self.plugins.apply(reload, head, self.log.as_mut()))
            .and_then(|retired| self.writer.commit_plugins(&[], &retired));
        match applied {
            Ok(()) => self.reload_status.applied(started.elapsed()),
            Err(e) => self.reload_status.refused(format!("{e:#}")),
        }
    }

    /// Replay the next slice of the stored log (up to `head`) into the catching-up indexers
    /// and decoders, commit what they wrote and derived (which moves `head`), then let those at
    /// the head go live. False when the commit was abandoned at shutdown (the stored cursors
    /// still point before the slice).
    fn replay_slice(&mut self, head: &mut u64, shutting_down: impl Fn() -> bool) -> bool {
        let slice = match self.plugins.catch_up(self.log.as_mut(), *head, REPLAY_SLICE) {
            Ok(slice) => slice,
            Err(e) => {
                tracing::error!("replaying the stored log failed: {e:#}");
                std::thread::sleep(Duration::from_millis(100));
                return true;
            }
        };
        let (writer, plugins) = (&mut self.writer, &mut self.plugins);
        let commit = || writer.commit_replay(&slice.derived, &slice.batches, &slice.retired, plugins);
        let Some(stored) = retrying(&self.stats, "storing replayed plugin data", shutting_down, commit) else {
            self.plugins.rewind(&slice);
            return false;
        };
        if let Some((last, _)) = stored.last() {
            *head = last.seq;
            self.stats.last_seq.store(*head, Relaxed);
            self.stats.derived.fetch_add(stored.len() as u64, Relaxed);
        }
        self.publish(stored);
        self.plugins.promote(*head);
        true
    }

    fn tell_committed(&self, batch: &[Delivery], stored: &[(StoredEvent, Outcome)]) {
        let gaps =
            batch.iter().filter(|d| matches!(d.payload, Payload::Gap { .. } | Payload::Backfilled { .. })).count();
        let blocks = stored.iter().filter(|(event, _)| event.kind == "BlockAdded").count();
        let fetched_blocks = batch.iter().filter(|d| matches!(d.payload, Payload::Block(_))).count();
        if gaps + blocks + fetched_blocks > 0 {
            self.committed.send_modify(|committed| {
                committed.gaps += gaps as u64;
                committed.blocks += blocks as u64;
                committed.fetched_blocks += fetched_blocks as u64;
            });
        }
    }

    fn count(&self, batch: &[Delivery], stored: &[(StoredEvent, Outcome)]) {
        let events: usize = batch.iter().map(|d| d.payload.events().len()).sum();
        let rejected = batch.iter().filter(|d| matches!(d.payload, Payload::Rejected { .. })).count();
        let derived = stored.iter().filter(|(event, _)| event.node.starts_with(DERIVED_BY)).count();
        self.stats.stored.fetch_add((stored.len() - derived) as u64, Relaxed);
        self.stats.derived.fetch_add(derived as u64, Relaxed);
        self.stats.duplicates.fetch_add((events - (stored.len() - derived)) as u64, Relaxed);
        self.stats.rejected.fetch_add(rejected as u64, Relaxed);
    }
}

/// Storage errors (disk full, locked file) must not lose the batch: retry until it works, or
/// until shutdown (`None`: nothing was committed, so the node cursors still point before it).
/// Every failure is counted in `stats` (`/health` shows storage failing until a write succeeds).
fn retrying<T>(
    stats: &IngestStats,
    what: &str,
    shutting_down: impl Fn() -> bool,
    mut op: impl FnMut() -> anyhow::Result<T>,
) -> Option<T> {
    let mut delay = Duration::from_millis(100);
    loop {
        match op() {
            Ok(value) => {
                stats.storage_ok();
                return Some(value);
            }
            Err(_) if shutting_down() => return None,
            Err(e) => {
                stats.storage_failed(&e);
                tracing::error!("{what} failed, retrying in {delay:?}: {e:#}");
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}
