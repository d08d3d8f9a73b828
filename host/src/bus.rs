//! Live fan-out of processed, visible events to subscribers (SSE clients).
//!
//! Subscribers that fall behind lose their place in the channel, not events: every event on the
//! bus is already in the store, so a lagging subscriber catches up from there.

use crate::store::StoredEvent;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Events a subscriber may lag behind before it must catch up from the store: one of the
/// pipeline's largest batches, so a full batch published at once does not make everyone lag.
/// The channel keeps this many events alive, so it is also memory (BENCHMARKS.md).
const CAPACITY: usize = 4096;

/// Publish side and subscription factory; cheap to clone.
#[derive(Clone)]
pub struct Bus {
    sender: broadcast::Sender<Arc<StoredEvent>>,
}

impl Bus {
    /// An empty bus.
    pub fn new() -> Bus {
        Bus { sender: broadcast::channel(CAPACITY).0 }
    }

    /// Hand an event to every current subscriber.
    pub fn publish(&self, event: StoredEvent) {
        // No subscribers is fine: the event is in the store.
        let _ = self.sender.send(Arc::new(event));
    }

    /// Receive every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<StoredEvent>> {
        self.sender.subscribe()
    }
}
