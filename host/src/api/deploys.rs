//! The Casper Event Store's deploys: `GET /deploy/{hash}` and
//! `GET /accountDeploys/{account}?page=&limit=` (`account`: a public key or an account hash).
//! Both kinds of transaction are served: 1.x deploys and 2.x transactions.

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::params::{ApiQuery, Pages, account_param};
use super::transactions::Stage;
use crate::store::StoredEvent;
use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use serde_json::Value;

/// A deploy as the Event Store describes it.
#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct DeployView {
    deploy_hash: String,
    /// The sender as the node named it: a public key, or `account-hash-…`.
    account: Option<String>,
    /// `accepted`, `processed` or `expired`.
    state: &'static str,
    /// Motes, as the node's decimal string.
    cost: Option<String>,
    error_message: Option<String>,
    block_hash: Option<String>,
    timestamp: Option<String>,
}

impl DeployView {
    /// What `events` (a transaction's, oldest first) say of it.
    fn of(hash: &str, events: &[StoredEvent]) -> DeployView {
        let mut view = DeployView { deploy_hash: hash.to_owned(), ..DeployView::default() };
        for event in events {
            let Ok(json) = serde_json::from_str::<Value>(&event.raw) else { continue };
            let Some(body) = json.get(&event.kind) else { continue };
            let text = |pointer: &str| body.pointer(pointer).and_then(Value::as_str).map(str::to_owned);
            match Stage::of(&event.kind) {
                Some(Stage::Accepted) => {
                    let transaction = body.get("Version1").or_else(|| body.get("Deploy")).unwrap_or(body);
                    let text = |pointer: &str| transaction.pointer(pointer).and_then(Value::as_str).map(str::to_owned);
                    view.account =
                        text("/header/account").or_else(|| initiator(transaction.pointer("/payload/initiator_addr")));
                    view.timestamp = text("/header/timestamp").or_else(|| text("/payload/timestamp"));
                    view.state = "accepted";
                }
                Some(Stage::Processed) => {
                    view.account = text("/account").or_else(|| initiator(body.get("initiator_addr"))).or(view.account);
                    view.timestamp = text("/timestamp").or(view.timestamp);
                    view.block_hash = text("/block_hash");
                    let result = body.get("execution_result").map(execution_result).unwrap_or_default();
                    (view.cost, view.error_message) = result;
                    view.state = "processed";
                }
                Some(Stage::Expired) => view.state = "expired",
                None => {}
            }
        }
        view
    }
}

/// 2.x's `initiator_addr`: `{"PublicKey": …}` or `{"AccountHash": …}`.
fn initiator(address: Option<&Value>) -> Option<String> {
    address?.as_object()?.values().next()?.as_str().map(str::to_owned)
}

/// Cost and error message of an execution result: 2.x `{"Version2": {cost, error_message}}`,
/// or 1.x `{"Success": {cost}}` / `{"Failure": {cost, error_message}}` (bare or in `Version1`).
fn execution_result(result: &Value) -> (Option<String>, Option<String>) {
    let result = result.get("Version2").or_else(|| result.get("Version1")).unwrap_or(result);
    let outcome = result.get("Success").or_else(|| result.get("Failure")).unwrap_or(result);
    let text = |field: &str| outcome.get(field).and_then(Value::as_str).map(str::to_owned);
    (text("cost"), text("error_message"))
}

/// One deploy or transaction (404 when nothing is stored about it).
#[utoipa::path(get, path = "/deploy/{hash}", tag = "transactions",
    params(("hash" = String, Path, description = "Deploy or transaction hash", pattern = "^(.*-)?[0-9a-fA-F]{64}$")),
    responses((status = 200, description = "The Casper Event Store's deploy: `{deployHash, account, state, cost, errorMessage, blockHash, timestamp}`"), (status = 400, description = "A malformed parameter", body = ErrorBody), (status = 404, description = "Nothing stored under that name", body = ErrorBody)))]
pub async fn by_hash(State(state): State<AppState>, Path(hash): Path<String>) -> Result<Json<Value>, ApiError> {
    let events = super::transactions::events(&state, &hash).await?;
    let events: Vec<StoredEvent> = events.into_iter().map(|(event, _)| event).collect();
    Ok(Json(serde_json::to_value(DeployView::of(&hash.to_lowercase(), &events))?))
}

/// Query parameters of `/accountDeploys/{account}`.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AccountDeploysQuery {
    /// From 1 (default 1).
    #[param(minimum = 1)]
    #[serde(default, deserialize_with = "super::params::int64")]
    page: Option<u64>,
    /// Deploys per page, 1 to 100 (default 10).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u64>,
}

/// The deploys and transactions an account sent, newest first, in the Event Store's page shape.
#[utoipa::path(get, path = "/accountDeploys/{account}", tag = "transactions",
    params(("account" = String, Path, description = "Public key or account hash", pattern = "^((account-hash-)?[0-9a-fA-F]{64}|01[0-9a-fA-F]{64}|02[0-9a-fA-F]{66})$"), AccountDeploysQuery),
    responses((status = 200, description = "A page of the account's deploys, newest first (Event Store page shape)"), (status = 400, description = "A malformed parameter", body = ErrorBody)))]
pub async fn of_account(
    State(state): State<AppState>,
    Path(account): Path<String>,
    ApiQuery(query): ApiQuery<AccountDeploysQuery>,
) -> Result<Json<Value>, ApiError> {
    let account_hash = account_param(&account)?;
    let pages = Pages::new(query.page, query.limit)?;
    let (deploys, count) = state
        .store
        .read(move |conn| {
            let (hashes, count) = conn.account_transactions(&account_hash, pages.page, pages.limit)?;
            let deploys = hashes
                .iter()
                .map(|hash| Ok(DeployView::of(hash, &conn.transaction_events(hash)?)))
                .collect::<anyhow::Result<Vec<_>>>()?;
            Ok((deploys, count))
        })
        .await?;
    Ok(Json(serde_json::to_value(pages.body(deploys, count, &format!("/accountDeploys/{account}"), ""))?))
}
