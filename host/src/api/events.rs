//! `GET /events?start_from=N`: the SSE firehose, replayed from the store, then live, with
//! optional filters (`types`, `contract`, `package`, `name`, `transaction`, `filter`). Like a
//! node, it starts with `{"ApiVersion": …}` (without an id): the API version a source reported.

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

/// Stream events as `id: <sequence>` / `data: <node JSON>` frames, after the `ApiVersion` one.
pub async fn firehose(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<StreamParams>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let events = super::subscription::subscribe(&state, &query).await?;
    let version = state.nodes.iter().find_map(|node| node.api_version.lock().expect("status lock").clone());
    let greeting = version.map(|v| Ok(Event::default().data(serde_json::json!({"ApiVersion": v}).to_string())));
    let frames = ReceiverStream::new(events)
        .map(|event: Arc<StoredEvent>| Ok(Event::default().id(event.seq.to_string()).data(&*event.raw)));
    let frames = tokio_stream::iter(greeting).chain(frames);
    Ok(Sse::new(frames).keep_alive(KeepAlive::default()))
}
