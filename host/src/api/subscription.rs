//! A subscription to the event log: the stored events from a starting sequence, then live ones
//! from the bus, through a filter, with no gap or repeat at the seam. The SSE and WebSocket
//! streams are two renderings of it. A subscriber that leaves its buffer full for longer than
//! the stall limit is disconnected, and told why after what it had buffered.

use super::AppState;
use super::error::ApiError;
use super::filter::{EventFilter, StreamParams};
use crate::store::{StoredEvent, reader};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::mpsc::error::SendTimeoutError;
use tokio::sync::{broadcast, mpsc, oneshot};

/// How many subscriptions are open, how many may be, and how long one may stall.
#[derive(Debug)]
pub struct Subscribers {
    open: AtomicUsize,
    max: usize,
    stall_limit: Duration,
}

impl Subscribers {
    /// No subscription open yet; at most `max`, each disconnected after `stall_limit` with a
    /// full buffer.
    pub fn new(max: usize, stall_limit: Duration) -> Subscribers {
        Subscribers { open: AtomicUsize::new(0), max, stall_limit }
    }

    /// Subscriptions open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Count one more, unless the limit is reached (503); it counts until the slot is dropped.
    fn admit(self: &Arc<Self>) -> Result<Slot, ApiError> {
        let admitted =
            self.open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| (open < self.max).then_some(open + 1));
        match admitted {
            Ok(_) => Ok(Slot(self.clone())),
            Err(_) => Err(ApiError::unavailable(
                "too_many_subscribers",
                format!("{} subscriptions are open, the most allowed", self.max),
            )),
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

/// The events of one subscription, then, if it was cut off, why. It holds its place among
/// `max_subscribers` until it is dropped (with the response or the WebSocket session).
pub struct Subscription {
    events: mpsc::Receiver<Arc<StoredEvent>>,
    ended: Option<oneshot::Receiver<String>>,
    _slot: Slot,
}

/// What a subscription delivers.
pub enum Next {
    /// The next event that passed the filter.
    Event(Arc<StoredEvent>),
    /// The last item: the subscriber was disconnected, for this reason.
    Disconnected(String),
}

impl Subscription {
    /// The next event; after the last one, why the subscription was cut off, if it was; then
    /// `None` (also when the server shuts down).
    pub async fn next(&mut self) -> Option<Next> {
        // Cut off: say so at once; what was buffered is dropped (the client can resume).
        if let Some(Ok(reason)) = self.ended.as_mut().map(oneshot::Receiver::try_recv) {
            self.ended = None;
            self.events = mpsc::channel(1).1;
            return Some(Next::Disconnected(reason));
        }
        if let Some(event) = self.events.recv().await {
            return Some(Next::Event(event));
        }
        let reason = self.ended.take()?.await.ok()?;
        Some(Next::Disconnected(reason))
    }
}

/// Why a feed stopped sending.
enum Stop {
    /// The subscriber's buffer stayed full for the stall limit.
    Stalled,
    /// The subscriber went away, or the store failed.
    Ended(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Stop {
    fn from(error: E) -> Stop {
        Stop::Ended(error.into())
    }
}

/// Start a subscription as `params` ask (400 for bad filters, 503 beyond `max_subscribers`):
/// its events arrive until it is dropped, stalls or the server shuts down.
pub async fn subscribe(state: &AppState, params: &StreamParams) -> Result<Subscription, ApiError> {
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
    let (why, ended) = oneshot::channel();
    let (state, mut shutdown) = (state.clone(), state.shutdown.clone());
    tokio::spawn(async move {
        let out = Out { sender: &sender, stall_limit: state.subscribers.stall_limit };
        tokio::select! {
            result = feed(&state, live, next, &filter, out) => match result {
                // The bus closed: no more live events (the pipeline ended).
                Ok(()) => {}
                Err(Stop::Stalled) => {
                    let limit = out.stall_limit.as_millis();
                    tracing::info!("a subscriber read nothing for {limit} ms with {PAGE} events waiting: disconnected");
                    _ = why.send(format!("disconnected: too slow (read nothing for {limit} ms with {PAGE} events waiting)"));
                }
                Err(Stop::Ended(e)) => tracing::debug!("event stream ended: {e:#}"),
            },
            _ = sender.closed() => {}
            _ = shutdown.changed() => {}
        }
    });
    Ok(Subscription { events: receiver, ended: Some(ended), _slot: slot })
}

/// Where a feed sends, and how long it waits for room.
#[derive(Clone, Copy)]
struct Out<'a> {
    sender: &'a mpsc::Sender<Arc<StoredEvent>>,
    stall_limit: Duration,
}

impl Out<'_> {
    async fn send(&self, event: Arc<StoredEvent>) -> Result<(), Stop> {
        // The timer only when the buffer is full: arming one per event costs more than the send.
        let event = match self.sender.try_send(event) {
            Ok(()) => return Ok(()),
            Err(mpsc::error::TrySendError::Full(event)) => event,
            Err(mpsc::error::TrySendError::Closed(_)) => {
                return Err(Stop::Ended(anyhow::anyhow!("the subscriber went away")));
            }
        };
        match self.sender.send_timeout(event, self.stall_limit).await {
            Ok(()) => Ok(()),
            Err(SendTimeoutError::Timeout(_)) => Err(Stop::Stalled),
            Err(SendTimeoutError::Closed(_)) => Err(Stop::Ended(anyhow::anyhow!("the subscriber went away"))),
        }
    }
}

/// Send stored events from `next` on, then live ones; after falling behind the live channel,
/// catch up from the store again. Ends when the client goes away.
async fn feed(
    state: &AppState,
    mut live: broadcast::Receiver<Arc<StoredEvent>>,
    mut next: u64,
    filter: &EventFilter,
    out: Out<'_>,
) -> Result<(), Stop> {
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

async fn catch_up(state: &AppState, next: &mut u64, filter: &EventFilter, out: Out<'_>) -> Result<(), Stop> {
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
