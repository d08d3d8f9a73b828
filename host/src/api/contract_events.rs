//! `GET /contract-events`: contract events by contract, package, name and transaction, newest
//! first, with cursor pagination.

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::params::{ApiQuery, hash_param};
use crate::store::{StoredEvent, contract_events};
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

/// Events per page unless `limit` says otherwise.
const DEFAULT_LIMIT: usize = 50;
/// Most events per page.
const MAX_LIMIT: usize = 1000;

/// Query parameters of `/contract-events`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ContractEventsQuery {
    /// Contract hash.
    #[param(pattern = "^(.*-)?[0-9a-fA-F]{64}$")]
    contract: Option<String>,
    /// Contract package hash.
    #[param(pattern = "^(.*-)?[0-9a-fA-F]{64}$")]
    package: Option<String>,
    /// Event name.
    name: Option<String>,
    /// Transaction or deploy hash.
    #[param(pattern = "^(.*-)?[0-9a-fA-F]{64}$")]
    transaction: Option<String>,
    /// Events per page, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    cursor: Option<String>,
}

/// A page of contract events: `{"data": [...], "next_cursor": "…" | null}`.
#[utoipa::path(get, path = "/contract-events", tag = "contract events",
    params(ContractEventsQuery),
    responses((status = 200, description = "A page of contract events, newest first: `{data, next_cursor}`"), (status = 400, description = "A malformed parameter", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ContractEventsQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request("invalid_limit", format!("limit must be 1 to {MAX_LIMIT}")));
    }
    let before = match query.cursor.as_deref() {
        Some(cursor) => {
            Some(cursor.parse().map_err(|_| ApiError::bad_request("invalid_cursor", "not a cursor from next_cursor"))?)
        }
        None => None,
    };
    let wanted = contract_events::Query {
        contract: query.contract.as_deref().map(|h| hash_param("contract", h)).transpose()?,
        package: query.package.as_deref().map(|h| hash_param("package", h)).transpose()?,
        name: query.name,
        transaction: query.transaction.as_deref().map(|h| hash_param("transaction", h)).transpose()?,
        before,
        limit,
    };
    let page = state.store.read(move |conn| conn.contract_events(&wanted)).await?;
    let next_cursor = match page.last() {
        Some((last, _)) if page.len() == limit => Some(last.seq.to_string()),
        _ => None,
    };
    let data: Vec<Value> = page.iter().map(|(event, height)| view(event, *height)).collect();
    Ok(Json(json!({ "data": data, "next_cursor": next_cursor })))
}

/// One contract event in one shape, whether a decoder or CSPR.cloud delivered it.
fn view(event: &StoredEvent, block_height: Option<u64>) -> Value {
    let raw: Value = serde_json::from_str(&event.raw).unwrap_or_default();
    let mut view = match raw.get(crate::event::CONTRACT_EVENT) {
        Some(decoded) => decoded.clone(),
        None => {
            // CSPR.cloud: {"data": {contract_package_hash, contract_hash, name, data, raw_data},
            // "extra": {deploy_hash, event_id, transform_id}, "timestamp"}
            let mut view = raw["data"].clone();
            let extra = &raw["extra"];
            if let Some(fields) = view.as_object_mut() {
                fields.insert("transaction_hash".into(), extra["deploy_hash"].clone());
                fields.insert("event_id".into(), extra["event_id"].clone());
                fields.insert("transform_id".into(), extra["transform_id"].clone());
                fields.insert("timestamp".into(), raw["timestamp"].clone());
            }
            view
        }
    };
    let Some(fields) = view.as_object_mut() else { return json!({"sequence": event.seq, "event": raw}) };
    fields.insert("sequence".into(), event.seq.into());
    fields.insert("delivered_by".into(), event.node.clone().into());
    if fields.get("block_height").is_none_or(Value::is_null) {
        fields.insert("block_height".into(), block_height.into());
    }
    view
}
