//! `GET /events?start_from=N`: the SSE firehose, replayed from the store, then live, with
//! optional filters (`types`, `contract`, `package`, `name`, `transaction`, `account`,
//! `filter`). Like a node, it starts with `{"ApiVersion": …}` (without an id): the API version
//! a source reported. A request for JSON gets a page of the log instead (`log.rs`).

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::log::LogParams;
use super::filter::StreamParams;
use super::params::ApiQuery;
use super::subscription::Next;
use axum::extract::State;
use axum::http::{HeaderMap, Uri, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use std::convert::Infallible;
use tokio_stream::StreamExt;

/// A page of the log as JSON when the request names a page (`from_seq` or `limit`) or accepts
/// JSON and not an event stream; the SSE firehose otherwise.
#[utoipa::path(get, path = "/events", tag = "streams",
    params(StreamParams, LogParams),
    responses(
        (status = 200, description = "`text/event-stream`: `id: <sequence>` and `data: <node JSON>` frames, after `{\"ApiVersion\"}`; or, when asked for JSON or given `from_seq`/`limit`, a page `{data, next_from_seq}`"),
        (status = 400, description = "A malformed parameter", body = ErrorBody),
        (status = 503, description = "`max_subscribers` streams are open", body = ErrorBody)))]
pub async fn serve(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Result<Response, ApiError> {
    if wants_page(&headers, &uri) {
        let ApiQuery(params) = ApiQuery::from_uri(&uri)?;
        return Ok(super::log::page(&state, params).await?.into_response());
    }
    let ApiQuery(params) = ApiQuery::from_uri(&uri)?;
    Ok(firehose(&state, &params).await?.into_response())
}

fn wants_page(headers: &HeaderMap, uri: &Uri) -> bool {
    let query = uri.query().unwrap_or_default();
    let names_a_page = query.split('&').any(|pair| matches!(pair.split('=').next(), Some("from_seq" | "limit")));
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    names_a_page || (accept.contains("application/json") && !accept.contains("text/event-stream"))
}

/// Stream events as `id: <sequence>` / `data: <node JSON>` frames, after the `ApiVersion` one.
async fn firehose(
    state: &AppState,
    query: &StreamParams,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>> + use<>>, ApiError> {
    let subscription = super::subscription::subscribe(state, query).await?;
    let version = state.nodes.iter().find_map(|node| node.api_version.lock().expect("status lock").clone());
    let greeting = version.map(|v| Ok(Event::default().data(serde_json::json!({"ApiVersion": v}).to_string())));
    let frames = futures::stream::unfold(subscription, |mut subscription| async move {
        let frame = match subscription.next().await? {
            Next::Event(event) => Event::default().id(event.seq.to_string()).data(&*event.raw),
            // A comment, as the last thing the client reads.
            Next::Disconnected(reason) => Event::default().comment(reason),
        };
        Some((Ok(frame), subscription))
    });
    let frames = tokio_stream::iter(greeting).chain(frames);
    Ok(Sse::new(frames).keep_alive(KeepAlive::default()))
}
