//! `sluice serve`'s stand-in for the pipeline: it follows the event log that the writing
//! instance appends to and publishes each new visible event on the local bus, once and in
//! sequence order, so that subscribers get the same promise as on the leader (replay from the
//! store, then live, no gap and no repeat at the seam).

use crate::bus::Bus;
use crate::pipeline::IngestStats;
use crate::store::Read;
use crate::store::appends::Appends;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

/// Events read from the log per query.
const PAGE: usize = 1024;

/// Longest wait for a wake-up before reading anyway: bounds the delay of an event whose
/// notification was lost (with a connection).
const IDLE_READ: Duration = Duration::from_secs(1);

/// How often a replica that has not yet replayed an announced commit is read again (waiting
/// for notifications meanwhile).
const REPLICA_POLL: Duration = Duration::from_millis(5);

/// Pause after a failed read before the next attempt.
const RETRY: Duration = Duration::from_millis(500);

/// Where a tail stands.
struct Position {
    /// The sequence number to publish next.
    next: u64,
    /// The highest sequence number the writing instance announced as committed.
    announced: u64,
}

/// Follows the log and publishes what it reads.
pub struct Tail {
    /// Reads the log.
    pub log: Box<dyn Read>,
    /// Says when to read it (and up to where), from the primary database.
    pub appends: Box<dyn Appends>,
    /// Where new events go.
    pub bus: Bus,
    /// Where its position (`last_seq`), whether it runs and its read failures show.
    pub stats: Arc<IngestStats>,
    /// The first sequence number to publish: one past the log's end read before the API
    /// started, so that what a subscriber read from the store and what the tail publishes meet.
    pub from: u64,
}

impl Tail {
    /// Follow on a thread of its own (the database clients block) from `from`, until `stop` is
    /// set.
    pub fn spawn(self, stop: Arc<AtomicBool>) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new().name("tail".into()).spawn(move || self.run(&stop))
    }

    fn run(mut self, stop: &AtomicBool) {
        let stats = self.stats.clone();
        stats.running.store(true, Relaxed);
        self.follow(stop);
        stats.running.store(false, Relaxed);
    }

    fn follow(&mut self, stop: &AtomicBool) {
        let mut position = Position { next: self.from, announced: 0 };
        while !stop.load(Relaxed) {
            match self.step(&mut position) {
                Ok(()) => self.stats.storage_ok(),
                Err(error) => {
                    if self.stats.storage_failing_since().is_none() {
                        tracing::warn!("following the event log: {error:#}; trying again");
                    }
                    self.stats.storage_failed(&error);
                    std::thread::sleep(RETRY);
                }
            }
        }
    }

    /// Publish what can be read, then wait for more: for a wake-up, or only a moment while an
    /// announced event cannot be read yet (a replica behind its primary).
    fn step(&mut self, position: &mut Position) -> anyhow::Result<()> {
        // Asked before the page is read: if the announced events are readable now, the page
        // holds them.
        let behind = position.next <= position.announced && self.log.last_seq()? < position.announced;
        if self.publish_from(&mut position.next)? {
            return Ok(());
        }
        if let Some(announced) = self.appends.wait(if behind { REPLICA_POLL } else { IDLE_READ })? {
            position.announced = position.announced.max(announced);
        }
        Ok(())
    }

    /// Publish the visible events from `next` on, one page; whether a full page came (more
    /// may be waiting).
    fn publish_from(&mut self, next: &mut u64) -> anyhow::Result<bool> {
        let events = self.log.events_from(*next, PAGE)?;
        let full = events.len() == PAGE;
        for event in events {
            *next = event.seq + 1;
            self.stats.last_seq.store(event.seq, Relaxed);
            self.bus.publish(event);
        }
        Ok(full)
    }
}
