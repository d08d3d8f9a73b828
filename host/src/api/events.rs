//! `GET /events?start_from=N`: the SSE firehose, replayed from the store, then live, with
//! optional filters (`types`, `contract`, `package`, `name`, `transaction`, `account`,
//! `filter`). Like a node, it starts with `{"ApiVersion": …}` (without an id): the API version
//! a source reported. A request for JSON gets a page of the log instead (`log.rs`).

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::filter::StreamParams;
use super::legacy::{self, Channel};
use super::params::ApiQuery;
use super::sse;
use super::subscription::Next;
use crate::bus::Published;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

/// A page of the log as JSON when the request names a page (`from_seq` or `limit`) or accepts
/// JSON and not an event stream; the SSE firehose otherwise.
#[utoipa::path(get, path = "/events", tag = "streams",
    params(StreamParams,
        ("Last-Event-ID" = Option<u64>, Header, nullable = false, description = "Resume after this id (what an EventSource sends when it reconnects); takes precedence over `start_from`"),
        ("from_seq" = Option<u64>, Query, description = "A JSON page of the log from this sequence (instead of the stream)"),
        ("limit" = Option<u64>, Query, description = "Events per JSON page, 1 to 1000 (default 100)", minimum = 1, maximum = 1000)),
    responses(
        (status = 200, description = "`text/event-stream`: `id: <sequence>` and `data: <node JSON>` frames, after `{\"ApiVersion\"}`; or, when asked for JSON or given `from_seq`/`limit`, a page `{data, next_from_seq}`"),
        (status = 400, description = "A malformed parameter", body = ErrorBody),
        (status = 404, description = "`filter` names no attached filter", body = ErrorBody),
        (status = 503, description = "`max_subscribers` streams are open", body = ErrorBody)))]
pub async fn serve(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Result<Response, ApiError> {
    // The page's own parameters apart; the filters are the stream's, in both modes.
    let (page, filters) = split_query(uri.query().unwrap_or_default());
    let ApiQuery(params) = ApiQuery::<StreamParams>::from_query(&filters)?;
    let params = resuming(params, &headers)?;
    if wants_page(&headers, &uri) {
        let ApiQuery(page) = ApiQuery::from_query(&page)?;
        return Ok(super::log::page(&state, page, params).await?.into_response());
    }
    stream(&state, &params, firehose_frame).await
}

/// A query string split into the JSON page's parameters (`from_seq`, `limit`) and the rest.
fn split_query(query: &str) -> (String, String) {
    let (page, rest): (Vec<&str>, Vec<&str>) =
        query.split('&').filter(|pair| !pair.is_empty()).partition(|pair| is_page_parameter(pair));
    (page.join("&"), rest.join("&"))
}

fn is_page_parameter(pair: &str) -> bool {
    matches!(pair.split('=').next(), Some("from_seq" | "limit"))
}

/// The Casper 1.x event streams (`main`, `deploys`, `sigs`: 2.x events in their 1.x shapes).
#[utoipa::path(get, path = "/events/{channel}", tag = "streams",
    params(("channel" = String, Path, description = "`main`, `deploys` or `sigs`", pattern = "^(main|deploys|sigs)$"), StreamParams,
        ("Last-Event-ID" = Option<u64>, Header, nullable = false, description = "Resume after this id; takes precedence over `start_from`")),
    responses(
        (status = 200, description = "`text/event-stream` of 1.x-shaped events, ids being Sluice's sequence numbers"),
        (status = 400, description = "A malformed parameter", body = ErrorBody),
        (status = 404, description = "No such channel, or `filter` names no attached filter", body = ErrorBody),
        (status = 503, description = "`max_subscribers` streams are open", body = ErrorBody)))]
pub async fn channel(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<StreamParams>,
) -> Result<Response, ApiError> {
    let channel = match channel.as_str() {
        "main" => Channel::Main,
        "deploys" => Channel::Deploys,
        "sigs" => Channel::Sigs,
        _ => return Err(ApiError::not_found(format!("no event channel {channel:?}"))),
    };
    let params = resuming(params, &headers)?.within_types(channel.kinds(), legacy::v1_name);
    stream(&state, &params, v1_frame).await
}

/// `params`, resumed after a `Last-Event-ID` when the client sends one: what an `EventSource`
/// does when it reconnects (with the URL it first asked, `start_from` and all), so it takes
/// precedence. Ids are sequence numbers; any other id is a 400.
fn resuming(mut params: StreamParams, headers: &HeaderMap) -> Result<StreamParams, ApiError> {
    if let Some(last) = headers.get("last-event-id") {
        let id = last.to_str().ok().and_then(|id| id.trim().parse::<u64>().ok());
        let last = id.filter(|&id| id <= i64::MAX as u64).ok_or_else(|| {
            ApiError::bad_request("invalid_last_event_id", "Last-Event-ID is not an id this server sent")
        })?;
        params.start_from = Some(last.saturating_add(1));
    }
    Ok(params)
}

fn wants_page(headers: &HeaderMap, uri: &Uri) -> bool {
    let names_a_page = uri.query().unwrap_or_default().split('&').any(is_page_parameter);
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    names_a_page || (accept.contains("application/json") && !accept.contains("text/event-stream"))
}

/// How a stream sends an event: its frame, or nothing to skip it.
type Render = fn(&Published) -> Option<Bytes>;

/// The firehose's frame: the node's JSON, rendered once per event for every subscriber.
fn firehose_frame(published: &Published) -> Option<Bytes> {
    let event = &published.event;
    Some(published.firehose_frame.get_or_init(|| sse::frame(Some(event.seq), &event.raw)).clone())
}

/// A 1.x channel's frame: the event in its 1.x shape, if it has one.
fn v1_frame(published: &Published) -> Option<Bytes> {
    let event = &published.event;
    legacy::to_v1(&event.kind, &event.raw).map(|data| sse::frame(Some(event.seq), &data))
}

/// Stream events as `id: <sequence>` / `data: <JSON>` frames, after the `ApiVersion` one; when
/// Sluice stops, a last `"Shutdown"` frame, as a node sends before it stops.
async fn stream(state: &AppState, query: &StreamParams, render: Render) -> Result<Response, ApiError> {
    let subscription = super::subscription::subscribe(state, query).await?;
    let version = state.nodes.iter().find_map(|node| node.api_version.lock().expect("status lock").clone());
    let greeting = version.map(|v| sse::frame(None, &serde_json::json!({"ApiVersion": v}).to_string()));
    let shutdown = state.shutdown.clone();
    let events = futures::stream::unfold(Some(subscription), move |subscription| {
        let shutdown = shutdown.clone();
        async move {
            let mut subscription = subscription?;
            loop {
                let frame = match subscription.next().await {
                    Some(Next::Event(published)) => match render(&published) {
                        Some(frame) => frame,
                        None => continue,
                    },
                    // A comment, as the last thing the client reads.
                    Some(Next::Disconnected(reason)) => sse::comment(&reason),
                    // The bus closed: Sluice is stopping (its shutdown signal is gone by then).
                    None if shutdown.has_changed().is_err() => {
                        return Some((sse::frame(None, "\"Shutdown\""), None));
                    }
                    None => return None,
                };
                return Some((frame, Some(subscription)));
            }
        }
    });
    Ok(sse::response(futures::stream::iter(greeting).chain(events)))
}
