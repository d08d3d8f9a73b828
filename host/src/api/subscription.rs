//! A subscription to the event log: the stored events from a starting sequence, then live ones
//! from the bus, through a filter, with no gap or repeat at the seam. The SSE and WebSocket
//! streams are two renderings of it.

use super::AppState;
use super::error::ApiError;
use super::filter::{EventFilter, StreamParams};
use crate::store::{StoredEvent, reader};
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};

/// Events read from the store per query while catching up (and buffered per subscriber).
const PAGE: usize = 512;

/// Start a subscription as `params` ask (400 for bad filters): its events arrive on the
/// receiver until it is dropped or the server shuts down.
pub async fn subscribe(state: &AppState, params: &StreamParams) -> Result<mpsc::Receiver<Arc<StoredEvent>>, ApiError> {
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
