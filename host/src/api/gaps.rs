//! `GET /gaps`: ranges of node event ids that were gone from the node's buffer when asked for,
//! their backfill, and what a backfill cannot rebuild.

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::params::{ApiQuery, limit_param};
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

/// Query parameters of `/gaps`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct GapsQuery {
    /// Most gaps returned, newest first (1 to 1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u64>,
}

/// The most recent gaps.
#[utoipa::path(get, path = "/gaps", tag = "status",
    params(GapsQuery),
    responses((status = 200, description = "Node event ids that were gone when asked for, and their backfill"), (status = 400, description = "A malformed parameter", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<GapsQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = limit_param(query.limit, 100, 1000)? as usize;
    let gaps = state.store.read(move |conn| conn.gaps(limit)).await?;
    let gaps: Vec<Value> = gaps
        .into_iter()
        .map(|gap| {
            let mut json = json!(gap);
            if gap.backfilled_at_ms.is_some() {
                json["not_rebuilt"] = json!(not_rebuilt(&gap.stream));
            }
            json
        })
        .collect();
    Ok(Json(json!({ "gaps": gaps })))
}

/// What a backfilled gap of `stream` still lacks: what a node's JSON-RPC answers do not hold
/// (`backfill_note` says what else failed).
fn not_rebuilt(stream: &str) -> &'static [&'static str] {
    match stream.contains('/') {
        // A 1.x node's streams are `name/main`, `name/deploys`, `name/sigs`.
        true => &["DeployExpired", "Fault", "Step"],
        false => &["TransactionExpired", "Fault", "Step", "TransactionProcessed.messages"],
    }
}
