//! The mock node's JSON-RPC, `POST /rpc`: what Sluice's gap backfill asks a node for, answered
//! from the generated chain like a node would: `chain_get_block` by height, then
//! `info_get_transaction` (2.x) or `info_get_deploy` (1.x) for each transaction the block lists;
//! and `query_global_state` over the state given with `--state` (what plugins ask).

use super::chain::{Chain, FIRST_HEIGHT, Part, Processed};
use super::{Node, Protocol};
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use std::sync::Arc;

/// A JSON-RPC error: code and message.
type RpcError = (i64, String);

/// Answer one JSON-RPC request.
pub async fn rpc(State(node): State<Arc<Node>>, Json(request): Json<Value>) -> Json<Value> {
    let params = &request["params"];
    let answer = match request["method"].as_str() {
        Some("chain_get_block") => get_block(&node, params),
        Some("info_get_transaction") if node.options.protocol == Protocol::V2 => get_transaction(&node, params),
        Some("info_get_deploy") if node.options.protocol == Protocol::V1 => get_deploy(&node, params),
        Some("query_global_state") => query_global_state(&node, params),
        other => Err((-32601, format!("method not found: {other:?}"))),
    };
    let id = request["id"].clone();
    Json(match answer {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err((code, message)) => json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}),
    })
}

/// `{"block_identifier": {"Height": h}}` → the generated block at that height, if produced.
fn get_block(node: &Node, params: &Value) -> Result<Value, RpcError> {
    let height = params["block_identifier"]["Height"].as_u64().ok_or((-32602, "expected a Height".to_owned()))?;
    let block_index = height.checked_sub(FIRST_HEIGHT).ok_or(no_such("block", height))?;
    let event = produced(node, 0, Part::Block, block_index, 0).ok_or(no_such("block", height))?;
    let block = event["BlockAdded"]["block"].clone();
    let transactions: Vec<&str> = match node.options.protocol {
        Protocol::V2 => {
            let lanes = block["Version2"]["body"]["transactions"].as_object().into_iter().flat_map(|l| l.values());
            lanes.filter_map(Value::as_array).flatten().filter_map(|hash| hash["Version1"].as_str()).collect()
        }
        Protocol::V1 => ["deploy_hashes", "transfer_hashes"]
            .iter()
            .filter_map(|list| block["body"][list].as_array())
            .flatten()
            .filter_map(Value::as_str)
            .collect(),
    };
    let mut known = node.transactions.lock().expect("mock lock");
    for (nth, hash) in transactions.into_iter().enumerate() {
        known.insert(hash.to_owned(), (block_index, nth as u64));
    }
    Ok(match node.options.protocol {
        Protocol::V2 => {
            json!({"api_version": node.api_version(), "block_with_signatures": {"block": block, "proofs": []}})
        }
        Protocol::V1 => json!({"api_version": node.api_version(), "block": block}),
    })
}

/// 2.x `{"transaction_hash": {"Version1": h}}` → the transaction and its execution.
fn get_transaction(node: &Node, params: &Value) -> Result<Value, RpcError> {
    let hash = params["transaction_hash"]["Version1"].as_str().unwrap_or_default();
    let (block, nth) = locate(node, hash)?;
    let accepted = produced(node, 0, Part::Accepted, block, nth).ok_or(no_such("transaction", hash))?;
    let processed = produced(node, 0, Part::Processed(Processed::Captured), block, nth)
        .or_else(|| produced(node, 0, Part::Processed(Processed::Token), block, nth))
        .ok_or(no_such("transaction", hash))?;
    let processed = &processed["TransactionProcessed"];
    Ok(json!({
        "api_version": node.api_version(),
        "transaction": accepted["TransactionAccepted"],
        "execution_info": {
            "block_hash": processed["block_hash"],
            "block_height": FIRST_HEIGHT + block,
            "execution_result": processed["execution_result"],
        },
    }))
}

/// 1.x `{"deploy_hash": h}` → the deploy and its execution results.
fn get_deploy(node: &Node, params: &Value) -> Result<Value, RpcError> {
    let hash = params["deploy_hash"].as_str().unwrap_or_default();
    let (block, nth) = locate(node, hash)?;
    let accepted = produced(node, 1, Part::Accepted, block, nth).ok_or(no_such("deploy", hash))?;
    let processed =
        produced(node, 0, Part::Processed(Processed::Captured), block, nth).ok_or(no_such("deploy", hash))?;
    let processed = &processed["DeployProcessed"];
    Ok(json!({
        "api_version": node.api_version(),
        "deploy": accepted["DeployAccepted"],
        "execution_results": [{"block_hash": processed["block_hash"], "result": processed["execution_result"]}],
    }))
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

/// The event of stream `stream` that is `part` of (`block`, `nth`), if produced yet.
fn produced(node: &Node, stream: usize, part: Part, block: u64, nth: u64) -> Option<Value> {
    let chain: &Chain = &node.streams.get(stream)?.1;
    let id = chain.id_of(part, block, nth)?;
    if id >= node.head(chain) {
        return None;
    }
    let mut json = String::new();
    chain.render(id, &mut json);
    serde_json::from_str(&json).ok()
}

fn no_such(what: &str, which: impl std::fmt::Display) -> RpcError {
    (-32001, format!("no such {what}: {which}"))
}
