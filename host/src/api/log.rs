//! `GET /events` as REST (`?from_seq=&limit=&types=&account=&transaction=`): a page of the
//! raw log, oldest first, with the sequence to ask for next. `events.rs` decides which of the
//! two a request to `/events` wants.

use super::AppState;
use super::error::ApiError;
use super::params::{account_param, hash_param, limit_param};
use super::views::EventView;
use crate::store::reader::{self, LogQuery};
use axum::Json;
use serde::{Deserialize, Serialize};

/// Query parameters of a log page.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LogParams {
    /// First sequence number wanted (default 1).
    from_seq: Option<u64>,
    /// Events per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u64>,
    /// Event types, comma-separated (`type` is the same).
    #[serde(alias = "type")]
    types: Option<String>,
    /// Transactions sent by this account (a public key or an account hash).
    #[param(pattern = "^((account-hash-)?[0-9a-fA-F]{64}|01[0-9a-fA-F]{64}|02[0-9a-fA-F]{66})$")]
    account: Option<String>,
    /// One transaction's events.
    #[param(pattern = "^(.*-)?[0-9a-fA-F]{64}$")]
    transaction: Option<String>,
}

/// A page: `{"data": [event views], "next_from_seq": N}`; asking again from `next_from_seq`
/// continues after the page (or waits for new events, when the page reached the end).
pub async fn page(state: &AppState, params: LogParams) -> Result<Json<LogPage>, ApiError> {
    let kinds: Vec<String> = match &params.types {
        Some(list) => list.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect(),
        None => Vec::new(),
    };
    if params.types.is_some() && kinds.is_empty() {
        return Err(ApiError::bad_request("invalid_types", "types lists no event type"));
    }
    let query = LogQuery {
        from_seq: params.from_seq.unwrap_or(1),
        kinds,
        account: params.account.as_deref().map(account_param).transpose()?,
        transaction: params.transaction.as_deref().map(|t| hash_param("transaction", t)).transpose()?,
        limit: limit_param(params.limit, 100, 1000)? as usize,
    };
    let from_seq = query.from_seq;
    let events = state
        .store
        .read(move |conn| {
            let events = reader::log_page(conn, &query)?;
            reader::all_with_seen_by(conn, events)
        })
        .await?;
    let next_from_seq = events.last().map_or(from_seq, |(last, _)| last.seq + 1);
    let data = events.iter().map(EventView::of).collect::<anyhow::Result<Vec<_>>>()?;
    let data = serde_json::value::to_raw_value(&data)?;
    Ok(Json(LogPage { data, next_from_seq }))
}

/// A page of the log: serialized as it is, so events' JSON goes out as stored.
#[derive(Serialize)]
pub struct LogPage {
    data: Box<serde_json::value::RawValue>,
    next_from_seq: u64,
}
