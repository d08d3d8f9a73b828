//! The mock node's JSON-RPC, `POST /rpc`: what Sluice's history sync and gap backfill ask a
//! node for, answered from the generated chain like a node would: `info_get_status` (the chain's
//! name, the last block), `chain_get_block` (by height, or the last one; with the finality
//! signatures as proofs), then `info_get_transaction` (2.x) or `info_get_deploy` (1.x) for each
//! transaction the block lists; and `query_global_state` over the state given with `--state`
//! (what plugins ask). `--rpc-latency-ms` delays every answer; `--rpc-flaky-every` and
//! `--rpc-missing-every` make some heights fail;
//! `GET /rpc-requests` (not a node's) counts the `chain_get_block` requests per height.

use super::chain::{Chain, FIRST_HEIGHT, Part, Processed};
use super::generator::CHAIN_NAME;
use super::{Node, Protocol};
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// A JSON-RPC error: code and message.
type RpcError = (i64, String);

/// How long a flaky height's second request stalls before it answers.
const STALL: Duration = Duration::from_secs(3);

/// Answer one JSON-RPC request.
pub async fn rpc(State(node): State<Arc<Node>>, Json(request): Json<Value>) -> Response {
    if node.options.rpc_latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(node.options.rpc_latency_ms)).await;
    }
    let (params, id) = (&request["params"], request["id"].clone());
    let method = request["method"].as_str();
    let height = params["block_identifier"]["Height"].as_u64().filter(|_| method == Some("chain_get_block"));
    match height.and_then(|height| node.rpc_fault(height)) {
        Some(Fault::Garbage) => return "<html>502 Bad Gateway</html>".into_response(),
        Some(Fault::Stall) => tokio::time::sleep(STALL).await,
        Some(Fault::Missing) => return answer(id, Err(no_such("block", height.unwrap_or_default()))),
        None => {}
    }
    let result = match method {
        Some("info_get_status") => Ok(get_status(&node).to_string()),
        Some("chain_get_block") => get_block(&node, params),
        Some("info_get_transaction") if node.options.protocol == Protocol::V2 => get_transaction(&node, params),
        Some("info_get_deploy") if node.options.protocol == Protocol::V1 => get_deploy(&node, params),
        Some("query_global_state") => query_global_state(&node, params).map(|value| value.to_string()),
        other => Err((-32601, format!("method not found: {other:?}"))),
    };
    answer(id, result)
}

/// The JSON-RPC answer to request `id`, its result given as JSON text. The answers are written
/// from the generated events' text, not built as `Value`s: on the benchmark's shared cores the
/// mock's own work counts against Sluice's (BENCHMARKS.md, history sync).
fn answer(id: Value, result: Result<String, RpcError>) -> Response {
    match result {
        Ok(result) => {
            let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#);
            ([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Err((code, message)) => {
            Json(json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})).into_response()
        }
    }
}

/// What a faulty height's request gets.
pub enum Fault {
    /// Not JSON at all (a proxy's error page).
    Garbage,
    /// The answer, [`STALL`] late.
    Stall,
    /// The node's "no such block" error, every time.
    Missing,
}

impl Node {
    /// Count a `chain_get_block` request for `height` and say how it fails, if it does: a
    /// flaky height answers garbage, then late, then right; a missing one never.
    fn rpc_fault(&self, height: u64) -> Option<Fault> {
        let requests = {
            let mut log = self.rpc_requests.lock().expect("mock lock");
            let count = log.entry(height).or_default();
            *count += 1;
            *count
        };
        let nth = |every: Option<u64>| {
            every.is_some_and(|n| n > 0 && height >= FIRST_HEIGHT && (height - FIRST_HEIGHT) % n == n - 1)
        };
        if nth(self.options.rpc_missing_every) {
            return Some(Fault::Missing);
        }
        match (nth(self.options.rpc_flaky_every), requests) {
            (true, 1) => Some(Fault::Garbage),
            (true, 2) => Some(Fault::Stall),
            _ => None,
        }
    }
}

/// `GET /rpc-requests`: `chain_get_block` requests so far, per height.
pub async fn requests(State(node): State<Arc<Node>>) -> Json<Value> {
    let log = node.rpc_requests.lock().expect("mock lock");
    Json(json!(log.iter().map(|(height, count)| (height.to_string(), json!(count))).collect::<serde_json::Map<_, _>>()))
}

/// The blocks produced so far on the stream that carries them.
fn blocks_produced(node: &Node) -> u64 {
    let chain = &node.streams[0].1;
    chain.blocks_before(node.head(chain))
}

/// `info_get_status`: the chain's name, the last block produced, the range of blocks held.
fn get_status(node: &Node) -> Value {
    let produced = blocks_produced(node);
    let last = produced.checked_sub(1).map(|b| {
        let block = node.streams[0].1.block(b);
        json!({"hash": block.hash, "height": FIRST_HEIGHT + b})
    });
    json!({
        "api_version": node.api_version(),
        "chainspec_name": CHAIN_NAME,
        "build_version": format!("{}-sluice-mock", node.api_version()),
        "last_added_block_info": last,
        "available_block_range": {"low": FIRST_HEIGHT, "high": (FIRST_HEIGHT + produced).saturating_sub(1)},
    })
}

/// `{"block_identifier": {"Height": h}}` → the generated block at that height, if produced;
/// without an identifier, the last one.
fn get_block(node: &Node, params: &Value) -> Result<String, RpcError> {
    let produced = blocks_produced(node);
    let height = match params.get("block_identifier") {
        None | Some(Value::Null) => FIRST_HEIGHT + produced.checked_sub(1).ok_or(no_such("block", "yet"))?,
        Some(identifier) => identifier["Height"].as_u64().ok_or((-32602, "expected a Height".to_owned()))?,
    };
    let block_index = height.checked_sub(FIRST_HEIGHT).filter(|b| *b < produced).ok_or(no_such("block", height))?;
    let generated = node.streams[0].1.block(block_index);
    #[derive(Deserialize)]
    struct Event<'a> {
        #[serde(borrow, rename = "BlockAdded")]
        added: Added<'a>,
    }
    #[derive(Deserialize)]
    struct Added<'a> {
        #[serde(borrow)]
        block: &'a RawValue,
    }
    let event: Event = serde_json::from_str(&generated.block_added).map_err(|e| (-32000, e.to_string()))?;
    let block = event.added.block;
    let mut known = node.transactions.lock().expect("mock lock");
    for (nth, transaction) in generated.transactions.iter().enumerate() {
        known.insert(transaction.hash.clone(), (block_index, nth as u64));
    }
    Ok(match node.options.protocol {
        Protocol::V2 => format!(
            r#"{{"api_version":"{}","block_with_signatures":{{"block":{block},"proofs":{}}}}}"#,
            node.api_version(),
            generated.proofs
        ),
        Protocol::V1 => {
            let mut block: Value = serde_json::from_str(block.get()).map_err(|e| (-32000, e.to_string()))?;
            block["proofs"] = generated.proofs.clone();
            json!({"api_version": node.api_version(), "block": block}).to_string()
        }
    })
}

/// 2.x `{"transaction_hash": {"Version1": h}}` → the transaction and its execution.
fn get_transaction(node: &Node, params: &Value) -> Result<String, RpcError> {
    let hash = params["transaction_hash"]["Version1"].as_str().unwrap_or_default();
    let (block, nth) = locate(node, hash)?;
    let accepted = produced(node, 0, Part::Accepted, block, nth).ok_or(no_such("transaction", hash))?;
    let processed = produced(node, 0, Part::Processed(Processed::Captured), block, nth)
        .or_else(|| produced(node, 0, Part::Processed(Processed::Token), block, nth))
        .ok_or(no_such("transaction", hash))?;
    let (transaction, processed): (&RawValue, Execution) = (content(&accepted)?, content(&processed)?);
    Ok(format!(
        r#"{{"api_version":"{}","transaction":{transaction},"execution_info":{{"block_hash":{},"block_height":{},"execution_result":{}}}}}"#,
        node.api_version(),
        processed.block_hash,
        FIRST_HEIGHT + block,
        processed.execution_result
    ))
}

/// 1.x `{"deploy_hash": h}` → the deploy and its execution results.
fn get_deploy(node: &Node, params: &Value) -> Result<String, RpcError> {
    let hash = params["deploy_hash"].as_str().unwrap_or_default();
    let (block, nth) = locate(node, hash)?;
    let accepted = produced(node, 1, Part::Accepted, block, nth).ok_or(no_such("deploy", hash))?;
    let processed =
        produced(node, 0, Part::Processed(Processed::Captured), block, nth).ok_or(no_such("deploy", hash))?;
    let (deploy, processed): (&RawValue, Execution) = (content(&accepted)?, content(&processed)?);
    Ok(format!(
        r#"{{"api_version":"{}","deploy":{deploy},"execution_results":[{{"block_hash":{},"result":{}}}]}}"#,
        node.api_version(),
        processed.block_hash,
        processed.execution_result
    ))
}

/// What a processed transaction's event says of its execution, as JSON text.
#[derive(Deserialize)]
struct Execution<'a> {
    #[serde(borrow)]
    block_hash: &'a RawValue,
    #[serde(borrow)]
    execution_result: &'a RawValue,
}

/// The content of an event `{"Kind": {…}}`, read as `T` (what `T` leaves out is skipped, not
/// built).
fn content<'a, T: Deserialize<'a>>(event: &'a str) -> Result<T, RpcError> {
    let kinds: std::collections::BTreeMap<&'a str, T> =
        serde_json::from_str(event).map_err(|e| (-32000, e.to_string()))?;
    kinds.into_values().next().ok_or((-32000, "an event without content".to_owned()))
}

/// `{"key": k, "path": [names…]}` → the value stored under `k`, following each name through
/// the named keys of the contract found so far.
fn query_global_state(node: &Node, params: &Value) -> Result<Value, RpcError> {
    let key = params["key"].as_str().ok_or((-32602, "expected a key".to_owned()))?;
    let mut value = node.state.get(key).ok_or(no_such("key", key))?;
    for name in params["path"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        let named_keys = value["Contract"]["named_keys"].as_array().into_iter().flatten();
        let next = named_keys.filter(|k| k["name"] == name).find_map(|k| k["key"].as_str());
        let next = next.ok_or(no_such("named key", name))?;
        value = node.state.get(next).ok_or(no_such("key", next))?;
    }
    Ok(json!({"api_version": node.api_version(), "block_header": null, "stored_value": value, "merkle_proof": ""}))
}

/// Where a transaction listed by a block served earlier sits: (block, position).
fn locate(node: &Node, hash: &str) -> Result<(u64, u64), RpcError> {
    node.transactions.lock().expect("mock lock").get(hash).copied().ok_or(no_such("transaction", hash))
}

/// The JSON of the event of stream `stream` that is `part` of (`block`, `nth`), if produced yet.
fn produced(node: &Node, stream: usize, part: Part, block: u64, nth: u64) -> Option<String> {
    let chain: &Chain = &node.streams.get(stream)?.1;
    let id = chain.id_of(part, block, nth)?;
    if id >= node.head(chain) {
        return None;
    }
    let mut json = String::new();
    chain.render(id, &mut json);
    Some(json)
}

fn no_such(what: &str, which: impl std::fmt::Display) -> RpcError {
    (-32001, format!("no such {what}: {which}"))
}
