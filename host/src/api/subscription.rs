//! A subscription to the event log: the stored events from a starting sequence, then live ones
//! from the bus, through a filter, with no gap or repeat at the seam. The SSE and WebSocket
//! streams are two renderings of it.

use super::AppState;
use super::error::ApiError;
use super::filter::{EventFilter, StreamParams};
use crate::store::{StoredEvent, reader};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{broadcast, mpsc};

/// How many subscriptions are open, and how many may be.
#[derive(Debug)]
pub struct Subscribers {
    open: AtomicUsize,
    max: usize,
}

impl Subscribers {
    /// No subscription open yet; at most `max`.
    pub fn new(max: usize) -> Subscribers {
        Subscribers { open: AtomicUsize::new(0), max }
    }

    /// Subscriptions open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Count one more, unless the limit is reached (503); it counts until the slot is dropped.
    fn admit(self: &Arc<Self>) -> Result<Slot, ApiError> {
        let admitted = self.open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| (open < self.max).then_some(open + 1));
        match admitted {
            Ok(_) => Ok(Slot(self.clone())),
            Err(_) => Err(ApiError::unavailable("too_many_subscribers", format!("{} subscriptions are open, the most allowed", self.max))),
        }
    }
}

/// One admitted subscription.
struct Slot(Arc<Subscribers>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Events read from the store per query while catching up (and buffered per subscriber).
const PAGE: usize = 512;

/// Start a subscription as `params` ask (400 for bad filters, 503 beyond `max_subscribers`):
/// its events arrive on the receiver until it is dropped or the server shuts down.
pub async fn subscribe(state: &AppState, params: &StreamParams) -> Result<mpsc::Receiver<Arc<StoredEvent>>, ApiError> {
    let slot = state.subscribers.admit()?;
    let attached: Vec<String> = {
        let registry = state.plugins.read().expect("registry lock");
        registry.iter().filter(|p| p.attached).map(|p| p.name.clone()).collect()
    };
    let filter = EventFilter::new(params, &attached)?;
    let live = state.bus.subscribe();
    let next = match params.start_from {
        Some(seq) => seq,
        None => state.store.read(reader::last_seq).await? + 1,
    };
    let (sender, receiver) = mpsc::channel(PAGE);
    let (state, mut shutdown) = (state.clone(), state.shutdown.clone());
    tokio::spawn(async move {
        let _slot = slot;
        tokio::select! {
            result = feed(&state, live, next, &filter, &sender) => {
                if let Err(e) = result {
                    tracing::debug!("event stream ended: {e:#}");
                }
            }
            _ = sender.closed() => {}
            _ = shutdown.changed() => {}
        }
    });
    Ok(receiver)
}

/// Send stored events from `next` on, then live ones; after falling behind the live channel,
/// catch up from the store again. Ends when the client goes away.
async fn feed(
    state: &AppState,
    mut live: broadcast::Receiver<Arc<StoredEvent>>,
    mut next: u64,
    filter: &EventFilter,
    out: &mpsc::Sender<Arc<StoredEvent>>,
) -> anyhow::Result<()> {
    loop {
        catch_up(state, &mut next, filter, out).await?;
        loop {
            match live.recv().await {
                Ok(event) if event.seq < next => {}
                Ok(event) => {
                    next = event.seq + 1;
                    if filter.matches(&event) {
                        out.send(event).await?;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => break,
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            }
        }
    }
}

async fn catch_up(
    state: &AppState,
    next: &mut u64,
    filter: &EventFilter,
    out: &mpsc::Sender<Arc<StoredEvent>>,
) -> anyhow::Result<()> {
    loop {
        let from = *next;
        let page = state.store.read(move |conn| reader::events_from(conn, from, PAGE)).await?;
        let Some(last) = page.last().map(|e| e.seq) else { return Ok(()) };
        for event in page.into_iter().filter(|event| filter.matches(event)) {
            out.send(Arc::new(event)).await?;
        }
        *next = last + 1;
    }
}
