//! Gap backfill: when a node no longer held events Sluice asked for (a gap, recorded by the
//! stream), the blocks in between are fetched from the node's JSON-RPC (`chain_get_block` by
//! height, then `info_get_transaction` on 2.x or `info_get_deploy` on 1.x for each transaction the
//! block lists) and stored as the `BlockAdded` and `TransactionProcessed`/`DeployProcessed` events
//! the node would have sent. They carry no node event id. Other event types of the gap
//! (accepted transactions, signatures) cannot be fetched this way and stay missing.
//!
//! Which blocks: those above the highest block stored when the gap was found, up to the blocks
//! stored since, that are not stored (another node may have delivered some), plus the block below
//! the gap and the one before each hole, whose transactions' events the gap may have cut off.
//! Only events the store does not hold are sent, so a streamed event (whose 2.x `messages` the
//! RPC cannot give back) is never replaced, and each is stored once either way.

use super::NodeStatus;
use super::backoff::Backoff;
use crate::config::NodeConfig;
use crate::event::{Delivery, Frame, Payload};
use crate::rpc::{Rpc, RpcError};
use crate::store::Store;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often the store is asked for gaps to fill.
const POLL: Duration = Duration::from_secs(1);

/// Fill `node`'s gaps from its JSON-RPC at `rpc_url`, forever. Returns when `out` is closed.
pub async fn backfill(
    node: NodeConfig,
    rpc_url: String,
    status: Arc<NodeStatus>,
    store: Store,
    out: mpsc::Sender<Delivery>,
) {
    let name: Arc<str> = Arc::from(node.name.get_ref().as_str());
    let client = match reqwest::Client::builder().connect_timeout(node.connect_timeout()).build() {
        Ok(client) => client,
        Err(e) => return tracing::error!(node = %name, "cannot build an HTTP client: {e}"),
    };
    let rpc = Rpc::new(client, &rpc_url, node.max_frame_bytes());
    let filler = Filler { rpc, name, status, store, out, limit: node.max_backfill_blocks };
    // Gaps filled whose record is still on its way to the store.
    let mut done = HashSet::new();
    let (mut backoff, mut delay) = (Backoff::new(), POLL);
    while !filler.out.is_closed() {
        tokio::time::sleep(delay).await;
        delay = POLL;
        let node = filler.name.to_string();
        let gaps = match filler.store.read(move |conn| conn.gaps_to_backfill(&node)).await {
            Ok(gaps) => gaps,
            Err(e) => {
                tracing::warn!(node = %filler.name, "cannot read the gaps to backfill: {e:#}");
                continue;
            }
        };
        // One gap at a time, and the next only once the last one's record is stored: it then
        // sees the blocks stored for the last one (a 1.x node has a gap per stream, usually over
        // the same blocks).
        done.retain(|gap| gaps.iter().any(|(listed, _)| listed == gap));
        if !done.is_empty() {
            continue;
        }
        for (gap, below) in gaps {
            match filler.fill(gap, below).await {
                Ok(true) => {
                    done.insert(gap);
                    backoff = Backoff::new();
                    break;
                }
                Ok(false) => {}
                Err(Stop::Shutdown) => return,
                Err(Stop::Unreachable(e)) => {
                    delay = backoff.next_delay(false).max(POLL);
                    tracing::warn!(node = %filler.name, gap, "backfill paused for {delay:.1?}: the node's JSON-RPC failed: {e}");
                    break;
                }
            }
        }
    }
}

/// Why a backfill stopped early.
enum Stop {
    /// The pipeline is gone.
    Shutdown,
    /// The node's JSON-RPC cannot be reached: try again later.
    Unreachable(reqwest::Error),
}

/// One node's backfill.
struct Filler {
    rpc: Rpc,
    name: Arc<str>,
    status: Arc<NodeStatus>,
    store: Store,
    out: mpsc::Sender<Delivery>,
    /// Most blocks fetched for one gap.
    limit: u32,
}

impl Filler {
    /// Fetch and store the blocks of gap `gap`, then record the backfill. `below` is the highest
    /// block stored when the gap was found. Returns false when it is too early: no block above
    /// the gap is stored yet, so where it ends is unknown.
    async fn fill(&self, gap: i64, below: Option<u64>) -> Result<bool, Stop> {
        let Some(below) = below else {
            self.record(gap, 0, vec!["no block was stored before the gap".into()]).await?;
            return Ok(true);
        };
        let limit = self.limit as usize;
        let stored = self.store.read(move |conn| conn.block_heights_above(below, limit)).await;
        let stored: HashSet<u64> = match stored {
            Ok(heights) if heights.is_empty() => return Ok(false),
            Ok(heights) => heights.into_iter().collect(),
            Err(e) => {
                tracing::warn!(node = %self.name, "cannot read the stored blocks: {e:#}");
                return Ok(false);
            }
        };
        let highest = stored.iter().max().copied().unwrap_or(below);
        // The newest missing heights first, at most `limit` (whatever height a node claims).
        let mut missing: Vec<u64> = (below + 1..highest).rev().filter(|h| !stored.contains(h)).take(limit).collect();
        missing.reverse();
        let mut notes = Vec::new();
        let all_missing = (highest - below - 1) as usize - (stored.len() - 1);
        if all_missing > missing.len() {
            notes.push(format!("{all_missing} blocks missing; only the newest {limit} fetched (max_backfill_blocks)"));
        }
        // The block below the gap and the stored block before each hole are fetched too: the gap
        // may have cut off their transactions' events. Only events not stored yet are sent.
        let heights: BTreeSet<u64> =
            missing.iter().map(|h| h - 1).chain(missing.iter().copied()).chain([below]).collect();
        tracing::info!(node = %self.name, gap, blocks = missing.len(), "backfilling a gap over JSON-RPC");
        let mut blocks = 0;
        for height in heights {
            match self.fetch_block(height, &mut notes).await {
                Ok(events) => blocks += self.send_new(events).await?,
                Err(RpcError::Unreachable(e)) => return Err(Stop::Unreachable(e)),
                Err(e) => notes.push(format!("block {height}: {e}")),
            }
        }
        self.status.backfilled_blocks.fetch_add(u64::from(blocks), Relaxed);
        self.record(gap, blocks, notes).await?;
        Ok(true)
    }

    /// The block at `height` and its transactions' executions, as node events (JSON). A
    /// transaction that cannot be fetched is noted in `notes` and left out.
    async fn fetch_block(&self, height: u64, notes: &mut Vec<String>) -> Result<Vec<String>, RpcError> {
        let result = self.rpc.call("chain_get_block", json!({"block_identifier": {"Height": height}})).await?;
        let Some((block_added, transactions)) = block_added(&result) else {
            return Err(unexpected("chain_get_block"));
        };
        let mut events = vec![block_added];
        for transaction in transactions {
            let (method, params, hash) = match &transaction {
                Transaction::V2(hash) => ("info_get_transaction", json!({"transaction_hash": hash}), hash.to_string()),
                Transaction::Deploy(hash) => ("info_get_deploy", json!({"deploy_hash": hash}), hash.clone()),
            };
            let processed = self.rpc.call(method, params).await.and_then(|result| {
                let processed = match transaction {
                    Transaction::V2(_) => transaction_processed(&result),
                    Transaction::Deploy(_) => deploy_processed(&result),
                };
                processed.ok_or_else(|| unexpected(method))
            });
            match processed {
                Ok(processed) => events.push(processed),
                Err(e @ RpcError::Unreachable(_)) => return Err(e),
                Err(e) => notes.push(format!("transaction {hash} of block {height}: {e}")),
            }
        }
        Ok(events)
    }

    /// Send the events the store does not hold yet (a streamed event, which may carry more than
    /// the RPC answers, stays as it is); returns how many of them were blocks.
    async fn send_new(&self, events: Vec<String>) -> Result<u32, Stop> {
        let payloads: Vec<Payload> = events.into_iter().map(parsed).collect();
        let keys: Vec<String> = payloads
            .iter()
            .filter_map(|p| if let Payload::Event(e) = p { Some(e.key.clone()) } else { None })
            .collect();
        let stored = self.store.read(move |conn| conn.stored_keys(&keys)).await.unwrap_or_default();
        let mut blocks = 0;
        for payload in payloads {
            if let Payload::Event(event) = &payload {
                if stored.contains(&event.key) {
                    continue;
                }
                blocks += u32::from(event.kind == "BlockAdded");
            }
            self.send(payload).await?;
        }
        Ok(blocks)
    }

    /// Record the end of a gap's backfill (after its events, so in the same or a later batch).
    async fn record(&self, gap: i64, blocks: u32, notes: Vec<String>) -> Result<(), Stop> {
        let note = (!notes.is_empty()).then(|| notes.join("; "));
        if let Some(note) = &note {
            tracing::warn!(node = %self.name, gap, blocks, "backfill incomplete: {note}");
        }
        self.send(Payload::Backfilled { gap, blocks, note }).await
    }

    async fn send(&self, payload: Payload) -> Result<(), Stop> {
        let delivery = Delivery::now(self.name.clone(), self.name.clone(), None, payload);
        self.out.send(delivery).await.map_err(|_| Stop::Shutdown)
    }
}

fn unexpected(method: &str) -> RpcError {
    RpcError::Answer { code: 0, message: format!("{method} answered in an unexpected shape") }
}

/// A synthesized event goes through the same parser as a streamed one.
fn parsed(raw: String) -> Payload {
    match Frame::parse(raw) {
        Ok(Frame::Event(event)) => Payload::Event(event),
        Ok(_) => Payload::Rejected { reason: "backfill: not an event".into(), raw: String::new() },
        Err(e) => Payload::Rejected { reason: format!("backfill: {}", e.reason), raw: e.raw },
    }
}

/// A transaction a block lists, as its execution is asked for.
#[derive(Debug, PartialEq)]
enum Transaction {
    /// 2.x node: `info_get_transaction` with this hash (`{"Version1": h}` or `{"Deploy": h}`).
    V2(Value),
    /// 1.x node: `info_get_deploy` with this hash.
    Deploy(String),
}

/// `chain_get_block`'s result → the `BlockAdded` event and the block's transactions. A 2.x node
/// answers `block_with_signatures.block` (`Version2`, or `Version1` for blocks from before the
/// upgrade); a 1.x node answers `block`.
fn block_added(result: &Value) -> Option<(String, Vec<Transaction>)> {
    let (block, transactions) = match result.get("block_with_signatures") {
        Some(signed) => {
            let block = &signed["block"];
            let transactions = if let Some(v2) = block.get("Version2") {
                let lanes = v2["body"]["transactions"].as_object()?;
                lanes.values().filter_map(Value::as_array).flatten().cloned().map(Transaction::V2).collect()
            } else {
                let hashes = deploy_hashes(&block["Version1"]);
                hashes.map(|h| Transaction::V2(json!({ "Deploy": h }))).collect()
            };
            (block, transactions)
        }
        None => {
            let block = result.get("block")?;
            (block, deploy_hashes(block).map(|h| Transaction::Deploy(h.to_owned())).collect())
        }
    };
    let hash = block.get("hash").or_else(|| block.as_object()?.values().next()?.get("hash"))?;
    Some((json!({"BlockAdded": {"block_hash": hash, "block": block}}).to_string(), transactions))
}

/// A 1.x-format block's deploys and transfers.
fn deploy_hashes(block: &Value) -> impl Iterator<Item = &str> {
    let body = &block["body"];
    [&body["deploy_hashes"], &body["transfer_hashes"]]
        .into_iter()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(Value::as_str)
}

/// 2.x `info_get_transaction`'s result → `TransactionProcessed` (its `messages` are not part of
/// the answer, so they are left empty).
fn transaction_processed(result: &Value) -> Option<String> {
    let execution = result.get("execution_info").filter(|e| !e.is_null())?;
    let (variant, transaction) = result["transaction"].as_object()?.iter().next()?;
    let (initiator, header) = match variant.as_str() {
        "Deploy" => (json!({"PublicKey": transaction["header"]["account"]}), &transaction["header"]),
        _ => (transaction["payload"]["initiator_addr"].clone(), &transaction["payload"]),
    };
    let event = json!({"TransactionProcessed": {
        "transaction_hash": {variant.as_str(): transaction["hash"]},
        "initiator_addr": initiator,
        "timestamp": header["timestamp"],
        "ttl": header["ttl"],
        "block_hash": execution["block_hash"],
        "execution_result": execution.get("execution_result").filter(|r| !r.is_null())?,
        "messages": [],
    }});
    Some(event.to_string())
}

/// 1.x `info_get_deploy`'s result → `DeployProcessed`.
fn deploy_processed(result: &Value) -> Option<String> {
    let deploy = &result["deploy"];
    let header = &deploy["header"];
    let execution = result["execution_results"].as_array()?.first()?;
    let event = json!({"DeployProcessed": {
        "deploy_hash": deploy["hash"],
        "account": header["account"],
        "timestamp": header["timestamp"],
        "ttl": header["ttl"],
        "dependencies": header["dependencies"],
        "block_hash": execution["block_hash"],
        "execution_result": execution["result"],
    }});
    Some(event.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(path: &str) -> Value {
        let text = std::fs::read_to_string(format!("{}/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn key(raw: String) -> String {
        match Frame::parse(raw).unwrap() {
            Frame::Event(event) => event.key,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rpc_answers_become_the_events_the_node_streams() {
        // 2.x: a block as `chain_get_block` returns it is the fixture's BlockAdded.
        let streamed = fixture("casper2/block_added_event_v2.json");
        let block = &streamed["BlockAdded"]["block"];
        let answer = json!({"api_version": "2.0.0", "block_with_signatures": {"block": block, "proofs": []}});
        let (event, transactions) = block_added(&answer).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&event).unwrap(), streamed);
        assert!(transactions.is_empty());

        // 1.x: the block's deploys are listed for `info_get_deploy`.
        let mut streamed = fixture("casper1/block_added_event.json");
        streamed["BlockAdded"]["block"]["body"]["deploy_hashes"] = json!(["ab"]);
        let answer = json!({"api_version": "1.5.8", "block": streamed["BlockAdded"]["block"]});
        let (event, transactions) = block_added(&answer).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&event).unwrap(), streamed);
        assert_eq!(transactions, [Transaction::Deploy("ab".into())]);

        // 1.x deploy: same key, same execution result as the streamed DeployProcessed.
        let streamed = fixture("casper1/deploy_processed_event.json");
        let processed = &streamed["DeployProcessed"];
        let mut deploy = fixture("casper1/deploy_accepted_event.json")["DeployAccepted"].clone();
        deploy["hash"] = processed["deploy_hash"].clone();
        let answer = json!({"deploy": deploy, "execution_results": [
            {"block_hash": processed["block_hash"], "result": processed["execution_result"]}
        ]});
        let event = deploy_processed(&answer).unwrap();
        assert_eq!(key(event.clone()), key(streamed.to_string()));
        let event: Value = serde_json::from_str(&event).unwrap();
        assert_eq!(event["DeployProcessed"]["execution_result"], processed["execution_result"]);

        // 2.x transaction: same key and execution as the streamed TransactionProcessed; none
        // while it is not executed.
        let streamed = fixture("casper2/transaction_processed_event_with_messages.json");
        let processed = &streamed["TransactionProcessed"];
        let mut transaction = fixture("casper2/transaction_accepted_event.json")["TransactionAccepted"].clone();
        transaction["Version1"]["hash"] = processed["transaction_hash"]["Version1"].clone();
        let execution =
            json!({"block_hash": processed["block_hash"], "execution_result": processed["execution_result"]});
        let event = transaction_processed(&json!({"transaction": transaction, "execution_info": execution})).unwrap();
        assert_eq!(key(event.clone()), key(streamed.to_string()));
        let event: Value = serde_json::from_str(&event).unwrap();
        assert_eq!(event["TransactionProcessed"]["execution_result"], processed["execution_result"]);
        assert_eq!(transaction_processed(&json!({"transaction": transaction, "execution_info": null})), None);
    }
}
