//! `GET /events` as REST: a page of the log, oldest first, with the sequence to ask for next.
//! `events.rs` decides which of the two a request to `/events` wants; a page takes the stream's
//! filters too (`types`, `account` and `transaction` are read through indexes, the others
//! applied to what is read).

use super::AppState;
use super::error::ApiError;
use super::filter::{EventFilter, StreamParams};
use super::params::limit_param;
use super::views::EventView;
use crate::store::read::LogQuery;
use axum::Json;
use serde::{Deserialize, Serialize};

/// Where a page starts and how long it is.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    /// First sequence number wanted (default: `start_from`, else 1).
    #[serde(default, deserialize_with = "super::params::int64")]
    pub from_seq: Option<u64>,
    /// Events per page, 1 to 1000 (default 100).
    pub limit: Option<u64>,
}

/// A page: `{"data": [event views], "next_from_seq": N}`; asking again from `next_from_seq`
/// continues after the page (or waits for new events, when the page reached the end). With
/// filters an index cannot serve (`contract`, `package`, `name`, `filter`), a page may hold
/// fewer than `limit` events and still not be the last.
pub async fn page(state: &AppState, page: PageParams, stream: StreamParams) -> Result<Json<LogPage>, ApiError> {
    let attached: Vec<String> = {
        let registry = state.plugins.read().expect("registry lock");
        registry.iter().filter(|p| p.attached).map(|p| p.name.clone()).collect()
    };
    let filter = EventFilter::new(&stream, &attached)?;
    let (kinds, account, transaction) = filter.indexed();
    let from_seq = page.from_seq.or(stream.start_from).unwrap_or(1);
    let query = LogQuery { from_seq, kinds, account, transaction, limit: limit_param(page.limit, 100, 1000)? as usize };
    let events = state
        .store
        .read(move |conn| {
            let events = conn.log_page(&query)?;
            conn.all_with_seen_by(events)
        })
        .await?;
    let next_from_seq = events.last().map_or(from_seq, |(last, _)| last.seq + 1);
    let kept: Vec<_> = events.iter().filter(|(event, _)| filter.matches(event)).collect();
    let data = kept.into_iter().map(EventView::of).collect::<anyhow::Result<Vec<_>>>()?;
    let data = serde_json::value::to_raw_value(&data)?;
    Ok(Json(LogPage { data, next_from_seq }))
}

/// A page of the log: serialized as it is, so events' JSON goes out as stored.
#[derive(Serialize)]
pub struct LogPage {
    data: Box<serde_json::value::RawValue>,
    next_from_seq: u64,
}
