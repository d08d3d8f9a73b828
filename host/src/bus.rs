//! Live fan-out of processed, visible events to subscribers (SSE clients).
//!
//! Subscribers that fall behind lose their place in the channel, not events: every event on the
//! bus is already in the store, so a lagging subscriber catches up from there.

use crate::store::StoredEvent;
use bytes::Bytes;
use std::sync::{Arc, OnceLock, RwLock};
use tokio::sync::broadcast;

/// Events a subscriber may lag behind before it must catch up from the store: one of the
/// pipeline's largest batches, so a full batch published at once does not make everyone lag.
/// The channel keeps this many events alive, so it is also memory (BENCHMARKS.md).
const CAPACITY: usize = 4096;

/// An event as subscribers receive it.
pub struct Published {
    /// The event.
    pub event: StoredEvent,
    /// Its frame on the SSE firehose, rendered by the first subscriber that sends it and shared
    /// by the others (thousands of subscribers, one rendering).
    pub firehose_frame: OnceLock<Bytes>,
}

impl From<StoredEvent> for Published {
    fn from(event: StoredEvent) -> Published {
        Published { event, firehose_frame: OnceLock::new() }
    }
}

/// Publish side and subscription factory; cheap to clone (the clones are one bus).
#[derive(Clone)]
pub struct Bus {
    /// `None` once closed.
    sender: Arc<RwLock<Option<broadcast::Sender<Arc<Published>>>>>,
}

impl Bus {
    /// An empty bus.
    pub fn new() -> Bus {
        Bus { sender: Arc::new(RwLock::new(Some(broadcast::channel(CAPACITY).0))) }
    }

    /// Hand an event to every current subscriber (none once closed).
    pub fn publish(&self, event: StoredEvent) {
        if let Some(sender) = &*self.sender.read().expect("bus lock") {
            // No subscribers is fine: the event is in the store.
            let _ = sender.send(Arc::new(event.into()));
        }
    }

    /// Receive every event published from now on (nothing, once closed).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        match &*self.sender.read().expect("bus lock") {
            Some(sender) => sender.subscribe(),
            None => broadcast::channel(1).1,
        }
    }

    /// Close it for good: every subscriber receives what was published, then the end.
    pub fn close(&self) {
        self.sender.write().expect("bus lock").take();
    }
}
