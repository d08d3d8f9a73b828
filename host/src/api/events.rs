//! `GET /events?start_from=N`: the SSE firehose, replayed from the store, then live, with
//! optional filters (`types`, `contract`, `package`, `name`, `transaction`).

use super::AppState;
use super::error::{ApiError, ApiQuery};
use super::filter::{EventFilter, StreamParams};
use crate::store::{StoredEvent, reader};
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

/// Events read from the store per query while catching up.
const PAGE: usize = 512;

/// Stream events as `id: <sequence>` / `data: <node JSON>` frames.
pub async fn firehose(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<StreamParams>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let plugins: Vec<String> = state.plugins.read().expect("registry lock").iter().map(|p| p.name.clone()).collect();
    let filter = EventFilter::new(&query, &plugins)?;
    let live = state.bus.subscribe();
    let next = match query.start_from {
        Some(seq) => seq,
        None => state.store.read(reader::last_seq).await? + 1,
    };
    let (sender, receiver) = mpsc::channel(PAGE);
    let mut shutdown = state.shutdown.clone();
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
    let frames = ReceiverStream::new(receiver)
        .map(|event: Arc<StoredEvent>| Ok(Event::default().id(event.seq.to_string()).data(&*event.raw)));
    Ok(Sse::new(frames).keep_alive(KeepAlive::default()))
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
