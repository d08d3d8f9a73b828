//! A subscription to the event log: the stored events from a starting sequence, then live ones
//! from the bus, through a filter, with no gap or repeat at the seam. The SSE and WebSocket
//! streams are two renderings of it. A subscriber that falls behind the live events and does not
//! catch up within the stall limit is disconnected, and told why.

use super::AppState;
use super::error::ApiError;
use super::filter::{EventFilter, StreamParams};
use crate::bus::Published;
use crate::store::StoredEvent;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// How many subscriptions are open, how many may be, and how long one may stall.
#[derive(Debug)]
pub struct Subscribers {
    open: AtomicUsize,
    max: usize,
    stall_limit: Duration,
}

impl Subscribers {
    /// No subscription open yet; at most `max`, each disconnected when it stays behind the live
    /// events for `stall_limit`.
    pub fn new(max: usize, stall_limit: Duration) -> Subscribers {
        Subscribers { open: AtomicUsize::new(0), max, stall_limit }
    }

    /// Subscriptions open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Count one more, unless the limit is reached (503); it counts until the slot is dropped.
    pub fn admit(self: &Arc<Self>) -> Result<Slot, ApiError> {
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
pub struct Slot(Arc<Subscribers>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Events read from the store per query while catching up.
const PAGE: usize = 512;

/// The events of one subscription, then, if it was cut off, why. It reads the store until it
/// reaches the live bus, then the bus, and the store again whenever it falls more than the bus
/// holds behind. It has no task or buffer of its own: a subscriber that does not read is not
/// read for, and costs the others nothing. It holds its place among `max_subscribers` until it
/// is dropped (with the response or the WebSocket session).
pub struct Subscription {
    state: AppState,
    filter: EventFilter,
    live: broadcast::Receiver<Arc<Published>>,
    /// The sequence number to deliver next.
    next: u64,
    /// Stored events read and not yet delivered.
    stored: std::vec::IntoIter<StoredEvent>,
    reading: Reading,
    /// A store read under way: kept when `next` is cancelled (inside a `select!`), so that the
    /// next call resumes it instead of starting another.
    pending_read: Option<StoreRead>,
    /// When `next` last returned: a client that takes longer than the stall limit to ask for
    /// the next event after one was not reading.
    last_seen: Instant,
    /// A call to `next` is under way, or was cancelled (inside a `select!`): the client is
    /// waiting for an event, not stalled.
    asking: bool,
    cut_off: bool,
    _slot: Slot,
}

/// A page of stored events being read.
type StoreRead = std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<Vec<StoredEvent>>> + Send>>;

/// Where a subscription reads its next events.
#[derive(Clone, Copy)]
enum Reading {
    /// The store, from where the client asked to start, for as long as that takes.
    History,
    /// The store, having fallen more than the bus holds behind; behind since this time.
    Behind(Instant),
    /// The bus.
    Live,
}

/// What a subscription delivers.
pub enum Next {
    /// The next event that passed the filter.
    Event(Arc<Published>),
    /// The last item: the subscriber was disconnected, for this reason.
    Disconnected(String),
}

/// Start a subscription as `params` ask (400 for malformed filters, 404 for an unknown attached
/// filter, 503 beyond `max_subscribers`): its events arrive until it is dropped, falls too far
/// behind or the bus closes at shutdown.
pub async fn subscribe(state: &AppState, params: &StreamParams) -> Result<Subscription, ApiError> {
    let slot = state.subscribers.admit()?;
    let attached: Vec<String> = {
        let registry = state.plugins.read().expect("registry lock");
        registry.iter().filter(|p| p.attached).map(|p| p.name.clone()).collect()
    };
    let filter = EventFilter::new(params, &attached)?;
    // Subscribed before the store is read: whatever is committed later arrives live.
    let live = state.bus.subscribe();
    let (next, reading) = match params.start_from {
        Some(seq) => (seq, Reading::History),
        // What was committed before the subscription is not wanted, even if published after.
        None => (state.store.read(|conn| conn.last_seq()).await? + 1, Reading::Live),
    };
    Ok(Subscription {
        state: state.clone(),
        filter,
        live,
        next,
        stored: Vec::new().into_iter(),
        reading,
        pending_read: None,
        last_seen: Instant::now(),
        asking: false,
        cut_off: false,
        _slot: slot,
    })
}

impl Subscription {
    /// The next event; if the subscriber fell behind the bus and did not catch up within the
    /// stall limit, why it is cut off; then `None` (also at shutdown or when the store fails).
    pub async fn next(&mut self) -> Option<Next> {
        let was_asking = std::mem::replace(&mut self.asking, true);
        let stalled = !was_asking && self.last_seen.elapsed() > self.state.subscribers.stall_limit;
        let next = self.next_item(stalled.then_some(self.last_seen)).await;
        (self.asking, self.last_seen) = (false, Instant::now());
        next
    }

    /// `next`, for a client that stopped reading at `stopped_reading` for longer than the limit.
    async fn next_item(&mut self, stopped_reading: Option<Instant>) -> Option<Next> {
        let limit = self.state.subscribers.stall_limit;
        loop {
            if self.cut_off {
                return None;
            }
            if let Some(event) = self.stored.find(|event| self.filter.matches(event)) {
                return Some(Next::Event(Arc::new(event.into())));
            }
            if let Reading::Behind(since) = self.reading
                && since.elapsed() > limit
            {
                self.cut_off = true;
                let (limit, waiting) = (limit.as_millis(), self.live.len());
                tracing::info!("a subscriber stayed behind the live events for {limit} ms: disconnected");
                return Some(Next::Disconnected(format!(
                    "disconnected: too slow (behind the live events for {limit} ms, {waiting} and more waiting)"
                )));
            }
            if !matches!(self.reading, Reading::Live) {
                if !self.read_stored().await {
                    return None;
                }
                continue;
            }
            match self.live.recv().await {
                Ok(published) if published.event.seq < self.next => {}
                Ok(published) => {
                    self.next = published.event.seq + 1;
                    if self.filter.matches(&published.event) {
                        return Some(Next::Event(published));
                    }
                }
                // More than the bus holds went by: the store has them. Behind since it stopped
                // reading if it did (otherwise a burst outran it: since now).
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    self.reading = Reading::Behind(stopped_reading.unwrap_or_else(Instant::now));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// Read the next page of stored events; none left means caught up. False when the
    /// subscription must end: the store failed or the server is shutting down.
    async fn read_stored(&mut self) -> bool {
        if self.live.is_closed() {
            return false;
        }
        let (store, from) = (self.state.store.clone(), self.next);
        let read = self
            .pending_read
            .get_or_insert_with(|| Box::pin(async move { store.read(move |conn| conn.events_from(from, PAGE)).await }));
        let result = read.await;
        self.pending_read = None;
        match result {
            Ok(page) => {
                match page.last() {
                    Some(last) => self.next = last.seq + 1,
                    None => self.reading = Reading::Live,
                }
                self.stored = page.into_iter();
                true
            }
            Err(e) => {
                tracing::warn!("an event stream ended: reading the store failed: {e:#}");
                false
            }
        }
    }
}

#[cfg(all(test, feature = "mock-nodes"))]
mod tests {
    use super::*;
    use crate::event::{Delivery, Frame, Payload};
    use crate::mock_node::{Chain, Mix};
    use crate::store::{Location, NoPlugins, Writer};

    /// The stall limit in these tests: far longer than catching up on a burst from the store
    /// takes, even on a loaded machine.
    const LIMIT: Duration = Duration::from_secs(1);
    /// More events than the bus holds.
    const BURST: usize = 4096 + 100;

    /// An API over an empty store (a real SQLite file, in the directory returned), its writer,
    /// and a subscription to the events stored from now on.
    async fn subscribed() -> (tempfile::TempDir, AppState, Writer, Subscription) {
        let dir = tempfile::tempdir().unwrap();
        let location = Location::resolve(&dir.path().join("db").display().to_string()).unwrap();
        let writer = Writer::open(&location).unwrap();
        let state = AppState {
            store: crate::store::Store::new(location),
            bus: crate::bus::Bus::new(),
            role: crate::api::Role::Run,
            nodes: Arc::new([]),
            ingest: Default::default(),
            plugins: Default::default(),
            routes: Default::default(),
            shutdown: tokio::sync::watch::channel(()).1,
            started: Instant::now(),
            reload: Default::default(),
            subscribers: Arc::new(Subscribers::new(10, LIMIT)),
            response_times: super::super::metrics::response_times(),
            history: None,
        };
        let subscription = subscribe(&state, &StreamParams::default()).await.unwrap();
        (dir, state, writer, subscription)
    }

    /// Store `count` generated node events from the node's event `first_id` on, and publish
    /// them all at once, as the pipeline does a batch: without the subscribers' tasks running in
    /// between. Returns the last sequence.
    fn burst(state: &AppState, writer: &mut Writer, first_id: u32, count: usize) -> u64 {
        let chain = Chain::casper2(Mix::Realistic, 64);
        let node: Arc<str> = Arc::from("node");
        let batch: Vec<Delivery> = (first_id..)
            .filter_map(|id| {
                let mut json = String::new();
                chain.render(id, &mut json);
                match Frame::parse(json) {
                    Ok(Frame::Event(event)) => {
                        Some(Delivery::now(node.clone(), node.clone(), Some(id), Payload::Event(event)))
                    }
                    _ => None,
                }
            })
            .take(count)
            .collect();
        let stored = writer.append(&batch, &mut NoPlugins).unwrap();
        let last = stored.last().unwrap().0.seq;
        stored.into_iter().for_each(|(event, _)| state.bus.publish(event));
        last
    }

    /// Every event a subscription delivers up to `last`; panics if it is cut off first.
    async fn read_up_to(subscription: &mut Subscription, mut next: u64, last: u64) {
        while next <= last {
            match subscription.next().await {
                Some(Next::Event(published)) => assert_eq!(published.event.seq, next),
                Some(Next::Disconnected(reason)) => panic!("cut off at {next} of {last}: {reason}"),
                None => panic!("ended at {next} of {last}"),
            }
            next += 1;
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_burst_after_a_quiet_spell_does_not_cut_off_a_subscriber_that_was_waiting_for_it() {
        let (_dir, state, mut writer, mut subscription) = subscribed().await;
        // Waiting for the next live event, through a quiet spell longer than the stall limit...
        let mut waiting = Box::pin(subscription.next());
        assert!(futures::poll!(&mut waiting).is_pending());
        tokio::time::sleep(LIMIT * 3 / 2).await;
        // ... then passed by more than the bus holds before its task runs again.
        let last = burst(&state, &mut writer, 0, BURST);
        match waiting.await {
            Some(Next::Event(published)) => assert_eq!(published.event.seq, 1),
            Some(Next::Disconnected(reason)) => panic!("a subscriber that was waiting was cut off: {reason}"),
            None => panic!("the subscription ended"),
        }
        read_up_to(&mut subscription, 2, last).await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_wait_given_up_inside_a_select_counts_as_waiting() {
        let (_dir, state, mut writer, mut subscription) = subscribed().await;
        // As a WebSocket session does when its ping tick comes first: the wait is dropped.
        let waited = tokio::time::timeout(LIMIT * 3 / 2, subscription.next()).await;
        assert!(waited.is_err(), "nothing was published");
        let last = burst(&state, &mut writer, 0, BURST);
        read_up_to(&mut subscription, 1, last).await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_subscriber_that_stops_asking_while_a_burst_passes_it_is_cut_off_and_told_why() {
        let (_dir, state, mut writer, mut subscription) = subscribed().await;
        let last = burst(&state, &mut writer, 0, 10);
        read_up_to(&mut subscription, 1, last).await;
        // It does not ask for more for longer than the limit, while more than the bus holds pass.
        tokio::time::sleep(LIMIT * 3 / 2).await;
        burst(&state, &mut writer, 1000, BURST);
        match subscription.next().await {
            Some(Next::Disconnected(reason)) => assert!(reason.contains("too slow"), "{reason}"),
            Some(Next::Event(published)) => panic!("not cut off: got {}", published.event.seq),
            None => panic!("ended without saying why"),
        }
        assert!(subscription.next().await.is_none(), "nothing after the reason");
    }
}
