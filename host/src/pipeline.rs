//! The pipeline thread: deliveries → store (one batch per transaction) → plugins → bus.
//!
//! It owns the only write connection and the plugin instances. Events are stored before any
//! plugin sees them, so a plugin can never lose one; the `processed` mark moves only after the
//! plugins' outcomes are recorded, and events above it are re-run after a crash.

use crate::bus::Bus;
use crate::event::{Delivery, Payload};
use crate::plugins::Plugins;
use crate::store::{Outcome, StoredEvent, Writer};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use tokio::sync::mpsc;

/// Most deliveries stored in one transaction.
const MAX_BATCH: usize = 2048;

/// Ingestion counters, shared with the API.
#[derive(Debug, Default, Serialize)]
pub struct IngestStats {
    /// Events stored for the first time.
    pub stored: AtomicU64,
    /// Events that were already stored (resent by a node, or seen by several nodes).
    pub duplicates: AtomicU64,
    /// Frames stored as rejected.
    pub rejected: AtomicU64,
    /// Events hidden by a plugin.
    pub dropped: AtomicU64,
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
}

impl Pipeline {
    /// Run on a dedicated thread until every sender of `deliveries` is dropped.
    pub fn spawn(self, deliveries: mpsc::Receiver<Delivery>) -> std::thread::JoinHandle<()> {
        std::thread::Builder::new()
            .name("pipeline".into())
            .spawn(move || self.run(deliveries))
            .expect("spawning the pipeline thread")
    }

    fn run(mut self, mut deliveries: mpsc::Receiver<Delivery>) {
        self.recover();
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while deliveries.blocking_recv_many(&mut batch, MAX_BATCH) > 0 {
            let stored = self.retrying("storing a batch", |writer| writer.append(&batch));
            let events = batch.iter().filter(|d| matches!(d.payload, Payload::Event(_))).count();
            let rejected = batch.iter().filter(|d| matches!(d.payload, Payload::Rejected { .. })).count();
            self.stats.stored.fetch_add(stored.len() as u64, Relaxed);
            self.stats.duplicates.fetch_add((events - stored.len()) as u64, Relaxed);
            self.stats.rejected.fetch_add(rejected as u64, Relaxed);
            batch.clear();
            self.process(stored);
        }
        tracing::info!("pipeline stopped: no more sources");
    }

    /// Run the plugins over stored events, record their outcomes, publish the visible ones.
    fn process(&mut self, events: Vec<StoredEvent>) {
        let Some(last) = events.last().map(|e| e.seq) else { return };
        let outcomes: Vec<(u64, Outcome)> = events.iter().map(|e| (e.seq, self.plugins.process(e))).collect();
        self.retrying("recording plugin outcomes", |writer| writer.record_outcomes(&outcomes, last));
        for (mut event, (_, outcome)) in events.into_iter().zip(outcomes) {
            if outcome.dropped {
                self.stats.dropped.fetch_add(1, Relaxed);
                continue;
            }
            event.annotations = outcome.annotations;
            self.bus.publish(event);
        }
    }

    /// Events stored before a crash but never processed go through the plugins first.
    fn recover(&mut self) {
        loop {
            let pending = self.retrying("reading unprocessed events", |writer| writer.unprocessed(MAX_BATCH));
            if pending.is_empty() {
                return;
            }
            tracing::info!(events = pending.len(), "processing events stored before the last stop");
            self.process(pending);
        }
    }

    /// Storage errors (disk full, locked file) must not lose the batch: retry until it works.
    fn retrying<T>(&mut self, what: &str, mut op: impl FnMut(&mut Writer) -> anyhow::Result<T>) -> T {
        let mut delay = Duration::from_millis(100);
        loop {
            match op(&mut self.writer) {
                Ok(value) => return value,
                Err(e) => {
                    tracing::error!("{what} failed, retrying in {delay:?}: {e:#}");
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
}
