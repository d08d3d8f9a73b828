//! `GET /events?start_from=N`: the SSE firehose, replayed from the store, then live, with
//! optional filters (`types`, `contract`, `package`, `name`, `transaction`, `filter`).

use super::AppState;
use super::error::{ApiError, ApiQuery};
use super::filter::StreamParams;
use crate::store::StoredEvent;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use std::convert::Infallible;
use std::sync::Arc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

/// Stream events as `id: <sequence>` / `data: <node JSON>` frames.
pub async fn firehose(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<StreamParams>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let events = super::subscription::subscribe(&state, &query).await?;
    let frames = ReceiverStream::new(events)
        .map(|event: Arc<StoredEvent>| Ok(Event::default().id(event.seq.to_string()).data(&*event.raw)));
    Ok(Sse::new(frames).keep_alive(KeepAlive::default()))
}
